"""Importing superintendent without its training stack.

superintendent imports scikit-learn, SciPy and pandas at module level, for its own
retrain(), its acquisition functions and its own DatabaseQueue: nothing the labelling
page calls (model=None, our queue). `import_superintendent()` gives it stand-ins for
exactly those modules while it is imported, then takes them out of `sys.modules`
again, which keeps about 140 MB and 1.5 s of imports out of every labeller's kernel.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

TRAINING_ONLY = ("sklearn", "sklearn.base", "sklearn.model_selection", "scipy", "scipy.stats", "pandas")


class _NotLoaded(types.ModuleType):
    """Stand-in for a module the labelling kernel does not load."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.__name__ == "sklearn.base" and name == "BaseEstimator":
            return _PlaceholderEstimator  # superintendent only uses it in type hints
        raise RuntimeError(
            f"{self.__name__}.{name} is not loaded in the labelling page's kernel: "
            "training happens in the orchestrator (smartlabel orchestrate), never here"
        )


class _PlaceholderEstimator:
    pass


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in TRAINING_ONLY:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _NotLoaded(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_superintendent():
    """Import superintendent without scikit-learn, SciPy and pandas; return its widget class.

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
    for name in TRAINING_ONLY:
        if isinstance(sys.modules.get(name), _NotLoaded):
            del sys.modules[name]
