"""Write .env for docker compose with strong random secrets (`make env`).

Fills the template .env.example: the database owner's and the three roles'
passwords, VOILA_TOKEN and DASHBOARD_TOKEN get new random values (43 letters and
digits from `secrets`: 256 bits, safe inside a URL, a shell word or a YAML value,
and never starting with "-"), each its own; every other line is kept, comments
included (LABELLER_KEYS=required; DOMAIN stays for the operator to fill in). The
file is created readable only by its owner.

It refuses to replace an existing .env, because the database keeps the
password it was created with: a new POSTGRES_PASSWORD in .env would lock the
containers out. --force replaces it anyway (see the README, "Changing the
password").

Standard library only: it runs with the plain `python3` of a fresh server.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import string
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Variables that get a new random value (when the template leaves them empty).
SECRETS = ("POSTGRES_PASSWORD", "LABELLER_DB_PASSWORD", "ORCHESTRATOR_DB_PASSWORD", "READER_DB_PASSWORD",
           "VOILA_TOKEN", "DASHBOARD_TOKEN")
ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 43  # 43 * log2(62) = 256 bits

# Used only when .env.example is missing.
FALLBACK_TEMPLATE = """\
# smartlabel settings for docker compose (written by scripts/make_env.py)
POSTGRES_USER=smartlabel
POSTGRES_PASSWORD=
POSTGRES_DB=smartlabel
LABELLER_DB_PASSWORD=
ORCHESTRATOR_DB_PASSWORD=
READER_DB_PASSWORD=
VOILA_TOKEN=
DASHBOARD_TOKEN=
LABELLER_KEYS=required
DOMAIN=
"""

_ASSIGNMENT = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def new_secret() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))


def render(template: str) -> tuple[str, dict[str, str]]:
    """The template with every empty secret filled in, and the values chosen.

    A secret the template already sets is kept; one it lacks is appended.
    """
    chosen: dict[str, str] = {}
    seen: set[str] = set()
    lines = []
    for line in template.splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            seen.add(match["key"])
            if match["key"] in SECRETS and not match["value"].strip():
                chosen[match["key"]] = new_secret()
                line = f"{match['key']}={chosen[match['key']]}"
        lines.append(line)
    for key in SECRETS:
        if key not in seen:
            chosen[key] = new_secret()
            lines.append(f"{key}={chosen[key]}")
    return "\n".join(lines) + "\n", chosen


def write_private(path: Path, text: str, *, overwrite: bool) -> None:
    """Write `text` to `path` with mode 600; without `overwrite`, fail if it exists."""
    if not overwrite:
        # O_EXCL: the check and the creation are one step, so nothing is ever replaced.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=path.parent)  # mkstemp: mode 600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_env.py",
        description="Write .env for docker compose with strong random database passwords and "
        "tokens (from .env.example). Refuses to replace an existing .env.",
    )
    parser.add_argument("--output", type=Path, default=ROOT / ".env", help="file to write (default: %(default)s)")
    parser.add_argument(
        "--template", type=Path, default=ROOT / ".env.example", help="template to fill in (default: %(default)s)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing .env (the database keeps its old password: see the README)",
    )
    args = parser.parse_args(argv)

    output: Path = args.output
    if output.exists() and not args.force:
        print(
            f"error: {output} already exists; leaving it alone. It holds the database password your "
            "data was created with. To replace it anyway: python3 scripts/make_env.py --force "
            "(then read 'Changing the password' in the README).",
            file=sys.stderr,
        )
        return 1
    if args.template.is_file():
        template = args.template.read_text(encoding="utf-8")
    else:
        print(f"warning: {args.template} not found; writing the minimal variables only", file=sys.stderr)
        template = FALLBACK_TEMPLATE
    text, chosen = render(template)
    try:
        write_private(output, text, overwrite=args.force)
    except FileExistsError:  # created between the check and the write
        print(f"error: {output} already exists; leaving it alone (use --force to replace it)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1

    print(f"wrote {output} (readable only by you) with new random {', '.join(chosen) or 'nothing'}.")
    print("Tags: the default LABELS (LABELS=reuters) fit the bundled aldata.csv of Reuters stories; for "
          f"your own posts set LABELS in {output}, e.g. LABELS=article (the article's five tags) or a JSON list.")
    if chosen:
        print("Next: set DOMAIN in it if you have a domain name for this server, then")
        print("  docker compose up -d")
        print('  docker compose run --rm init smartlabel labellers add "NAME"   # prints NAME\'s personal link')
    return 0


if __name__ == "__main__":
    sys.exit(main())
