"""`aiinfra costs`: the tables on hand-written ledgers and serving usage files with known numbers,
and one real lifecycle (prepare, train, evaluate, register in subprocesses) whose recorded figures
answer "what did the champion cost to train, and what does it cost per 1,000 predictions"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.governance import costs, costs_cli
from aiinfra.governance.schema import RateCard
from project_helpers import project_client, run_cli

#: round numbers: one CPU-hour costs 0.50, memory and GPU nothing unless a test says so
RATES = RateCard(currency="EUR", cpu_hour=0.5, memory_gb_hour=0.0, gpu_hour={"default": 2.0})


def usage(cpu_s: float, wall_s: float = 10.0, rss_mb: float = 100.0, gpu_s: float = 0.0) -> dict:
    """Usage.to_dict() of a stage: user time 80 %, system 20 % of ``cpu_s``."""
    return {
        "wall_s": wall_s,
        "cpu_user_s": cpu_s * 0.8,
        "cpu_system_s": cpu_s * 0.2,
        "peak_rss_bytes": int(rss_mb * 2**20),
        "read_bytes": 0,
        "write_bytes": 0,
        "gpu_s": gpu_s,
        "gpu_peak_bytes": 0,
        "gpu_device": None,
        "cpu_s": cpu_s,
    }


def record(seq: int, stage: str, cpu_s: float, results: dict, *, cost: float | None = None, status="ok") -> dict:
    """One ledger line in the shared format (the hash fields are not read by `aiinfra costs`)."""
    rec = {
        "seq": seq,
        "stage": stage,
        "command": f"aiinfra {stage}",
        "config_hash": "sha256:0",
        "inputs": {},
        "outputs": {},
        "start": f"2026-12-01T10:{seq:02d}:00Z",
        "end": f"2026-12-01T10:{seq:02d}:30Z",
        "status": status,
        "exit_code": 0 if status == "ok" else 2,
        "error": None,
        "host": "h",
        "user": "u",
        "git_commit": None,
        "usage": usage(cpu_s),
        "labels": {},
        "results": results,
        "prev_hash": "sha256:0",
        "hash": "sha256:1",
    }
    if cost is not None:
        rec["cost"] = {"currency": "EUR", "cpu": cost, "memory": 0.0, "gpu": 0.0, "total": cost}
    return rec


def two_versions() -> list[dict]:
    """v1 (run A) and its retrain v2 (run B), each trained, evaluated and registered; the costs
    are the rate card's price of the CPU-seconds (3600 CPU-s = 0.50 EUR)."""
    return [
        record(0, "prepare", 360, {"dataset_hash": "d1"}, cost=0.05),
        record(1, "train", 3600, {"run_id": "A", "model_uri": "runs:/A/model"}, cost=0.50),
        record(2, "evaluate", 72, {"run_id": "A", "metrics_file": "metrics.json"}, cost=0.01),
        record(3, "register", 36, {"run_id": "A", "model_name": "m", "version": "1"}, cost=0.005),
        record(4, "train", 7200, {"run_id": "B"}, cost=1.00),
        record(5, "evaluate", 72, {"run_id": "B"}, cost=0.01),
        record(6, "register", 36, {"run_id": "B", "model_name": "m", "version": "2"}, cost=0.005),
        record(7, "train", 720, {}, cost=0.10, status="error"),  # a budget stop: no run, no version
    ]


def test_run_rows_take_the_recorded_cost_and_price_a_record_without_one():
    records = [record(0, "train", 3600, {"run_id": "A"}), record(1, "train", 720, {}, cost=0.25)]
    rows = costs.run_rows(records, RATES)
    assert rows[0]["cost"] == pytest.approx(0.50)  # 1 CPU-hour at cpu_hour=0.5 (no cost recorded)
    assert rows[0]["cpu_s"] == 3600 and rows[0]["ref"] == "A" and rows[0]["peak_mb"] == 100.0
    assert rows[1]["cost"] == 0.25  # recorded at the rate card of its day: not re-priced


def test_a_version_costs_its_own_stages_and_the_retrains_before_it():
    report = costs.version_costs(two_versions(), costs.versions_in_ledger(two_versions(), "m"), "2", RATES)
    assert report["run_id"] == "B"
    assert {s: (x["runs"], x["cpu_s"]) for s, x in report["stages"].items()} == {
        "train": (1, 7200),
        "evaluate": (1, 72),
        "register": (1, 36),
    }
    assert report["cost"] == pytest.approx(1.015)
    assert [(x["version"], x["cost"]) for x in report["lineage"]] == [("1", 0.50)]
    assert report["total_to_date"] == pytest.approx(1.515)
    first = costs.version_costs(two_versions(), costs.versions_in_ledger(two_versions(), "m"), "1", RATES)
    assert first["lineage"] == [] and first["total_to_date"] == pytest.approx(0.515)


