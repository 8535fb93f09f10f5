"""smartlabel.modelstore: model files written atomically, and MODELS_DIR checked at start."""

from __future__ import annotations

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
