"""SIMS in the loop under the paper's protocol: both regimes, refits from scratch, the auxiliary budget swept.

Usage:
    python experiments/sims_sweep.py --csv docs/sims_sweep.csv            # run (GPU: benchmarks/issue17_gpu.sh)
    python experiments/sims_sweep.py --from-csv docs/sims_sweep.csv --out docs/sims_sweep.png   # table + figure

For each regime (synthetic augmentation: the fixed real set of 256 in every training set, as in SIMS's anti-MAD
experiments; fully synthetic) and each auxiliary budget (n_aux samples the auxiliary model is fine-tuned on x
aux_steps fine-tuning steps), one program runs guidance strengths omega in {0, 1} over the same seeds:
omega = 0 is the standard self-consuming loop bit for bit (the base model's samples), so the comparison is paired
per seed (common random numbers: the same real data and generation-0 model). Every generation is refitted from
scratch (``loop.warm_start=false``), as SIMS and MAD retrain. Metrics include ``mmd_local`` (an MMD at the modes'
own scale, which sees within-mode collapse) and the real-vs-real floors at the same sample size.

References:
    Alemohammad et al. 2024, "Self-Improving Diffusion Models with Synthetic Data" (SIMS), Sec. 5 (the SIMS loop).
"""

from __future__ import annotations

import argparse
import itertools
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import t as student  # noqa: E402

from madloop.api import compose  # noqa: E402
from madloop.engine import simulation  # noqa: E402

REGIMES = {"synthetic augmentation": "sims_augmentation", "fully synthetic": "sims_fully_synthetic"}
METRICS = ("mmd_local", "sw2", "precision", "recall", "coverage", "modes", "hq", "mode_tv")
OMEGAS = (0.0, 1.0)


def run(a: argparse.Namespace, rest: list[str]) -> pd.DataFrame:
    tables, floors = [], []
    regimes = {r: p for r, p in REGIMES.items() if a.regime in (None, p)}
    for (regime, preset), n_aux, steps in itertools.product(regimes.items(), a.n_aux, a.aux_steps):
        t0 = time.perf_counter()
        cfg = compose(
            [
                f"experiment={preset}",
                "loop.warm_start=false",
                f"loop.seeds={a.seeds}",
                f"loop.generations={a.generations}",
                f"guidance.n_aux={n_aux}",
                f"guidance.aux_steps={steps}",
                f"sweep.guidance.omega=[{','.join(map(str, OMEGAS))}]",
                f"eval.metrics=[{','.join(METRICS)}]",
                *rest,
            ]
        )
        sim = simulation(cfg)
        table = sim().table().assign(regime=regime, n_aux=n_aux, aux_steps=steps)
        tables.append(table)
        floors.append(sim.floors().assign(regime=regime, n_aux=n_aux, aux_steps=steps))
        print(f"{regime:>22} n_aux={n_aux:5d} aux_steps={steps:5d}: {time.perf_counter() - t0:6.1f} s", flush=True)
        # written after every program, so a run cut short by a time limit keeps what it finished
        pd.concat(tables, ignore_index=True).to_csv(a.csv, index=False)
        pd.concat(floors, ignore_index=True).to_csv(a.csv.replace(".csv", "_floors.csv"), index=False)
    return pd.concat(tables, ignore_index=True)


