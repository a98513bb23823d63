"""Which seeds of the from-scratch grid25 diffusion loop turn non-finite, and at which generation (a GPU probe).

Usage: python benchmarks/nan_probe.py [generations] (set JAX_DEFAULT_MATMUL_PRECISION=highest to compare with the
GPU's default TF32 matmuls). Prints, per seed, the first generation whose parameters are not finite.
"""

import os
import sys
import time

import numpy as np

import madloop

g = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ov = [
    "data=grid25",
    "regime=fully_synthetic",
    "regime.n_real=1000",
    "regime.n_synth=1000",
    "model=diffusion",
    "model.width=256",
    "model.train_steps=8000",
    "loop.warm_start=false",
    "loop.seeds=16",
    f"loop.generations={g}",
    "eval.metrics=[modes,hq,sw2]",
]
t0 = time.perf_counter()
r = madloop.simulate(ov)
first_bad = {s: int(np.argmax(r.finite[s] < 1)) for s in range(16) if (r.finite[s] < 1).any()}
print(
    f"precision={os.environ.get('JAX_DEFAULT_MATMUL_PRECISION', 'default')}: non-finite seeds (first generation): "
    f"{first_bad}; hq at g: {np.round(r.metrics['hq'][:, -1], 3).tolist()} ({time.perf_counter() - t0:.0f} s)"
)
