"""``aiinfra register``: register the trained model in the MLflow registry, and move the alias
(``champion``) to it only if it passes the gate. Every change goes to the audit log; every
registered version gets a model card.

Before anything is registered the model's signature is verified (``signing.mode``;
aiinfra.governance.signing). The alias move is compare-and-set (:func:`move_alias_if`): it happens
only if the alias still points to the version the gate compared against, so two concurrent
promotions cannot both win (MLflow alone is last-writer-wins); the loser exits 3 and says so. An
alias with a policy (``register.policies.<alias>.approvers``) moves only with an approver from
its allowlist (``register.approved_by``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiinfra.config.schema import GateMode
from aiinfra.data.prepared import PreparedData
from aiinfra.errors import AiinfraError
from aiinfra.governance.audit import append_audit, registry_lock
from aiinfra.governance.model_card import write_model_card
from aiinfra.governance.signing import SignatureError, Verdict, verify_model_dir
from aiinfra.stages.evaluate import score_split
from aiinfra.tracking.mlflow_setup import remove_download, resolve_model, setup_mlflow

# MLflow and torch (the model) are imported where used: the runner imports this module before it
# validates the config

log = logging.getLogger(__name__)

#: exit status of a promotion that lost a race (the alias moved under it): rerun `aiinfra register`
CONFLICT_EXIT = 3


class AliasConflictError(AiinfraError):
    """The alias no longer points to the version the gate compared against."""

    exit_code = CONFLICT_EXIT


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "no version"


def alias_version(client, name: str, alias: str) -> str | None:
    """The version ``alias`` points to now (one registry read), None when it is not set."""
    aliases = client.get_registered_model(name).aliases or {}
    version = aliases.get(alias)
    return str(version) if version is not None else None


def move_alias_if(client, name: str, alias: str, expected: str | None, new: str) -> tuple[bool, str | None]:
    """Compare-and-set: point ``alias`` at ``new`` only if it still points to ``expected`` (None:
    not set). Returns (moved, the version it points to now). The alias is re-read right before the
    move and read back after it: a move by a writer outside this project's registry lock (another
    machine on the same tracking server, the MLflow UI) between the gate's read and this move is
    refused, and one that overwrote this move is reported, instead of silently winning."""
    current = alias_version(client, name, alias)
    if current != expected:
        return False, current
    client.set_registered_model_alias(name, alias, new)
    after = alias_version(client, name, alias)
    return after == str(new), after


def _verify_model(cfg: Any, train_run: dict[str, Any]) -> Verdict:
    """The signature of the model ``train`` logged (the files that will be registered and served),
    verified before it is registered; a refusal is audited as ``alias_refused``."""
    resolved = resolve_model(train_run["model_uri"], cfg)
    try:
        return verify_model_dir(
            resolved.path, cfg.signing, purpose="register", what=f"the model of run {train_run['run_id']}"
        )
    except SignatureError as exc:
        append_audit(
            cfg,
            "alias_refused",
            model=cfg.register.model_name,
            alias=cfg.register.alias,
            run_id=train_run["run_id"],
            reason=exc.message,
            signature=exc.verdict.to_dict() if exc.verdict else None,
        )
        raise
    finally:
        remove_download(resolved)


def _check_policy(cfg: Any, name: str, version: str, run_id: str, reason: str) -> None:
    """An alias with approvers moves only when ``register.approved_by`` is one of them."""
    alias, approver = cfg.register.alias, cfg.register.approved_by
    policy = cfg.register.policies.get(alias)
    if policy is None or not policy.approvers or approver in policy.approvers:
        return
    allow = ", ".join(policy.approvers)
    given = f"register.approved_by={approver!r} is not one of them" if approver else "no register.approved_by was given"
    refusal = f"'{alias}' moves only with an approver from its allowlist ({allow}); {given}"
    append_audit(
        cfg,
        "alias_refused",
        model=name,
        alias=alias,
        version=version,
        run_id=run_id,
        reason=refusal,
        approved_by=approver,
        approvers=list(policy.approvers),
    )
    raise AiinfraError(
        f"v{version} passed the gate ({reason}), but {refusal}; the alias did not move",
        hint=f"an approver reruns it: `aiinfra register register.approved_by=<name>` (one of: {allow})",
    )


def check_gate(gate: Any, value: float | None, champion_value: float | None) -> tuple[bool, str]:
    """Whether a metric value passes the gate; the reason in words either way."""
    metric, mode, tol = gate.metric, gate.mode, gate.tolerance
    if value is None:
        return False, f"metric '{metric}' is missing from the evaluation"
    higher_is_better = mode == GateMode.max
    better_or_equal = (lambda a, b: a >= b - tol) if higher_is_better else (lambda a, b: a <= b + tol)
    if gate.min is not None:
        floor = gate.min
        if (higher_is_better and value < floor) or (not higher_is_better and value > floor):
            bound = "minimum" if higher_is_better else "maximum"
            return False, f"{metric}={value:.4f} does not meet the {bound} {floor}"
    if gate.compare_to_champion and champion_value is not None and not better_or_equal(value, champion_value):
        return False, f"{metric}={value:.4f} is worse than the current champion's {champion_value:.4f}"
    if gate.compare_to_champion and champion_value is not None:
        return True, f"{metric}={value:.4f} is at least as good as the champion's {champion_value:.4f}"
    return True, f"{metric}={value:.4f} passes" + (f" (minimum {gate.min})" if gate.min is not None else "")


def check_gate_metric(gate: Any, metrics: dict[str, Any], task: str | None) -> None:
    """The gate's metric must be one the evaluation produced: ``test_accuracy`` on a regression
    (or ``test_rmse`` on a classifier) would otherwise fail every gate with no word on why."""
    if gate.metric in metrics:
        return
    produced = sorted(k for k, v in metrics.items() if isinstance(v, int | float) and not k.endswith("_rows"))
    regression = task == "regression" or any(k.endswith("_rmse") for k in produced)
    example = (
        "register.gate.metric=test_rmse register.gate.mode=min register.gate.min=null"
        if regression
        else "register.gate.metric=test_accuracy register.gate.mode=max"
    )
    model = f"{task} model" if task else "model"
    raise AiinfraError(
        f"register.gate.metric={gate.metric!r} is not a metric of this {model}'s evaluation; "
        f"it produces: {', '.join(produced)}.",
        hint=f"gate on one of them, e.g. {example}",
    )


def _version_for(client, name: str, model_uri: str, run_id: str):
    """The registered version of this exact model, if ``register`` already ran for it."""
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.run_id == run_id and (mv.source == model_uri or mv.tags.get("aiinfra.model_uri") == model_uri):
            return mv
    return None


def _champion(client, cfg: Any, name: str, alias: str, metric: str):
    """The current alias holder and its value of the gate metric.

    The champion is re-evaluated on the *current* evaluation split, so challenger and champion
    are compared on the same data, also after retraining added new rows. Its recorded value is
    the fallback when its model cannot be loaded or the metric is not one evaluate computes.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None, None
    try:
        value = _evaluate_version(cfg, name, str(mv.version)).get(metric)
    except Exception as exc:  # noqa: BLE001 - any failure falls back to the recorded value
        log.warning(
            "could not re-evaluate %s v%s on the current data (%s); using its recorded %s",
            name,
            mv.version,
            exc,
            metric,
        )
        value = None
    if value is None:
        value = mv.tags.get(f"aiinfra.metric.{metric}")
    if value is None and mv.run_id:
        value = client.get_run(mv.run_id).data.metrics.get(metric)
    return mv, (float(value) if value is not None else None)


