"""aiinfra-sql installed: listed by `aiinfra plugins`, usable as `source=sql` in a real project."""

from __future__ import annotations

import json

from conftest import make_orders

ARGS = [
    "source=sql",
    "source.table=orders",
    "source.target=label",
    "source.exclude=[id,created_at]",
    "source.incremental.enabled=true",
    "source.incremental.column=id",
]


def test_listed(aiinfra_project):
    proc = aiinfra_project.cli("plugins", "--json", check=True)
    rows = {r["distribution"]: r for r in json.loads(proc.stdout)["plugins"]}
    sql = rows["aiinfra-sql"]
    assert sql["status"] == "loaded"
    assert [(c["kind"], c["name"]) for c in sql["components"]] == [("source", "sql")]
    assert "aiinfra_stage_finished" in sql["hooks"]


def test_config_file_contributed_and_validated(aiinfra_project):
    proc = aiinfra_project.cli("config", "source=sql", "source.table=orders", check=True)
    assert "url_env: AIINFRA_SQL_URL" in proc.stdout and "table: orders" in proc.stdout
    bad = aiinfra_project.cli("config", "source=sql", "source.incremental.colum=id")
    assert bad.returncode == 2 and "Did you mean 'column'?" in bad.stderr
    # the enumerated option and the rules between fields fail in validation, naming the key
    bad = aiinfra_project.cli("config", "source=sql", "source.table=orders", "source.incremental.commit=never")
    assert bad.returncode == 2 and "source.incremental.commit" in bad.stderr and "stage" in bad.stderr
    bad = aiinfra_project.cli("config", "source=sql", "source.table=orders", "source.query=SELECT 1")
    assert bad.returncode == 2 and "source.table: the sql source needs exactly one of" in bad.stderr


def test_prepare_incremental_retraining_windows(aiinfra_project):
    url = f"sqlite:///{aiinfra_project.root / 'shop.db'}"
    make_orders(url, 0, 100)
    env = {"AIINFRA_SQL_URL": url}
    meta_path = aiinfra_project.root / "data" / "prepared" / "meta.json"

    aiinfra_project.run("prepare", *ARGS, env=env, check=True)
    first = json.loads(meta_path.read_text())
    assert first["features"] == ["amount", "items"]
    assert sum(first["rows"][s] for s in ("train", "val", "test")) == 100
    saved = json.loads((aiinfra_project.root / ".aiinfra" / "sql_state.json").read_text())
    assert saved["pending"] == {} and list(saved["committed"].values()) == [{"type": "int", "value": 100}]
    assert "s3cret" not in json.dumps(saved)

    make_orders(url, 100, 60)
    aiinfra_project.run("prepare", *ARGS, env=env, check=True)
    second = json.loads(meta_path.read_text())
    assert sum(second["rows"][s] for s in ("train", "val", "test")) == 60

    again = aiinfra_project.run("prepare", *ARGS, env=env)
    assert again.returncode == 2
    assert "no rows in table 'orders'" in again.stderr and "id > 160" in again.stderr
    assert "Traceback" not in again.stderr
