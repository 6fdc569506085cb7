"""Each re-implemented test against Evidently's own stattest function on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiinfra.monitoring import stats


def _evidently(method, ref: pd.Series, cur: pd.Series, kind: str, threshold=None):
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    ctype = ColumnType.Numerical if kind == stats.NUMERICAL else ColumnType.Categorical
    ref, cur = ref.replace([np.inf, -np.inf], np.nan).dropna(), cur.replace([np.inf, -np.inf], np.nan).dropna()
    test = get_stattest(ref, cur, ctype, method)
    result = test(ref, cur, ctype, threshold)
    return test.name, float(result.drift_score), bool(result.drifted), float(result.actual_threshold)


def _ours(method, ref: pd.Series, cur: pd.Series, kind: str, threshold=None):
    if kind == stats.NUMERICAL:
        r, c = stats.numeric_summary(ref.to_numpy(dtype=float)), stats.numeric_summary(cur.to_numpy(dtype=float))
    else:
        r = stats.categorical_summary(ref.value_counts().to_dict(), len(ref))
        c = stats.categorical_summary(cur.value_counts().to_dict(), len(cur))
    name = method or stats.auto_method(r, c)
    thr = stats.METHODS[name][0] if threshold is None else threshold
    score = stats.TESTS[name](r, c)
    return name, score, stats.is_drift(name, score, thr), thr


N = pd.Series


def _cases(rng: np.random.Generator) -> list[tuple]:
    """Every case, drawn from ``rng`` in this order: each test builds the whole list from a fresh
    generator, so a case's data does not depend on which other tests ran, or in what order."""
    return [
        # (id, method, reference, current, kind)
        ("ks", "ks", N(rng.normal(size=800)), N(rng.normal(0.15, size=3000)), stats.NUMERICAL),
        ("ks-large", "ks", N(rng.normal(size=12000)), N(rng.normal(0.02, size=15000)), stats.NUMERICAL),
        ("wasserstein", "wasserstein", N(rng.normal(size=3000)), N(rng.normal(0.1, 1.2, size=5000)), stats.NUMERICAL),
        (
            "wasserstein-ties",
            "wasserstein",
            N(np.round(rng.normal(size=2000), 1)),
            N(np.round(rng.normal(size=900), 1)),
            stats.NUMERICAL,
        ),
        ("psi-binned", "psi", N(rng.lognormal(size=3000)), N(rng.lognormal(0.1, size=4000)), stats.NUMERICAL),
        (
            "psi-few-values",
            "psi",
            N(rng.choice([0.0, 1, 2, 3], 3000)),
            N(rng.choice([0.0, 1, 2, 3, 4], 2000)),
            stats.NUMERICAL,
        ),
        ("js-binned", "jensenshannon", N(rng.uniform(size=3000)), N(rng.uniform(0.05, 1, size=2500)), stats.NUMERICAL),
        (
            "js-categorical",
            "jensenshannon",
            N(rng.choice(list("abcd"), 3000)),
            N(rng.choice(list("abcde"), 2000)),
            stats.CATEGORICAL,
        ),
        (
            "chisquare",
            "chisquare",
            N(rng.choice(list("abc"), 900)),
            N(rng.choice(list("abc"), 700, p=[0.4, 0.3, 0.3])),
            stats.CATEGORICAL,
        ),
        ("z", "z", N(rng.choice(["x", "y"], 500)), N(rng.choice(["x", "y"], 600, p=[0.6, 0.4])), stats.CATEGORICAL),
        (
            "with-missing",
            "wasserstein",
            N(np.where(rng.random(3000) < 0.2, np.nan, rng.normal(size=3000))),
            N(np.where(rng.random(4000) < 0.4, np.inf, rng.normal(size=4000))),
            stats.NUMERICAL,
        ),
        ("custom-threshold", "psi", N(rng.normal(size=3000)), N(rng.normal(0.05, size=3000)), stats.NUMERICAL),
        # Evidently's automatic choice: small/large reference, few/many values, numerical/categorical
        ("auto-small-num", None, N(rng.normal(size=500)), N(rng.normal(size=900)), stats.NUMERICAL),
        ("auto-small-few", None, N(rng.choice([1.0, 2, 3], 500)), N(rng.choice([1.0, 2, 3], 900)), stats.NUMERICAL),
        ("auto-small-binary", None, N(rng.choice([0.0, 1], 500)), N(rng.choice([0.0, 1], 900)), stats.NUMERICAL),
        ("auto-small-cat", None, N(rng.choice(list("pqr"), 500)), N(rng.choice(list("pqr"), 900)), stats.CATEGORICAL),
        ("auto-large-num", None, N(rng.normal(size=2000)), N(rng.normal(size=900)), stats.NUMERICAL),
        ("auto-large-few", None, N(rng.choice([1.0, 2, 3], 2000)), N(rng.choice([1.0, 2, 3, 4], 900)), stats.NUMERICAL),
        ("auto-large-cat", None, N(rng.choice(list("pqr"), 2000)), N(rng.choice(list("pq"), 900)), stats.CATEGORICAL),
    ]


CASE_IDS = [c[0] for c in _cases(np.random.default_rng(7))]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_same_method_score_and_verdict_as_evidently(case_id, evidently_loaded):
    name, method, ref, cur, kind = next(c for c in _cases(np.random.default_rng(7)) if c[0] == case_id)
    threshold = 0.02 if name == "custom-threshold" else None
    ev_name, ev_score, ev_drift, ev_thr = _evidently(method, ref, cur, kind, threshold)
    our_name, our_score, our_drift, our_thr = _ours(method, ref, cur, kind, threshold)
    assert our_name == ev_name
    assert our_score == pytest.approx(ev_score, rel=1e-9, abs=1e-12)
    assert our_drift == ev_drift
    assert our_thr == ev_thr


def test_wasserstein_matches_scipy_on_a_large_sample():
    from scipy.stats import wasserstein_distance

    g = np.random.default_rng(3)
    u, v = g.normal(size=10_000), g.normal(0.2, 1.1, size=300_000)
    ours = stats.wasserstein(stats.numeric_summary(u), stats.numeric_summary(v))
    assert ours == pytest.approx(wasserstein_distance(u, v) / np.std(u), rel=1e-12)


def test_drift_rules_follow_evidently():
    assert stats.is_drift("ks", 0.05, 0.05) and not stats.is_drift("chisquare", 0.05, 0.05)
    assert stats.is_drift("wasserstein", 0.1, 0.1) and not stats.is_drift("psi", 0.0999, 0.1)
    assert not stats.is_drift("jensenshannon", float("nan"), 0.1)
