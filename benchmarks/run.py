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
from benchmarks import references  # noqa: E402

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
    from madloop.loop import Simulation

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
    code = f"import madloop; from madloop.loop import Simulation; Simulation(madloop.compose({overrides!r}))()"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def section_gaussian(a: argparse.Namespace) -> list[dict]:
    seeds, gens, n = (64, 100, 100) if a.quick else (1000, 1000, 100)
    rows = []
    for dim in (2, 10):
        for pool in ("replace", "accumulate"):
            # accumulate: madloop keeps the pool as Chan-merged statistics (loop.stats_pool), O(n) per
            # generation; the reference refits on every sample so far, O(g n), as published code does
            overrides = gaussian_overrides(dim, pool, n, gens, seeds)
            ml = timed_madloop(overrides, a.repeats)
            with tempfile.TemporaryDirectory() as cache:
                process_cold = madloop_process_seconds(overrides, None)
                madloop_process_seconds(overrides, cache)  # fills the cache
                process_warm = madloop_process_seconds(overrides, cache)
            ref_seeds = 4 if a.quick else (20 if pool == "replace" else 4)
            t0 = time.perf_counter()
            ref = np.stack([references.gaussian_loop(s, dim, n, gens, pool) for s in range(ref_seeds)])
            in_process = (time.perf_counter() - t0) * seeds / ref_seeds
            procs = per_process_seconds(dim, pool, n, gens, 2 if a.quick else 5)
            per_process = statistics.median(procs) * seeds
            ours = np.log(ml["result"].metrics["trace_ratio"][:, -1])
            rows.append(
                {
                    "case": f"d={dim}, {pool}",
                    "seeds": seeds,
                    "generations": gens,
                    "madloop_first": ml["first"],
                    "madloop_steady": ml["steady"],
                    "madloop_compile": ml["compile"],
                    "madloop_process": process_cold,
                    "madloop_process_cached": process_warm,
                    "numpy_in_process": in_process,
                    "numpy_in_process_seeds_timed": ref_seeds,
                    "numpy_per_process": per_process,
                    "numpy_per_process_timed": procs,
                    "final_log_trace_madloop": [float(ours.mean()), float(ours.std(ddof=1) / np.sqrt(len(ours)))],
                    "final_log_trace_numpy": [float(np.log(ref[:, -1]).mean()), float(np.log(ref[:, -1]).std())],
                }
            )
            print_rows("gaussian", rows[-1:])
    return rows


