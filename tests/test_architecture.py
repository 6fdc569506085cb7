"""The architecture's rules, checked on the source: no import circles, a light fast path, every
module placed in docs/architecture.md, one caller of hook implementations."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from project_helpers import REPO, cli_env

PACKAGE = REPO / "aiinfra"
HEAVY = ("torch", "lightning", "mlflow", "evidently", "ray")


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """aiinfra modules that ``module`` imports anywhere in its source: at the top, inside
    functions, under ``if TYPE_CHECKING:``. An import of a name resolves to the longest module
    prefix; a module importing its own parent package is not an edge (the parent is imported first
    in any case)."""
    targets: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)
    return targets


def import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    """The strongly connected sets (more than one module) of the import graph (Tarjan)."""
    graph = {m: _imported(m, p, modules) for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_cycles_through_function_local_imports(tmp_path):
    pkg = tmp_path / "aiinfra"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from aiinfra.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text("def thing():\n    from aiinfra import a\n")
    (pkg / "c.py").write_text("import aiinfra.a\n")
    assert import_cycles(_modules(pkg)) == [["aiinfra.a", "aiinfra.sub.b"]]


def test_no_import_cycles_between_aiinfra_modules():
    """Counting function-local imports: a circle deferred into a function is still a circle
    (the two modules cannot be understood, tested or replaced apart)."""
    cycles = import_cycles(_modules())
    assert not cycles, "import circles between aiinfra modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_fast_path_imports_nothing_heavy():
    """The CLI, the runner, every stage module, every registered component's schema and a full
    validation of the project's config import none of torch, lightning, mlflow, evidently, ray."""
    stages = sorted(p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__")
    code = f"""
import importlib, json, sys
import aiinfra.cli, aiinfra.runner
for name in {stages!r}:
    importlib.import_module("aiinfra.stages." + name)
from aiinfra.plugins.manager import get_plugins
registry = get_plugins().registry
schemas = []
for spec in registry.components.values():
    schemas.append(spec.kind + "/" + spec.name)
    spec.load_schema()
cfg = aiinfra.runner.load_config([])
print("RESULT", json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules], "schemas": schemas,
                             "source": str(cfg.source.type)}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["source"] and len(result["schemas"]) >= 10
    assert result["heavy"] == [], f"the fast path imported {result['heavy']}"


def test_every_package_and_module_is_named_in_the_architecture_doc():
    """docs/architecture.md places every package and module: as a path (``aiinfra/config/``,
    ``aiinfra/config/validate.py``) or a dotted name (``aiinfra.config.validate``). ``__init__``
    and ``__main__`` files are covered by their package."""
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for name, path in _modules().items():
        if path.stem == "__main__":
            continue
        rel = path.relative_to(REPO)
        spellings = {name, rel.as_posix()}
        if path.name == "__init__.py":
            spellings.add(rel.parent.as_posix() + "/")
        if not any(s in text for s in spellings):
            missing.append(rel.parent.as_posix() + "/" if path.name == "__init__.py" else rel.as_posix())
    assert not missing, "docs/architecture.md does not name: " + ", ".join(missing)


def _hook_calls(path: Path) -> list[tuple[int, str]]:
    """(line, what) for each place in ``path`` that reaches hook implementations other than
    through aiinfra.plugins.hooks: ``<x>.hook.aiinfra_*``, ``getattr(<x>.hook, ...)``,
    ``.get_hookimpls``. Code only: docstrings and comments may mention them."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("aiinfra_")
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "hook"
        ):
            found.append((node.lineno, f".hook.{node.attr}"))
        elif isinstance(node, ast.Attribute) and node.attr == "get_hookimpls":
            found.append((node.lineno, ".get_hookimpls"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and node.args
            and isinstance(node.args[0], ast.Attribute)
            and node.args[0].attr == "hook"
        ):
            found.append((node.lineno, "getattr(.hook, ...)"))
    return sorted(found)


def test_the_hook_call_scan_finds_direct_calls(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f(pm, plugins):\n"
        '    """pm.hook.aiinfra_x() in a docstring is fine"""\n'
        "    pm.hook.aiinfra_on_drift(report={}, config={})\n"
        "    for impl in plugins.pm.hook.aiinfra_stage_finished.get_hookimpls():\n"
        "        pass\n"
        "    getattr(pm.hook, 'aiinfra_stage_finished')\n"
    )
    assert _hook_calls(probe) == [
        (3, ".hook.aiinfra_on_drift"),
        (4, ".get_hookimpls"),
        (4, ".hook.aiinfra_stage_finished"),
        (6, "getattr(.hook, ...)"),
    ]


def test_only_plugins_hooks_calls_hook_implementations():
    """``aiinfra.plugins.hooks`` is the one caller (the calling rule: load order, isolation of
    notifications, one PluginError for registrations); everything else goes through it."""
    allowed = PACKAGE / "plugins" / "hooks.py"
    found = [
        f"{path.relative_to(REPO)}:{line} {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != allowed
        for line, what in _hook_calls(path)
    ]
    assert not found, "hook implementations called outside aiinfra/plugins/hooks.py:\n" + "\n".join(found)


def test_only_the_runner_prints_aiinfra_error():
    """``aiinfra.runner.report_errors`` (with ``print_error``) is the one place that formats a user
    error: no other module builds an ``aiinfra: error`` line in code (docstrings may mention it)."""
    allowed = PACKAGE / "runner.py"
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == allowed:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found += [
            f"{path.relative_to(REPO)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "aiinfra: error" in node.value
            and id(node) not in docstrings
        ]
    assert not found, "`aiinfra: error` printed outside aiinfra/runner.py: " + ", ".join(found)
