"""Model files: `MODELS_DIR/<timestamp> <cv score>.pkl`, written atomically, listed, pruned, loaded.

A file is a pickled scikit-learn pipeline, text in, probabilities out:
`pickle.load(open(path, "rb")).predict_proba(["some post"])`. The name is the UTC time
(no colons, so it works on every OS) and the run's cross-validated accuracy, as in the
article; a second file in the same second gets `-r<run id>` after the time.

`Unchanged` keeps the pickled bytes of a part that every model file of a pool shares
unchanged (the fitted vectoriser: its 200,000-term vocabulary took 0.4 s of CPU to pickle
at each run, the head a few milliseconds). `save(..., unchanged=...)` writes those bytes
as they are, inside an ordinary pickle (`pickle.loads(<bytes>)` rebuilds the part), so a
file still loads with plain `pickle.load` and nothing else.
"""

from __future__ import annotations

import os
import pickle
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from smartlabel.errors import SmartlabelError

MODEL_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)(-r\d+)? (\S+)\.pkl$")


class NoModelError(SmartlabelError):
    """No usable model file."""


def model_timestamp(now: datetime | None = None) -> str:
    """UTC time safe in a file name on every OS: 2026-11-25T14-05-00Z."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H-%M-%SZ")


def format_score(score: float | None) -> str:
    return "nan" if score is None or not np.isfinite(score) else f"{score:.4f}"


def files(models_dir: str | os.PathLike) -> list[Path]:
    """Model files `<timestamp> <cv score>.pkl`, oldest first."""
    d = Path(models_dir)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_file() and MODEL_NAME.match(p.name)]

    def key(p: Path):
        m = MODEL_NAME.match(p.name)
        suffix = int(m.group(2)[2:]) if m.group(2) else 0
        return (m.group(1), suffix, p.stat().st_mtime)

    return sorted(found, key=key)


class Unchanged:
    """The pickled bytes of one object, made again only when it is another object or one of
    its attributes was replaced (a refitted vectoriser is a new object).

    It holds the object and its attributes' values, so their identities cannot be taken by
    new objects while the bytes are kept. An attribute's value changed in place is not seen:
    use it for fitted parts that nothing changes afterwards."""

    def __init__(self):
        self._key: tuple | None = None
        self._kept: tuple = ()
        self._blob = b""
        self.pickled = 0  # how many times the bytes were made

    def blob(self, obj) -> bytes:
        values = tuple(vars(obj).values()) if hasattr(obj, "__dict__") else ()
        key = (id(obj), *map(id, values))
        if key != self._key:
            self._blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            self._key, self._kept = key, (obj, values)
            self.pickled += 1
        return self._blob

    def kept(self):
        """The object whose bytes are kept (None before the first `blob`)."""
        return self._kept[0] if self._kept else None


class _Pickler(pickle.Pickler):
    """Writes `reuse`'s object as `pickle.loads(<its kept bytes>)`."""

    def __init__(self, fh, reuse: Unchanged):
        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._reuse = reuse
        self._obj = reuse.kept()

    def reducer_override(self, obj):
        if self._obj is not None and obj is self._obj:
            return pickle.loads, (self._reuse.blob(obj),)
        return NotImplemented


def save(model, models_dir: str | os.PathLike, score: float | None,
         run_id: int | None = None, now: datetime | None = None, *,
         unchanged: tuple[Unchanged, object] | None = None) -> Path:
    """Pickle `model` as `<timestamp> <score>.pkl`: temporary file, fsync, then rename.

    `unchanged` = (an Unchanged, a part of `model`): that part is written from the bytes
    the Unchanged keeps (made now if it has none for it yet)."""
    d = Path(models_dir)
    d.mkdir(parents=True, exist_ok=True)
    stamp = model_timestamp(now)
    final = d / f"{stamp} {format_score(score)}.pkl"
    if any(p.name.startswith(stamp) for p in d.iterdir() if MODEL_NAME.match(p.name)):
        final = d / f"{stamp}-r{run_id or os.getpid()} {format_score(score)}.pkl"
    tmp = d / f".{final.stem}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            if unchanged is None:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            else:
                reuse, part = unchanged
                reuse.blob(part)
                _Pickler(fh, reuse).dump(model)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def prune(models_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the newest `keep` model files; returns the deleted ones."""
    existing = files(models_dir)
    gone = existing[:-keep] if keep > 0 else []
    for p in gone:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    return gone


def prepare_folder(models_dir: str | os.PathLike) -> Path:
    """Create MODELS_DIR if needed; a clear error now, not after a run, when it is not writable."""
    d = Path(models_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SmartlabelError(f"cannot create MODELS_DIR {d}: {exc.strerror}; create it, or set MODELS_DIR") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise SmartlabelError(
            f"MODELS_DIR {d} is not writable by this user (uid {os.getuid()}): give it to that user "
            f"(in Docker: sudo chown -R 1000 models), or set MODELS_DIR")
    return d


def remove_temporary(models_dir: str | os.PathLike) -> int:
    """Temporary files a killed process left behind (never a finished model)."""
    d = Path(models_dir)
    n = 0
    for sub in (d, d / ".cache"):
        if sub.is_dir():
            for p in sub.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def latest(models_dir: str | os.PathLike) -> Path:
    """The newest model file, or NoModelError saying how to get one."""
    existing = files(models_dir)
    if not existing:
        raise NoModelError(
            f"no model file in {models_dir}: run `smartlabel orchestrate --once` first "
            "(it needs agreed labels of at least two classes)"
        )
    return existing[-1]


def load(path: str | os.PathLike):
    """Unpickle a model file; NoModelError unless it holds a fitted classifier."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
    except Exception as exc:
        raise NoModelError(f"cannot read model file {path}: {type(exc).__name__}: {exc}") from None
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise NoModelError(f"{path} does not hold a fitted classifier with predict_proba")
    return model
