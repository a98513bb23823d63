"""The Hydra entry point: ``python -m madloop.run [overrides]`` (``-m`` for a multirun sweep)."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

from madloop import config as C

log = logging.getLogger("madloop")


class JobRefused(CompactHydraException):
    """A multirun job refused for a user's mistake found only once it ran (a checkpoint written by another config):
    Hydra prints a compact exception's message, one line, where it prints a traceback for any other (the sweep's
    other jobs still run; the command exits 2)."""


_refused: list[str] = []  # the jobs refused in this process (main's exit status)


def job_overrides(argv: Sequence[str]) -> tuple[list[list[str]], str] | None:
    """The override list of every job the command line asks for (sweeps expanded), and the config name.

    None when the command only asks Hydra for help or information, or points at another config folder.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = get_args_parser()

    def refuse(message: str) -> None:  # argparse would print its usage (several lines) and exit 2
        raise C.ConfigError("command line", " ".join(argv), message)

    parser.error = refuse
    args, unknown = parser.parse_known_args(list(argv))
    if unknown:
        refuse(f"unrecognised argument {unknown[0]}; overrides are key=value (see --help)")
    if args.help or args.hydra_help or args.info or args.cfg or args.shell_completion:
        return None
    if args.config_path or args.config_dir:
        return None
    overrides = [o for o in args.overrides if not o.lstrip("+~").startswith("hydra")]
    if not args.multirun:
        return [overrides], args.config_name or "config"
    parsed = OverridesParser.create().parse_overrides(overrides)
    return BasicSweeper.split_arguments(parsed, None)[0], args.config_name or "config"


def prevalidate(argv: Sequence[str]) -> None:
    """Composes and validates every job before anything runs.

    Raises:
        ConfigError: for the first invalid job (its message names the field, value and what is allowed).
    """
    from madloop import api

    try:
        jobs = job_overrides(argv)
    except C.ConfigError:
        raise
    except Exception as exc:  # an unparsable override
        raise api.one_line_error(exc, list(argv)) from exc
    if jobs is None:
        return
    for overrides in jobs[0]:
        api.compose(overrides)
    hydra_part = [o for o in argv if not o.startswith("-") and o.lstrip("+~").startswith("hydra")]
    if hydra_part:  # Hydra's own settings (hydra.run.dir=..., hydra/launcher=...), with the first job's config
        check_hydra_overrides(jobs[0][0], hydra_part)


def check_hydra_overrides(overrides: Sequence[str], hydra_part: Sequence[str]) -> None:
    """Composes Hydra's own config with the ``hydra...`` overrides.

    Raises:
        ConfigError: for an unknown key, option or value of Hydra's config (which Hydra would report with exit 1).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from madloop import api

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=api.CONFIG_MODULE, version_base="1.3"):
        try:
            compose(api.CONFIG_NAME, overrides=[*overrides, *hydra_part], return_hydra_config=True)
        except Exception as exc:
            raise api.one_line_error(exc, list(hydra_part)) from exc


def _write_record(node: DictConfig, overrides: list[str], out: Path, sweep_dir: Path | None) -> None:
    """The job's resolved ``config.yaml``, its command-line ``overrides.yaml`` and, in a multirun, ``sweep.yaml``
    (the identity of its sweep, ``report.sweep_identity``), written right after its results (not when it starts): a
    rerun into the folder that is refused (a checkpoint of another config) or fails leaves the results beside the
    config that made them. Hydra rewrites its own ``.hydra/`` copies at every start, so the report reads the job's
    factors from this ``overrides.yaml``, and leaves out a job whose ``sweep.yaml`` names another sweep than the
    folder's ``multirun.yaml`` (a job folder left over from an earlier, larger sweep into the same folder)."""
    from madloop import report

    report.write_text(OmegaConf.to_yaml(node, resolve=True), out / "config.yaml")
    report.write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)), out / "overrides.yaml")
    identity = None if sweep_dir is None else report.sweep_identity(sweep_dir / report.MULTIRUN)
    if identity is not None:
        report.write_text(OmegaConf.to_yaml(OmegaConf.create({"sweep": identity})), out / report.SWEEP_RECORD)


