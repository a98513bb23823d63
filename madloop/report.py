"""Tidy tables and figures from one run or a whole multirun folder: metrics vs generation with 95% bands grouped
by swept knobs and overrides, phase maps over two knobs, and sample scatter plots.

Usage: python -m madloop.report DIR [--generation G] [--x KEY --y KEY] [--metrics M ...]
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import stdtrit  # noqa: E402  (Student t quantiles; scipy.stats costs 1.2 s to import)

ID_COLUMNS = ("seed", "generation", "finite")
MAX_LINES = 10  # lines per metric panel (one colour each); larger grids show evenly spaced grid points


def knob_names() -> tuple[str, ...]:
    """The swept-knob columns a table may have (one per ``sweep.*`` list): the knob table's names."""
    from madloop.knobs import columns

    return columns()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Writes through a temporary file in the same folder and renames it, so no reader sees a partial file. The
    file gets the permissions of a plain ``open`` (0666 less the umask), not the temporary file's owner-only 0600:
    collaborators on a shared cluster read the results."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns of a metrics table."""
    return [c for c in table.columns if c not in ID_COLUMNS + knob_names()]


def knob_columns(table: pd.DataFrame) -> list[str]:
    """The swept-knob columns of a metrics table (empty without a sweep)."""
    return [c for c in knob_names() if c in table.columns]


def summarize(table: pd.DataFrame, metric: str, by: str = "generation") -> pd.DataFrame:
    """Per value of ``by`` (a generation, or a swept knob) over finite seeds: mean, 95% t-interval of the mean
    (lo, hi), median, seed count."""
    finite = table[table["finite"] == 1] if "finite" in table else table
    grouped = finite.groupby(by)[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "median": grouped.median(), "n": grouped.count(), "sem": grouped.sem()})
    half = out["sem"].fillna(0.0) * stdtrit(np.maximum(out["n"] - 1, 1), 0.975)
    out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    return out


