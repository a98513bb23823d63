"""The benchmark runner: madloop against the scripts researchers use today, measured in the same run.

Usage:
    python benchmarks/run.py                          # every section at full size (about an hour on 2 cores)
    python benchmarks/run.py --sections gaussian gmm  # some sections; others keep their last results
    python benchmarks/run.py --quick                  # small sizes, to check the runner itself

Each section stores its figures in benchmarks/results.json (with the machine and the date); the table of every
stored section is printed and written into docs/benchmarks.md between the runner's markers. Sections:

- gaussian: Gaussian fully synthetic loop (MLE), d = 2 and 10, n = 100, 1000 generations, replace and
  accumulate, 1000 seeds. madloop (one compiled program) against the numpy loop in one process (timed on a few
  seeds and scaled linearly to all seeds: its cost is linear in seeds by construction) and against one process per
  seed (a few processes timed, median scaled). accumulate runs 100 generations (its cost is quadratic in G).
- gmm: ring of 8, K = 8, n = 128, 400 EM iterations at generation 0 then 10 warm-started per generation, 200
  generations, 16 seeds; madloop against scikit-learn's GaussianMixture refitted per seed per generation. Both
  compute the held-out NLL every generation.
- diffusion: benchmarks/diffusion_loop.py (madloop against PyTorch eager; needs the [bench] extra).
- families: benchmarks/family_steps.py: the training steps of the flow, GAN, flow matching and EDM families against
  a PyTorch reference batched over seeds (8 and 64 seeds), with a replay check (identical losses from identical
  weights and draws) and the tail loss's agreement; needs the [bench] extra.
- hardware: FLOP/s of the diffusion training step against a float32 matmul timed in the same run.
- scaling: wall time against seeds (1..1024) and generations (10..1000) for the Gaussian and GMM loops, with
  log-log slopes.
- compile: the default experiment's compile time, cold and with JAX's persistent compilation cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import madloop  # noqa: E402  (before any JAX work: it sets XLA's CPU defaults, see madloop/_xla.py)
from benchmarks import agreement, references  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- benchmarks/run.py: begin -->", "<!-- benchmarks/run.py: end -->"


def machine() -> str:
    import jax

    return (
        f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; {jax.devices()[0].platform} "
        f"({jax.devices()[0].device_kind}); jax {jax.__version__}, numpy {np.__version__}, Python "
        f"{platform.python_version()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '') or '(none)'}"
    ).replace("  ", " ")


def timed_madloop(overrides: list[str], repeats: int) -> dict:
    """First call (compilation included) and the median of ``repeats`` further calls of a fresh Simulation."""
    from madloop.engine import Simulation

    sim = Simulation(madloop.compose(overrides))
    t0 = time.perf_counter()
    result = sim()
    first = time.perf_counter() - t0
    steady = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim()
        steady.append(time.perf_counter() - t0)
    med = statistics.median(steady)
    return {"first": first, "steady": med, "compile": max(first - med, 0.0), "steady_all": steady, "result": result}


def gaussian_overrides(dim: int, pool: str, n: int, generations: int, seeds: int) -> list[str]:
    return [
        "data=gaussian",
        f"data.dim={dim}",
        "model=gaussian",
        "model.estimator=mle",
        "regime=fully_synthetic",
        f"regime.pool={pool}",
        f"regime.n_real={n}",
        f"regime.n_synth={n}",
        f"loop.generations={generations}",
        f"loop.seeds={seeds}",
        f"loop.chunk={generations}",
        "eval=closed_form",
        "eval.metrics=[trace_ratio]",
        "plots=false",
    ]


def per_process_seconds(dim: int, pool: str, n: int, generations: int, count: int) -> list[float]:
    """Wall seconds of ``count`` one-seed reference processes (interpreter start and imports included)."""
    out = []
    for seed in range(count):
        t0 = time.perf_counter()
        cmd = [sys.executable, str(ROOT / "benchmarks" / "references.py"), "gaussian", f"--seed={seed}"]
        cmd += [f"--dim={dim}", f"--pool={pool}", f"--n={n}", f"--generations={generations}"]
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def madloop_process_seconds(overrides: list[str], cache: str | None) -> float:
    """Wall seconds of one fresh process that runs the experiment once (interpreter start, imports and
    compilation included), like one ``python -m madloop.run`` job; ``cache``: a persistent compilation cache."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    if cache is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    code = f"import madloop; from madloop.engine import Simulation; Simulation(madloop.compose({overrides!r}))()"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def sizes(a: argparse.Namespace) -> dict:
    """The sizes of the measured sections: ``full`` (the docs' table), ``device`` (a GPU machine in about five
    minutes) or ``quick`` (checks the runner)."""
    return SIZES["quick" if a.quick else a.size]


