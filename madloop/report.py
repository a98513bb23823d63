"""Tidy tables and figures from a run: metrics vs generation with 95% bands, and sample scatter plots."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402

ID_COLUMNS = ("seed", "generation", "finite")
KNOB_COLUMNS = ("lam", "real_weight", "omega")  # swept knobs (sweep.*), one column each when swept


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Writes through a temporary file in the same folder and renames it, so no reader sees a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns of a metrics table."""
    return [c for c in table.columns if c not in ID_COLUMNS + KNOB_COLUMNS]


def knob_columns(table: pd.DataFrame) -> list[str]:
    """The swept-knob columns of a metrics table (empty without a sweep)."""
    return [c for c in KNOB_COLUMNS if c in table.columns]


def summarize(table: pd.DataFrame, metric: str, by: str = "generation") -> pd.DataFrame:
    """Per value of ``by`` (a generation, or a swept knob) over finite seeds: mean, 95% t-interval of the mean
    (lo, hi), median, seed count."""
    finite = table[table["finite"] == 1] if "finite" in table else table
    grouped = finite.groupby(by)[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "median": grouped.median(), "n": grouped.count(), "sem": grouped.sem()})
    half = out["sem"].fillna(0.0) * scipy.stats.t.ppf(0.975, np.maximum(out["n"] - 1, 1))
    out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    return out


def plot_metrics(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """One panel per metric: mean over seeds with its 95% confidence band, and the median (dashed)."""
    metrics = metric_columns(table)
    cols = min(4, max(1, len(metrics)))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    n_seeds = table["seed"].nunique()
    bad = int(table.loc[table["finite"] == 0, "seed"].nunique()) if "finite" in table else 0
    knobs = knob_columns(table)
    groups = list(table.groupby(knobs)) if knobs else [((), table)]
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for i, (values, part) in enumerate(groups):
            s = summarize(part, metric)
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join(f"{k}={v:g}" for k, v in zip(knobs, values, strict=True)) or "mean"
            ax.fill_between(s.index, s["lo"], s["hi"], alpha=0.3 if len(groups) == 1 else 0.15, color=f"C{i % 10}")
            ax.plot(s.index, s["mean"], label=label, color=f"C{i % 10}")
            if len(groups) == 1:
                ax.plot(s.index, s["median"], "--", lw=1, label="median", color=f"C{i % 10}")
        ax.set_title(metric)
        ax.set_xlabel("generation")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    note = f"{n_seeds} seeds" + (f"; {bad} with non-finite parameters left out where non-finite" if bad else "")
    fig.suptitle(f"{title} ({note})" if title else note, fontsize=10)
    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def plot_samples(
    heldout: np.ndarray, snapshots: np.ndarray, generations: np.ndarray, path: Path, seed: int = 0
) -> None:
    """Scatter of held-out real data and one seed's model samples at the snapshot generations.

    Args:
        heldout: [n, d] real samples; snapshots: [S, n_snap, m, d]; generations: [n_snap].
        For d > 2 the first two coordinates are shown; for d = 1, histograms.
    """
    n = len(generations)
    one_d = heldout.shape[1] == 1
    fig, axes = plt.subplots(1, n + 1, figsize=(2.8 * (n + 1), 2.9), sharex=True, sharey=not one_d)
    bins = np.histogram_bin_edges(heldout[:, 0], bins=40) if one_d else None

    def draw(ax, pts, colour):
        if one_d:  # a histogram of the single coordinate
            ax.hist(pts[:, 0], bins=bins, density=True, color=colour, alpha=0.6)
        else:
            ax.scatter(pts[:, 0], pts[:, 1], s=2, c=colour)

    draw(axes[0], heldout, "0.3")
    axes[0].set_title("real (held out)")
    for ax, g, pts in zip(axes[1:], generations, snapshots[seed], strict=True):
        draw(ax, heldout, "0.85")
        draw(ax, pts, "C3")
        ax.set_title(f"generation {int(g)}")
    if not one_d:
        for ax in axes:
            ax.set_aspect("equal", adjustable="box")
    fig.suptitle(f"seed {seed}" + (" (first two coordinates)" if heldout.shape[1] > 2 else ""), fontsize=9)
    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Writes a metrics table as CSV atomically."""
    atomic_write(Path(path), lambda p: table.to_csv(p, index=False))
