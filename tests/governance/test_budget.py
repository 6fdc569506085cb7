"""The train budget: a real Lightning fit stopped by :class:`BudgetStop` before its limit, and a
real `aiinfra train` over `budget.max_cpu_hours` that exits 2 naming the figure, keeps
`last.ckpt`, and resumes from it."""

from __future__ import annotations

import json

from aiinfra.governance.resources import ResourceMeter, price
from aiinfra.governance.schema import BudgetConfig, RateCard, StageBudget
from aiinfra.training.budget import BudgetStop, limit_key, outcome, stop_message
from project_helpers import project_client, run_cli


def test_the_message_names_the_figure_and_the_key_that_set_the_limit():
    budget = BudgetConfig(max_cpu_hours=1.0, stages={"train": StageBudget(max_cost=2.0)})
    assert limit_key(budget, "train", "max_cost") == "budget.stages.train.max_cost"
    assert limit_key(budget, "train", "max_cpu_hours") == "budget.max_cpu_hours"
    assert limit_key(budget, "evaluate", "max_cost") == "budget.max_cost"
    stop = {"which": "max_cpu_hours", "cpu_hours": 0.0021, "cost": 0.0001, "epoch": 2, "batch": 7}
    text = stop_message(stop, key="budget.max_cpu_hours", limit=0.002, currency="USD")
    assert text == (
        "train stopped by its budget in epoch 3 (step 7): 0.0021 CPU-hours used, over "
        "budget.max_cpu_hours=0.002 (cost so far 0.0001 USD)"
    )
    under = stop_message({**stop, "which": "max_cost", "cost": 1.9}, key="budget.max_cost", limit=2.0, currency="EUR")
    assert "1.9 EUR used, the next step would pass budget.max_cost=2" in under and "0.0021 CPU-hours so far" in under


def test_a_real_fit_stops_before_its_cost_limit_even_before_min_epochs():
    import lightning as L
    import torch

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 2)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(256, 8), torch.randint(0, 2, (256,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    # 1 per CPU-second: max_cost=0.4 is 0.4 CPU-s of this fit (a few dozen epochs)
    rates = RateCard(cpu_hour=3600.0, memory_gb_hour=0.0)
    meter = ResourceMeter()
    budget = BudgetStop(StageBudget(max_cost=0.4), rates, meter)
    trainer = L.Trainer(
        max_epochs=10_000,
        min_epochs=5_000,  # a budget is a limit: it stops before min_epochs too
        # a budget that never stops would otherwise train 5,000 epochs: end it in 20 s, failing below
        max_time={"seconds": 20},
        callbacks=[budget],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), loader)
    stop = outcome(trainer)
    assert stop is not None and stop["which"] == "max_cost", trainer.callback_metrics
    assert trainer.current_epoch < 5_000
    # and the fit did end there: what it used in all stays near the limit (not 20 s of CPU)
    assert price(meter.usage(), rates)["total"] < 1.0
    # it stopped at the step the next one would pass the limit: close under it, not far over
    assert 0.2 < stop["cost"] <= 0.4 * 1.1, stop
    assert budget.checks >= stop["batch"]
    assert outcome(trainer) is None  # read once: the budget.* keys are taken out of the metrics


def test_train_over_its_budget_exits_2_naming_the_figure_and_resumes_from_its_checkpoint(project):
    run_cli(project, "prepare", check=True)
    proc = run_cli(
        project, "train", "trainer.max_epochs=40", "trainer.early_stopping.enabled=false", "budget.max_cpu_hours=1e-6"
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("aiinfra: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "train stopped by its budget in epoch 1" in errors[0] and "CPU-hours used, over" in errors[0]
    assert "budget.max_cpu_hours=1e-06" in errors[0] and "checkpoint kept: checkpoints/last.ckpt" in errors[0]
    assert "hint: raise the limit" in proc.stderr and "trainer.checkpoint.resume=last" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (project / "checkpoints" / "last.ckpt").is_file()
    curve = (project / "plots" / "training_curve.csv").read_text().splitlines()
    assert 2 <= len(curve) < 41  # a header and fewer epochs than the 40 asked for
    assert not (project / "models" / "model").exists()  # a model cut short is not written

    client = project_client(project)
    run = client.search_runs([client.get_experiment_by_name("aiinfra-demo").experiment_id])[0]
    assert run.info.status == "KILLED" and "budget.max_cpu_hours" in run.data.tags["aiinfra.budget.stopped"]
    assert run.data.metrics["budget_stopped"] == 1 and run.data.metrics["resources.cpu_s"] > 0

    resumed = run_cli(project, "train", "trainer.max_epochs=2", "trainer.checkpoint.resume=last", check=True)
    assert "aiinfra: error" not in resumed.stderr
    assert len((project / "plots" / "training_curve.csv").read_text().splitlines()) == 3  # epochs 0 and 1
    assert json.loads((project / "models" / "train_run.json").read_text())["epochs"] == 2


def test_without_a_limit_the_train_stage_adds_no_check():
    assert not BudgetStop(StageBudget(None, None), RateCard(), ResourceMeter()).active
