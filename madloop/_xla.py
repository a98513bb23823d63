"""XLA settings madloop makes before JAX creates its backend (so ``import madloop`` must precede any JAX work).

XLA's CPU backend hands small elementwise and reduction fusions to YNNPACK by default (jaxlib 0.10). For the
loops' shapes (a few seeds x a few hundred samples x d = 2 to 10, K = 8 components) those library calls are
slower than XLA's own loops: the GMM benchmark (16 seeds x 200 generations) ran 1.70 s -> 0.52 s steady and the
Gaussian one (d = 2, 1000 seeds x 1000 generations) 3.26 s -> 2.18 s with dots alone left to YNNPACK; the
diffusion training step was unchanged within noise (benchmarks/run.py; 2-core x86, 2026-11-23).

The flag is experimental in XLA, and XLA aborts the process on a flag it does not know, so it is set only for
jaxlib versions it was measured on, never when XLA_FLAGS already sets it, and not with MADLOOP_XLA_DEFAULTS=0.
"""

from __future__ import annotations

import importlib.metadata
import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
TESTED_JAXLIB = ((0, 10),)  # (major, minor) versions the flag was measured on


def apply_defaults() -> bool:
    """Adds FLAG to XLA_FLAGS where it is known to help and to be accepted; returns whether it did."""
    if os.environ.get("MADLOOP_XLA_DEFAULTS", "1") == "0":
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "ynn_fusion_type" in flags:
        return False
    try:
        version = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    if version not in TESTED_JAXLIB:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
