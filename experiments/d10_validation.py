"""The issue-15 table: the d = 10 MLE Gaussian fully synthetic loop (n = 100, 1000 generations) in madloop beside a
float64 numpy loop of the same model (eigh square root, vectorised over seeds).

Usage (from the repository root): python -m experiments.d10_validation [--seeds 100] [--ref-seeds 200]

Prints madloop's mean log trace ratio (+- SE over seeds) at generations 250/500/750/1000 beside the reference's, the
difference, and its z-score (difference / combined SE). tests/validation/test_gaussian.py asserts |z| < 4.5.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import madloop
from benchmarks.run import gaussian_overrides
from tests.validation import reference as R

CHECKED = (250, 500, 750, 1000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--ref-seeds", type=int, default=200)
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--precision", default=None, help="loop.precision (float32 | float64); default: the config's")
    a = p.parse_args()
    extra = [f"loop.precision={a.precision}"] if a.precision else []
    t0 = time.perf_counter()
    got = madloop.simulate(gaussian_overrides(a.dim, "replace", 100, 1000, a.seeds) + extra).metrics["trace_ratio"]
    t1 = time.perf_counter()
    ref = R.gaussian_loop(a.dim, 100, 1000, a.ref_seeds, seed=1, keep=CHECKED)["trace"]
    t2 = time.perf_counter()
    gens = list(CHECKED)
    m, se_m = R.mean_se(np.log(got[:, gens]))
    r, se_r = R.mean_se(np.log(ref))
    z = R.z_scores(m, se_m, r, se_r)
    print(f"d = {a.dim}, MLE, fully synthetic, n = 100: mean log trace ratio +- SE")
    print(f"| generation | madloop ({a.seeds} seeds) | float64 numpy ({a.ref_seeds} seeds) | difference | z |")
    print("|---|---|---|---|---|")
    for j, g in enumerate(CHECKED):
        print(f"| {g} | {m[j]:.2f} ± {se_m[j]:.2f} | {r[j]:.2f} ± {se_r[j]:.2f} | {m[j] - r[j]:+.2f} | {z[j]:+.1f} |")
    print(f"madloop {t1 - t0:.1f} s (compile included), reference {t2 - t1:.1f} s")


if __name__ == "__main__":
    main()
