"""Exit 1, naming them, when a plugin package's dependencies are not installed (run_tests.sh)."""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement


def missing(package_dir: Path) -> list[str]:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    wanted = list(project.get("dependencies", [])) + list(project.get("optional-dependencies", {}).get("test", []))
    out = []
    for text in wanted:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate():
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            out.append(f"{text} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            out.append(f"{text} (have {have})")
    return out


if __name__ == "__main__":
    pkg = Path(sys.argv[1])
    gaps = missing(pkg)
    if gaps:
        print(
            f"{pkg.name}: missing dependencies: {'; '.join(gaps)}\n  fix: pip install "
            + " ".join(f"'{g.split(' (')[0]}'" for g in gaps),
            file=sys.stderr,
        )
        sys.exit(1)
