"""Requirement and constraint lists for the Docker builds (stdlib only).

    python3 scripts/docker_requirements.py requirements pyproject.toml ui
        the project's dependencies plus the named extras, one per line: the
        Dockerfiles install them in a layer of their own, before the source is
        copied, so a code change does not reinstall every dependency;
    python3 scripts/docker_requirements.py constraints
        `name==version` for every package already installed, for `pip install
        -c`: pip may add packages but never replace these. Packages whose
        version is not PEP 440 (some Debian/Ubuntu system packages) are left
        out, since pip rejects them;
    python3 scripts/docker_requirements.py constraints --project constraints.txt
        what the orchestrator image (TensorFlow base) installs with: the
        project's exact versions (constraints.txt, the ones the tests run
        with) merged with the base image's packages. The base image wins for
        TensorFlow's own stack (TENSORFLOW_STACK: tensorflow, keras, numpy,
        protobuf, h5py, ml-dtypes, tensorboard: built and released together,
        so never reinstalled) and for packages pip cannot replace (installed
        by the system, without a RECORD); constraints.txt wins for every other
        package, so sqlalchemy, pandas, scikit-learn, pydantic ... are the
        tested versions. A constraints.txt pin that the base's stack cannot
        satisfy fails the build instead of changing TensorFlow;
    python3 scripts/docker_requirements.py verify constraints.txt
        exit 1, naming them, when an installed package has another version
        than the file pins: the last step of each image's dependency layer.
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


# Versions the TensorFlow base image fixes whatever constraints.txt says (normalised names).
TENSORFLOW_STACK = {
    "tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-io-gcs-filesystem", "tf-keras",
    "keras", "numpy", "ml-dtypes", "h5py", "protobuf", "tensorboard", "tensorboard-data-server",
}


def installed() -> dict[str, tuple[str, str, bool]]:
    """normalised name -> (name, version, pip can replace it) for the packages `import` would load."""
    found: dict[str, tuple[str, str, bool]] = {}
    for dist in metadata.distributions():  # sys.path order: what `import` would load
        name = dist.metadata["Name"]
        if not name or _normalise(name) in found or _normalise(name) in PACKAGING_TOOLS:
            continue
        if PEP440.match(dist.version or ""):
            replaceable = any(f.name == "RECORD" for f in (dist.files or ()))
            found[_normalise(name)] = (name, dist.version, replaceable)
    return found


def read_pins(path: str) -> dict[str, str]:
    """normalised name -> `name==version` from a constraints file (`name==version` lines, # comments)."""
    pins: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            if not sep or not name.strip() or not version.strip():
                raise SystemExit(f"error: {path}, line {number}: {line!r} is not name==version")
            pins[_normalise(name.strip())] = f"{name.strip()}=={version.strip()}"
    return pins


def constraints(base: dict[str, tuple[str, str, bool]], project: dict[str, str] | None = None) -> list[str]:
    """Pins for `pip install -c`: the base's packages, or the merge described in the module docstring."""
    pinned = {key: f"{name}=={version}" for key, (name, version, _) in base.items()}
    for key, pin in (project or {}).items():
        if key in TENSORFLOW_STACK:
            continue
        if key in base and not base[key][2]:
            continue  # installed by the system: pip could not replace it
        pinned[key] = pin
    return sorted(pinned.values(), key=str.lower)


def mismatches(pins: dict[str, str], found: dict[str, tuple[str, str, bool]]) -> list[str]:
    """Installed packages whose version is not the pinned one."""
    wrong = []
    for key, pin in sorted(pins.items()):
        if key in found and found[key][1] != pin.split("==", 1)[1]:
            wrong.append(f"{found[key][0]} {found[key][1]} is installed, {pin} is pinned")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    req = sub.add_parser("requirements", help="dependencies and extras from pyproject.toml")
    req.add_argument("pyproject", help="path to pyproject.toml")
    req.add_argument("extras", nargs="*", help="optional-dependency groups to add")
    con = sub.add_parser("constraints", help="pins for every installed package")
    con.add_argument("--project", metavar="FILE", help="merge in the project's pins (constraints.txt)")
    ver = sub.add_parser("verify", help="check that installed packages have the pinned versions")
    ver.add_argument("pins", help="a constraints file (name==version lines)")
    args = parser.parse_args(argv)
    if args.what == "verify":
        wrong = mismatches(read_pins(args.pins), installed())
        for line in wrong:
            print(f"error: {line} by {args.pins}", file=sys.stderr)
        return 1 if wrong else 0
    if args.what == "requirements":
        lines = requirements(args.pyproject, args.extras)
    else:
        lines = constraints(installed(), read_pins(args.project) if args.project else None)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