SIZES = {
    # gaussian: (seeds, generations, n); script_seeds: seeds the published-script loop is timed on, per pool;
    # processes: one-seed processes timed; gmm: (seeds, generations); diffusion: (seeds, generations, quick steps);
# families: (seeds per row, training steps, replayed steps, tiny networks)
    "full": {"gaussian": (1000, 1000, 100), "script_seeds": {"replace": 20, "accumulate": 4}, "processes": 5,
             "gmm": (16, 200), "diffusion": (8, 5, False), "families": ((8, 64), 20, 10, False)},
    "device": {"gaussian": (500, 1000, 100), "script_seeds": {"replace": 10, "accumulate": 2}, "processes": 0,
               "gmm": (8, 200), "diffusion": (4, 2, False), "families": ((8, 64), 20, 10, False)},
    "quick": {"gaussian": (64, 100, 100), "script_seeds": {"replace": 4, "accumulate": 4}, "processes": 2,
              "gmm": (4, 20), "diffusion": (2, 2, True), "families": ((4,), 3, 3, True)},
}  # fmt: skip


def timed(fn, repeats: int) -> tuple[list[float], object]:
    """Wall seconds of ``repeats`` calls of fn() and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def section_gaussian(a: argparse.Namespace) -> list[dict]:
    size = sizes(a)
    seeds, gens, n = size["gaussian"]
    checked = sorted({gens // 4, gens // 2, 3 * gens // 4, gens} - {0})  # generations the agreement checks
    rows = []
    for dim in a.gaussian_dims:
        for pool in ("replace", "accumulate"):
            # accumulate: madloop keeps the pool as Chan-merged statistics (loop.stats_pool), O(n) per generation,
            # and so does the competent reference; the published-script reference refits on every sample so far,
            # O(g n): a different algorithm, whose time is shown but never divided into a speed-up
            overrides = gaussian_overrides(dim, pool, n, gens, seeds)
            ml = timed_madloop(overrides, a.repeats)
            process_cold = process_warm = None  # size "device" skips the one-process timings (5 minutes in all)
            if size["processes"] and not a.no_processes:
                with tempfile.TemporaryDirectory() as cache:
                    process_cold = madloop_process_seconds(overrides, None)
                    madloop_process_seconds(overrides, cache)  # fills the cache
                    process_warm = madloop_process_seconds(overrides, cache)
            # competent: float64 numpy vectorised over seeds, same algorithm, every seed (no compile to account for)
            vec_times, vec = timed(
                lambda dim=dim, pool=pool: references.gaussian_loop_vectorised(10_000, seeds, dim, n, gens, pool),
                a.ref_repeats,
            )
            # published-script style: timed on a few seeds and scaled (its cost is linear in seeds by construction)
            script_seeds = size["script_seeds"][pool]
            t0 = time.perf_counter()
            script = np.stack([references.gaussian_loop(s, dim, n, gens, pool) for s in range(script_seeds)])
            in_process = (time.perf_counter() - t0) * seeds / script_seeds
            procs = per_process_seconds(dim, pool, n, gens, 0 if a.no_processes else size["processes"])
            ours = np.log(ml["result"].metrics["trace_ratio"])
            rows.append(
                {
                    "case": f"d={dim}, {pool}",
                    "seeds": seeds,
                    "generations": gens,
                    "madloop_first": ml["first"],
                    "madloop_steady": ml["steady"],
                    "madloop_steady_all": ml["steady_all"],
                    "madloop_compile": ml["compile"],
                    "madloop_process": process_cold,
                    "madloop_process_cached": process_warm,
                    "numpy_vectorised": statistics.median(vec_times),
                    "numpy_vectorised_all": vec_times,
                    "numpy_in_process": in_process,
                    "numpy_in_process_seeds_timed": script_seeds,
                    "numpy_per_process": statistics.median(procs) * seeds if procs else None,
                    "numpy_per_process_timed": procs,
                    "same_algorithm_as_script": pool == "replace",
                    "checked_generations": checked,
                    # agreement of the log trace ratio at each checked generation; the worst is shown
                    "agree_vectorised": [agreement.compare(ours[:, g], np.log(vec[:, g])) for g in checked],
                    "agree_script": [agreement.compare(ours[:, g], np.log(script[:, g])) for g in checked],
                }
            )
            print_rows("gaussian", rows[-1:])
    return rows


def gmm_overrides(seeds: int, gens: int, n: int, init_iters: int, iters: int) -> list[str]:
    return [
        "data=ring8",
        "model=gmm",
        "model.components=8",
        f"model.init_iters={init_iters}",
        f"model.iters={iters}",
        "regime=fully_synthetic",
        f"regime.n_real={n}",
        f"regime.n_synth={n}",
        f"loop.generations={gens}",
        f"loop.seeds={seeds}",
        f"loop.chunk={gens}",
        "eval=closed_form",
        "eval.metrics=[nll]",
        "eval.n=1000",
        "plots=false",
    ]


def section_gmm(a: argparse.Namespace) -> list[dict]:
    seeds, gens = sizes(a)["gmm"]
    n, init_iters, iters = 128, 400, 10
    ml = timed_madloop(gmm_overrides(seeds, gens, n, init_iters, iters), a.repeats)
    heldout = references.ring8(np.random.default_rng(12345), 1000)
    refs = {}
    for style, competent in (("competent", True), ("script", False)):
        failures: list[int] = []
        times, ref = timed(
            lambda competent=competent, failures=failures: np.stack(
                [
                    references.gmm_loop(s, n, gens, init_iters, iters, heldout, failures=failures, competent=competent)
                    for s in range(seeds)
                ]
            ),
            1,  # one run each: scikit-learn takes about a minute per run on 2 cores
        )
        refs[style] = (times, len(failures), ref)
    nll = ml["result"].metrics["nll"]
    row = {
        "case": f"ring8 K=8, n={n}, {init_iters}+{iters} EM",
        "seeds": seeds,
        "generations": gens,
        "madloop_first": ml["first"],
        "madloop_steady": ml["steady"],
        "madloop_steady_all": ml["steady_all"],
        "madloop_compile": ml["compile"],
        "median_nll_madloop": [float(np.median(nll[:, 0])), float(np.median(nll[:, -1]))],
    }
    for style, (times, failed, ref) in refs.items():
        row[f"sklearn_{style}"] = statistics.median(times)
        row[f"sklearn_{style}_all"] = times
        row[f"sklearn_{style}_failed_fits"] = failed
        row[f"median_nll_sklearn_{style}"] = [float(np.median(ref[:, 0])), float(np.median(ref[:, -1]))]
        # the NLL reaches 1e5 on collapsed seeds: compare sign(x) log(1 + |x|), at generation 0 and the last
        row[f"agree_{style}"] = [
            agreement.compare(agreement.symlog(nll[:, g]), agreement.symlog(ref[:, g])) for g in (0, gens)
        ]
    row["agree_script_gates"] = False  # the published-script loop reuses its draws every generation: another loop
    print_rows("gmm", [row])
    return [row]


def section_diffusion(a: argparse.Namespace) -> list[dict]:
    from benchmarks import diffusion_loop

    seeds, gens, quick = sizes(a)["diffusion"]
    args = diffusion_loop.parser().parse_args([f"--seeds={seeds}", f"--generations={gens}", f"--repeats={a.repeats}"])
    if quick:
        args.train_steps, args.finetune_steps, args.n = 200, 50, 128
    import torch

    args.torch_device = "cuda" if torch.cuda.is_available() else "cpu"  # the references use the GPU madloop uses
    r = diffusion_loop.measure(args, eager_repeats=a.ref_repeats)
    row = {"case": f"{seeds} seeds x {gens + 1} generations", "torch_device": args.torch_device, **r}
    ours = np.asarray(r["sw2_madloop"])[:, -1]
    for side in ("torch", "torch_batched", "torch_compiled"):
        if f"sw2_{side}" in r:
            row[f"agree_{side}"] = agreement.compare(ours, np.asarray(r[f"sw2_{side}"])[:, -1])
    print_rows("diffusion", [row])
    return [row]


def section_families(a: argparse.Namespace) -> list[dict]:
    from benchmarks import family_steps

    seeds_list, steps, replay_steps, tiny = sizes(a)["families"]
    rows = []
    for name in family_steps.FAMILIES:
        for seeds in seeds_list:
            rows.append(
                family_steps.measure_family(
                    name, seeds, steps, replay_steps, repeats=a.repeats, ref_repeats=a.ref_repeats,
                    compiled=not a.no_torch_compile, tiny=tiny,
                )
            )  # fmt: skip
            print_rows("families", rows[-1:])
    return rows


def section_hardware(a: argparse.Namespace) -> list[dict]:
    from benchmarks import diffusion_step

    peak = diffusion_step.matmul_peak()
    steps = 20 if a.quick else 100
    rows = diffusion_step.measure([64, 256, 512], [1, 8], steps=steps, batches=(128, 1024))
    for r in rows:
        r["peak_gflops"] = peak
        r["fraction"] = r["gflops"] / peak
    print_rows("hardware", rows)
    return rows


def section_scaling(a: argparse.Namespace) -> list[dict]:
    rows = []
    seed_grid = [1, 4, 16, 64, 256, 1024] if not a.quick else [1, 16]
    gen_grid = [10, 30, 100, 300, 1000] if not a.quick else [10, 30]
    loops = {
        "gaussian": lambda s, g: gaussian_overrides(2, "replace", 100, g, s),
        "gmm": lambda s, g: (
            ["data=ring8", "model=gmm", "model.init_iters=100", "model.iters=10"]
            + ["regime=fully_synthetic", "regime.n_real=128", "regime.n_synth=128", f"loop.generations={g}"]
            + [f"loop.seeds={s}", f"loop.chunk={g}", "eval=closed_form", "eval.metrics=[nll]", "plots=false"]
        ),
    }
    for name, make in loops.items():
        for axis, grid in (("seeds", seed_grid), ("generations", gen_grid)):
            if name == "gmm" and axis == "seeds":
                grid = [s for s in grid if s <= 256]  # memory and time on 2 cores
            times = []
            for v in grid:
                s, g = (v, 100) if axis == "seeds" else (16, v)
                ml = timed_madloop(make(s, g), a.repeats)
                times.append(ml["steady"])
            slope = float(np.polyfit(np.log(grid), np.log(times), 1)[0]) if len(grid) > 1 else float("nan")
            rows.append({"loop": name, "axis": axis, "grid": grid, "steady": times, "slope": slope})
            print_rows("scaling", rows[-1:])
    return rows


def section_compile(a: argparse.Namespace) -> list[dict]:
    """The default experiment in a fresh process: cold, then twice with a persistent compilation cache."""
    rows = []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        for label, env in (
            ("no cache", {}),
            ("cache, first (fills it)", {"JAX_COMPILATION_CACHE_DIR": cache}),
            ("cache, second (hits it)", {"JAX_COMPILATION_CACHE_DIR": cache}),
        ):
            env = {**os.environ, **env, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
            code = (
                "import time, madloop; from madloop.engine import Simulation; "
                "cfg = madloop.compose([]); sim = Simulation(cfg); t = time.perf_counter(); sim(); "
                "first = time.perf_counter() - t; t = time.perf_counter(); sim(); "
                "print(first, time.perf_counter() - t)"
            )
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=out)
            wall = time.perf_counter() - t0
            first, steady = map(float, proc.stdout.split()[-2:])
            rows.append({"case": label, "process_wall": wall, "first": first, "steady": steady})
            print_rows("compile", rows[-1:])
    return rows


NOTES = {  # how each section times, stated in its heading (each cell of the first three says its own counts)
    "gaussian": "madloop: first call, then the median of {r} steady call(s); references: counts in each cell",
    "gmm": "madloop: first call, then the median of {r} steady call(s); references: counts in each cell",
    "diffusion": "madloop: first call, then the median of {r} steady call(s); references: counts in each cell",
    "families": "madloop: first call, then the median of {r} steady call(s); references: counts in each cell",
    "hardware": "each row: one timed call after a warm-up call; the peak: median of 5 timed matmuls",
    "scaling": "each point: the median of {r} steady calls after a first call",
    "compile": "each row: one fresh process",
}

SECTIONS = {
    "gaussian": section_gaussian,
    "gmm": section_gmm,
    "diffusion": section_diffusion,
    "families": section_families,
    "hardware": section_hardware,
    "scaling": section_scaling,
    "compile": section_compile,
}


def print_rows(section: str, rows: list[dict]) -> None:
    for r in rows:
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "result"}
        print(f"[{section}] {shown}", flush=True)


def header(cells: list[str]) -> list[str]:
    """A markdown table header: the cells and the separator row."""
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def runs(times: list[float]) -> str:
    """How a timing was taken, stated: '1 run' or 'median of k'."""
    return "1 run" if len(times) == 1 else f"median of {len(times)}"


def disagreements(results: dict, sections: list[str]) -> list[str]:
    """One line per gating agreement check beyond agreement.Z_MAX in the given sections' rows."""
    out = []
    for name in sections:
        for r in results.get(name, {}).get("rows", []):
            if "replay" in r and not r["replay"]["agree"]:  # the families' replay: identical draws, identical losses
                out.append(f"DISAGREE [{name}] {r['case']}, {r['seeds']} seeds, replay: {replay_cell(r['replay'])}")
            for key, value in r.items():
                if not key.startswith("agree_") or key.endswith("_gates") or r.get(f"{key}_gates", True) is False:
                    continue
                for c in value if isinstance(value, list) else [value]:
                    if not c["agree"]:
                        out.append(f"DISAGREE [{name}] {r['case']}, {key}: {agreement.cell(c)}")
    return out


