"""Evidently's drift tests, re-implemented on numpy arrays so that they run on every row.

Evidently 0.7 computes each test on pandas Series (``evidently.legacy.calculations.stattests``)
and renders plotly widgets for every column, which costs minutes on a million rows. The verdict
itself only needs the statistic, so this module computes the *same* statistic with the same
formula, bins, zero-filling and thresholds, on a column summary:

* a numerical column is its finite values, sorted (NaN and +-inf dropped, as Evidently does);
* a categorical column is its value counts (nulls dropped).

``tests/monitoring/test_agreement.py`` checks the scores and verdicts against Evidently's own
``DataDriftPreset`` on the drift scenarios. Imports only numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NUMERICAL = "num"
CATEGORICAL = "cat"

#: method -> (default threshold, drift rule: "le"/"lt" score below the threshold (p-values),
#: "ge" score at or above it (distances), Evidently's display name)
METHODS: dict[str, tuple[float, str, str]] = {
    # p-values: drift when p <= threshold (ks) or p < threshold (chisquare, z), as in Evidently
    "ks": (0.05, "le", "K-S p_value"),
    "chisquare": (0.05, "lt", "chi-square p_value"),
    "z": (0.05, "lt", "Z-test p_value"),
    # distances: drift when score >= threshold
    "psi": (0.1, "ge", "PSI"),
    "wasserstein": (0.1, "ge", "Wasserstein distance (normed)"),
    "jensenshannon": (0.1, "ge", "Jensen-Shannon distance"),
}
#: which column types each method accepts (Evidently's ``allowed_feature_types``)
ALLOWED = {
    "ks": {NUMERICAL},
    "wasserstein": {NUMERICAL},
    "chisquare": {CATEGORICAL},
    "z": {CATEGORICAL},
    "psi": {NUMERICAL, CATEGORICAL},
    "jensenshannon": {NUMERICAL, CATEGORICAL},
}
DISPLAY_TO_METHOD = {display: name for name, (_, _, display) in METHODS.items()}


@dataclass
class Summary:
    """What the tests need of one side of one column."""

    kind: str  # NUMERICAL or CATEGORICAL
    rows: int  # rows in the window, missing included
    missing: int  # NaN / null / +-inf (dropped before testing, as Evidently does)
    values: np.ndarray | None = None  # NUMERICAL: finite values, sorted ascending
    counts: dict[Any, int] = field(default_factory=dict)  # CATEGORICAL (or a few-valued NUMERICAL)

    @property
    def n(self) -> int:
        """Rows that take part in the test."""
        return int(self.values.size) if self.kind == NUMERICAL else int(sum(self.counts.values()))

    def value_counts(self) -> dict[Any, int]:
        """Counts per distinct value (numerical columns: computed from the sorted values)."""
        if self.kind == CATEGORICAL or self.values is None:
            return self.counts
        uniq, cnt = _unique_sorted(self.values)
        return dict(zip(uniq.tolist(), cnt.tolist(), strict=True))


def numeric_summary(values: np.ndarray, rows: int | None = None) -> Summary:
    """Summary of a numerical column from its raw values (any float/int dtype, NaN allowed)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)] if not np.isfinite(arr).all() else arr
    out = np.sort(finite)  # sorted once: ks, wasserstein, bins and distinct counts all reuse it
    total = int(arr.size if rows is None else rows)
    return Summary(NUMERICAL, total, total - int(out.size), values=out)


