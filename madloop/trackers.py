"""Experiment trackers (``logger=tensorboard|wandb|mlflow``): per-generation summaries and the config, offline.

A run is one compiled program, so a tracker receives each chunk's rows as the engine returns them (``chunk`` of
``loop.chunk``), with the generation as the step. For every metric it logs, per knob grid point, the mean and the
median over the seeds whose row is finite (the ``finite`` column: finite parameters and evaluation samples), and
the share of such seeds (``finite``); with
``logger.per_seed=true`` also each seed's value (``seed_3/trace_ratio``). Key names: ``trace_ratio/mean``, or
``lam_0.5/trace_ratio/mean`` when knobs are swept.

No tracker needs the network: TensorBoard writes event files (tensorboardX), W&B runs in offline mode (``wandb
sync`` uploads later), MLflow writes a file store. Each lives in the run's output folder unless its config says
otherwise. Each backend is optional: ``pip install 'madloop[trackers]'``; a missing one is refused by name before
anything runs.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from madloop import config as C


class Tracker(NamedTuple):
    """An open tracker run.

    Attributes:
        log: ``log(step, scalars)``: one generation's scalars {key: float}.
        close: ``close(ok)``: flushes and closes the run, marked failed when ``ok`` is false.
    """

    log: Callable[[int, Mapping[str, float]], None]
    close: Callable[[bool], None]


def key_value(value: Any) -> str:
    """A knob value as it appears in a tracker key: exact and without ``+`` or exponents (MLflow accepts only
    letters, digits, ``_ - . /`` and spaces), e.g. 0.5 -> ``0.5``, 1e6 -> ``1000000``, 1e-7 -> ``0.0000001``."""
    if isinstance(value, int | np.integer) or float(value).is_integer():
        return str(int(value))
    return np.format_float_positional(float(value), trim="-")


@dataclass(frozen=True)
class NoLogger:
    """No tracker (the default): the tables and figures in the output folder only."""


@dataclass(frozen=True)
class TensorBoardLogger:
    """TensorBoard event files, written with tensorboardX (``tensorboard --logdir <folder>`` shows them).

    Attributes:
        logdir: a folder for every job's events (each job in a subfolder named by the last three parts of its
            output folder, e.g. ``2026-11-28/13-40-00/0``); null = ``tensorboard/`` in the run's output folder.
        per_seed: also log each seed's value of every metric.
    """

    logdir: str | None = None
    per_seed: bool = False


@dataclass(frozen=True)
class WandbLogger:
    """Weights & Biases, offline by default (``wandb sync <folder>`` uploads a run later).

    Attributes:
        project: the W&B project.
        entity: the W&B entity (team or user); null = W&B's default.
        mode: ``offline`` (no network), ``online`` or ``disabled``.
        name: the run's name; null = the Hydra job's folder name.
        tags: tags of the run.
        dir: the folder of W&B's files; null = the run's output folder.
        per_seed: also log each seed's value of every metric.
    """

    project: str = "madloop"
    entity: str | None = None
    mode: str = "offline"
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    dir: str | None = None
    per_seed: bool = False


@dataclass(frozen=True)
class MlflowLogger:
    """MLflow tracking (``mlflow ui --backend-store-uri <uri>`` shows the runs).

    Attributes:
        tracking_uri: where runs go; null = a file store ``mlruns/`` in the run's output folder (offline; one store
            per job: set a shared folder to compare a multirun's jobs in one ``mlflow ui``). MLflow 3 keeps its
            file store in maintenance mode, which madloop opts into for file stores. A server (``http://...``) or
            a database URI (which needs the full mlflow package) is the user's choice.
        experiment: the MLflow experiment name.
        run_name: the run's name; null = the Hydra job's folder name.
        per_seed: also log each seed's value of every metric.
    """

    tracking_uri: str | None = None
    experiment: str = "madloop"
    run_name: str | None = None
    per_seed: bool = False


def _needs(module: str, option: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise C.ConfigError("logger", option, f"needs the {module} package (pip install 'madloop[trackers]')")


def _check_tensorboard(node: TensorBoardLogger) -> None:
    _needs("tensorboardX", "tensorboard")


def _check_wandb(node: WandbLogger) -> None:
    C.choice("logger.mode", node.mode, ("offline", "online", "disabled"))
    _needs("wandb", "wandb")


def _check_mlflow(node: MlflowLogger) -> None:
    _needs("mlflow", "mlflow")
    if not node.experiment:
        raise C.ConfigError("logger.experiment", node.experiment, "must be a non-empty experiment name")


def _tensorboard(node: TensorBoardLogger, out: Path, config: dict) -> Tracker:
    from tensorboardX import SummaryWriter

    # A shared logdir keeps one run per job, in a subfolder named by the last three parts of its output folder
    # (Hydra's date/time/job): by the job's folder name alone, every sweep's job 0 wrote into one run.
    full = out.resolve()
    parts = full.relative_to(full.anchor).parts[-3:]  # (fewer below the root: never the root itself)
    folder = Path(node.logdir).joinpath(*parts) if node.logdir else out / "tensorboard"
    writer = SummaryWriter(logdir=str(folder))
    writer.add_text("config", "```\n" + _yaml(config) + "\n```", 0)

    def log(step: int, scalars: Mapping[str, float]) -> None:
        for key, value in scalars.items():
            writer.add_scalar(key, value, step)

    def close(ok: bool) -> None:
        del ok  # event files have no run status
        writer.flush()
        writer.close()

    return Tracker(log, close)


def _wandb(node: WandbLogger, out: Path, config: dict) -> Tracker:
    import wandb

    run = wandb.init(
        project=node.project,
        entity=node.entity,
        mode=node.mode,
        name=node.name or out.name,
        tags=list(node.tags),
        dir=str(node.dir or out),
        config=config,
        reinit="create_new",  # a multirun's jobs in one process each get their own run
    )

    def log(step: int, scalars: Mapping[str, float]) -> None:
        run.log(dict(scalars), step=step)

    return Tracker(log, lambda ok: run.finish(exit_code=0 if ok else 1))


def _mlflow(node: MlflowLogger, out: Path, config: dict) -> Tracker:
    uri = node.tracking_uri or (out / "mlruns").resolve().as_uri()
    if "://" not in uri or uri.startswith("file:"):  # a local file store: offline, in maintenance in MLflow 3
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(node.experiment)
    if found is None:
        try:
            experiment = client.create_experiment(node.experiment)
        except MlflowException:  # a parallel job created it first
            experiment = client.get_experiment_by_name(node.experiment).experiment_id
    else:
        experiment = found.experiment_id
    run_id = client.create_run(experiment, run_name=node.run_name or out.name).info.run_id
    params = [Param(k, str(v)[:6000]) for k, v in _flatten(config).items()]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[i : i + 100])
    client.log_text(run_id, _yaml(config), "config.yaml")

    def log(step: int, scalars: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), 1000):  # and at most 1000 metrics
            client.log_batch(run_id, metrics=metrics[i : i + 1000])

    return Tracker(log, lambda ok: client.set_terminated(run_id, "FINISHED" if ok else "FAILED"))


C.register("logger", "none", NoLogger)
C.register("logger", "tensorboard", TensorBoardLogger, build=_tensorboard, check=_check_tensorboard)
C.register("logger", "wandb", WandbLogger, build=_wandb, check=_check_wandb)
C.register("logger", "mlflow", MlflowLogger, build=_mlflow, check=_check_mlflow)


def open_tracker(node: Any, out: Path, config: dict) -> Tracker | None:
    """The tracker of a ``logger`` config node, opened for a run writing to ``out`` (None for ``logger=none``).

    Args:
        node: the ``logger`` node.
        out: the run's output folder.
        config: the resolved config as a plain dict (logged with the run).
    """
    build = C.option_of("logger", node)[1].build
    return None if build is None else build(node, Path(out), config)


def summaries(
    metrics: Mapping[str, np.ndarray],
    finite: np.ndarray,
    groups: Mapping[str, np.ndarray],
    per_seed: bool = False,
    seed: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Per generation, the scalars a tracker logs: each metric's mean and median over the finite runs of each knob
    grid point, and the share of finite runs.

    Args:
        metrics: {name: [B, L]} the rows of L generations of B runs.
        finite: [B, L] 1 where a run's generation is finite.
        groups: {prefix: [B] bool}: the runs of each knob grid point ({"": all runs} without a sweep).
        per_seed: also each run's value, under ``seed_<i>/`` (``seed`` [B] names the runs).
        seed: [B] each run's seed index (for per_seed).
    Returns:
        L dicts {key: float}; a metric with no finite run at a generation is left out of that generation's dict.
    """
    length = finite.shape[1]
    out: list[dict[str, float]] = [{} for _ in range(length)]
    for prefix, members in groups.items():
        ok = finite[members] == 1  # [b, L]
        share = ok.mean(axis=0)
        for t in range(length):
            out[t][f"{prefix}finite"] = float(share[t])
        for name, values in metrics.items():
            v = np.where(ok, values[members], np.nan).astype(np.float64)
            for t in range(length):
                column = v[:, t][np.isfinite(v[:, t])]
                if column.size:
                    out[t][f"{prefix}{name}/mean"] = float(column.mean())
                    out[t][f"{prefix}{name}/median"] = float(np.median(column))
                if per_seed and seed is not None:
                    for s, x in zip(seed[members], v[:, t], strict=True):
                        if np.isfinite(x):
                            out[t][f"{prefix}seed_{int(s)}/{name}"] = float(x)
    return out


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        flat: dict[str, Any] = {}
        for k, v in tree.items():
            flat.update(_flatten(v, f"{prefix}{k}."))
        return flat
    return {prefix[:-1]: tree}


def _yaml(config: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))