def replay_cell(c: dict) -> str:
    """A markdown cell of the families' replay check: the worst relative loss difference and its verdict."""
    verdict = "agree" if c["agree"] else f"**DISAGREE** (at {c['at']})"
    return f"{c['max_rel_diff']:.1e} over {c['steps']} steps (tol. {c['tol']:.0e}): {verdict}"


def fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def markdown(results: dict) -> str:
    """The tables of every stored section."""
    out = []
    for name, entry in results.items():
        rows = entry["rows"]
        out.append(f"### {name} ({entry['date']}; {entry['machine']}; {entry['note']})\n")
        if name == "gaussian":
            out.append(
                "madloop: first call (compile included) and the median of the steady calls listed; competent "
                "reference: float64 numpy vectorised over seeds, the same algorithm (accumulate: the same "
                "sufficient statistics), every seed, nothing to compile; published-script reference: a Python loop "
                "per seed, timed on a few seeds and scaled. Agreement: mean log trace ratio ± SE, madloop / "
                "reference, at the worst of the checked generations.\n"
            )
            out.extend(
                header(
                    [
                        "case",
                        "madloop compile incl. / steady (s)",
                        "competent numpy (s)",
                        "ratio vs competent: compile incl. / steady",
                        "published-script numpy loop (s)",
                        "ratio vs published script: compile incl. / steady",
                        "madloop one process, cold / cached compile (s)",
                        "one process per seed (s); ratio",
                        "agreement with competent (generation)",
                        "agreement with published script (generation)",
                    ]
                )
            )
            for r in rows:
                same = r["same_algorithm_as_script"]
                script_ratio = (
                    f"{r['numpy_in_process'] / r['madloop_first']:.1f}x / "
                    f"{r['numpy_in_process'] / r['madloop_steady']:.1f}x"
                    if same
                    else "not a speed-up: the script refits on every pooled sample (O(g n)), another algorithm"
                )
                if r["madloop_process"] is None:
                    processes = "not measured | not measured"
                else:
                    proc_ratio = (
                        f"{r['numpy_per_process'] / r['madloop_process']:.0f}x cold / "
                        f"{r['numpy_per_process'] / r['madloop_process_cached']:.0f}x cached"
                        if same
                        else "n/a (another algorithm)"
                    )
                    processes = (
                        f"{fmt(r['madloop_process'])} / {fmt(r['madloop_process_cached'])} (1 run each) | "
                        f"{fmt(r['numpy_per_process'])} (median of {len(r['numpy_per_process_timed'])} processes, "
                        f"scaled); {proc_ratio}"
                    )
                vec, scr = (agreement.worst(r[k]) for k in ("agree_vectorised", "agree_script"))
                gv = r["checked_generations"][r["agree_vectorised"].index(vec)]
                gs = r["checked_generations"][r["agree_script"].index(scr)]
                out.append(
                    f"| {r['case']}, {r['seeds']} seeds x {r['generations']} gen. | {fmt(r['madloop_first'])} / "
                    f"{fmt(r['madloop_steady'])} ({runs(r['madloop_steady_all'])}) | {fmt(r['numpy_vectorised'])} "
                    f"({runs(r['numpy_vectorised_all'])}) | {r['numpy_vectorised'] / r['madloop_first']:.1f}x / "
                    f"{r['numpy_vectorised'] / r['madloop_steady']:.1f}x | {fmt(r['numpy_in_process'])} (1 run on "
                    f"{r['numpy_in_process_seeds_timed']} seeds, scaled) | {script_ratio} | "
                    f"{processes} | {agreement.cell(vec)} (g = {gv}) | {agreement.cell(scr)} (g = {gs}) |"
                )
        elif name == "gmm":
            out.append(
                "Competent scikit-learn loop: one advancing RandomState, and the model deep-copied before each fit "
                "and restored when the fit raises. Published-script loop: an integer random_state (GaussianMixture."
                "sample then redraws the same noise every generation) and a caught error that continues from the "
                "half-overwritten model; its agreement is shown but does not gate the run (it is another loop). "
                "Agreement: mean ± SE of sign(NLL) log(1 + |NLL|) over seeds, madloop / reference.\n"
            )
            cells = ["case", "madloop compile incl. / steady (s)", "sklearn competent (s)"]
            cells += ["ratio vs competent: compile incl. / steady", "sklearn published script (s)"]
            cells += ["ratio vs published script: compile incl. / steady", "failed fits: competent / script"]
            cells += ["median held-out NLL, gen. 0 -> last: madloop / competent / script"]
            cells += ["agreement with competent, gen. 0", "agreement with competent, last gen."]
            cells += ["agreement with published script, last gen. (not gating)"]
            out.extend(header(cells))
            for r in rows:
                if "sklearn_competent" not in r:  # a row measured before the competent reference existed
                    ml, sk = r["final_nll_madloop"], r["final_nll_sklearn"]
                    out.append(
                        f"| {r['case']}, {r['seeds']} seeds x {r['generations']} gen. | {fmt(r['madloop_first'])} / "
                        f"{fmt(r['madloop_steady'])} | not measured | | {fmt(r['sklearn'])} (1 run) | "
                        f"{r['sklearn'] / r['madloop_first']:.1f}x / {r['sklearn'] / r['madloop_steady']:.0f}x | "
                        f"- / {r.get('sklearn_failed_fits', 0)} | {ml[1]:.2f} -> {ml[0]:.3g} / - / {sk[1]:.2f} -> "
                        f"{sk[0]:.3g} | not measured | not measured | not measured |"
                    )
                    continue
                ml, co, sc = r["median_nll_madloop"], r["median_nll_sklearn_competent"], r["median_nll_sklearn_script"]
                first, steady = r["madloop_first"], r["madloop_steady"]
                out.append(
                    f"| {r['case']}, {r['seeds']} seeds x {r['generations']} gen. | {fmt(first)} / {fmt(steady)} "
                    f"({runs(r['madloop_steady_all'])}) | {fmt(r['sklearn_competent'])} "
                    f"({runs(r['sklearn_competent_all'])}) | {r['sklearn_competent'] / first:.1f}x / "
                    f"{r['sklearn_competent'] / steady:.0f}x | {fmt(r['sklearn_script'])} "
                    f"({runs(r['sklearn_script_all'])}) | {r['sklearn_script'] / first:.1f}x / "
                    f"{r['sklearn_script'] / steady:.0f}x | {r['sklearn_competent_failed_fits']} / "
                    f"{r['sklearn_script_failed_fits']} | {ml[0]:.2f} -> {ml[1]:.3g} / {co[0]:.2f} -> {co[1]:.3g} / "
                    f"{sc[0]:.2f} -> {sc[1]:.3g} | {agreement.cell(r['agree_competent'][0])} | "
                    f"{agreement.cell(r['agree_competent'][1])} | {agreement.cell(r['agree_script'][1])} |"
                )
        elif name == "diffusion":
            out.append(
                "madloop and torch.compile: first call (compilation included) and the median of the steady calls "
                "listed; eager references: the median of the calls listed. PyTorch per seed: a Python loop over "
                "seeds (published-script style); batched: every seed's weights stacked, batched matmuls, per-seed "
                "clipping (competent). Agreement: mean sliced W2 at the last generation ± SE over seeds.\n"
            )
            cells = ["case", "madloop compile incl. / steady (s)", "PyTorch per seed, eager (s)", "ratio"]
            cells += ["PyTorch batched, eager (s)", "ratio", "PyTorch batched, torch.compile: first / steady (s)"]
            cells += ["ratio", "agreement: per seed", "agreement: batched", "agreement: compiled"]
            out.extend(header(cells))
            for r in rows:
                first, steady = r["madloop_first"], r["madloop_steady"]

                def ratio(ref: float, first: float = first, steady: float = steady) -> str:
                    return f"{ref / first:.1f}x / {ref / steady:.1f}x"

                if "torch_batched" not in r:  # a row measured before the competent references existed
                    r = {**r, "madloop_steady_all": [steady], "torch_all": [r["torch"]]}
                    out.append(
                        f"| {r['case']} | {fmt(first)} / {fmt(steady)} (1 run) | {fmt(r['torch'])} (1 run) | "
                        f"{ratio(r['torch'])} | not measured | | not measured | | mean sw2 per generation, madloop "
                        f"{[round(x, 3) for x in r['sw2_madloop']]}, PyTorch {[round(x, 3) for x in r['sw2_torch']]} "
                        "(no SE stored) | | |"
                    )
                    continue
                if r.get("torch_compile_error"):
                    comp = f"torch.compile failed on this machine: {r['torch_compile_error']}"
                    comp_ratio = "n/a"
                else:
                    comp = (
                        f"{fmt(r['torch_compiled_first'])} / {fmt(r['torch_compiled'])} "
                        f"({runs(r['torch_compiled_all'])})"
                    )
                    comp_ratio = f"{r['torch_compiled_first'] / first:.1f}x / {r['torch_compiled'] / steady:.1f}x"
                last = {k: r.get(f"agree_{k}") for k in ("torch", "torch_batched", "torch_compiled")}
                out.append(
                    f"| {r['case']} | {fmt(first)} / {fmt(steady)} ({runs(r['madloop_steady_all'])}) | "
                    f"{fmt(r['torch'])} ({runs(r['torch_all'])}) | {ratio(r['torch'])} | {fmt(r['torch_batched'])} "
                    f"({runs(r['torch_batched_all'])}) | {ratio(r['torch_batched'])} | {comp} | {comp_ratio} | "
                    f"{agreement.cell(last['torch'])} | {agreement.cell(last['torch_batched'])} | "
                    f"{agreement.cell(last['torch_compiled'])} |"
                )
        elif name == "families":
            out.append(
                "Each family's own `train`, jit(vmap) over seeds, against PyTorch batched over seeds (stacked weights, "
                "batched matmuls, the same optimiser, EMA and minibatch draws as elementwise tensor code; eager at "
                "the faster of 1 and the default intra-op threads, shown), both from the same initial weights. "
                "madloop and torch.compile: first call (compilation included) and the median of the steady calls "
                "listed; eager: the median of the calls listed. Replay: PyTorch fed madloop's own draws for the "
                "first steps, worst relative loss difference. Agreement: mean ± SE over seeds of each seed's mean "
                "loss over the last quarter of the steps (the GAN: the critic's), independent draws.\n"
            )
            cells = ["case", "seeds", "madloop compile incl. / steady (s)", "PyTorch batched, eager (s)"]
            cells += ["ratio: compile incl. / steady", "PyTorch batched, torch.compile: first / steady (s)", "ratio"]
            cells += ["replay: max relative loss difference", "agreement: eager", "agreement: compiled"]
            out.extend(header(cells))
            for r in rows:
                first, steady, ref = r["madloop_first"], r["madloop_steady"], r["torch"]
                threads = f"{r['torch_threads']} thread(s)" if r.get("torch_threads") else r.get("torch_device")
                if "torch_compiled" in r:
                    comp = f"{fmt(r['torch_compiled_first'])} / {fmt(r['torch_compiled'])} "
                    comp += f"({runs(r['torch_compiled_all'])})"
                    comp_ratio = f"{r['torch_compiled_first'] / first:.1f}x / {r['torch_compiled'] / steady:.1f}x"
                elif r.get("torch_compile_error"):
                    comp, comp_ratio = f"torch.compile failed: {r['torch_compile_error']}", "n/a"
                else:
                    comp, comp_ratio = "not measured (--no-torch-compile)", ""
                out.append(
                    f"| {r['case']} | {r['seeds']} | {fmt(first)} / {fmt(steady)} ({runs(r['madloop_steady_all'])}) | "
                    f"{fmt(ref)} ({runs(r['torch_all'])}, {threads}) | {ref / first:.2f}x / {ref / steady:.2f}x | "
                    f"{comp} | {comp_ratio} | {replay_cell(r['replay'])} | {agreement.cell(r['agree_torch'])} | "
                    f"{agreement.cell(r.get('agree_torch_compiled'))} |"
                )
        elif name == "hardware":
            out.append(f"float32 matmul peak: {rows[0]['peak_gflops']:.1f} GFLOP/s\n")
            out.extend(header(["width", "batch", "seeds", "ms / step", "GFLOP/s", "fraction of peak"]))
            for r in rows:
                out.append(
                    f"| {r.get('width', r.get('size'))} | {r['batch']} | {r['seeds']} | {r['ms_per_step']:.2f} | "
                    f"{r['gflops']:.1f} | "
                    f"{r['fraction']:.0%} |"
                )
        elif name == "scaling":
            out.extend(header(["loop", "axis", "values", "steady seconds", "log-log slope"]))
            for r in rows:
                out.append(
                    f"| {r['loop']} | {r['axis']} | {r['grid']} | {[round(t, 3) for t in r['steady']]} | "
                    f"{r['slope']:.2f} |"
                )
        elif name == "compile":
            out.extend(
                header(["default experiment, fresh process", "first call (s)", "second call (s)", "process wall (s)"])
            )
            for r in rows:
                out.append(f"| {r['case']} | {fmt(r['first'])} | {fmt(r['steady'])} | {fmt(r['process_wall'])} |")
        out.append("")
    return "\n".join(out)