def test_an_unknown_version_is_one_error_listing_the_known_ones():
    with pytest.raises(AiinfraError, match="version 9 has no run id") as err:
        costs.version_costs(two_versions(), costs.versions_in_ledger(two_versions(), "m"), "9", RATES)
    assert "1, 2" in err.value.hint


def serving_line(version: str, cpu_s: float, predictions: int, wall_s: float, pid: int = 1) -> dict:
    return {
        "time": "2026-12-01T11:00:00Z",
        "host": "h",
        "pid": pid,
        "model_name": "m",
        "model_version": version,
        "model_uri": f"models:/m/{version}",
        "usage": usage(cpu_s, wall_s=wall_s, rss_mb=1024),
        "predictions": predictions,
        "requests": predictions // 10,
    }


def test_serving_per_1000_predictions_from_the_servers_cumulative_counters():
    files = {
        # one process: v1, a reload to v2 (v2 counts from the last v1 line), two more v2 lines
        "serving-h-1.jsonl": [
            serving_line("1", 10, 0, 60),
            serving_line("1", 20, 1000, 120),
            serving_line("2", 30, 1500, 180),
            serving_line("2", 40, 3000, 240),
        ],
        # a second process serving v2 from its start: from zero (its start-up is serving's cost too)
        "serving-h-2.jsonl": [serving_line("2", 5, 100, 60, pid=2), serving_line("2", 25, 2000, 120, pid=2)],
    }
    s = costs.serving_costs(files, "m", "2", RATES)
    # process 1: 40 - 20 CPU-s for 3000 - 1000 predictions; process 2: 25 CPU-s for 2000
    assert (s["processes"], s["predictions"], s["cpu_s"]) == (2, 4000, 45)
    assert s["cpu_s_per_1k"] == pytest.approx(11.25)
    # 45 CPU-s at 0.5 per CPU-hour = 0.00625; per 1,000 of 4,000 predictions: a quarter
    assert s["cpu_cost_per_1k"] == pytest.approx(0.00625 / 4)
    assert s["cost_per_1k"] == pytest.approx(s["cpu_cost_per_1k"])  # memory is free on this card
    with_memory = costs.serving_costs(files, "m", "2", RateCard(cpu_hour=0.5, memory_gb_hour=3.6))
    # + 1 GiB held for (240 - 120) + 120 s = 1/15 h at 3.6 per GiB-hour = 0.24
    assert with_memory["cost"] == pytest.approx(0.00625 + 0.24)
    v1 = costs.serving_costs(files, "m", "1", RATES)
    assert (v1["predictions"], v1["cpu_s"]) == (1000, 20)  # from the process's start
    assert costs.serving_costs(files, "m", "7", RATES)["cost_per_1k"] is None


