"""How far float32 and float64 follow the Gaussian loop's laws: d = 10, n = 100, MLE, fully synthetic, 100 seeds,
1000 generations, each precision (loop.precision) as one program.

    python experiments/precision.py

Prints, per generation, the median log-det ratio against its exact law (docs/theory.md, law 1), the share of paths
whose log-det is still finite, and the mean log trace ratio +- SE. The log-det leaves its law once the covariance's
eigenvalues spread below the precision's resolution (about d eps of the largest); the trace, dominated by the
largest eigenvalues, does not.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import digamma

import madloop

N, D, G, SEEDS = 100, 10, 1000, 100
SHOWN = (50, 100, 150, 200, 300, 400, 500, 750, 1000)


def main() -> None:
    i = np.arange(1, D + 1)
    per_generation = np.sum(digamma((N - i) / 2)) + D * np.log(2 / N)  # E log det ratio of one refit
    print("| precision | g | median log-det ratio | law | finite share | mean log trace ratio +- SE |")
    print("|---|---|---|---|---|---|")
    for precision in ("float32", "float64"):
        t = time.perf_counter()
        r = madloop.simulate(
            [
                "data=gaussian",
                f"data.dim={D}",
                "model=gaussian",
                "model.estimator=mle",
                "regime=fully_synthetic",
                f"regime.n_real={N}",
                f"regime.n_synth={N}",
                f"loop.generations={G}",
                f"loop.seeds={SEEDS}",
                "eval.metrics=[trace_ratio,logdet_ratio]",
                f"loop.precision={precision}",
                f"loop.chunk={G}",
            ]
        )
        logdet, logtrace = r.metrics["logdet_ratio"], np.log(r.metrics["trace_ratio"])
        for g in SHOWN:
            lt = logtrace[:, g]
            print(
                f"| {precision} | {g} | {np.median(logdet[:, g]):.2f} | {(g + 1) * per_generation:.2f} | "
                f"{np.isfinite(logdet[:, g]).mean():.2f} | {lt.mean():.2f} +- {lt.std(ddof=1) / np.sqrt(SEEDS):.2f} |"
            )
        print(f"<!-- {precision}: {time.perf_counter() - t:.0f} s -->")


if __name__ == "__main__":
    main()