FIGURE = ROOT / "docs" / "scaling.png"


def scaling_figure(rows: list[dict], path: Path) -> None:
    """Log-log wall time (steady) against seeds and against generations, one line per loop, slopes labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, axis in zip(axes, ("seeds", "generations"), strict=True):
        for r in rows:
            if r["axis"] == axis:
                ax.loglog(r["grid"], r["steady"], "o-", label=f"{r['loop']} (slope {r['slope']:.2f})")
        ax.set_xlabel(axis + (" (100 generations)" if axis == "seeds" else " (16 seeds)"))
        ax.set_ylabel("steady wall time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("madloop scaling (benchmarks/run.py --sections scaling)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--repeats", type=int, default=3, help="madloop's steady calls after the first (median reported)")
    p.add_argument(
        "--ref-repeats", type=int, default=3, help="calls of the competent numpy and eager PyTorch references (median)"
    )
    p.add_argument(
        "--size", choices=list(SIZES), default="full", help="device: a GPU machine in ~5 minutes; quick: as --quick"
    )
    p.add_argument("--quick", action="store_true", help="small sizes (checks the runner; not for the docs)")
    p.add_argument(
        "--no-processes", action="store_true", help="skip the one-process-per-seed timings (gaussian; slow on 2 cores)"
    )
    p.add_argument(
        "--no-torch-compile", action="store_true", help="skip the torch.compile references (families; ~30 s each)"
    )
    p.add_argument("--gaussian-dims", type=int, nargs="+", default=[2, 10], help="the gaussian section's d values")
    p.add_argument("--no-write", action="store_true", help="print only; keep results.json and the docs as they are")
    p.add_argument("--render", action="store_true", help="measure nothing: rewrite the docs table from results.json")
    p.add_argument("--out", type=Path, help="write results.json and benchmarks.md here instead of into the repo")
    p.add_argument("--note", default="", help="a remark stored with each measured section (e.g. a shared machine)")
    a = p.parse_args()
    results_path = a.out / "results.json" if a.out else RESULTS
    results = json.loads(results_path.read_text()) if results_path.exists() and not a.quick else {}
    write = not (a.no_write or a.quick) or a.out is not None
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
    measured = [] if a.render else a.sections
    for name in measured:
        rows = SECTIONS[name](a)
        note = NOTES[name].format(r=a.repeats)
        note += (", QUICK sizes" if a.quick else f", size {a.size}") + (f"; {a.note}" if a.note else "")
        results[name] = {"date": str(date.today()), "machine": machine(), "note": note, "rows": rows}
        if write:  # each section is kept as soon as it is measured
            results_path.write_text(json.dumps(results, indent=1, default=float))
    table = markdown({k: results[k] for k in SECTIONS if k in results})
    print(table)
    bad = disagreements(results, measured or list(results))  # --render checks every stored section
    if write and a.out:
        (a.out / "benchmarks.md").write_text(table + "\n")
        print(f"wrote {a.out / 'results.json'} and {a.out / 'benchmarks.md'}")
    elif write:
        doc = DOC.read_text()
        block = f"{BEGIN}\n{table}\n{END}"
        if BEGIN in doc:
            doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) :]
        else:
            doc = doc.replace("\n", f"\n\n## The runner's table (`python benchmarks/run.py`)\n\n{block}\n", 1)
        DOC.write_text(doc)
        if "scaling" in results and "scaling" in measured:
            scaling_figure(results["scaling"]["rows"], FIGURE)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    if bad:
        print("\n" + "\n".join(["!" * 100, *bad, "!" * 100]), file=sys.stderr)
        print(f"{len(bad)} agreement check(s) beyond {agreement.Z_MAX} SE: madloop and a reference disagree")
        sys.exit(1)


if __name__ == "__main__":
    main()
