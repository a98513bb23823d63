"""XLA settings madloop makes before JAX creates its backend (so ``import madloop`` must precede any JAX work).

XLA's CPU backend hands small elementwise and reduction fusions to YNNPACK by default (jaxlib 0.10). For the
loops' shapes (a few seeds x a few hundred samples x d = 2 to 10, K = 8 components) those library calls are
slower than XLA's own loops: the GMM benchmark (16 seeds x 200 generations) ran 1.70 s -> 0.52 s steady and the
Gaussian one (d = 2, 1000 seeds x 1000 generations) 3.26 s -> 2.18 s with dots alone left to YNNPACK; the
diffusion training step was unchanged within noise (benchmarks/run.py; 2-core x86, 2026-11-23).

The flag is experimental in XLA, and XLA aborts the process on a flag it does not know, so it is set only for
jaxlib versions it was measured on, never when XLA_FLAGS already sets it, and not with MADLOOP_XLA_DEFAULTS=0.

Large reductions are the exception: a sample metric's sums over [n, n] pairwise matrices (eval.n = 1000: MMD's
kernel means, the k-NN counts of precision / recall / density / coverage, KID) run 4-7x faster in YNNPACK than in
XLA's own loops (sum of exp over 16 x 1000 x 1000: 4 ms against 27 ms). So a program that computes such a metric
(``MetricGroup.pairwise``) is compiled with YNNPACK's reductions as well (``program_options``): the default
experiment's steady run went 10.5 -> 6.9 s, a Gaussian loop with every default metric 130 -> 92 s. Per group
(``python benchmarks/metric_groups.py``): mmd 2.2x, kid 1.5x, prdc 1.2x faster; sw2, fd and tail_mass, whose
reductions are small, ran 0.4-1.0x with them, and a GMM loop with nll alone 0.32 -> 0.59 s, so those keep dots
alone (2-core x86, jaxlib 0.10.2, 2026-11-27).
"""

from __future__ import annotations

import importlib.metadata
import math
import os

import numpy as np

FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
# The same setting plus reductions, as a per-program compiler option (enum names, not the flag's short names).
REDUCTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
TESTED_JAXLIB = ((0, 10),)  # (major, minor) versions the flag was measured on


