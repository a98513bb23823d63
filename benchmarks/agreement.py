"""Agreement of a benchmark's result between madloop and a reference: mean ± standard error on both sides, a z-score.

A speed ratio compares like with like only if both sides compute the same thing. The runner (benchmarks/run.py)
puts one result of each loop (final log trace ratio, held-out NLL, sliced W2) beside its timings, as the mean ±
standard error over seeds on each side, and the two-sample z-score of the difference. Beyond ``Z_MAX`` standard
errors the cell reads DISAGREE and the runner exits non-zero.
"""

from __future__ import annotations

import numpy as np

Z_MAX = 4.5  # two independent samples of the same law differ by more than 4.5 SE with probability < 1e-5


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean of x [n] (n >= 2)."""
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def compare(ours: np.ndarray, ref: np.ndarray, z_max: float = Z_MAX) -> dict:
    """The two-sample comparison of madloop's values ``ours`` [n] with a reference's ``ref`` [m] (independent seeds).

    Returns:
        {"ours": [mean, se, n], "ref": [mean, se, m], "z": |mean difference| / combined SE, "agree": z < z_max}.
        A non-finite value on either side disagrees (z = inf): a NaN is a wrong result, not noise.
    """
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(ref))):
        z = float("inf")
        (mo, so), (mr, sr) = (float("nan"), float("nan")), (float("nan"), float("nan"))
    else:
        (mo, so), (mr, sr) = mean_se(ours), mean_se(ref)
        se = np.hypot(so, sr)
        z = float(abs(mo - mr) / se) if se > 0 else (0.0 if mo == mr else float("inf"))
    return {"ours": [mo, so, len(ours)], "ref": [mr, sr, len(ref)], "z": z, "agree": bool(z < z_max)}


def worst(comparisons: list[dict]) -> dict:
    """The comparison with the largest z-score (several generations of one loop, say)."""
    return max(comparisons, key=lambda c: c["z"])


def cell(c: dict | None) -> str:
    """A markdown table cell: madloop's mean ± SE, the reference's, the z-score, and DISAGREE beyond ``Z_MAX``."""
    if c is None:
        return "n/a"
    (mo, so, _), (mr, sr, _) = c["ours"], c["ref"]
    verdict = "" if c["agree"] else " **DISAGREE**"
    return f"{mo:.3g} ± {so:.2g} / {mr:.3g} ± {sr:.2g} (z = {c['z']:.1f}){verdict}"


def symlog(x: np.ndarray) -> np.ndarray:
    """sign(x) log(1 + |x|): a monotone transform for heavy-tailed results (a held-out NLL that can reach 1e5), so
    that a mean ± SE comparison is not carried by one seed. Equal laws give equal means after any transform."""
    return np.sign(x) * np.log1p(np.abs(x))
