"""The d = 10 Gaussian MLE replace loop (n = 100, 1000 generations) of an importable madloop against the competent
float64 numpy reference: mean log trace ratio ± SE on both sides at generations 250, 500, 750, 1000, with z-scores.

Usage: python benchmarks/gaussian_agreement.py [--seeds 200] [--dim 10]

To check another tree (e.g. the code before the pivoted Cholesky, fae93e4), export it with its config beside it
and put it first on the path:
    mkdir -p /tmp/prefix && git archive fae93e4 madloop conf | tar -x -C /tmp/prefix
    mv /tmp/prefix/conf /tmp/prefix/madloop/conf
    (cd /tmp && PYTHONPATH=/tmp/prefix python /path/to/repo/benchmarks/gaussian_agreement.py)
Exit status 1 when a generation disagrees beyond 4.5 SE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: a tree on PYTHONPATH wins

import madloop  # noqa: E402
from benchmarks import agreement, references  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--generations", type=int, default=1000)
    a = p.parse_args()
    from madloop.engine import Simulation

    overrides = [
        "data=gaussian",
        f"data.dim={a.dim}",
        "model=gaussian",
        "model.estimator=mle",
        "regime=fully_synthetic",
        "regime.pool=replace",
        "regime.n_real=100",
        "regime.n_synth=100",
        f"loop.generations={a.generations}",
        f"loop.seeds={a.seeds}",
        f"loop.chunk={a.generations}",
        "eval=closed_form",
        "eval.metrics=[trace_ratio]",
        "plots=false",
    ]
    print(f"madloop from {madloop.__file__}", flush=True)
    ours = np.log(Simulation(madloop.compose(overrides))().metrics["trace_ratio"])
    ref = np.log(references.gaussian_loop_vectorised(10_000, a.seeds, a.dim, 100, a.generations, "replace"))
    bad = 0
    print("generation | mean log trace ratio ± SE: madloop / float64 numpy (z)")
    for g in [a.generations * k // 4 for k in (1, 2, 3, 4)]:
        c = agreement.compare(ours[:, g], ref[:, g])
        bad += not c["agree"]
        print(f"{g} | {agreement.cell(c)}", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