def _evaluate_version(cfg: Any, name: str, version: str) -> dict[str, float]:
    from aiinfra.models.model_dir import Predictor

    split = cfg.evaluate.split
    data = PreparedData.open(cfg.paths.prepared)
    resolved = resolve_model(f"models:/{name}/{version}", cfg)
    try:
        predictor = Predictor.load(resolved.path)
    finally:
        remove_download(resolved)
    if predictor.features != data.features or predictor.classes != data.classes or predictor.task != str(data.task):
        raise ValueError("its features, classes or task differ from the current data")
    return score_split(predictor, data, split)[0]


def run(cfg: Any) -> dict[str, Any]:
    import mlflow

    run_file = Path(cfg.paths.models) / "train_run.json"
    metrics_file = Path(cfg.paths.metrics)
    for f, stage in ((run_file, "train"), (metrics_file, "evaluate")):
        if not f.is_file():
            raise AiinfraError(f"{f} not found.", hint=f"run `aiinfra {stage}` first (or `dvc repro`)")
    train_run = json.loads(run_file.read_text())
    metrics = json.loads(metrics_file.read_text())
    check_gate_metric(cfg.register.gate, metrics, train_run.get("task"))
    setup_mlflow(cfg)
    verdict = _verify_model(cfg, train_run)  # nothing is registered from a tampered or untrusted model
    client = mlflow.MlflowClient()
    # the gate's comparison: the champion as it is now (re-evaluating it may take a while, so
    # it runs outside the lock); the move below happens only if the alias still points to it
    champion = _champion(client, cfg, cfg.register.model_name, cfg.register.alias, cfg.register.gate.metric)
    # one register at a time from registration to the audit line; a concurrent one that moved
    # the alias after our comparison makes this one's compare-and-set refuse (exit 3)
    with registry_lock(cfg):
        return _register(cfg, client, train_run, metrics, champion, verdict)


