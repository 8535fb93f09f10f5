"""L2-regularised logistic regression fitted in the row space of X: the same model as
scikit-learn's `LogisticRegression(solver="lbfgs")`, much faster when there are far fewer
labelled posts than features (a few hundred rows, 10^4-10^5 TF-IDF columns).

Why it is the same model: scikit-learn minimises

    C * sum_i w_i * loss(x_i W + b, y_i) + 1/2 * ||W||^2        (w_i: class weights)

At the minimum the gradient in W is zero, so W = -C * X^T G for the loss's gradient G: W
lies in the span of the training rows. Writing W = X^T A and K = X X^T (n x n) gives

    C * sum_i w_i * loss((K A)_i + b, y_i) + 1/2 * tr(A^T K A)

whose minimiser gives the same W (the objective is strictly convex in W). L-BFGS then works
on n*k numbers instead of d*k, and each step costs one n x n product instead of a sparse
n x d one. The result is an ordinary fitted `LogisticRegression` (coef_, intercept_,
classes_), so predicting, pickling and loading are unchanged. Two classes use one logit
(sigmoid), as scikit-learn does; more use the softmax.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight

# above this many training rows scikit-learn's own solver is used (K is n x n)
MAX_ROWS = 3000


def applies(est, X) -> bool:
    """Whether `est` is a logistic regression this solver reproduces, on this X."""
    if type(est) is not LogisticRegression:
        return False
    p = est.get_params()
    l2 = p.get("penalty", "l2") in ("l2", "deprecated") and p.get("l1_ratio") in (None, 0, 0.0)
    return (l2 and p.get("solver") == "lbfgs" and p.get("fit_intercept", True)
            and X.shape[0] <= MAX_ROWS and X.shape[0] < X.shape[1])


def fit(est: LogisticRegression, X, y) -> LogisticRegression:
    """Fit `est` in place (see the module docstring); returns it."""
    X = sp.csr_matrix(X, dtype=np.float64)
    y = np.asarray(y)
    classes, yi = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"needs samples of at least 2 classes in the data, but the data contains only "
                         f"one class: {classes[0]!r}")
    n, k = X.shape[0], len(classes)
    sw = np.ones(n)
    if est.class_weight is not None:
        sw *= compute_class_weight(est.class_weight, classes=classes, y=y)[yi]
    scale = 1.0 / (est.C * sw.sum())  # the objective divided by C * sum(w): same minimiser
    K = (X @ X.T).toarray()
    cw = sw * est.C * scale  # = sw / sum(sw)
    if k == 2:
        t = (yi == 1).astype(float)

        def objective(theta):
            a, b = theta[:n], theta[n]
            f = K @ a + b
            loss = float(np.sum(cw * (np.logaddexp(0.0, f) - t * f)))
            g = cw * (expit(f) - t)
            value = loss + 0.5 * scale * float(a @ (K @ a))
            return value, np.concatenate([K @ (g + scale * a), [g.sum()]])

        size = n + 1
    else:
        Y = np.eye(k)[yi]

        def objective(theta):
            A, b = theta[:n * k].reshape(n, k), theta[n * k:]
            F = K @ A + b
            lse = logsumexp(F, axis=1)
            loss = float(np.sum(cw * (lse - F[np.arange(n), yi])))
            G = cw[:, None] * (np.exp(F - lse[:, None]) - Y)
            value = loss + 0.5 * scale * float(np.sum(A * (K @ A)))
            return value, np.concatenate([(K @ (G + scale * A)).ravel(), G.sum(axis=0)])

        size = n * k + k
    res = minimize(objective, np.zeros(size), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(est.max_iter), "gtol": 1e-9, "ftol": 1e-13})
    theta = res.x
    if k == 2:
        coef = (X.T @ theta[:n]).reshape(1, -1)
        intercept = np.array([theta[n]])
    else:
        coef = np.asarray((X.T @ theta[:n * k].reshape(n, k)).T)
        intercept = theta[n * k:] - theta[n * k:].mean()  # softmax is shift-free: centre it
    est.classes_ = classes
    est.coef_ = np.ascontiguousarray(coef)
    est.intercept_ = intercept
    est.n_features_in_ = X.shape[1]
    est.n_iter_ = np.array([res.nit], dtype=np.int32)
    return est