def paired(table: pd.DataFrame, metric: str, generation: int, omega: float) -> tuple[float, float, float]:
    """Mean over seeds of metric(omega) - metric(omega = 0) at a generation, with its 95% t-interval."""
    t = table[table.generation == generation].pivot_table(index="seed", columns="omega", values=metric)
    diff = (t[omega] - t[0.0]).dropna().to_numpy()
    half = student.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def drift(table: pd.DataFrame, metric: str, generation: int, omega: float) -> tuple[float, float, float]:
    """Mean over seeds of the drift metric(G) - metric(0) at omega, minus the standard loop's drift (omega = 0),
    paired per seed, with its 95% t-interval: whether the SIMS loop degrades faster than the standard loop,
    apart from the guidance's effect at generation 0."""
    t = table[table.generation.isin([0, generation])].pivot_table(
        index="seed", columns=["omega", "generation"], values=metric
    )
    diff = ((t[(omega, generation)] - t[(omega, 0)]) - (t[(0.0, generation)] - t[(0.0, 0)])).dropna().to_numpy()
    half = student.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def report(table: pd.DataFrame, floors: pd.DataFrame | None, out: str) -> None:
    g = int(table.generation.max())
    budgets = sorted({(int(n), int(s)) for n, s in zip(table.n_aux, table.aux_steps, strict=True)})
    print(f"generation {g}, {table.seed.nunique()} seeds: SIMS (omega = 1) minus the standard loop (omega = 0), paired")
    print("| regime | n_aux | aux_steps | " + " | ".join(METRICS) + " |")
    print("|---" * (3 + len(METRICS)) + "|")
    for regime in REGIMES:
        part = table[table.regime == regime]
        base = part[(part.omega == 0.0) & (part.generation == g)]
        print(f"| {regime} | standard loop | (mean) | " + " | ".join(f"{base[m].mean():.3g}" for m in METRICS) + " |")
        for n_aux, steps in budgets:
            t = part[(part.n_aux == n_aux) & (part.aux_steps == steps)]
            cells = [paired(t, m, g, 1.0) for m in METRICS]
            print(
                f"| {regime} | {n_aux} | {steps} | "
                + " | ".join(f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" for d, lo, hi in cells)
                + " |"
            )
    print(f"\ndrift from generation 0 to {g}, SIMS (omega = 1) minus the standard loop's, paired per seed")
    print("| regime | n_aux | aux_steps | " + " | ".join(METRICS) + " |")
    print("|---" * (3 + len(METRICS)) + "|")
    for regime in REGIMES:
        part = table[table.regime == regime]
        base = part[(part.omega == 0.0) & (part.n_aux == budgets[0][0]) & (part.aux_steps == budgets[0][1])]
        g0, gl = base[base.generation == 0], base[base.generation == g]
        cells = [f"{gl[m].mean() - g0[m].mean():+.3g}" for m in METRICS]
        print(f"| {regime} | standard loop's own drift | | " + " | ".join(cells) + " |")
        for n_aux, steps in budgets:
            t = part[(part.n_aux == n_aux) & (part.aux_steps == steps)]
            cells = [drift(t, m, g, 1.0) for m in METRICS]
            row = " | ".join(f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" for d, lo, hi in cells)
            print(f"| {regime} | {n_aux} | {steps} | {row} |")
    show = ("mmd_local", "precision", "recall", "coverage", "modes")
    fig, axes = plt.subplots(len(REGIMES), len(show), figsize=(3.2 * len(show), 3.0 * len(REGIMES)), squeeze=False)
    for row, regime in zip(axes, REGIMES, strict=True):
        part = table[table.regime == regime]
        for ax, m in zip(row, show, strict=True):
            first = part[(part.omega == 0.0) & (part.n_aux == budgets[0][0]) & (part.aux_steps == budgets[0][1])]
            s = first.groupby("generation")[m].agg(["mean", "sem"])
            ax.plot(s.index, s["mean"], "k-", lw=2, label="standard loop")
            for i, (n_aux, steps) in enumerate(budgets):
                t = part[(part.n_aux == n_aux) & (part.aux_steps == steps) & (part.omega == 1.0)]
                s = t.groupby("generation")[m].agg(["mean", "sem"])
                ax.plot(s.index, s["mean"], color=f"C{i}", label=f"SIMS n_aux={n_aux}, steps={steps}")
                ax.fill_between(
                    s.index, s["mean"] - 1.96 * s["sem"], s["mean"] + 1.96 * s["sem"], color=f"C{i}", alpha=0.15
                )
            if floors is not None and m in floors:
                f = floors[floors.regime == regime][m]
                ax.axhline(f.mean(), color="0.4", ls=":", lw=1.2, label="real vs real")
            ax.set_title(f"{m} ({regime})", fontsize=9)
            ax.set_xlabel("generation")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(
        f"SIMS loop vs standard loop, diffusion on the ring of 8, refits from scratch; {table.seed.nunique()} seeds, "
        "mean and 95% band",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default="docs/sims_sweep.csv")
    p.add_argument("--from-csv", default=None, help="draw and tabulate a saved run instead of running")
    p.add_argument("--out", default="docs/sims_sweep.png")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--generations", type=int, default=20)
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    p.add_argument("--n-aux", type=ints, default=[256, 4096], help="comma-separated, e.g. 256,4096")
    p.add_argument("--aux-steps", type=ints, default=[100, 1000], help="comma-separated, e.g. 100,1000")
    p.add_argument("--regime", choices=list(REGIMES.values()), default=None, help="one regime's preset only")
    a, rest = p.parse_known_args()
    if a.from_csv:
        table = pd.read_csv(a.from_csv)
        fpath = a.from_csv.replace(".csv", "_floors.csv")
        floors = pd.read_csv(fpath) if __import__("os").path.exists(fpath) else None
    else:
        table = run(a, rest)
        floors = pd.read_csv(a.csv.replace(".csv", "_floors.csv"))
    report(table, floors, a.out)


if __name__ == "__main__":
    main()
