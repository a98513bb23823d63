"""Benchmark: madloop against the physical limits of this machine, one row per speed target, each with its target.

Every row is measured in this run, reference included:
- **RNG bound** (Gaussian fully synthetic loop, MLE, replace, n = 100, trace ratio only): the loop's steady time
  against the time to draw its normals alone (S seeds x G generations x n x d threefry normals, one jitted program
  vmapped over seeds, reduced to one number per seed so nothing is optimised away). No implementation of this loop
  can beat the bound by much: it must draw those numbers. Targets: <= 1.3x at d = 2 and <= 1.5x at d = 10 on a CPU,
  <= 2x on a GPU.
- **numpy** (the same loop, competent seed-vectorised float64 numpy, ``benchmarks.references``, timed on up to
  200 seeds and scaled linearly): madloop steady and compile-included against it. Targets: >= 3x steady and >= 2x
  with compilation. Agreement: the final log trace ratio of both, two-sample z < 4.5 (``benchmarks.agreement``).
- **compile**: the Gaussian loop's and the GMM loop's compilation (first call minus steady), and the default
  experiment's first call in a fresh process without a compilation cache. Targets: <= 1.5 s, <= 2 s, <= 10 s.
- **training steps** at the digits preset's size (``experiment=digits_fully_synthetic``: batch 128, 8 lanes = its
  4 seeds x 2 values of lam vmapped in one program): the diffusion MLP (width 256) and the U-Net
  (``model.network=unet``, channels [32, 64], 8 x 8 images). Their matrix-product FLOP/s (counted on the traced
  step, ``benchmarks.flops``) against a float32 matmul timed here at the same precision, true float32 as every
  madloop run (``benchmarks.diffusion_step``). The step is compiled with the compiler options the preset's loop
  compiles its programs with (on the CPU: YNNPACK's reductions as well as its dots, because the preset computes
  pairwise sample metrics; ``engine.Programs.options``). Targets: MLP >= 50%, U-Net >= 40%.
- **digits U-Net loop** (on a GPU, or with ``--digits``): the digits preset with the U-Net, 2 generations, first
  call and steady call; reported, no target.

Usage: python benchmarks/targets.py [--quick] [--seeds 1000] [--generations 1000] [--digits] [--only ROW...]
       [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import madloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/targets.py` from the root
from benchmarks import agreement, diffusion_step, references  # noqa: E402
from benchmarks.run import gaussian_overrides, gmm_overrides, timed_madloop  # noqa: E402


def rng_bound(seeds: int, generations: int, n: int, dim: int, repeats: int) -> float:
    """Steady seconds to draw seeds x generations x n x dim standard normals (threefry; one program, vmapped
    over seeds, a scan over generations with per-generation keys as the loop derives them)."""

    def one(key):
        def body(total, g):
            # drawn flat ([n d], value for value the [n, d] draw reshaped): on CPU a minor axis of d = 10 makes
            # XLA's threefry fusions 4x slower per number (madloop.rng), and the bound is the fastest layout
            x = jax.random.normal(jax.random.fold_in(key, g), (n * dim,))
            return total + jnp.sum(x), None

        return jax.lax.scan(body, jnp.float32(0), jnp.arange(generations))[0]

    keys = jax.random.split(jax.random.key(0), seeds)
    fn = jax.jit(jax.vmap(one))
    fn(keys).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(keys).block_until_ready()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fresh_process_first_call(overrides: list[str]) -> float:
    """The default experiment's first call (compilation included) in a fresh process, no compilation cache."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["MADLOOP_COMPILE_CACHE"] = "0"
    code = (
        "import time, madloop; from madloop.engine import Simulation; "
        f"sim = Simulation(madloop.compose({overrides!r})); t = time.perf_counter(); sim(); "
        "print(time.perf_counter() - t)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(proc.stdout.split()[-1])


GROUPS = ("gaussian", "gmm", "default", "steps", "digits")

# the digits preset with the U-Net (docs/images.md), 2 generations; --quick: a few steps of it (the code path)
DIGITS_UNET = ["experiment=digits_fully_synthetic", "model.network=unet", "loop.generations=2", "plots=false"]
DIGITS_QUICK = ["loop.generations=1", "loop.seeds=1", "sweep.bias.lam=[1.0]", "model.train_steps=4"]
DIGITS_QUICK += ["model.finetune_steps=2", "model.sample_steps=2", "regime.n_real=256", "regime.n_synth=256"]


def render_row(r: dict) -> str:
    """One markdown row of the targets table."""
    if r["goal"] is None:
        goal, met = "(reported)", "-"
    else:
        goal = f"{'<=' if r['better'] == 'lower' else '>='} {r['goal']:g}{r['unit']}"
        met = "yes" if r["met"] else "NO"
    return f"| {r['target']} | {r['value']:.3g}{r['unit']} | {goal} | {met} | {r['detail']} |"


def render(paths: list[str]) -> None:
    """Prints one table from the JSON files of several runs (the device check writes one per section)."""
    rows, devices = [], set()
    for path in paths:
        if Path(path).exists():
            data = json.loads(Path(path).read_text())
            rows += data["rows"]
            devices.add(data["device"])
    print(f"# targets on {', '.join(sorted(devices)) or 'nothing'}")
    print("| target | measured | goal | met | detail |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(render_row(r))
    goals = [r for r in rows if r["met"] is not None]
    print(f"{sum(r['met'] for r in goals)} of {len(goals)} targets met")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a dry run; the ratios mean little)")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--generations", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=GROUPS, default=None,
                   help="these rows only (default: all but digits; digits too on a GPU or with --digits)")  # fmt: skip
    p.add_argument("--digits", action="store_true", help="the digits U-Net loop row on a CPU too (minutes)")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--render", nargs="+", default=None, help="print one table from these JSON files and exit")
    a = p.parse_args()
    if a.render:
        render(a.render)
        return
    seeds = a.seeds or (32 if a.quick else 1000)
    gens = a.generations or (50 if a.quick else 1000)
    n = 100
    gpu = jax.devices()[0].platform == "gpu"
    groups = a.only or [g for g in GROUPS if g != "digits" or gpu or a.digits]
    rows: list[dict] = []

    def row(target: str, value: float, goal: float | None, better: str, unit: str, detail: str) -> None:
        met = None if goal is None else bool(value <= goal if better == "lower" else value >= goal)
        rows.append({"target": target, "value": value, "goal": goal, "better": better, "unit": unit, "met": met,
                     "detail": detail})  # fmt: skip
        print(render_row(rows[-1]), flush=True)
        if a.json:  # after every row: a section stopped at its time limit keeps what it measured
            with open(a.json, "w") as f:
                json.dump({"device": jax.devices()[0].device_kind, "rows": rows}, f, indent=1)

    print(f"# {platform.machine()} {os.cpu_count()} cores; {jax.devices()[0].device_kind}; jax {jax.__version__}")
    print(f"# Gaussian loop: {seeds} seeds x {gens} generations, n = {n}; repeats {a.repeats}; rows: {groups}")
    print("| target | measured | goal | met | detail |")
    print("|---|---|---|---|---|")
    for dim, goal in ((2, 2.0 if gpu else 1.3), (10, 2.0 if gpu else 1.5)) if "gaussian" in groups else ():
        ml = timed_madloop(gaussian_overrides(dim, "replace", n, gens, seeds), a.repeats)
        bound = rng_bound(seeds, gens, n, dim, a.repeats)
        ref_seeds = min(seeds, 200)
        t0 = time.perf_counter()
        ratios = references.gaussian_loop_vectorised(0, ref_seeds, dim, n, gens, "replace")
        ref = (time.perf_counter() - t0) * seeds / ref_seeds  # linear in seeds
        # agreement: the final log trace ratio (a sum of G log increments, close to normal) of both, two-sample z
        check = agreement.compare(np.log(ml["result"].metrics["trace_ratio"][:, -1]), np.log(ratios[:, -1]))
        (mo, so, _), (mr, sr, _) = check["ours"], check["ref"]
        agree = (
            f"final log trace ratio: madloop {mo:.3f} +- {so:.3f}, numpy {mr:.3f} +- {sr:.3f} "
            f"(z = {check['z']:.1f}, {'agrees' if check['agree'] else 'DISAGREES'})"
        )
        row(f"Gaussian d={dim}: steady / RNG bound", ml["steady"] / bound, goal, "lower", "x",
            f"madloop {ml['steady']:.3f} s, bound {bound:.3f} s")  # fmt: skip
        detail = f"numpy {ref:.2f} s ({ref_seeds} seeds timed, scaled); {agree}"
        row(f"Gaussian d={dim}: vs numpy, steady", ref / ml["steady"], 3.0, "higher", "x", detail)
        row(f"Gaussian d={dim}: vs numpy, compile incl.", ref / ml["first"], 2.0, "higher", "x",
            f"madloop first call {ml['first']:.2f} s")  # fmt: skip
        if dim == 2:
            row("compile: Gaussian loop", ml["compile"], 1.5, "lower", " s", "first call minus steady, d = 2")
    if "gmm" in groups:
        gmm_seeds, gmm_gens = (4, 20) if a.quick else (16, 200)
        gm = timed_madloop(gmm_overrides(gmm_seeds, gmm_gens, 128, 100, 10), a.repeats)
        case = f"ring of 8, K = 8, n = 128, {gmm_seeds} seeds x {gmm_gens} generations"
        row("compile: GMM loop", gm["compile"], 2.0, "lower", " s", f"{case}; steady {gm['steady']:.2f} s")
    if "default" in groups:
        small = ["loop.generations=2", "loop.seeds=2"] if a.quick else []  # --quick: the code path, not the target
        what = "fresh process, no compilation cache (python -m madloop.run's experiment"
        what += "".join(f" {o}" for o in small)
        row("compile: default experiment first call", fresh_process_first_call(small), 10.0, "lower", " s", what + ")")
    if "steps" in groups:
        peak = diffusion_step.matmul_peak()
        options = diffusion_step.preset_options()  # compiled as the digits preset's loop compiles its programs
        lanes = 1 if a.quick else 8  # the digits preset vmaps 4 seeds x 2 values of lam
        # one lane too, on a CPU (on a GPU each seed count is a further U-Net compilation, and one lane says little)
        counts = [lanes] if gpu else sorted({1, lanes})
        for network, goal, steps in (("mlp", 50.0, 20 if a.quick else 100), ("unet", 40.0, 2 if a.quick else 10)):
            measured = diffusion_step.measure([256], counts, steps, network=network, options=options)
            preset, one = measured[-1], (measured[0] if len(measured) > 1 else None)
            what = "MLP width 256" if network == "mlp" else "U-Net channels [32, 64], 8 x 8 images"
            alone = "" if one is None else f"; 1 lane: {one['gflops'] / peak:.0%}"
            alone += "; YNNPACK dots and reductions, as the preset" if options else "; default compiler options"
            row(f"training step ({network}): share of matmul peak", preset["gflops"] / peak * 100, goal, "higher", "%",
                f"diffusion {what}, batch 128, {preset['seeds']} lanes: {preset['ms_per_step']:.2f} ms/step, "
                f"{preset['gflops']:.1f} GFLOP/s of a {peak:.1f} GFLOP/s float32 peak{alone}")  # fmt: skip
    if "digits" in groups:
        dg = timed_madloop(DIGITS_UNET + (DIGITS_QUICK if a.quick else []), repeats=1)
        fd = dg["result"].metrics["fd"][..., -1]
        size = "quick sizes" if a.quick else "2 generations"
        row("digits U-Net loop: steady", dg["steady"], None, "lower", " s",
            f"{' '.join(DIGITS_UNET[:2])}, {size}: first call {dg['first']:.1f} s (compile {dg['compile']:.1f} s); "
            f"last fd {np.nanmean(fd):.3g} (lanes' mean)")  # fmt: skip
    goals = [r for r in rows if r["met"] is not None]
    print(f"{sum(r['met'] for r in goals)} of {len(goals)} targets met")


if __name__ == "__main__":
    madloop.compose([])  # registers the options before the first simulation
    main()