def _register(
    cfg: Any, client, train_run: dict[str, Any], metrics: dict[str, Any], champion_read: tuple, verdict: Verdict
) -> dict[str, Any]:
    import mlflow

    name, alias, gate = cfg.register.model_name, cfg.register.alias, cfg.register.gate
    champion, champion_value = champion_read
    signature = verdict.to_dict()
    mv = _version_for(client, name, train_run["model_uri"], train_run["run_id"])
    if mv is None:
        mv = mlflow.register_model(train_run["model_uri"], name, tags={"aiinfra.model_uri": train_run["model_uri"]})
        append_audit(
            cfg,
            "registered",
            model=name,
            version=str(mv.version),
            run_id=train_run["run_id"],
            dataset_hash=train_run.get("dataset_hash"),
            signer=verdict.key_id,
            signature=verdict.status,
        )
    version = str(mv.version)
    value = metrics.get(gate.metric)
    if champion is not None and str(champion.version) == version:
        passed, reason = True, f"version {version} already holds '{alias}'"
    else:
        passed, reason = check_gate(gate, value, champion_value)
    run_tags = client.get_run(train_run["run_id"]).data.tags
    for k, v in {
        # flat metrics only: metrics.json's nested sections (resources) are not metrics to tag
        **{f"aiinfra.metric.{k}": str(v) for k, v in metrics.items() if not isinstance(v, dict)},
        "aiinfra.gate.passed": str(passed),
        "aiinfra.gate.reason": reason,
        "aiinfra.dataset_hash": str(train_run.get("dataset_hash")),
        "aiinfra.signature.status": verdict.status,
        "aiinfra.signature.key_id": str(verdict.key_id),
    }.items():
        client.set_model_version_tag(name, version, k, v)

    moved = False
    expected = str(champion.version) if champion is not None else None
    if passed and expected != version:
        _check_policy(cfg, name, version, train_run["run_id"], reason)
        moved, now = move_alias_if(client, name, alias, expected, version)
        if not moved and now != version:
            _conflict(cfg, name, alias, version, expected, now, train_run["run_id"])
        if moved:
            append_audit(
                cfg,
                "alias_moved",
                model=name,
                alias=alias,
                version=version,
                previous_version=expected,
                reason=reason,
                approved_by=cfg.register.approved_by,
                signer=verdict.key_id,
                signature=verdict.status,
            )
            log.info("'%s' -> %s v%s: %s", alias, name, version, reason)
        else:  # a concurrent register of this same model moved it here first: nothing left to do
            reason = f"version {version} already holds '{alias}'"
    elif not passed:
        append_audit(
            cfg,
            "gate_failed",
            model=name,
            alias=alias,
            version=version,
            kept_version=str(champion.version) if champion else None,
            reason=reason,
        )
        log.warning(
            "gate failed, '%s' stays on %s: %s", alias, f"v{champion.version}" if champion else "no version", reason
        )

    gate_info = {
        "metric": gate.metric,
        "value": value,
        "champion_value": champion_value,
        "passed": passed,
        "reason": reason,
        "alias": alias,
        "alias_moved": moved,
        "approved_by": cfg.register.approved_by,
        # flat: the model card prints each entry as one row
        "signature": verdict.status,
        "signer": verdict.key_id,
    }
    md, page = write_model_card(
        cfg, name=name, version=version, train_run=train_run, metrics=metrics, gate=gate_info, tags=run_tags
    )
    result = {
        "run_id": train_run["run_id"],
        "model_name": name,
        "version": version,
        "model_uri": f"models:/{name}/{version}",
        "alias": alias,
        "passed": passed,
        "alias_moved": moved,
        "reason": reason,
        "champion_version": version if passed else (str(champion.version) if champion else None),
        "model_card": str(md),
        "model_card_html": str(page),
        "approved_by": cfg.register.approved_by,
        "signature": signature,
    }
    out = Path(cfg.paths.models) / "registration.json"
    out.write_text(json.dumps(result, indent=2))
    return result


def _conflict(
    cfg: Any, name: str, alias: str, version: str, expected: str | None, now: str | None, run_id: str
) -> None:
    """The compare-and-set lost: audit it and stop with exit status 3 (the alias is left as it is)."""
    reason = (
        f"conflict: '{alias}' moved from {_v(expected)} to {_v(now)} while this gate compared "
        f"v{version} against {_v(expected)}"
    )
    append_audit(
        cfg,
        "alias_conflict",
        model=name,
        alias=alias,
        version=version,
        expected_version=expected,
        current_version=now,
        run_id=run_id,
        reason=reason,
    )
    raise AliasConflictError(
        f"{reason}; '{alias}' stays on {_v(now)}",
        hint="rerun `aiinfra register`: the gate then compares against the new holder",
    )
