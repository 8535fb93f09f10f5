"""The kernel behind each page `smartlabel serve` / `smartlabel dashboard` serve: ipykernel
without its debugger.

ipykernel imports debugpy (pydevd) at start when it is installed, for the JupyterLab
debugger: about 18 MB of every kernel's memory and a share of its start-up time, for a
feature no Voila page offers (Voila never sends a debug request). Here debugpy is made
unimportable before ipykernel starts, which is ipykernel's own "debugpy not installed"
path (`_is_debugpy_available = False`); everything else is ipykernel as usual.

`smartlabel serve` puts `smartlabel/interface/jupyter` (serve.KERNEL_DATA) first on
JUPYTER_PATH, whose `kernels/python3/kernel.json` starts this module, so Voila's kernels for
a notebook whose kernelspec is `python3` (both of ours) run it. Outside `smartlabel serve`,
the notebooks run on the ordinary python3 kernel. This module sits at the package's top and
imports nothing of smartlabel: a kernel must answer Voila soon after it starts (until its
first message it counts as idle, and the culler may take it for a tab that is gone).
"""

from __future__ import annotations

import sys

NOT_LOADED = ("debugpy",)


def main() -> None:
    for name in NOT_LOADED:
        sys.modules.setdefault(name, None)  # `import debugpy` raises ImportError from now on
    if sys.path and sys.path[0] in ("", "."):  # as ipykernel_launcher: the notebook's folder is not a package root
        del sys.path[0]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
