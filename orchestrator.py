"""The orchestrator, as in the article: `python orchestrator.py` retrains on a timer.

Same as `smartlabel orchestrate` (pass its options, e.g. `--once`); settings come
from the environment / .env (DATABASE_URL, MODEL, ACQUISITION, ...).
"""

import sys
from pathlib import Path

try:
    from smartlabel.cli import main
except ImportError:  # running from a checkout without `pip install`
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from smartlabel.cli import main

if __name__ == "__main__":
    main(["orchestrate", *sys.argv[1:]])