def section_gmm(a: argparse.Namespace) -> list[dict]:
    seeds, gens, n, init_iters, iters = (4, 20, 128, 400, 10) if a.quick else (16, 200, 128, 400, 10)
    overrides = [
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
    ml = timed_madloop(overrides, a.repeats)
    heldout = references.ring8(np.random.default_rng(12345), 1000)
    failures: list[int] = []
    t0 = time.perf_counter()
    ref = np.stack(
        [references.gmm_loop(s, n, gens, init_iters, iters, heldout, failures=failures) for s in range(seeds)]
    )
    times = [time.perf_counter() - t0]
    nll = ml["result"].metrics["nll"]
    row = {
        "case": f"ring8 K=8, n={n}, {init_iters}+{iters} EM",
        "seeds": seeds,
        "generations": gens,
        "madloop_first": ml["first"],
        "madloop_steady": ml["steady"],
        "madloop_compile": ml["compile"],
        "sklearn": statistics.median(times),
        "sklearn_failed_fits": len(failures),
        "final_nll_madloop": [float(np.median(nll[:, -1])), float(np.median(nll[:, 0]))],
        "final_nll_sklearn": [float(np.median(ref[:, -1])), float(np.median(ref[:, 0]))],
    }
    print_rows("gmm", [row])
    return [row]


def section_diffusion(a: argparse.Namespace) -> list[dict]:
    from benchmarks import diffusion_loop

    rows = []
    sizes = [(2, 2)] if a.quick else [(8, 5)]
    for seeds, gens in sizes:
        args = diffusion_loop.parser().parse_args([f"--seeds={seeds}", f"--generations={gens}", "--repeats=1"])
        if a.quick:
            args.train_steps, args.finetune_steps, args.n = 200, 50, 128
        r = diffusion_loop.measure(args)
        rows.append({"case": f"{seeds} seeds x {gens + 1} generations", **r})
        print_rows("diffusion", rows[-1:])
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
                "import time, madloop; from madloop.loop import Simulation; "
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


SECTIONS = {
    "gaussian": section_gaussian,
    "gmm": section_gmm,
    "diffusion": section_diffusion,
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


def fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def markdown(results: dict) -> str:
    """The tables of every stored section."""
    out = []
    for name, entry in results.items():
        rows = entry["rows"]
        out.append(f"### {name} ({entry['date']}; {entry['machine']}; {entry['note']})\n")
        if name == "gaussian":
            out.extend(
                header(
                    [
                        "case",
                        "madloop compile incl. (s)",
                        "steady (s)",
                        "compile (s)",
                        "numpy loop (s)",
                        "one process per seed (s)",
                        "ratio in-process, compile incl.",
                        "ratio in-process, steady",
                        "madloop as one process: cold / cached compile (s)",
                        "ratio per-process: cold / cached",
                    ]
                )
            )
            for r in rows:
                out.append(
                    f"| {r['case']}, {r['seeds']} seeds x {r['generations']} gen. | {fmt(r['madloop_first'])} | "
                    f"{fmt(r['madloop_steady'])} | {fmt(r['madloop_compile'])} | {fmt(r['numpy_in_process'])} "
                    f"(timed on {r['numpy_in_process_seeds_timed']} seeds) | {fmt(r['numpy_per_process'])} "
                    f"(median of {len(r['numpy_per_process_timed'])} processes) | "
                    f"{r['numpy_in_process'] / r['madloop_first']:.1f}x | "
                    f"{r['numpy_in_process'] / r['madloop_steady']:.1f}x | "
                    f"{fmt(r['madloop_process'])} / {fmt(r['madloop_process_cached'])} | "
                    f"{r['numpy_per_process'] / r['madloop_process']:.0f}x / "
                    f"{r['numpy_per_process'] / r['madloop_process_cached']:.0f}x |"
                )
        elif name == "gmm":
            cells = ["case", "madloop compile incl. (s)", "steady (s)", "sklearn (s)", "ratio, compile incl."]
            cells += ["ratio, steady", "median held-out NLL, gen. 0 -> last: madloop / sklearn", "sklearn failed fits"]
            out.extend(header(cells))
            for r in rows:
                ml, sk = r["final_nll_madloop"], r["final_nll_sklearn"]
                out.append(
                    f"| {r['case']}, {r['seeds']} seeds x {r['generations']} gen. | {fmt(r['madloop_first'])} | "
                    f"{fmt(r['madloop_steady'])} | {fmt(r['sklearn'])} | {r['sklearn'] / r['madloop_first']:.1f}x | "
                    f"{r['sklearn'] / r['madloop_steady']:.0f}x | {ml[1]:.2f} -> {ml[0]:.3g} / {sk[1]:.2f} -> "
                    f"{sk[0]:.3g} | {r.get('sklearn_failed_fits', 0)} |"
                )
        elif name == "diffusion":
            out.extend(
                header(
                    [
                        "case",
                        "madloop compile incl. (s)",
                        "steady (s)",
                        "PyTorch eager (s)",
                        "ratio, compile incl.",
                        "ratio, steady",
                    ]
                )
            )
            for r in rows:
                out.append(
                    f"| {r['case']} | {fmt(r['madloop_first'])} | {fmt(r['madloop_steady'])} | {fmt(r['torch'])} | "
                    f"{r['torch'] / r['madloop_first']:.1f}x | {r['torch'] / r['madloop_steady']:.1f}x |"
                )
        elif name == "hardware":
            out.append(f"float32 matmul peak: {rows[0]['peak_gflops']:.1f} GFLOP/s\n")
            out.extend(header(["width", "batch", "seeds", "ms / step", "GFLOP/s", "fraction of peak"]))
            for r in rows:
                out.append(
                    f"| {r['width']} | {r['batch']} | {r['seeds']} | {r['ms_per_step']:.2f} | {r['gflops']:.1f} | "
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
    p.add_argument("--repeats", type=int, default=3, help="steady-state repetitions (median reported)")
    p.add_argument("--quick", action="store_true", help="small sizes (checks the runner; not for the docs)")
    p.add_argument("--no-write", action="store_true", help="print only; keep results.json and the docs as they are")
    p.add_argument("--render", action="store_true", help="measure nothing: rewrite the docs table from results.json")
    a = p.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() and not a.quick else {}
    for name in [] if a.render else a.sections:
        rows = SECTIONS[name](a)
        note = f"median of {a.repeats} steady runs" + (", QUICK sizes" if a.quick else "")
        results[name] = {"date": str(date.today()), "machine": machine(), "note": note, "rows": rows}
        if not (a.no_write or a.quick):  # each section is kept as soon as it is measured
            RESULTS.write_text(json.dumps(results, indent=1, default=float))
    table = markdown({k: results[k] for k in SECTIONS if k in results})
    print(table)
    if a.no_write or a.quick:
        return
    doc = DOC.read_text()
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in doc:
        doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.replace("\n", f"\n\n## The runner's table (`python benchmarks/run.py`)\n\n{block}\n", 1)
    DOC.write_text(doc)
    if "scaling" in results:
        scaling_figure(results["scaling"]["rows"], FIGURE)
    print(f"wrote {RESULTS.relative_to(ROOT)}, {DOC.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
