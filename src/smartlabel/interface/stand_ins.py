"""Importing superintendent without its training stack and its own database queue.

superintendent imports, at module level, scikit-learn, SciPy, pandas and NumPy (for its
own retrain(), its acquisition functions and its own DatabaseQueue) and, through that
queue, sqlmodel and SQLAlchemy's ORM: nothing the labelling page calls (model=None, no
acquisition function, our queue). `import_superintendent()` gives it stand-ins for exactly
those modules while it is imported, then takes them out of `sys.modules` again, which keeps
about 150 MB and 1.8 s of imports out of every labeller's kernel (the ORM, sqlmodel and
NumPy alone are about 17 MB of each kernel's RSS; measured in BENCHMARKS.md, issue 14).

Only the thread that imports superintendent gets stand-ins: another thread importing,
say, NumPy meanwhile gets the real one. superintendent's submodules that were stood in
(`superintendent.acquisition_functions`, `superintendent.db_queue`) are dropped from
`sys.modules` too, so `import superintendent.acquisition_functions` later in the same
process loads the real module.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types

# modules superintendent imports for training only (its retrain(), its acquisition functions)
TRAINING_ONLY = ("sklearn", "sklearn.base", "sklearn.model_selection", "scipy", "scipy.stats", "pandas", "numpy")
# superintendent's own modules the page never runs: its acquisition functions (the orchestrator
# scores posts, smartlabel.acquisition) and its DatabaseQueue (sqlmodel, SQLAlchemy's ORM; the
# page runs on smartlabel.queue.LabelQueue)
UNUSED_PARTS = ("superintendent.acquisition_functions", "superintendent.db_queue")
STOOD_IN = TRAINING_ONLY + UNUSED_PARTS


class _NotLoaded(types.ModuleType):
    """Stand-in for a module the labelling kernel does not load."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = _PLACEHOLDERS.get((self.__name__, name))
        if placeholder is not None:
            return placeholder
        raise RuntimeError(
            f"{self.__name__}.{name} is not loaded in the labelling page's kernel: "
            "training happens in the orchestrator (smartlabel orchestrate), never here"
        )


class _PlaceholderEstimator:
    """sklearn.base.BaseEstimator in superintendent's type hints."""


class _PlaceholderQueue:
    """superintendent.db_queue.DatabaseQueue in superintendent's type hints (the page passes its queue)."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("superintendent's DatabaseQueue is not loaded in the labelling page's kernel: "
                           "pass a queue (smartlabel.queue.LabelQueue)")


# what superintendent's module body reads from the stand-ins while it is imported
_PLACEHOLDERS = {
    ("sklearn.base", "BaseEstimator"): _PlaceholderEstimator,
    ("superintendent.db_queue", "DatabaseQueue"): _PlaceholderQueue,
    ("numpy", "inf"): float("inf"),  # Superintendent.orchestrate(max_runs=np.inf)
    ("superintendent.acquisition_functions", "functions"): {},
}


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self):
        self.thread = threading.get_ident()

    def find_spec(self, fullname, path=None, target=None):
        if fullname in STOOD_IN and threading.get_ident() == self.thread:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _NotLoaded(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_superintendent():
    """Import superintendent without its training stack and its DatabaseQueue; return its widget class.

    Modules already imported are used as they are. The stand-ins leave `sys.modules`
    afterwards, so anything else in the process still imports the real modules. If
    anything goes wrong, superintendent is imported the ordinary way.
    """
    if "superintendent" in sys.modules:
        return sys.modules["superintendent"].Superintendent
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        import superintendent
    except Exception:
        _drop_stand_ins()
        for name in [m for m in sys.modules if m == "superintendent" or m.startswith("superintendent.")]:
            del sys.modules[name]
        sys.meta_path.remove(finder)
        import superintendent
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        _drop_stand_ins()
    return superintendent.Superintendent


def _drop_stand_ins() -> None:
    for name in STOOD_IN:
        if isinstance(sys.modules.get(name), _NotLoaded):
            del sys.modules[name]
