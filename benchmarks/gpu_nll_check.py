"""The GMM held-out NLL inside the compiled loop against the same NLL evaluated standalone on its final parameters.

On the CPU they agree to float rounding; on an H100 (docs/benchmarks.md) the loop's value came out lower. This
prints, per seed, the loop's NLL at the last generation, the standalone NLL of the final parameters on the default
device and on the CPU, and the same for a run stepped one generation per program (``loop.chunk=1``), to tell a
fault of the fused loop program from one of the evaluator itself.

Usage: python benchmarks/gpu_nll_check.py [--seeds 8] [--generations 20]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.run import gmm_overrides
from madloop.api import simulate
from madloop.mixture import mixture_log_prob


def standalone(params, heldout: np.ndarray, device) -> np.ndarray:
    """-mean log p(heldout) [seeds] of the final parameters, one jitted vmapped program on ``device``."""
    params, heldout = jax.device_put((params, jnp.asarray(heldout)), device)
    return np.asarray(jax.jit(jax.vmap(lambda p: -jnp.mean(mixture_log_prob(p, heldout))))(params))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--generations", type=int, default=20)
    a = ap.parse_args()
    cpu = jax.devices("cpu")[0]
    print(f"devices: {jax.devices()}")
    for chunk in (a.generations, 1):
        overrides = [*gmm_overrides(a.seeds, a.generations, 128, 100, 10), f"loop.chunk={chunk}"]
        result = simulate(overrides)
        in_loop = result.metrics["nll"][:, -1]
        here = standalone(result.state.params, result.heldout, jax.devices()[0])
        on_cpu = standalone(jax.device_get(result.state.params), result.heldout, cpu)
        print(f"loop.chunk={chunk}: seed, in-loop NLL, standalone (default device), standalone (CPU)")
        for s in range(a.seeds):
            print(f"  {s:2d} {in_loop[s]:14.6g} {here[s]:14.6g} {on_cpu[s]:14.6g}")
        worst = np.max(np.abs(in_loop - on_cpu) / np.maximum(np.abs(on_cpu), 1e-30))
        print(f"  largest relative difference, in-loop vs CPU standalone: {worst:.3g}")


if __name__ == "__main__":
    main()
