"""The plugin system through the real command line, with fixture plugins installed by pip."""

from __future__ import annotations

import json
import subprocess
import sys

pytest_plugins = ["plugin_fixtures"]  # the fixture packages, the bare project and the `cli` runner

GOOD = "aiinfra-fixture-good"
# `aiinfra plugins` lists import strings: it needs none of these (not even Hydra's config stack)
HEAVY = ("torch", "lightning", "mlflow", "evidently", "ray", "hydra", "pandas")


def _plugins_json(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert proc.returncode == 0, proc.stderr
    return {row["distribution"]: row for row in json.loads(proc.stdout)["plugins"]}


def test_plugins_lists_builtins_and_plugins_without_heavy_imports(cli, fixture_targets):
    # `aiinfra plugins` in-process in a fresh interpreter; report what it imported.
    code = (
        "import sys, io, json, contextlib\n"
        "from aiinfra.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    rc = main(['plugins'])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'out': out.getvalue()}))\n"
    )
    env = cli.project.env({"PYTHONPATH": str(fixture_targets[GOOD])})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert result["rc"] == 0
    assert result["heavy"] == [], f"`aiinfra plugins` imported {result['heavy']}"
    assert "fixturesrc" in result["out"] and "synthetic" in result["out"]

    proc = cli("plugins", plugins=(GOOD,))  # the console command itself
    assert proc.returncode == 0, proc.stderr
    for name in ("csv", "parquet", "sklearn", "synthetic", "mlp", "lightning", "http", "drift", "fixturesrc"):
        assert f" {name} " in proc.stdout, name


def test_installed_plugin_listed_with_version_hooks_components_commands(cli):
    rows = _plugins_json(cli("plugins", "--json", plugins=(GOOD,)))
    good = rows[GOOD]
    assert good["version"] == "1.2.3"
    assert good["status"] == "loaded"
    assert good["api"] == ">=1.0,<2"
    assert good["entry_point"] == "aiinfra_fixture_good.plugin"
    assert good["hooks"] == [
        "aiinfra_config_searchpath",
        "aiinfra_on_drift",
        "aiinfra_register_commands",
        "aiinfra_register_components",
        "aiinfra_stage_finished",
    ]
    assert [(c["kind"], c["name"]) for c in good["components"]] == [("source", "fixturesrc")]
    assert good["commands"] == ["fixture-hello"]
    assert {"source", "model", "trainer", "server", "monitor"} <= {c["kind"] for c in rows["aiinfra"]["components"]}

    text = cli("plugins", plugins=(GOOD,)).stdout
    assert "aiinfra-fixture-good 1.2.3" in text and "fixturesrc" in text


def test_plugin_source_usable_by_name_with_its_config_file(cli):
    proc = cli("config", "source=fixturesrc", plugins=(GOOD,))
    assert proc.returncode == 0, proc.stderr
    # rows: 300 and target: label come from the plugin's conf/source/fixturesrc.yaml
    assert "type: fixturesrc" in proc.stdout and "rows: 300" in proc.stdout and "target: label" in proc.stdout
    # the plugin's schema validates its keys: a typo names the key and the valid ones
    bad = cli("config", "source=fixturesrc", "source.row=5", plugins=(GOOD,))
    assert bad.returncode == 2
    assert "source.row" in bad.stderr and "Did you mean 'rows'?" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_project_conf_shadows_plugin_config_file(tmp_path, fixture_targets):
    from aiinfra.testing import make_project

    project = make_project(tmp_path / "p", git=False, dvc=False, pythonpath=[fixture_targets[GOOD]])
    project.write_conf("source/fixturesrc.yaml", "type: fixturesrc\nrows: 50\ntarget: label\n")
    proc = project.cli("config", "source=fixturesrc")
    assert proc.returncode == 0, proc.stderr
    assert "rows: 50" in proc.stdout


def test_plugin_command_runs_with_its_arguments_and_exit_status(cli):
    proc = cli("fixture-hello", "a", "b", plugins=(GOOD,))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from fixture: a b"
    assert cli("fixture-hello", "x", "--fail", plugins=(GOOD,)).returncode == 3
    assert "fixture-hello" in cli("--help", plugins=(GOOD,)).stdout


def test_plugin_command_gets_leading_options(cli):
    proc = cli("fixture-hello", "--fail", plugins=(GOOD,))
    assert proc.returncode == 3, proc.stderr


def test_unknown_component_lists_valid_names_and_did_you_mean(cli):
    proc = cli("config", "source=fixtursrc", plugins=(GOOD,))
    assert proc.returncode == 2
    assert "unknown source 'fixtursrc'. Did you mean 'fixturesrc'?" in proc.stderr
    assert "fixturesrc" in proc.stderr.split("hint:")[1]
    assert "Traceback" not in proc.stderr
    # a config file naming an unregistered type: the registry's names, not just files
    proc = cli("config", "source.type=fixtursrc", plugins=(GOOD,))
    assert proc.returncode == 2
    assert "Did you mean 'fixturesrc'?" in proc.stderr
    assert "valid source names: bundled, csv, fixturesrc, parquet, sklearn, synthetic" in proc.stderr


def test_duplicate_component_from_two_distributions_names_both(cli):
    proc = cli("plugins", plugins=("aiinfra-fixture-dup-a", "aiinfra-fixture-dup-b"))
    assert proc.returncode == 2
    assert "source 'dupsrc' is registered twice" in proc.stderr
    assert "aiinfra-fixture-dup-a 0.1.0" in proc.stderr and "aiinfra-fixture-dup-b 0.1.0" in proc.stderr
    assert "Traceback" not in proc.stderr
    # choosing one of them resolves it
    rows = _plugins_json(
        cli(
            "plugins",
            "--json",
            plugins=("aiinfra-fixture-dup-a", "aiinfra-fixture-dup-b"),
            env={"AIINFRA_LOAD_PLUGINS": "aiinfra-fixture-dup-a"},
        )
    )
    assert rows["aiinfra-fixture-dup-a"]["components"][0]["name"] == "dupsrc"
    assert rows["aiinfra-fixture-dup-b"]["status"] == "disabled"


def test_broken_plugin_warns_with_distribution_and_error_strict_fails(cli):
    proc = cli("plugins", "--json", plugins=("aiinfra-fixture-broken", GOOD))
    rows = _plugins_json(proc)  # the host keeps working
    assert "PluginSkippedWarning" in proc.stderr
    assert "aiinfra-fixture-broken 0.1.0" in proc.stderr
    assert "ModuleNotFoundError: No module named 'aiinfra_no_such_module_xyz'" in proc.stderr
    assert "AIINFRA_STRICT_PLUGINS=1" in proc.stderr
    assert rows["aiinfra-fixture-broken"]["status"] == "skipped"
    assert "aiinfra_no_such_module_xyz" in rows["aiinfra-fixture-broken"]["reason"]
    assert rows[GOOD]["status"] == "loaded"

    strict = cli("plugins", plugins=("aiinfra-fixture-broken",), env={"AIINFRA_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2
    assert strict.stderr.startswith(
        "aiinfra: error: aiinfra: skipped plugin 'fixture-broken' from aiinfra-fixture-broken 0.1.0"
    )
    assert "Traceback" not in strict.stderr


def test_misspelled_hook_skips_the_plugin_with_did_you_mean_strict_fails(cli):
    # like a plugin that fails to import: skipped with a warning naming it, the host keeps working
    proc = cli("plugins", "--json", plugins=("aiinfra-fixture-typo", GOOD))
    rows = _plugins_json(proc)
    assert "PluginSkippedWarning" in proc.stderr and "aiinfra-fixture-typo 0.1.0" in proc.stderr
    assert "unknown hook 'aiinfra_register_component'" in proc.stderr
    assert "AIINFRA_STRICT_PLUGINS=1" in proc.stderr
    typo = rows["aiinfra-fixture-typo"]
    assert typo["status"] == "skipped" and typo["hooks"] == [] and typo["components"] == []
    assert "Did you mean 'aiinfra_register_components'?" in typo["reason"]
    assert rows[GOOD]["status"] == "loaded"
    # the plain listing shows it as skipped with the reason
    listing = cli("plugins", plugins=("aiinfra-fixture-typo",))
    assert listing.returncode == 0, listing.stderr
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("aiinfra-fixture-typo"))
    assert "[skipped: it implements unknown hook 'aiinfra_register_component'" in line
    # other commands run too (config validation composes with every loaded plugin)
    other = cli("config", plugins=("aiinfra-fixture-typo",))
    assert other.returncode == 0, other.stderr

    strict = cli("plugins", plugins=("aiinfra-fixture-typo",), env={"AIINFRA_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2
    assert strict.stderr.startswith("aiinfra: error: aiinfra: skipped plugin 'fixture-typo' from aiinfra-fixture-typo")
    assert "Did you mean 'aiinfra_register_components'?" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_crash_inside_a_hook_names_the_distribution(cli):
    proc = cli("plugins", plugins=("aiinfra-fixture-crash",))
    assert proc.returncode == 2
    assert "aiinfra-fixture-crash 0.1.0 failed in aiinfra_register_components" in proc.stderr
    assert "RuntimeError: database of components is offline" in proc.stderr
    # leaving it out with AIINFRA_LOAD_PLUGINS, as the hint says, works
    ok = cli("plugins", plugins=("aiinfra-fixture-crash",), env={"AIINFRA_LOAD_PLUGINS": ""})
    assert ok.returncode == 0, ok.stderr


def test_api_incompatible_plugin_skipped_saying_which_version_it_needs(cli):
    proc = cli("plugins", "--json", plugins=("aiinfra-fixture-future", GOOD))
    rows = _plugins_json(proc)
    from aiinfra import API_VERSION

    assert f"it needs aiinfra plugin API >=2.0,<3, this is API {API_VERSION}" in proc.stderr
    assert rows["aiinfra-fixture-future"]["status"] == "skipped"
    assert rows["aiinfra-fixture-future"]["api"] == ">=2.0,<3"
    assert rows[GOOD]["status"] == "loaded"
    strict = cli("plugins", plugins=("aiinfra-fixture-future",), env={"AIINFRA_STRICT_PLUGINS": "true"})
    assert strict.returncode == 2 and ">=2.0,<3" in strict.stderr


def test_load_plugins_all_none_subset(cli):
    both = (GOOD, "aiinfra-fixture-future")
    everything = _plugins_json(cli("plugins", "--json", plugins=both))
    assert everything[GOOD]["status"] == "loaded"

    none = _plugins_json(cli("plugins", "--json", plugins=both, env={"AIINFRA_LOAD_PLUGINS": ""}))
    assert none[GOOD]["status"] == "disabled" and none["aiinfra-fixture-future"]["status"] == "disabled"
    assert none["aiinfra"]["status"] == "loaded" and none["aiinfra"]["components"]  # built-ins stay
    # a disabled plugin's config group option is gone too
    gone = cli("config", "source=fixturesrc", plugins=both, env={"AIINFRA_LOAD_PLUGINS": ""})
    assert gone.returncode == 2 and "unknown source 'fixturesrc'" in gone.stderr

    # a subset, by distribution name in any spelling, or by entry-point name
    for selector in ("aiinfra_fixture_good", "AIINFRA-Fixture-Good", "fixture-good"):
        proc = cli("plugins", "--json", plugins=both, env={"AIINFRA_LOAD_PLUGINS": selector})
        rows = _plugins_json(proc)
        assert rows[GOOD]["status"] == "loaded", selector
        assert rows["aiinfra-fixture-future"]["status"] == "disabled"
        assert "PluginSkippedWarning" not in proc.stderr  # the future one was not even imported

    missing = cli("plugins", plugins=both, env={"AIINFRA_LOAD_PLUGINS": "aiinfra-nothere"})
    assert missing.returncode == 0
    assert "plugin 'aiinfra-nothere' named in AIINFRA_LOAD_PLUGINS is not installed" in missing.stderr
    strict = cli(
        "plugins", plugins=both, env={"AIINFRA_LOAD_PLUGINS": "aiinfra-nothere", "AIINFRA_STRICT_PLUGINS": "1"}
    )
    assert strict.returncode == 2 and "is not installed" in strict.stderr and "Traceback" not in strict.stderr


def test_plugins_json_shape_for_scripts(cli):
    data = json.loads(cli("plugins", "--json").stdout)
    assert set(data) == {"plugins"}
    row = next(r for r in data["plugins"] if r["distribution"] == "aiinfra")
    assert set(row) == {
        "name",
        "distribution",
        "version",
        "entry_point",
        "status",
        "reason",
        "api",
        "hooks",
        "components",
        "commands",
    }
    assert row["api"] == ">=1.0,<2" and row["hooks"] == ["aiinfra_config_searchpath", "aiinfra_register_components"]
