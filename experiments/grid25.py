"""MAD's fully synthetic loop on 25 modes (a 5 x 5 grid of Gaussians) with a GMM and with a diffusion model: modes
are lost over generations; does recall or the total variance track the mode count?

Usage: python experiments/grid25.py [--seeds 16] [--generations 100] [--diffusion-seeds 4]
    [--diffusion-generations 15] [--warm-start] [--out docs/grid25.png] [--csv docs/grid25.csv]
    [overrides for both runs, e.g. data.std=0.1]

Runs ``experiment=mad_grid25`` (a 25-component GMM, 1000 samples per generation, refitted from scratch every
generation as MAD did) and the same loop (data, regime, sample sizes, metrics) with ``model=diffusion``: an MLP
denoiser of width 256, eps-prediction, 8000 steps from scratch every generation (``--warm-start``: fine-tune 1000
steps from the previous generation instead, the protocol of the first version of this experiment). Every
generation's 1000 evaluation samples are kept (``eval.snapshots``), so the total variance of the samples relative
to the truth's, tr Cov(samples) / tr Sigma_true, is measured the same way for both families (a diffusion model has
no closed-form moments; the GMM's ``trace_ratio`` from its fitted moments is drawn too). The figure shows, per
family, the metrics vs generation (mean and 95% CI over seeds), modes vs recall / coverage / total variance over every
(seed, generation) point with Spearman's rho, and seed 0's samples at generation 0 and at the last generation.
"""

from __future__ import annotations

import argparse
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import madloop  # noqa: E402
from madloop.data import make_source  # noqa: E402
from madloop.engine import simulation  # noqa: E402
from madloop.report import summarize  # noqa: E402

PRESET = "experiment=mad_grid25"
DIFFUSION = (  # an MLP denoiser that covers about all 25 modes at generation 0 (checked at 4 seeds: 24.75 of 25)
    "model=diffusion",
    "model.width=256",
    "model.train_steps=8000",
    "model.finetune_steps=1000",
)
# (column, label, line style) drawn against generation; all share the [0, 1] axis.
CURVES = (
    ("modes_share", "modes / 25 (nearest mode)", "-"),
    ("modes_hq_share", "modes_hq / 25 (within 3σ)", "-"),
    ("recall", "recall", "-"),
    ("coverage", "coverage", "-"),
    ("hq", "hq (within 3σ of a mode)", ":"),
    ("tv_ratio", "total variance / truth's (samples)", "--"),
    ("trace_ratio", "trace ratio (GMM moments)", "-."),
)
AGAINST = ("recall", "coverage", "modes_hq_share", "tv_ratio", "trace_ratio")  # correlated with modes