def _applies(package: str, tested: tuple[tuple[int, int], ...]) -> bool:
    """Whether a madloop default applies: MADLOOP_XLA_DEFAULTS is not 0 and ``package``'s (major, minor) version
    is in ``tested``."""
    if os.environ.get("MADLOOP_XLA_DEFAULTS", "1") == "0":
        return False
    try:
        version = tuple(int(p) for p in importlib.metadata.version(package).split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return version in tested


def _tested() -> bool:
    """Whether madloop's YNNPACK settings apply: MADLOOP_XLA_DEFAULTS is not 0 and the jaxlib is a tested one."""
    return _applies("jaxlib", TESTED_JAXLIB)


# Set with FLAG, so that a process started from this one (a launcher's job, a test's subprocess), which inherits
# XLA_FLAGS with FLAG already in it, knows FLAG is madloop's default and not a user's own setting: both compile
# the same programs with the same options, and so compute the same numbers.
MARK = "MADLOOP_XLA_DEFAULT_FLAG"


def apply_defaults() -> bool:
    """Adds FLAG to XLA_FLAGS where it is known to help and to be accepted; returns whether it did."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "ynn_fusion_type" in flags or not _tested():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    os.environ[MARK] = FLAG
    return True


def defaults_applied() -> bool:
    """Whether FLAG in XLA_FLAGS is madloop's default (set by ``apply_defaults`` here or in a parent process) and
    the only YNNPACK setting there (a user's own setting is respected)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    ynn = [f for f in flags if "ynn_fusion_type" in f]
    return os.environ.get(MARK) == FLAG and ynn == [FLAG] and _tested()


def program_options(pairwise: bool) -> dict[str, str] | None:
    """Compiler options of a loop program: YNNPACK's reductions too when it computes pairwise sample metrics, on
    the CPU backend, where madloop's default set FLAG (never over a user's own XLA_FLAGS setting); else None."""
    import jax

    if not (pairwise and defaults_applied()) or jax.default_backend() != "cpu":
        return None
    return REDUCTIONS


# A program that runs once per run, the held-out reference (its sample, its k-NN radii, kernel means, sorted
# projections), spends far longer compiling than running: the default experiment's took 2.3-2.6 s to compile and
# 0.15-0.2 s to run. Without LLVM's optimisations and XLA's fusion emitters it compiled in 0.8 s and ran in 0.3 s.
# Its run grows with the held-out set's n^2 pairs, and slower there: at 2000 points 0.9 + 1.0 s against
# 2.5 + 0.6 s, at 4000 1.0 + 7.4 s against 2.7 + 2.6 s. So these options apply up to ONE_SHOT_MAX_POINTS points
# (2-core x86, jaxlib 0.10.2, 2026-11-27; benchmarks: docs/benchmarks.md).
ONE_SHOT = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
ONE_SHOT_MAX_POINTS = 2048


def one_shot_options(options: dict[str, str] | None, points: int) -> dict | None:
    """Compiler options of the held-out reference program: ``options`` (the loop's) plus ONE_SHOT, on the CPU
    backend where madloop's defaults apply, for a held-out set of at most ONE_SHOT_MAX_POINTS points, unless
    XLA_FLAGS sets either option itself; else ``options``."""
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    user = "optimization_level" in flags or "fusion_emitters" in flags
    if user or points > ONE_SHOT_MAX_POINTS or not defaults_applied() or jax.default_backend() != "cpu":
        return options
    return {**(options or {}), **ONE_SHOT}


# JAX lowers its Threefry hash on the CPU as a loop of 5 steps (to keep the compilation of programs with many
# draws small); on GPU and TPU it unrolls the 20 rounds. Each draw, split and fold_in of a loop program is then a
# while loop of its own: 20-30 of them per generation, each compiled to its own kernels and run as 5 dispatched
# steps. Unrolled (and kept out of its consumers by an optimisation barrier, so that XLA neither computes it again
# inside a consumer's loop nor copies it into several fusions, as the loop kept it out), the default experiment's
# loop compiled in 3.6 s instead of 4.7 s, the Gaussian loop's (d = 2, 1000 seeds x 1000 generations) ran 1.2 s
# instead of 1.8 s, and every random bit is the same: the same hash of the same counters (2-core x86,
# jax 0.10.2, 2026-11-28; benchmarks: docs/benchmarks.md).
#
# The optimisation barrier does not survive XLA's CPU pipeline (it is expanded away before fusion), so a key
# derived in the program (a role key's two fold_ins, a split) was fused into every draw made with it: one kernel
# hashing the key again for each element it is broadcast to, which LLVM took 0.58 s to compile for the Gaussian
# loop's normal draws alone (of the program's 1.19 s; TF_CPP_VMODULE=ir_compiler=1). A key broadcast over a larger
# count is therefore materialised first: an OR-reduction with zeros, exact and not fusible into the draw, so the
# key's hashes form a small kernel of their own (``_materialised``).
# (major, minor) JAX versions whose private threefry2x32_p primitive this was checked on
TESTED_JAX = ((0, 10), (0, 12))


def materialised(x):
    """x unchanged, through a reduction XLA computes once into a buffer: an OR with zeros for unsigned integers, a
    maximum with -inf for floats (exact: the maximum is one of its operands, -0.0 and NaN included; a subnormal
    may be flushed to zero, as by any float operation of XLA's CPU kernels). XLA fuses an
    elementwise producer into each consumer, computing it again for each element a consumer reads (on the CPU
    also through an optimisation barrier, which its pipeline expands away before fusion); a reduction it does not
    fuse into its consumer."""
    import jax.numpy as jnp
    from jax import lax

    if jnp.issubdtype(x.dtype, jnp.floating):
        low = np.array(-np.inf, x.dtype)
        return lax.reduce(jnp.stack([x, jnp.full_like(x, low)]), low, lax.max, (0,))
    return lax.reduce(jnp.stack([x, jnp.zeros_like(x)]), np.zeros((), x.dtype), lax.bitwise_or, (0,))


THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
THREEFRY_PARITY = 0x1BD11BDA


def threefry_rounds(key1, key2, x1, x2, numpy: bool = False):
    """The Threefry-2x32 hash (20 rounds; Salmon et al. 2011) of the counter pairs (x1, x2) under the key (key1,
    key2), uint32 arrays broadcast together: the same arithmetic as JAX's unrolled lowering
    (``jax._src.random.threefry2x32``), as lax primitives, so that lowering a program does not trace jax.numpy's
    operators (they were a third of the Gaussian loop's 0.25 s lowering: 17 ms per hash); with ``numpy`` as numpy
    ufuncs on numpy arrays (``madloop.rng.fold_in_np``; its additions wrap mod 2**32)."""
    if numpy:
        add, xor, or_, shl, shr, broadcast_to = (
            np.add, np.bitwise_xor, np.bitwise_or, np.left_shift, np.right_shift, np.broadcast_to
        )  # fmt: skip
    else:
        import jax.numpy as jnp
        from jax import lax

        add, xor, or_, shl, shr = lax.add, lax.bitwise_xor, lax.bitwise_or, lax.shift_left, lax.shift_right_logical
        broadcast_to = jnp.broadcast_to
    shape = np.broadcast_shapes(np.shape(key1), np.shape(key2), np.shape(x1), np.shape(x2))
    c = np.uint32
    ks = [broadcast_to(k, shape) for k in (key1, key2, xor(xor(key1, key2), c(THREEFRY_PARITY)))]
    a, b = add(broadcast_to(x1, shape), ks[0]), add(broadcast_to(x2, shape), ks[1])
    for i in range(5):
        for r in THREEFRY_ROTATIONS[i % 2]:
            a = add(a, b)
            b = xor(or_(shl(b, c(r)), shr(b, c(32 - r))), a)
        a = add(a, ks[(i + 1) % 3])
        b = add(add(b, ks[(i + 2) % 3]), c(i + 1))
    return a, b


def _materialised(key1, key2):
    """(key1, key2) unchanged, as one ``materialised`` buffer."""
    import jax.numpy as jnp

    both = materialised(jnp.stack(jnp.broadcast_arrays(key1, key2)))
    return both[0], both[1]


def unroll_threefry() -> bool:
    """Registers the unrolled Threefry lowering for the CPU (as GPU and TPU have it), on a tested JAX version
    and unless MADLOOP_XLA_DEFAULTS=0; returns whether it did. Values are unchanged, only the program's form."""
    if not _applies("jax", TESTED_JAX):
        return False
    try:  # a private module: any change to it leaves JAX's own lowering in place
        from jax import lax
        from jax._src.random import threefry2x32
        from jax.interpreters import mlir

        primitive = threefry2x32.threefry2x32_p
    except (ImportError, AttributeError):
        return False

    def unrolled(key1, key2, x1, x2):
        out_shape = np.broadcast_shapes(key1.shape, key2.shape, x1.shape, x2.shape)
        if math.prod(key1.shape) < math.prod(out_shape) or math.prod(key2.shape) < math.prod(out_shape):
            key1, key2 = _materialised(key1, key2)
        return lax.optimization_barrier(threefry_rounds(key1, key2, x1, x2))

    mlir.register_lowering(primitive, mlir.lower_fun(unrolled, multiple_results=True), platform="cpu", inline=False)
    return True