def plot_metrics(
    table: pd.DataFrame,
    path: Path,
    title: str = "",
    by: list[str] | None = None,
    floors: pd.DataFrame | None = None,
) -> None:
    """One panel per metric: mean over seeds with its 95% confidence band, and the median (dashed), with one line
    per value of the ``by`` columns (default: the swept knobs). The class shares (class_0, ...) are left to
    ``plot_class_histograms``. ``floors`` (floors.csv: one row per seed) draws each sample metric's real-vs-real
    floor, its mean over seeds as a grey dotted line with its 95% band."""
    shares = class_share_columns(table)
    metrics = [m for m in metric_columns(table) if m not in (by or []) and m not in shares]
    cols = min(4, max(1, len(metrics)))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    n_seeds = table["seed"].nunique()
    bad = int(table.loc[table["finite"] == 0, "seed"].nunique()) if "finite" in table else 0
    knobs = knob_columns(table) if by is None else list(by)
    groups = list(table.groupby(knobs)) if knobs else [((), table)]
    shown = len(groups)
    if len(groups) > MAX_LINES:  # a big grid: evenly spaced grid points (its phase maps show all of it)
        groups = [groups[i] for i in np.unique(np.linspace(0, len(groups) - 1, MAX_LINES).round().astype(int))]
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for i, (values, part) in enumerate(groups):
            s = summarize(part, metric)
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(knobs, values, strict=True)) or "mean"
            ax.fill_between(s.index, s["lo"], s["hi"], alpha=0.3 if len(groups) == 1 else 0.15, color=f"C{i % 10}")
            ax.plot(s.index, s["mean"], label=label, color=f"C{i % 10}")
            if len(groups) == 1:
                ax.plot(s.index, s["median"], "--", lw=1, label="median", color=f"C{i % 10}")
        if floors is not None and metric in floors:
            f = floors[metric].dropna()
            if len(f):
                half = f.sem() * stdtrit(max(len(f) - 1, 1), 0.975) if len(f) > 1 else 0.0
                ax.axhspan(f.mean() - half, f.mean() + half, color="0.5", alpha=0.15, lw=0)
                ax.axhline(f.mean(), color="0.4", ls=":", lw=1.2, label="real vs real")
        ax.set_title(metric)
        ax.set_xlabel("generation")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    note = f"{n_seeds} seeds" + (f"; {bad} with non-finite parameters or samples left out there" if bad else "")
    if len(groups) < shown:
        note += f"; {len(groups)} of {shown} grid points shown"
    width = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(f"{title} ({note})" if title else note, int(width * 13)), fontsize=9)
    if len(groups) == 1:
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
    else:  # one entry per grid point, below the panels
        handles, labels = axes.flat[0].get_legend_handles_labels()
        ncol = max(1, min(len(labels), int(width // 2.2)))
        legend_rows = -(-len(labels) // ncol)
        fig.set_size_inches(width, fig.get_size_inches()[1] + 0.22 * legend_rows)
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.22 * legend_rows / fig.get_size_inches()[1] + 0.01, 1, 1))
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


def image_grid(images: np.ndarray, shape: tuple[int, ...], columns: int) -> np.ndarray:
    """Rows of flattened images [m, h w c] tiled into one picture [rows (h + 1) - 1, columns (w + 1) - 1] (grey
    levels; colour images show their channel mean), values clipped to [-1, 1], with a one-pixel gutter of NaN
    (drawn in the colour map's 'bad' colour)."""
    h, w, c = shape
    imgs = np.clip(images.reshape(-1, h, w, c).mean(axis=-1), -1.0, 1.0)
    rows = -(-len(imgs) // columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan, np.float32)
    for i, img in enumerate(imgs):
        r, q = divmod(i, columns)
        out[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = img
    return out


def plot_image_samples(
    heldout: np.ndarray,
    snapshots: np.ndarray,
    generations: np.ndarray,
    shape: tuple[int, ...],
    path: Path,
    seed: int = 0,
    count: int = 64,
) -> None:
    """Image grids: held-out real images and one seed's samples at each snapshot generation, side by side.

    Args:
        heldout: [n, h w c] real images as rows; snapshots: [S, n_snap, m, h w c]; generations: [n_snap].
        shape: (h, w, c).
        count: images per grid (the first ``count`` of each set; a square grid).
    """
    columns = int(np.ceil(np.sqrt(count)))
    panels = [("real (held out)", heldout[:count])]
    panels += [(f"generation {int(g)}", x[:count]) for g, x in zip(generations, snapshots[seed], strict=True)]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#c8d4e8")  # ink dark on white; gutters light blue
    for ax, (title, x) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(image_grid(x, shape, columns), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"seed {seed}", fontsize=9)
    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def class_share_columns(table: pd.DataFrame) -> list[str]:
    """The predicted-class histogram's columns (class_0, class_1, ...) in class order."""
    cols = [c for c in table.columns if c.startswith("class_") and c[6:].isdigit()]
    return sorted(cols, key=lambda c: int(c[6:]))


def plot_class_histograms(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """Heat maps of the predicted-class shares (mean over seeds) against generation, one per swept knob value;
    a class that the loop loses fades to white (mode collapse), and the entropy is printed per generation."""
    cols = class_share_columns(table)
    knobs = knob_columns(table)
    groups = list(table.groupby(knobs)) if knobs else [((), table)]
    fig, axes = plt.subplots(1, len(groups), figsize=(0.42 * len(cols) * len(groups) + 1.6, 3.4), squeeze=False)
    for ax, (key, part) in zip(axes[0], groups, strict=True):
        shares = part.groupby("generation")[cols].mean()
        im = ax.imshow(shares.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=max(0.3, shares.max().max()))
        ax.set_xticks(range(len(cols)), [c[6:] for c in cols], fontsize=7)
        ax.set_yticks(range(len(shares)), [str(g) for g in shares.index], fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("generation")
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{k}={_fmt(v)}" for k, v in zip(knobs, key, strict=True)) or "all runs", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="share of samples")
    if title:
        fig.suptitle(title, fontsize=9)
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=110, format="png", bbox_inches="tight"))
    plt.close(fig)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Writes a metrics table atomically: Parquet for a ``.parquet`` path (pyarrow), else CSV."""
    path = Path(path)
    if path.suffix == ".parquet":
        atomic_write(path, lambda p: table.to_parquet(p, index=False))
    else:
        atomic_write(path, lambda p: table.to_csv(p, index=False))


def write_text(text: str, path: Path) -> None:
    """Writes a text file atomically."""
    atomic_write(path, lambda p: p.write_text(text))


def read_table(path: Path) -> pd.DataFrame:
    """A table written by ``write_table`` (CSV or Parquet, by its suffix). A report's ``job`` column (job folder
    names, often 0, 1, ...) is text from either format: pandas reads numeric-looking CSV text as integers."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"job": str})


TABLES = ("metrics.csv", "metrics.parquet")


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


# ------------------------------------------------------------------------------------- runs and multiruns


def _parse(value: str):
    """An override's value as a number when it is one (so knobs sort and plot numerically)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _default(job: Path, key: str):
    """A factor a job did not override: its value in the job's resolved config.yaml when that is a scalar, else
    "default" (a group's default option). Never None: grouping by a factor drops None rows, and the job's curve
    went missing from the report."""
    from omegaconf import OmegaConf

    for path in (job / "config.yaml", job / ".hydra" / "config.yaml"):
        if path.exists():
            value = OmegaConf.select(OmegaConf.load(path), key, default=None)
            if value is not None and not OmegaConf.is_config(value):
                return value
    return "default"


MULTIRUN = "multirun.yaml"  # Hydra's record of a sweep, in its folder
SWEEP_RECORD = "sweep.yaml"  # a multirun job's record of its sweep (madloop.run)


def sweep_identity(multirun: Path) -> str | None:
    """The identity of the sweep a Hydra ``multirun.yaml`` describes (None without one): a hash of its config name,
    its command-line overrides and its sweeper's settings, the things that decide which jobs it runs. A rerun of the
    same command has the same identity (its jobs replace the earlier ones folder by folder); another sweep into
    the same folder (``hydra.sweep.dir``) has another, and a job folder it did not rewrite keeps the old one."""
    import hashlib
    import json

    from omegaconf import OmegaConf

    if not Path(multirun).is_file():
        return None
    hydra_node = OmegaConf.load(multirun).get("hydra", {})
    parts = {
        key: OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
        for key in ("overrides.task", "sweeper", "job.config_name")
        if (node := OmegaConf.select(hydra_node, key, default=None)) is not None
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _earlier_sweep(job: Path, root: Path, identities: dict[Path, str | None]) -> bool:
    """Whether the job folder's ``sweep.yaml`` names another sweep than the nearest ``multirun.yaml`` above it
    (within ``root``). A job without the record (a single run, or written before it existed) counts as current."""
    from omegaconf import OmegaConf

    record = job / SWEEP_RECORD
    if not record.is_file():
        return False
    folder = job
    while folder != root and root in folder.parents:  # the folders above the job, up to root
        folder = folder.parent
        if (folder / MULTIRUN).is_file():
            if folder not in identities:
                identities[folder] = sweep_identity(folder / MULTIRUN)
            return OmegaConf.load(record).get("sweep") != identities[folder]
    return False


def collect(root: Path, skipped: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Every ``metrics.csv`` or ``metrics.parquet`` under ``root`` (one run, or the jobs of a multirun) as one tidy
    table (a job folder with both reads the newer one).

    Each job's command-line overrides (its ``overrides.yaml``, written with its table; else Hydra's
    ``.hydra/overrides.yaml``) that differ between jobs become columns,
    next to the swept-knob columns already in the tables, and ``job`` names the job's folder.

    A job folder left over from an earlier sweep into the same folder (its ``sweep.yaml`` names another sweep than
    the ``multirun.yaml`` above it: a sweep of 8 jobs, then one of 4 leaves jobs 4-7, or a job of the new sweep
    refused) is left out, and its folder name appended to ``skipped`` when given.

    Returns:
        (table, factors): the combined table and the columns that vary between runs (overrides and knobs).

    Raises:
        FileNotFoundError: when ``root`` holds no metrics table (of its current sweeps).
    """
    from omegaconf import OmegaConf

    root = Path(root)
    found: dict[Path, Path] = {}
    for p in root.rglob("metrics.*"):
        if p.name in TABLES and not any(part.startswith(".") for part in p.relative_to(root).parts):
            other = found.get(p.parent)  # a folder with both: the newer table (a rerun in another format)
            if other is None or p.stat().st_mtime > other.stat().st_mtime:
                found[p.parent] = p
    identities: dict[Path, str | None] = {}
    earlier = sorted(k for k in found if _earlier_sweep(k, root, identities))
    if skipped is not None:
        skipped.extend(str(k.relative_to(root)) or "." for k in earlier)
    paths = [found[k] for k in sorted(found) if k not in earlier]
    if not paths:
        left = f" ({len(earlier)} job folder(s) of an earlier sweep left out)" if earlier else ""
        raise FileNotFoundError(f"no metrics.csv or metrics.parquet under {root}{left}")
    tables, overrides = [], []
    for path in paths:
        table = read_table(path)
        table.insert(0, "job", str(path.parent.relative_to(root)) or ".")
        tables.append(table)
        # the job's overrides as written with its results (madloop.run), else Hydra's copy (rewritten at every
        # start of a job, also one refused or failed later)
        o = path.parent / "overrides.yaml"
        o = o if o.exists() else path.parent / ".hydra" / "overrides.yaml"
        items = OmegaConf.to_container(OmegaConf.load(o)) if o.exists() else []
        pairs = (item.split("=", 1) for item in items or [] if "=" in item)
        overrides.append({k.lstrip("+~"): v for k, v in pairs})  # ++bias.lam=0.5 is bias.lam
    keys = sorted({k for o in overrides for k in o})
    varying = [k for k in keys if len({o.get(k) for o in overrides}) > 1]
    for path, table, o in zip(paths, tables, overrides, strict=True):
        for pos, k in enumerate(varying, start=1):
            table.insert(pos, k, _parse(o[k]) if k in o else _default(path.parent, k))
        for name, dotted in _knob_paths().items():  # a knob another job sweeps: this job's own value
            if name not in table.columns and any(name in t.columns for t in tables):
                table[name] = _default(path.parent, dotted)
    out = pd.concat(tables, ignore_index=True)
    for k in [*varying, *(c for c in knob_names() if c in out.columns)]:  # numbers beside "default": all text
        if out[k].map(lambda v: isinstance(v, str)).any():
            out[k] = out[k].map(str)
    # factors: the columns that still vary once every job's value is filled in (1.0 given beside 1.0 by default
    # does not)
    varying = [k for k in varying if out[k].nunique(dropna=False) > 1]
    factors = varying + [k for k in knob_names() if k in out.columns and out[k].nunique(dropna=False) > 1]
    return out, factors


def _knob_paths() -> dict[str, str]:
    """{knob column: its config path}, e.g. lam: bias.lam."""
    from madloop.knobs import KNOBS

    return {k.name: k.path for k in KNOBS}


def phase_map(table: pd.DataFrame, metric: str, x: str, y: str, generation: int) -> pd.DataFrame:
    """Mean of ``metric`` over finite seeds at ``generation``, as a [y values, x values] table."""
    at = table[(table["generation"] == generation) & (table.get("finite", 1) == 1)]
    return at.pivot_table(index=y, columns=x, values=metric, aggfunc="mean").sort_index().sort_index(axis=1)


def plot_phase_map(grid: pd.DataFrame, metric: str, generation: int, path: Path) -> None:
    """A heat map of a phase_map table."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.32 * grid.shape[1] + 2.5, 1.0 + 0.28 * grid.shape[0] + 1.5))
    image = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [_fmt(v) for v in grid.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), [_fmt(v) for v in grid.index], fontsize=7)
    ax.set_xlabel(grid.columns.name)
    ax.set_ylabel(grid.index.name)
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric} at generation {generation} (mean over seeds)", fontsize=9)
    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """``python -m madloop.report DIR``: writes report.csv (and report.parquet when pyarrow is installed),
    report_metrics.png and, when two factors vary (or --x/--y name them), one phase map per metric."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m madloop.report", description=main.__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="a run's folder or a multirun folder")
    p.add_argument("--generation", type=int, default=None, help="generation of the phase maps (default: last)")
    p.add_argument("--x", default=None, help="factor on the phase map's x axis")
    p.add_argument("--y", default=None, help="factor on the phase map's y axis")
    p.add_argument("--metrics", nargs="+", default=None, help="metrics to report (default: all)")
    a = p.parse_args(argv)
    skipped: list[str] = []
    try:
        table, factors = collect(a.root, skipped)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if skipped:
        print(
            f"note: left out {len(skipped)} job folder(s) of an earlier sweep into this folder (their {SWEEP_RECORD} "
            f"names another sweep than {MULTIRUN}): {', '.join(skipped)}",
            file=sys.stderr,
        )
    metrics = a.metrics or metric_columns(table.drop(columns=["job", *factors]))
    unknown = [m for m in metrics if m not in table.columns]
    for key, value in (("--x", a.x), ("--y", a.y)):
        if value is not None and value not in factors:
            print(f"error: {key}={value}: allowed: {', '.join(factors) or '(no factor varies)'}", file=sys.stderr)
            raise SystemExit(2)
    if unknown:
        print(f"error: --metrics={','.join(unknown)}: allowed: {', '.join(metric_columns(table))}", file=sys.stderr)
        raise SystemExit(2)
    if a.generation is not None and a.generation not in set(table["generation"]):
        have = ", ".join(str(v) for v in sorted(set(table["generation"])))
        print(f"error: --generation={a.generation}: allowed: the evaluated generations {have}", file=sys.stderr)
        raise SystemExit(2)
    write_table(table, a.root / "report.csv")
    try:
        import pyarrow  # noqa: F401

        atomic_write(a.root / "report.parquet", lambda q: table.to_parquet(q, index=False))
    except ImportError:
        pass
    keep = [*factors, "seed", "generation", *metrics, *(["finite"] if "finite" in table else [])]
    plot_metrics(table[keep], a.root / "report_metrics.png", by=factors)
    x, y = a.x, a.y
    if x is None and y is None and len(factors) == 2:
        x, y = factors
    written = ["report.csv", "report_metrics.png"]
    if x is not None and y is not None:
        g = int(table["generation"].max()) if a.generation is None else a.generation
        for m in metrics:
            plot_phase_map(phase_map(table, m, x, y, g), m, g, a.root / f"report_phase_{m}.png")
            written.append(f"report_phase_{m}.png")
    print(
        f"{len(table)} rows from {table['job'].nunique()} job(s), factors: {', '.join(factors) or 'none'}; "
        f"wrote {', '.join(written)} in {a.root}"
    )


if __name__ == "__main__":
    main()