def run(overrides: list[str], truth_trace: float) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Runs one loop, keeping every generation's evaluation samples.

    Args:
        overrides: Hydra override strings (the family, the loop size).
        truth_trace: tr Sigma_true, the truth's total variance.

    Returns:
        The metrics table with ``modes_share`` (modes / K) and ``tv_ratio`` (sample total variance / truth's)
        added, the samples [runs, generations + 1, n, 2], and the wall time in seconds (compilation included).
    """
    cfg = madloop.compose(overrides)
    g = cfg.loop.generations
    keep = [f"eval.snapshots={max(g - 1, 0)}", f"eval.snapshot_n={cfg.eval.n}"]  # every generation, all samples
    t0 = time.perf_counter()
    result = madloop.simulate([*overrides, *keep])
    seconds = time.perf_counter() - t0
    table = result.table()
    assert len(result.snapshot_generations) == g + 1
    tv = result.snapshots.var(axis=2, ddof=1).sum(axis=-1) / truth_trace  # [runs, G + 1]
    table["tv_ratio"] = tv.reshape(-1)  # table rows are run-major, generation-minor, as the snapshots
    k = make_source(cfg.data).mixture.weights.shape[0]
    table["modes_share"] = table["modes"] / k
    table["modes_hq_share"] = table["modes_hq"] / k
    return table, result.snapshots, seconds


def correlations(table: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Spearman and Pearson correlation of modes with each metric of ``AGAINST`` over all (seed, generation)."""
    finite = table[table["finite"] == 1]
    warnings.filterwarnings("ignore", message="An input array is constant")  # tiny test runs: modes all 25
    return {
        m: (finite["modes"].corr(finite[m], method="spearman"), finite["modes"].corr(finite[m]))
        for m in AGAINST
        if m in finite
    }


def mean_se(table: pd.DataFrame, metric: str, generation: int) -> str:
    """Mean ± standard error over seeds at one generation."""
    s = summarize(table, metric).loc[generation]
    return f"{s['mean']:.3f} ± {s['sem']:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16, help="GMM seeds")
    p.add_argument("--generations", type=int, default=100, help="GMM generations")
    p.add_argument("--diffusion-seeds", type=int, default=4)
    p.add_argument("--diffusion-generations", type=int, default=15)
    p.add_argument("--out", default="docs/grid25.png")
    p.add_argument("--csv", default=None, help="also write both tables (column family) here")
    p.add_argument("--warm-start", action="store_true", help="fine-tune each generation from the previous one")
    p.add_argument("--from-csv", default=None, help="redraw a saved run's tables and curves (no sample panels)")
    a, common = p.parse_known_args()
    common = [*(["loop.warm_start=true"] if a.warm_start else []), *common]
    preset = madloop.compose([PRESET, *common])
    truth_trace = float(np.trace(make_source(preset.data).cov))
    metrics = [m for m in preset.eval.metrics if m != "trace_ratio"]  # no closed-form moments for diffusion
    same_loop = [  # the preset's loop with the diffusion family (the preset's model.components is GMM-only)
        "data=grid25",
        "regime=fully_synthetic",
        f"regime.n_real={preset.regime.n_real}",
        f"regime.n_synth={preset.regime.n_synth}",
        f"eval.metrics=[{','.join(metrics)}]",
    ]
    runs = {
        "GMM (25 components)": [PRESET, f"loop.seeds={a.seeds}", f"loop.generations={a.generations}", *common],
        "diffusion (MLP 256 x 3)": [
            *same_loop,
            *DIFFUSION,
            f"loop.seeds={a.diffusion_seeds}",
            f"loop.generations={a.diffusion_generations}",
            *common,
        ],
    }
    results = {}
    if a.from_csv:
        saved = pd.read_csv(a.from_csv)
        results = {label: (saved[saved.family == label].drop(columns="family"), None, None) for label in runs}
    for label, overrides in runs.items():
        if a.from_csv:
            break
        results[label] = run(overrides, truth_trace)
        print(f"{label}: {results[label][2]:.1f} s (compilation included)", flush=True)
    # real vs real at the same sample size: what a perfect model scores (the dotted lines of the first panels)
    floors = simulation(madloop.compose([PRESET, f"loop.seeds={a.seeds}", *common])).floors()
    if a.csv and not a.from_csv:
        pd.concat([t.assign(family=label) for label, (t, _, _) in results.items()]).to_csv(a.csv, index=False)

    rows, corr = {}, {}
    for label, (table, _, _) in results.items():
        g_last = int(table["generation"].max())
        n_seeds = table["seed"].nunique()
        for g in sorted({g for g in (0, 1, 10, g_last // 2, g_last) if g <= g_last}):
            rows[(label, g)] = {"modes": mean_se(table, "modes", g)}
            rows[(label, g)] |= {m: mean_se(table, m, g) for m, _, _ in CURVES[1:] if m in table}
        corr[label] = correlations(table)
        print(f"{label}: {n_seeds} seeds x {g_last} generations")
    print("mean ± SE over seeds")
    print(pd.DataFrame(rows).T.to_string())
    print("correlation of modes with each metric over all (seed, generation) points: Spearman / Pearson")
    print(
        pd.DataFrame(
            {label: {m: f"{s:+.3f} / {r:+.3f}" for m, (s, r) in c.items()} for label, c in corr.items()}
        ).to_string()
    )

    means = np.asarray(make_source(preset.data).mixture.means)
    panels = 3 if a.from_csv is None else 2
    fig, axes = plt.subplots(len(results), panels, figsize=(5.0 * panels, 4.3 * len(results)), squeeze=False)
    for row, (label, (table, samples, seconds)) in zip(axes, results.items(), strict=True):
        ax = row[0]
        for i, (m, name, style) in enumerate(CURVES):
            if m not in table:
                continue
            s = summarize(table, m)
            ax.plot(s.index, s["mean"], style, color=f"C{i}", label=name)
            ax.fill_between(s.index, s["lo"], s["hi"], color=f"C{i}", alpha=0.2)
            if m in floors:
                ax.axhline(floors[m].mean(), color=f"C{i}", ls=":", lw=1)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("generation")
        ax.set_title(f"{label}: {table['seed'].nunique()} seeds, mean and 95% CI; dotted: real vs real", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        ax = row[1]
        jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(table))
        for i, (m, name, _) in enumerate(CURVES):
            if m not in AGAINST or m not in table:
                continue
            rho = corr[label][m][0]
            label_m = f"{name}: ρ = {rho:.2f}"
            ax.scatter(table["modes"] + jitter, table[m], s=4, color=f"C{i}", alpha=0.35, label=label_m)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("modes covered (of 25; jittered)")
        ax.set_title("every (seed, generation); Spearman ρ with modes", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", markerscale=3)
        if samples is None:
            continue
        ax = row[2]
        g_last = samples.shape[1] - 1
        ax.scatter(*samples[0, 0].T, s=2, color="0.6", label="generation 0")
        ax.scatter(*samples[0, g_last].T, s=2, color="C3", alpha=0.6, label=f"generation {g_last}")
        ax.scatter(*means.T, marker="+", s=30, color="k", lw=0.8, label="true modes")
        ax.set_aspect("equal")
        ax.set_title(f"seed 0's 1000 samples ({seconds:.0f} s for this loop)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", markerscale=4)
    fig.suptitle("25 modes on a grid, fully synthetic loop (1000 samples per generation)", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print(f"{sum(r[2] or 0 for r in results.values()):.1f} s in all; figure: {a.out}")


if __name__ == "__main__":
    main()
