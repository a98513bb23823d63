"""The test suite's XLA settings (tests/conftest.py), which the golden tables are also written and checked with
(tests/golden/make.py). Importing this module imports no JAX."""

from __future__ import annotations

import importlib.metadata


# The suite compiles many small distinct programs whose run time is milliseconds: LLVM's optimisation passes would
# dominate it (measured: GMM loop compile 8.3 s at the default level, 4.1 s at level 0). Tests check numbers, not
# speed; benchmarks run at the default level.
# On jaxlib 0.10 XLA's CPU fusion emitters also cost compile time the suite does not get back: with them off a tiny
# GMM run compiled in 16 s instead of 29, a tiny diffusion run in 20 s instead of 29, and a 100-seed GMM loop's run
# time fell too (8.6 s against 11.2; measured 2026-11-27 on the 2-core machine, loaded). Newer jaxlibs (3.12's
# 0.12) no longer know the flag, and XLA aborts on a flag it does not know.
def suite_xla_flags() -> str:
    """XLA_FLAGS for the suite and the golden tables."""
    flags = "--xla_backend_optimization_level=0"
    try:
        version = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return flags
    return flags + " --xla_cpu_use_fusion_emitters=false" if version == (0, 10) else flags
