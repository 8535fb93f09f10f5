"""Requirement and constraint lists for the Docker builds (stdlib only).

    python3 scripts/docker_requirements.py requirements pyproject.toml ui
        the project's dependencies plus the named extras, one per line: the
        Dockerfiles install them in a layer of their own, before the source is
        copied, so a code change does not reinstall every dependency;
    python3 scripts/docker_requirements.py constraints
        `name==version` for every package already installed (the TensorFlow
        base image's stack), for `pip install -c`: pip may add packages but
        never replace these. Packages whose version is not PEP 440 (some
        Debian/Ubuntu system packages) are left out, since pip rejects them.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata

PEP440 = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
    r"((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?"
    r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?$",
    re.IGNORECASE,
)


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    found = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise SystemExit(f"error: {pyproject} has no extra {extra!r} (known: {known})")
        found.extend(optional[extra])
    return found


PACKAGING_TOOLS = {"pip", "setuptools", "wheel", "distribute"}  # left out, as by `pip freeze`


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> list[str]:
    pinned: dict[str, str] = {}
    for dist in metadata.distributions():  # sys.path order: what `import` would load
        name = dist.metadata["Name"]
        if not name or _normalise(name) in pinned or _normalise(name) in PACKAGING_TOOLS:
            continue
        if PEP440.match(dist.version or ""):
            pinned[_normalise(name)] = f"{name}=={dist.version}"
    return sorted(pinned.values(), key=str.lower)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    req = sub.add_parser("requirements", help="dependencies and extras from pyproject.toml")
    req.add_argument("pyproject", help="path to pyproject.toml")
    req.add_argument("extras", nargs="*", help="optional-dependency groups to add")
    sub.add_parser("constraints", help="pins for every installed package")
    args = parser.parse_args(argv)
    lines = requirements(args.pyproject, args.extras) if args.what == "requirements" else constraints()
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
