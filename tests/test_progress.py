"""Progress inside compiled fits: a few host callbacks per training scan, the same numbers as a plain scan."""

import jax
import jax.numpy as jnp
import numpy as np

import madloop
from madloop import progress


def step(c, i):
    c = c * 0.99 + jnp.sin(c + i)
    return c, c.sum()


def test_ticked_scan_equals_the_plain_scan_and_ticks_once_per_chunk():
    x = jnp.linspace(0.0, 1.0, 12).reshape(3, 4)  # 3 vmapped runs
    plain = jax.jit(jax.vmap(lambda c: jax.lax.scan(step, c, jnp.arange(30))))(x)
    ticked_fn = jax.jit(jax.vmap(lambda c: progress.scan_with_ticks(step, c, 30)))
    seen = []
    with progress.listen(lambda steps, done: seen.append((steps, done))):
        ticked = jax.block_until_ready(ticked_fn(x))
    np.testing.assert_array_equal(ticked[0], plain[0])
    np.testing.assert_array_equal(ticked[1], plain[1])  # outputs stacked [runs, steps] in step order
    # 30 steps: 10 chunks of 3, one callback each (not one per vmapped run, not one per step)
    assert seen == [(30, 3 * k) for k in range(1, 11)]
    ticked_fn(x)  # no listener: nothing is reported, and nothing recompiles
    assert len(seen) == 10 and ticked_fn._cache_size() == 1
    assert progress.tick_chunks(4000) == 10 and progress.tick_chunks(7) == 7 and progress.tick_chunks(13) == 1


def test_a_diffusion_run_reports_training_progress(tiny):
    from conftest import TINY_DIFFUSION

    seen = []
    with progress.listen(lambda steps, done: seen.append((steps, done))):
        madloop.simulate(tiny + TINY_DIFFUSION + ["eval.metrics=[sw2]"])
    # generation 0 trains model.train_steps=20, generations 1 and 2 fine-tune model.finetune_steps=5
    assert seen.count((20, 20)) == 1 and seen.count((5, 5)) == 2


def test_single_runs_log_each_chunk_and_multirun_jobs_stay_quiet(caplog):
    import logging

    from madloop.run import Progress

    caplog.set_level(logging.DEBUG, logger="madloop")
    for multirun, level in ((False, logging.INFO), (True, logging.DEBUG)):
        caplog.clear()
        bar = Progress("gaussian", total=4, multirun=multirun)  # stderr is not a terminal under pytest: no bar
        assert bar.bar is None
        for done in (0, 2, 4):
            bar(done, 4, 0.5)
        bar.fit(100, 50)  # a training tick without a bar shows nothing
        assert [r.levelno for r in caplog.records] == [level] * 3
        assert caplog.records[-1].getMessage() == "generation 4/4 (0.5 s)"