def write_ledger(project: Path, records: list[dict]) -> None:
    (project / "logs").mkdir(exist_ok=True)
    (project / "logs" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_the_cli_prints_runs_and_a_version_from_the_ledger(project, monkeypatch, capsys):
    write_ledger(project, two_versions())
    usage_dir = project / "logs" / "usage"
    usage_dir.mkdir()
    lines = [serving_line("2", 20, 500, 60), serving_line("2", 36, 2000, 120)]  # from zero: 36 CPU-s
    (usage_dir / "serving-h-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    monkeypatch.chdir(project)

    assert costs_cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["#", "stage", "start", "status", "wall", "s", "CPU", "s", "peak", "MB",
                                           "cost", "run", "/", "version"]  # fmt: skip
    assert "m v2" in out and "0.50 EUR" in out  # each record's cost in the currency it was recorded in
    assert "8 stage runs, 12096.0 CPU-s: 1.68 EUR" in out

    # the version's own stages, the retrain before it, serving; a version in the ledger needs no registry
    assert costs_cli.main(["--model", "m", "--version", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total_to_date"] == pytest.approx(1.515)
    assert report["serving"]["predictions"] == 2000 and report["serving"]["cpu_s_per_1k"] == pytest.approx(18.0)

    # the rate card comes from the config: overrides after `--`
    cheap = ["costs.rates.cpu_hour=0.36", "costs.rates.memory_gb_hour=0"]
    assert costs_cli.main(["--model", "m", "--version", "2", "--", *cheap]) == 0
    text = capsys.readouterr().out
    # 36 CPU-s at 0.36 per CPU-hour = 0.0036 for 2000 predictions: 0.0018 per 1,000
    assert "18.0000 CPU-s and 0.001800 USD per 1,000 predictions" in text, text
    assert "total to date" in text and "retrain: v1 train" in text


def test_no_ledger_is_one_error_naming_the_file_and_the_fix(project, monkeypatch):
    monkeypatch.chdir(project)
    with pytest.raises(AiinfraError, match=r"no run ledger at logs/ledger.jsonl") as err:
        costs_cli.main([])
    assert "run a stage first" in err.value.hint


def test_a_trained_evaluated_registered_model_answers_what_the_champion_cost(project, monkeypatch, capsys):
    run_cli(project, "prepare", check=True)
    run_cli(project, "train", "trainer.max_epochs=2", "++costs.labels.team=risk", check=True)
    run_cli(project, "evaluate", check=True)
    run_cli(project, "register", check=True)

    train_run = json.loads((project / "models" / "train_run.json").read_text())
    run = project_client(project).get_run(train_run["run_id"])
    m, tags = run.data.metrics, run.data.tags
    assert m["resources.cpu_s"] > 0 and m["resources.wall_s"] > 0 and m["resources.peak_rss_mb"] > 50
    assert m["cost.total"] == pytest.approx(train_run["cost"]["total"]) and m["cost.total"] > 0
    assert m["resources.evaluate.cpu_s"] > 0 and m["cost.evaluate.total"] > 0
    assert tags["cost.currency"] == "USD" and tags["cost.label.team"] == "risk"
    assert "fit_seconds" in m  # logged in the same store call as the resources

    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9  # the flat metrics the gate reads are still there
    assert metrics["resources"]["train"]["cpu_s"] == pytest.approx(train_run["resources"]["cpu_s"], abs=1e-3)
    assert metrics["resources"]["evaluate"]["cost"] > 0
    card = next((project / "reports" / "model_cards").glob("*-v1.md")).read_text()
    assert "## Cost" in card and "| training | " in card and "CPU-s" in card

    # `aiinfra costs` in this process (the stages ran as a user runs them; this saves a start-up)
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert costs_cli.main(["--model", "--alias", "champion", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == "1" and report["run_id"] == train_run["run_id"]
    assert {s: x["runs"] for s, x in report["stages"].items()} == {"train": 1, "evaluate": 1, "register": 1}
    # the ledger's figure for the stage run includes the process around it: at least what train measured
    assert report["stages"]["train"]["cpu_s"] >= train_run["resources"]["cpu_s"] * 0.9
    assert costs_cli.main([]) == 0
    table = capsys.readouterr().out
    assert [line.split()[1] for line in table.splitlines()[1:5]] == ["prepare", "train", "evaluate", "register"]


def test_the_mlflow_names_of_a_stage_s_figures_gpu_only_where_one_was_used():
    from aiinfra.governance.resources import Usage, price

    cpu_only = Usage.from_dict(usage(3600, wall_s=3600, rss_mb=1024))
    metrics = costs.resource_metrics(cpu_only, price(cpu_only, RATES))
    assert metrics["resources.cpu_s"] == 3600 and metrics["cost.total"] == pytest.approx(0.50)
    assert "resources.gpu_s" not in metrics
    gpu = Usage.from_dict({**usage(0, wall_s=1800, gpu_s=1800), "gpu_device": "NVIDIA H200", "gpu_peak_bytes": 2**30})
    metrics = costs.resource_metrics(gpu, price(gpu, RATES), stage="evaluate")
    # half a GPU-hour at the card's default 2.0
    assert metrics["resources.evaluate.gpu_s"] == 1800 and metrics["resources.evaluate.gpu_peak_mb"] == 1024
    assert metrics["cost.evaluate.gpu"] == pytest.approx(1.0) and metrics["cost.evaluate.total"] == pytest.approx(1.0)
    assert costs.cost_tags("EUR", {"team": "risk"}) == {"cost.currency": "EUR", "cost.label.team": "risk"}


def test_the_model_card_shows_the_recorded_training_and_evaluation_cost():
    from types import SimpleNamespace

    from aiinfra.governance.costs import summary
    from aiinfra.governance.model_card import cost_rows
    from aiinfra.governance.resources import Usage, price

    cfg = SimpleNamespace(costs=SimpleNamespace(rates=RATES, labels={"team": "risk"}))
    trained = Usage.from_dict({**usage(3600, wall_s=1800, gpu_s=1800), "gpu_peak_bytes": 2 * 2**30})
    train_run = {"resources": trained.to_dict(), "cost": price(trained, RATES)}  # train_run.json
    evaluated = Usage.from_dict(usage(36))
    metrics = {"test_accuracy": 0.9, "resources": {"evaluate": summary(evaluated, price(evaluated, RATES))}}
    rows = dict(cost_rows(cfg, train_run, metrics))
    # 1 CPU-hour at 0.5 + half a GPU-hour at 2.0
    assert rows["training"] == "1.500000 EUR: 3600.0 CPU-s, 1800.0 s wall, peak 100 MB, 1800.0 GPU-s, peak GPU 2048 MB"
    assert rows["evaluation"].startswith("0.005000 EUR: 36.0 CPU-s")
    assert rows["total"] == "1.505000 EUR" and rows["label team"] == "risk"
    assert dict(cost_rows(cfg, {}, {}))["training"] == "not recorded"
