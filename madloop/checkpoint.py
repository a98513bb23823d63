"""Checkpoints of the Python-stepped loop (Orbax), so a killed run resumes from its last completed generation.

Between compiled chunks the engine saves the loop state of every run and the table rows so far. Orbax writes a
step into a temporary folder and renames it when complete, so a run killed at any moment (``kill -9``) leaves
the last completed step readable. Keys are derived from (run key, generation, role), never carried, so the
resumed run draws exactly the numbers the uninterrupted one would have: the results are identical.

A checkpoint remembers a fingerprint of the config that wrote it; resuming with another config is an error
rather than a silent mix of two experiments. The final step is kept, so re-running a finished job (e.g. a
resubmitted cluster sweep) returns its results without computing them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np

from madloop import config as C


def fingerprint(cfg: C.Config) -> str:
    """A hash of everything in the config that changes the results (not ``plots``, ``eval.floors``,
    ``loop.checkpoint``, the tracker or the output format)."""
    same = dataclasses.replace(
        cfg,
        plots=True,
        logger=None,
        output=C.OutputConfig(),
        loop=dataclasses.replace(cfg.loop, checkpoint=False),
        eval=dataclasses.replace(cfg.eval, floors=True),
    )
    return hashlib.sha256(repr(same).encode()).hexdigest()[:16]


class Checkpointer:
    """Saves and restores ``(state, rows)`` PyTrees in ``directory`` (an Orbax CheckpointManager, one step kept).

    Args:
        directory: the checkpoint folder (created on the first save).
        cfg: the experiment's config (its fingerprint is stored with every step and checked on restore).
    """

    def __init__(self, directory: str | Path, cfg: C.Config):
        self.directory = Path(directory).absolute()
        self.fingerprint = fingerprint(cfg)
        self._manager = None

    def _mgr(self):
        import orbax.checkpoint as ocp

        if self._manager is None:
            logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
            options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        return self._manager

    def latest(self) -> int | None:
        """The last completed generation saved, or None when there is no checkpoint."""
        if not self.directory.exists():
            return None
        return self._mgr().latest_step()

    def save(self, generation: int, tree: Any) -> None:
        """Saves the PyTree ``tree`` (arrays, runs first) as the state after ``generation``."""
        import orbax.checkpoint as ocp

        meta = {"fingerprint": self.fingerprint, "generation": int(generation)}
        args = ocp.args.Composite(arrays=ocp.args.StandardSave(_nonempty(tree)), meta=ocp.args.JsonSave(meta))
        self._mgr().save(int(generation), args=args)
        self._mgr().wait_until_finished()

    def restore(self, abstract: Any) -> tuple[Any, int] | None:
        """The last saved tree (numpy arrays shaped like ``abstract``, a PyTree of ShapeDtypeStruct) and its
        generation, or None when there is no checkpoint.

        Raises:
            ConfigError: when the checkpoint was written by a different config.
        """
        import orbax.checkpoint as ocp

        step = self.latest()
        if step is None:
            return None
        mgr = self._mgr()
        meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta.get("fingerprint") != self.fingerprint:
            raise C.ConfigError(
                "loop.checkpoint",
                str(self.directory),
                "holds a checkpoint of a different config; delete it or write to another output folder",
            )
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), abstract)
        tree = mgr.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(_nonempty(target))))["arrays"]
        # writable copies; the empty arrays, which were not saved, rebuilt from their shapes
        tree = jax.tree.map(lambda s, a: np.zeros(s.shape, s.dtype) if a is None else np.array(a), abstract, tree)
        return tree, int(meta["generation"])


def _nonempty(tree: Any) -> Any:
    """The tree with every array of size 0 replaced by None (Orbax refuses to save them; e.g. the [runs, 0] pool
    weights of a pool kept as sufficient statistics)."""
    return jax.tree.map(lambda a: a if np.prod(a.shape) else None, tree)
