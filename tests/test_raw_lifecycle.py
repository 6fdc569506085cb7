"""A user's own CSV with strings, booleans, dates and gaps, through the whole lifecycle with no
preprocessing code: `aiinfra init --csv` -> `aiinfra repro` -> `aiinfra serve` (raw rows in, each
served prediction equal to the offline one) -> SIGTERM -> `aiinfra monitor` on the logged raw
columns, typed by the data contract. Once for a class target and once for a continuous one.

The installed-wheel variant of init + repro is tests/test_init_wheel.py; this one runs from the
checkout so it can also serve and monitor within the suite's time.
"""

from __future__ import annotations

import json
import signal
import subprocess

import numpy as np
import pandas as pd
import pytest

from project_helpers import project_client, run_cli, start_server

pytestmark = pytest.mark.slow


def _table(n: int = 320, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["Oslo", "Lima", "Pune"], size=n)
    member = rng.random(n) < 0.4
    signup = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    age = rng.normal(40, 12, n).round(1)
    income = rng.normal(50, 15, n).round(2)
    score = 0.08 * (age - 40) + 0.05 * (income - 50) + np.select([city == "Oslo", city == "Lima"], [1.5, -1.0], 0.2)
    score = score + 1.2 * member
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],  # an identifier: left out, with a message
            "city": city,
            "member": np.where(member, "true", "false"),
            "signup": signup.strftime("%Y-%m-%d"),
            "age": age,
            "income": income,
            "spend": (30 + 8 * score + rng.normal(0, 1.0, n)).round(3),  # continuous target
            "churn": np.where(score + rng.normal(0, 0.4, n) > 0.5, "yes", "no"),  # class target
        }
    )
    frame.loc[rng.random(n) < 0.08, "income"] = np.nan
    frame.loc[rng.random(n) < 0.05, "city"] = np.nan
    return frame


@pytest.mark.parametrize("target, task", [("churn", "binary"), ("spend", "regression")])
def test_a_mixed_csv_goes_from_init_to_served_raw_rows_and_the_typed_monitor(tmp_path, target, task):
    table = _table()
    other = "spend" if target == "churn" else "churn"
    table.drop(columns=[other]).to_csv(tmp_path / "customers.csv", index=False)

    init = run_cli(tmp_path, "init", "proj", "--csv", "customers.csv", "--target", target)
    assert init.returncode == 0, init.stdout + init.stderr
    proj = tmp_path / "proj"
    cpu = proj / "conf" / "trainer" / "cpu.yaml"
    cpu.write_text(cpu.read_text().replace("max_epochs: 30", "max_epochs: 12"))  # a short test, same path

    repro = run_cli(proj, "repro", timeout=900)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    contract = json.loads((proj / "data" / "prepared" / "contract.json").read_text())
    types = {c["name"]: c["type"] for c in contract["columns"]}
    assert types == {"city": "categorical", "member": "boolean", "signup": "datetime", "age": "numeric",
                     "income": "numeric"}  # fmt: skip
    assert "customer_id" in contract["dropped"] and contract["task"] == task
    metrics = json.loads((proj / "metrics.json").read_text())
    if task == "regression":
        assert metrics["test_r2"] > 0.6, metrics  # the signal is real: the model learned it
    else:
        assert metrics["test_accuracy"] > 0.75, metrics
    champion = project_client(proj).get_model_version_by_alias("proj", "champion")
    assert str(champion.version) == "1"

    # raw rows as a client sends them: strings, "true"/"false", ISO dates, nulls for the gaps
    rows = table.drop(columns=["customer_id", "churn", "spend"]).iloc[:40]
    rows.loc[rows.index[:3], "city"] = "Bergen"  # a category training never saw
    records = json.loads(rows.to_json(orient="records"))
    assert any(r["income"] is None for r in records)
    server, base = start_server(proj)
    try:
        import httpx

        resp = httpx.post(f"{base}/invocations", json={"dataframe_records": records}, timeout=60)
        assert resp.status_code == 200, resp.text
        bad = httpx.post(f"{base}/invocations", json={"dataframe_records": [{**records[0], "age": "old"}]})
        assert bad.status_code == 400 and "column 'age' expects a number" in bad.text, bad.text
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, (proj / "server.log").read_text()[-3000:]

    from aiinfra.models.model_dir import Predictor

    offline = Predictor.load(proj / "models" / "model")
    encoded = offline.encode(offline.contract.check_frame(rows.reset_index(drop=True)))
    served = resp.json()
    if task == "regression":
        np.testing.assert_allclose(served["predictions"], offline.predict_values(encoded), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(served["probabilities"], offline.predict_proba(encoded), atol=1e-6)

    monitor = run_cli(proj, "monitor", "monitor.report=false")
    assert monitor.returncode in (0, 1), monitor.stdout[-3000:] + monitor.stderr[-3000:]
    verdict = json.loads((proj / "reports" / "drift" / "verdict.json").read_text())
    columns = verdict["columns"]
    assert columns["city"]["compared_as"] == "categories" and columns["signup"]["compared_as"] == "epoch"
    assert columns["city"]["unseen_share_current"] == pytest.approx(3 / 40)
    assert columns["income"]["missing_share_current"] == pytest.approx(rows["income"].isna().mean())
    assert verdict["task"] == task
    subprocess.run(["git", "status"], cwd=proj, check=True, capture_output=True)  # init made it a repo