def _write_outputs(cfg: C.Config, result, out: Path) -> None:
    from madloop import report

    table = result.table()
    suffix = "." + cfg.output.format
    report.write_table(table, out / f"metrics{suffix}")
    floors = None
    if cfg.eval.floors:
        from madloop.engine import simulation

        floors = simulation(cfg).floors()
        if floors is not None:
            report.write_table(floors, out / f"floors{suffix}")
    if cfg.plots:
        from madloop.parts import parts_of

        report.plot_metrics(table, out / "metrics.png", title=_title(cfg), floors=floors)
        shape = parts_of(cfg).source.shape
        if shape is not None:  # image rows: grids of images, and the classifier's class shares
            report.plot_image_samples(
                result.heldout, result.snapshots, result.snapshot_generations, shape, out / "samples.png"
            )
            if report.class_share_columns(table):
                report.plot_class_histograms(table, out / "classes.png", title=_title(cfg))
        else:
            report.plot_samples(result.heldout, result.snapshots, result.snapshot_generations, out / "samples.png")


def _title(cfg: C.Config) -> str:
    return (
        f"{C.option_name('data', cfg.data)} / {C.option_name('model', cfg.model)} / "
        f"{C.option_name('regime', cfg.regime)} ({cfg.regime.pool}), "
        + ("lam swept" if cfg.sweep.bias.lam is not None else f"lam={cfg.bias.lam}")
    )