def categorical_summary(counts: dict[Any, int], rows: int) -> Summary:
    kept = {k: int(v) for k, v in counts.items() if k is not None and not _is_nan(k) and v}
    return Summary(CATEGORICAL, int(rows), int(rows) - sum(kept.values()), counts=kept)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _unique_sorted(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(return_counts=True) for an already sorted array, in O(n)."""
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.append(starts, sorted_values.size))
    return sorted_values[starts], counts


def nunique(s: Summary) -> int:
    if s.kind == CATEGORICAL:
        return len(s.counts)
    v = s.values
    if v.size == 0:
        return 0
    return int(np.count_nonzero(v[1:] != v[:-1])) + 1


def union_nunique(ref: Summary, cur: Summary) -> int:
    """``pd.concat([reference, current]).nunique()`` without concatenating a million rows."""
    if ref.kind == CATEGORICAL:
        return len(set(ref.counts) | set(cur.counts))
    n_ref = nunique(ref)
    if n_ref > 5:  # only "<= 5 or not" matters to the auto rules
        return n_ref
    n_cur = nunique(cur)
    if n_cur > 5:
        return n_cur
    return int(np.union1d(_unique_sorted(ref.values)[0], _unique_sorted(cur.values)[0]).size)


def auto_method(ref: Summary, cur: Summary) -> str:
    """Evidently's automatic choice (``_get_default_stattest``), on the cleaned columns."""
    n_values = union_nunique(ref, cur)
    if ref.n <= 1000:
        if ref.kind == NUMERICAL and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if ref.kind == NUMERICAL and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def is_drift(method: str, score: float, threshold: float) -> bool:
    rule = METHODS[method][1]
    if score != score:  # NaN: Evidently compares and gets False
        return False
    if rule == "le":
        return score <= threshold
    if rule == "lt":
        return score < threshold
    return score >= threshold


# ------------------------------------------------------------------------------------------------
# the tests (each mirrors the Evidently function named in its docstring)


def ks(ref: Summary, cur: Summary) -> float:
    """``_ks_stat_test``: two-sample Kolmogorov-Smirnov p-value (scipy's own computation)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(ref.values, cur.values)[1])


def wasserstein(ref: Summary, cur: Summary) -> float:
    """``_wasserstein_distance_norm``: W1(ref, cur) / max(std(ref), 0.001).

    Same sum as ``scipy.stats.wasserstein_distance`` (|F_ref - F_cur| times the gaps of the
    merged, sorted sample), without scipy's two argsorts and two searches of a million values:
    both sides are sorted already, so the merge positions of the (small) reference side follow
    from one search, and both CDFs are running counts. Where values tie, the gap to the next
    value is 0, so the term vanishes in both computations; elsewhere the counts are equal.
    """
    u, v = ref.values, cur.values
    norm = max(float(np.std(u)), 0.001)
    n_u, n_v = u.size, v.size
    total = n_u + n_v
    # stable merge of [u, v]: u[i] lands after i earlier u's and after every v strictly below it
    pos_u = np.arange(n_u) + np.searchsorted(v, u, "left")
    from_u = np.zeros(total, dtype=bool)
    from_u[pos_u] = True
    merged = np.empty(total, dtype=np.float64)
    merged[pos_u] = u
    merged[~from_u] = v
    # summed in blocks: the temporaries stay a few MB however long the window is
    acc, seen_u = 0.0, 0
    for lo in range(0, total - 1, _BLOCK):
        hi = min(lo + _BLOCK, total - 1)
        deltas = merged[lo + 1 : hi + 1] - merged[lo:hi]
        cum_u = seen_u + np.cumsum(from_u[lo:hi], dtype=np.int64)
        seen_u = int(cum_u[-1])
        u_cdf = cum_u / n_u
        v_cdf = (np.arange(lo + 1, hi + 1, dtype=np.int64) - cum_u) / n_v
        acc += float(np.sum(np.multiply(np.abs(u_cdf - v_cdf), deltas)))
    return acc / norm


_BLOCK = 1 << 18


def _binned(ref: Summary, cur: Summary, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """``get_binned_data``: Sturges bins over both samples (numerical, >20 distinct reference
    values), else the share of each distinct value; zero shares filled as Evidently does."""
    if ref.kind == NUMERICAL and nunique(ref) > 20:
        u, v = ref.values, cur.values
        first = min(u[0], v[0])
        last = max(u[-1], v[-1])
        edges = _sturges_edges(float(first), float(last), u.size + v.size)
        ref_p = np.histogram(u, edges)[0] / ref.n
        cur_p = np.histogram(v, edges)[0] / cur.n
    else:
        ref_c, cur_c = ref.value_counts(), cur.value_counts()
        keys = list(set(ref_c) | set(cur_c))
        ref_p = np.array([ref_c.get(k, 0) / ref.n for k in keys], dtype=np.float64)
        cur_p = np.array([cur_c.get(k, 0) / cur.n for k in keys], dtype=np.float64)
    if fill_zeroes:
        for p in (ref_p, cur_p):
            nz = p[p != 0]
            smallest = float(nz.min()) if nz.size else 0.0
            np.place(p, p == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref_p, cur_p


def _sturges_edges(first: float, last: float, size: int) -> np.ndarray:
    """``np.histogram_bin_edges(combined, bins="sturges")`` from the min, max and size only."""
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (last - first) / (np.log2(size) + 1.0)
    n_bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def psi(ref: Summary, cur: Summary) -> float:
    """``_psi``: population stability index over the bins of ``get_binned_data``."""
    ref_p, cur_p = _binned(ref, cur, fill_zeroes=True)
    return float(np.sum((ref_p - cur_p) * np.log(ref_p / cur_p)))


def jensenshannon(ref: Summary, cur: Summary) -> float:
    """``_jensenshannon``: scipy's Jensen-Shannon distance (natural log) over the same bins."""
    from scipy.spatial import distance

    ref_p, cur_p = _binned(ref, cur, fill_zeroes=False)
    return float(distance.jensenshannon(ref_p, cur_p))


def chisquare(ref: Summary, cur: Summary) -> float:
    """``_chi_stat_test``: chi-square p-value of current counts against scaled reference counts."""
    from scipy.stats import chisquare as scipy_chisquare

    ref_c, cur_c = ref.value_counts(), cur.value_counts()
    keys = list(set(ref_c) | set(cur_c))
    k_norm = cur.n / ref.n
    f_exp = [ref_c.get(k, 0) * k_norm for k in keys]
    f_obs = [cur_c.get(k, 0) for k in keys]
    with np.errstate(divide="ignore", invalid="ignore"):  # a category new in the window: p = 0, as in Evidently
        return float(scipy_chisquare(f_obs, f_exp)[1])


def z(ref: Summary, cur: Summary) -> float:
    """``_z_stat_test``: two-proportion z-test p-value for a binary column."""
    from scipy.stats import norm as normal

    ref_c, cur_c = ref.value_counts(), cur.value_counts()
    if len(ref_c) == 1 and len(cur_c) == 1 and set(ref_c) == set(cur_c):
        return 1.0
    keys = sorted(set(ref_c) | set(cur_c))
    n1, n2 = ref.n, cur.n
    # Evidently maps keys[0] -> 0 and everything else -> 1, then compares the shares of 1
    p1 = float(n1 - ref_c.get(keys[0], 0)) / n1
    p2 = float(n2 - cur_c.get(keys[0], 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - normal.cdf(np.abs(stat))))


TESTS = {
    "ks": ks,
    "wasserstein": wasserstein,
    "psi": psi,
    "jensenshannon": jensenshannon,
    "chisquare": chisquare,
    "z": z,
}
