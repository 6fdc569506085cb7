"""The claims table (docs/claims.md): every promise names tests, every named test exists (pytest's
own collection), every README section has its claims, and every mutation of tests/mutations.toml
belongs to a claim and names tests that exist."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass

import pytest

from project_helpers import REPO, cli_env

CLAIMS = REPO / "docs" / "claims.md"
MUTATIONS = REPO / "tests" / "mutations.toml"
COLUMNS = ["id", "claim", "made in", "tests", "mutations"]

# README sections that promise nothing a test could check: how to run the suite and the demo
EXEMPT_SECTIONS = {
    "The two commands": "the make targets themselves: CI runs `make test` (.ci/run)",
    "Development": "the layout of the repository and how the suite runs",
}


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    made_in: str
    tests: tuple[str, ...]
    mutations: tuple[str, ...]


def parse_claims(markdown: str) -> list[Claim]:
    """The rows of the table under '## Claims'. Raises ValueError on a malformed table."""
    section = markdown.split("\n## Claims\n", 1)
    if len(section) != 2:
        raise ValueError("no '## Claims' section")
    lines = [ln.strip() for ln in section[1].splitlines()]
    rows = [ln for ln in lines if ln.startswith("|")]
    if len(rows) < 2:
        raise ValueError("no table under '## Claims'")
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    if header != COLUMNS:
        raise ValueError(f"the table's columns are {header}, expected {COLUMNS}")
    claims = []
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != len(COLUMNS):
            raise ValueError(f"a row with {len(cells)} cells instead of {len(COLUMNS)}: {row[:80]}")
        cid, text, made_in, tests, mutations = cells
        claims.append(
            Claim(cid, text, made_in, tuple(re.findall(r"`([^`]+::[^`]+)`", tests)), tuple(mutations.split()))
        )
    return claims


def problems(claims: list[Claim], collected: set[str], mutation_names: set[str]) -> list[str]:
    """What is wrong with the table: claims without tests, tests pytest does not collect, ..."""
    out = []
    ids = [c.id for c in claims]
    out += [f"claim id '{i}' used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for c in claims:
        if not c.id or not c.text:
            out.append(f"a claim without an id or a text: {c}")
        if not c.tests:
            out.append(f"claim '{c.id}' names no test")
        out += [f"claim '{c.id}': no test {t}" for t in c.tests if t not in collected]
        unknown = [m for m in c.mutations if m not in mutation_names]
        out += [f"claim '{c.id}': no mutation '{m}' in tests/mutations.toml" for m in unknown]
    return out


def readme_sections(readme: str) -> list[str]:
    """The README's ## and ### headings, backticks removed, cut at the first comma."""
    heads = re.findall(r"^#{2,3} (.+)$", readme, flags=re.M)
    return [h.replace("`", "").split(",")[0].strip() for h in heads]


@pytest.fixture(scope="module")
def collected() -> set[str]:
    """Every test function pytest collects under tests/ (parametrized ids by their function)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", "tests"],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = {line.split("[", 1)[0] for line in proc.stdout.splitlines() if "::" in line}
    assert len(ids) > 100, proc.stdout[-2000:]
    return ids


@pytest.fixture(scope="module")
def claims() -> list[Claim]:
    return parse_claims(CLAIMS.read_text())


def _mutations() -> list[dict]:
    return tomllib.loads(MUTATIONS.read_text())["mutation"]


def test_every_claim_names_tests_that_exist(claims, collected):
    assert len(claims) >= 40
    assert problems(claims, collected, {m["name"] for m in _mutations()}) == []


def test_every_readme_section_has_claims(claims):
    made_in = " ".join(c.made_in for c in claims)
    missing = [s for s in readme_sections((REPO / "README.md").read_text()) if s not in EXEMPT_SECTIONS]
    missing = [s for s in missing if s not in made_in]
    assert missing == [], f"README sections no claim is 'made in': {missing} (add rows to docs/claims.md)"


def test_every_mutation_belongs_to_a_claim_and_names_its_tests(claims, collected):
    by_id = {c.id: c for c in claims}
    for m in _mutations():
        assert m["claim"] in by_id, f"mutation '{m['name']}': no claim '{m['claim']}' in docs/claims.md"
        claim = by_id[m["claim"]]
        assert m["name"] in claim.mutations, f"claim '{claim.id}' does not list its mutation '{m['name']}'"
        for t in m["tests"]:
            assert t in collected, f"mutation '{m['name']}': no test {t}"
            assert t in claim.tests, f"mutation '{m['name']}': {t} is not one of claim '{claim.id}''s tests"


def test_the_checks_find_what_is_wrong():
    """The parser and the checks on a table that breaks each rule: the meta-tests can fail."""
    table = "\n".join(
        [
            "# x",
            "## Claims",
            "| id | claim | made in | tests | mutations |",
            "|---|---|---|---|---|",
            "| a.one | a promise | README: Serving "
            "| `tests/test_x.py::test_exists` `tests/test_x.py::test_gone` | m1 |",
            "| a.two | another | README: Training | none named | |",
            "| a.one | a third | README: Training | `tests/test_x.py::test_exists` | nope |",
        ]
    )
    claims = parse_claims(table)
    assert [c.id for c in claims] == ["a.one", "a.two", "a.one"]
    assert claims[0].tests == ("tests/test_x.py::test_exists", "tests/test_x.py::test_gone")
    assert problems(claims, {"tests/test_x.py::test_exists"}, {"m1"}) == [
        "claim id 'a.one' used twice",
        "claim 'a.one': no test tests/test_x.py::test_gone",
        "claim 'a.two' names no test",
        "claim 'a.one': no mutation 'nope' in tests/mutations.toml",
    ]
    with pytest.raises(ValueError, match="columns"):
        parse_claims("# t\n## Claims\n| id | claim |\n|---|---|\n")
    with pytest.raises(ValueError, match="cells"):
        parse_claims(table + "\n| a.three | two cells |")
    assert readme_sections("## Serving\n### What `make demo` does, and where\n# Top\n") == [
        "Serving",
        "What make demo does",
    ]
