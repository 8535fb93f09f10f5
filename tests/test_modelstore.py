"""smartlabel.modelstore: model files written atomically, and MODELS_DIR checked at start."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from smartlabel import modelstore
from smartlabel.errors import SmartlabelError
from smartlabel.modelstore import MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]


def test_modelstore_save_never_leaves_a_partial_file(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError):
        modelstore.save(Unpicklable(), tmp_path, 0.5)
    assert list(tmp_path.iterdir()) == []
    p = modelstore.save({"a": 1}, tmp_path, 0.81234)
    assert MODEL_NAME.match(p.name) and p.name.endswith(" 0.8123.pkl") and ":" not in p.name
    assert pickle.loads(p.read_bytes()) == {"a": 1}


def test_models_dir_is_created_at_start_or_refused_in_one_line(tmp_path, sqlite_url):
    made = modelstore.prepare_folder(tmp_path / "a" / "models")
    assert made.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SmartlabelError, match="cannot create MODELS_DIR"):
        modelstore.prepare_folder(blocker / "models")
    res = subprocess.run([sys.executable, "-m", "smartlabel", "orchestrate", "--once"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "DATABASE_URL": sqlite_url,
                              "MODELS_DIR": str(blocker / "models"), "HOME": str(tmp_path)}, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"error: cannot create MODELS_DIR {blocker / 'models'}: "
                                               "Not a directory; create it, or set MODELS_DIR"]


def _fitted_pipeline(texts, y):
    from sklearn.linear_model import LogisticRegression

    from smartlabel.models import join_pipeline, text_vectorizer

    vec = text_vectorizer()
    X = vec.fit_transform(texts)
    return vec, join_pipeline(vec, LogisticRegression().fit(X, y))


TEXTS = ["petition rally campaign sign", "pasta garlic dinner recipe", "march vote rally petition",
         "oven bread dinner garlic"]
Y = ["Advocacy", "Others", "Advocacy", "Others"]


def test_a_shared_part_is_pickled_once_and_the_files_load_with_plain_pickle(tmp_path):
    """The vectoriser's bytes are made once for every file that holds it; each file loads with
    plain pickle in a fresh interpreter and predicts what the model in memory predicts."""
    vec, model = _fitted_pipeline(TEXTS, Y)
    reuse = modelstore.Unchanged()
    first = modelstore.save(model, tmp_path, 0.9, run_id=1, unchanged=(reuse, vec))
    from sklearn.linear_model import LogisticRegression

    from smartlabel.models import join_pipeline

    # a new head on the same vectoriser (the next run): the vectoriser's bytes are reused
    other = join_pipeline(vec, LogisticRegression(C=0.01).fit(vec.transform(TEXTS), Y))
    second = modelstore.save(other, tmp_path, 0.8, run_id=2, unchanged=(reuse, vec))
    assert reuse.pickled == 1
    probe = ["rally petition vote", "garlic bread"]
    script = ("import pickle, sys, json; m = pickle.load(open(sys.argv[1], 'rb')); "
              "print(json.dumps(m.predict_proba(json.loads(sys.argv[2])).tolist()))")
    for path, m in ((first, model), (second, other)):
        out = subprocess.run([sys.executable, "-c", script, str(path), json.dumps(probe)], capture_output=True,
                             text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "src")})
        assert out.returncode == 0, out.stderr
        got = [p for row in json.loads(out.stdout) for p in row]
        assert got == pytest.approx(m.predict_proba(probe).ravel().tolist(), abs=1e-12)
    assert pickle.loads(second.read_bytes()).named_steps["tfidf"].vocabulary_ == vec.vocabulary_


def test_a_refitted_or_changed_part_is_pickled_again(tmp_path):
    vec, model = _fitted_pipeline(TEXTS, Y)
    reuse = modelstore.Unchanged()
    modelstore.save(model, tmp_path, 0.9, run_id=1, unchanged=(reuse, vec))
    # a refit is a new vectoriser: its own bytes, and the file holds the new vocabulary
    vec2, model2 = _fitted_pipeline(TEXTS + ["tax reform budget vote"], Y + ["Advocacy"])
    path = modelstore.save(model2, tmp_path, 0.9, run_id=2, unchanged=(reuse, vec2))
    assert reuse.pickled == 2
    assert "budget" in pickle.loads(path.read_bytes()).named_steps["tfidf"].vocabulary_
    # an attribute replaced on the same object is seen too
    vec2.vocabulary_ = {**vec2.vocabulary_, "zzz": len(vec2.vocabulary_)}
    path = modelstore.save(model2, tmp_path, 0.9, run_id=3, unchanged=(reuse, vec2))
    assert reuse.pickled == 3 and "zzz" in pickle.loads(path.read_bytes()).named_steps["tfidf"].vocabulary_