class Progress:
    """Reports progress: in a single run on an interactive terminal, a tqdm bar over generations whose postfix
    follows the chunks of each training scan (neural families; see ``madloop.progress``); in a single run
    writing to a file, one log line per chunk of generations; in a multirun only debug lines (parallel jobs
    stay quiet)."""

    def __init__(self, label: str, total: int, multirun: bool):
        self.multirun, self.bar = multirun, None
        if not multirun and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="gen", desc=label, dynamic_ncols=True)

    def __call__(self, done: int, total: int, seconds: float) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        else:
            log.log(logging.DEBUG if self.multirun else logging.INFO, "generation %d/%d (%.1f s)", done, total, seconds)

    def fit(self, steps: int, done: int) -> None:
        """A training scan's progress (``done`` of ``steps``), shown as the bar's postfix."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"fit {done}/{steps} steps", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def use_compile_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for command-line runs and returns its folder (None: off).

    A rerun, or a sweep's next process with the same static config, loads its programs instead of compiling
    them (the default experiment: first call 29.7 s -> 13.7 s; docs/benchmarks.md). The folder is
    JAX_COMPILATION_CACHE_DIR when set, else $XDG_CACHE_HOME/madloop/jax (~/.cache/madloop/jax);
    MADLOOP_COMPILE_CACHE=0 turns it off. Cached programs are keyed by the program, the flags and the jax/XLA
    versions, so results do not depend on the cache.
    """
    import os

    import jax

    if os.environ.get("MADLOOP_COMPILE_CACHE", "1") == "0":
        return None
    folder = jax.config.jax_compilation_cache_dir
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "madloop", "jax")
        jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def task(node: DictConfig) -> None:
    """One Hydra job: convert the config once, run it with progress (resuming from a checkpoint when
    ``loop.checkpoint`` is on and the output folder holds one), and write the results atomically.

    A job that fails logs the error to its own folder's log and re-raises; Hydra's launchers still run the
    sweep's other jobs, whose results are already complete on disk.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from madloop import api, report
    from madloop.engine import simulation
    from madloop.knobs import grid_points
    from madloop.progress import listen

    try:
        cfg = api.to_config(node)
    except C.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    use_compile_cache()  # here, not in main: launchers may run jobs in other processes
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    points = grid_points(cfg)
    grid = f"{points} grid points x " if points > 1 else ""
    log.info("%s: %s%d seeds x %d generations -> %s", _title(cfg), grid, cfg.loop.seeds, cfg.loop.generations, out)
    checkpoint = out / "checkpoint" if cfg.loop.checkpoint else None
    progress = Progress(C.option_name("model", cfg.model), cfg.loop.generations, hc.mode == RunMode.MULTIRUN)
    tracker, finished = None, False
    try:
        try:
            sim = simulation(cfg)
            tracker, on_rows = _tracker(cfg, sim, node, out)
            with listen(progress.fit):
                result = sim(progress, checkpoint, on_rows)
            finished = True
        finally:
            progress.close()
            if tracker is not None:
                tracker.close(finished)  # a failed run is marked failed in the tracker
        if result.resumed is not None:
            log.info("resumed from the checkpoint after generation %d (%s)", result.resumed, checkpoint)
        if (message := result.divergence()) is not None:
            log.warning(message)
        # the record after the results, the stale one removed first: a failure in between leaves no record (the
        # report then reads Hydra's copy of this job's overrides), never an old one beside a new table
        (out / "overrides.yaml").unlink(missing_ok=True)
        (out / report.SWEEP_RECORD).unlink(missing_ok=True)
        _write_outputs(cfg, result, out)
        _write_record(node, list(hc.overrides.task), out, Path(hc.sweep.dir) if progress.multirun else None)
    except C.ConfigError as exc:  # e.g. a checkpoint written by another config
        log.error("%s", exc)
        if progress.multirun:  # the launcher records the failure, runs the other jobs and then raises this one
            _refused.append(str(out))
            raise JobRefused(f"error: {exc}") from exc
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        log.exception("job failed: %s", out)
        raise
    log.info("done in %.1f s: %s", result.seconds, out / f"metrics.{cfg.output.format}")


def _tracker(cfg: C.Config, sim, node: DictConfig, out: Path):
    """(the open tracker of ``logger=...``, the engine's ``on_rows`` callback that logs to it), or (None, None)."""
    import numpy as np

    from madloop import trackers

    config = OmegaConf.to_container(node, resolve=True)
    tracker = trackers.open_tracker(cfg.logger, out, config)
    if tracker is None:
        return None, None
    _, _, seed, columns = sim.runs()
    groups = {"": np.ones(seed.shape, bool)}
    if columns:  # one group of seeds per knob grid point, named by its values
        names = list(columns)
        points = sorted({tuple(columns[k][i] for k in names) for i in range(len(seed))})
        groups = {
            "".join(f"{k}_{trackers.key_value(v)}/" for k, v in zip(names, p, strict=True)): np.all(
                [columns[k] == v for k, v in zip(names, p, strict=True)], axis=0
            )
            for p in points
        }
    per_seed = getattr(cfg.logger, "per_seed", False)
    live = [True]

    def on_rows(generations, rows) -> None:
        if not live[0]:
            return
        scalars = trackers.summaries(rows.metrics, rows.finite, groups, per_seed, seed)
        try:
            for g, values in zip(generations, scalars, strict=True):
                tracker.log(int(g), values)
        except Exception as exc:  # noqa: BLE001 (a tracker's failure must not end the simulation)
            live[0] = False
            log.warning("logger=%s stopped logging: %s", C.option_name("logger", cfg.logger), exc)

    return tracker, on_rows


EXAMPLES = """\
  python -m madloop.run                                          the default experiment (ring8, gmm, fully synthetic)
  python -m madloop.run data=gaussian model=gaussian loop.generations=100 loop.seeds=64
  python -m madloop.run regime=synthetic_augmentation regime.pool=accumulate sweep.bias.lam=[0.5,0.8,1.0]
  python -m madloop.run experiment=sims_augmentation loop.seeds=4
  python -m madloop.run -m model=gmm,kde regime=fully_synthetic,fresh_data   (a multirun: one job per combination)
  python -m madloop.run data=gaussian model=gaussian --cfg job              (print the composed config, run nothing)"""


def help_text() -> str:
    """What ``--help`` prints: the groups a user composes with their options, the sweepable knobs, and examples
    (Hydra's own help, which also lists the internal schema store, stays behind ``--hydra-help``)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from madloop import api, knobs

    api.register()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=api.CONFIG_MODULE, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = sorted(g for g in loader.list_groups("") if not g.startswith(("schema", "hydra")))
        lines = [
            textwrap.fill(
                ", ".join(sorted(loader.get_group_options(g))),
                116,
                initial_indent=f"  {g + '=':12s}",
                subsequent_indent=" " * 14,
            )
            for g in groups
        ]
    sweeps = ", ".join(k.sweep for k in knobs.KNOBS)
    return (
        "madloop: self-consuming training loops of generative models\n\n"
        "usage: python -m madloop.run [-m] [group=option ...] [key=value ...]\n\n"
        "Config groups (group=option; experiment=NAME picks a preset that sets several groups):\n"
        + "\n".join(lines)
        + "\n\n"
        f"Knobs swept inside one compiled program (a list each): {sweeps}\n\n"
        "Every field can be overridden as key=value (see docs/configuration.md; --cfg job prints the composed "
        "config).\n\nExamples:\n" + EXAMPLES + "\n\nHydra's own options: --hydra-help\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Validates every job (exit 2 with one line on bad input), then hands over to Hydra."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from madloop import api

    try:
        if "--help" in argv or "-h" in argv:
            print(help_text())
            return
        api.register()
        prevalidate(argv)
    except C.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        hydra.main(config_path="pkg://madloop.conf", config_name="config", version_base="1.3")(task)()
    except SystemExit as exc:  # Hydra exits 1 after a failed job; a refused one is a user's mistake: 2
        if exc.code == 1 and _refused:
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
