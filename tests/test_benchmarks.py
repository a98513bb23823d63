"""The benchmarks' reference loops compute what madloop computes: they agree statistically on small cases (so the
speed ratios in docs/benchmarks.md compare like with like)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import madloop
from benchmarks import agreement, references, run


def agree(a: np.ndarray, b: np.ndarray, z: float = 4.5) -> tuple[bool, float]:
    """Whether two independent samples have means within z combined standard errors; and that distance in SEs."""
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    dist = abs(a.mean() - b.mean()) / se
    return dist < z, dist


@pytest.mark.parametrize("pool", ["replace", "accumulate"])
def test_numpy_gaussian_reference_matches_madloop(pool):
    seeds, dim, n, g = 400, 2, 10, 8
    ref = np.stack([references.gaussian_loop(s, dim, n, g, pool) for s in range(seeds)])
    table = madloop.run_table(
        ["data=gaussian", f"data.dim={dim}", "model=gaussian", "regime=fully_synthetic", f"regime.pool={pool}"]
        + [f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.generations={g}", f"loop.seeds={seeds}"]
        + ["eval=closed_form", "eval.metrics=[trace_ratio]", "plots=false"]
    )
    ours = table.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
    for gen in (1, g):
        ok, dist = agree(np.log(ref[:, gen]), np.log(ours[:, gen]))
        assert ok, (pool, gen, dist)
    # and the check has power: a loop that forgot the MLE's (n - 1) / n shrinkage per generation would fail it
    if pool == "replace":
        ok, _ = agree(np.log(ref[:, g]) - g * np.log((n - 1) / n), np.log(ours[:, g]))
        assert not ok


def test_sklearn_gmm_reference_matches_madloop():
    seeds, n, g, init_iters, iters = 12, 128, 3, 100, 10
    rng = np.random.default_rng(1234)
    heldout = references.ring8(rng, 1000)
    ref = np.stack([references.gmm_loop(s, n, g, init_iters, iters, heldout) for s in range(seeds)])
    table = madloop.run_table(
        ["data=ring8", "model=gmm", "model.components=8", f"model.init_iters={init_iters}", f"model.iters={iters}"]
        + ["regime=fully_synthetic", f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.generations={g}"]
        + [f"loop.seeds={seeds}", "eval=closed_form", "eval.metrics=[nll]", "eval.n=1000", "plots=false"]
    )
    ours = table.pivot(index="seed", columns="generation", values="nll").to_numpy()
    for gen in (0, g):
        ok, dist = agree(ref[:, gen], ours[:, gen])
        assert ok, (gen, dist, ref[:, gen].mean(), ours[:, gen].mean())
    # both fit the ring: the held-out nll at generation 0 lies within 0.5 nats above the truth's entropy (8 modes of
    # std 0.05: -1.07 nats per sample); 128 samples for 8 components leave some fits with merged modes
    truth = np.log(8) + np.log(2 * np.pi * 0.05**2) + 1
    for side in (ref, ours):
        assert truth - 0.05 < np.median(side[:, 0]) < truth + 0.5


def gaussian_table(pool: str, seeds: int, dim: int, n: int, g: int) -> np.ndarray:
    """madloop's trace ratios [seeds, g + 1] for the Gaussian fully synthetic MLE loop."""
    table = madloop.run_table(
        ["data=gaussian", f"data.dim={dim}", "model=gaussian", "regime=fully_synthetic", f"regime.pool={pool}"]
        + [f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.generations={g}", f"loop.seeds={seeds}"]
        + ["eval=closed_form", "eval.metrics=[trace_ratio]", "plots=false"]
    )
    return table.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()


def unbiased_vectorised(seeds: int, dim: int, n: int, g: int) -> np.ndarray:
    """A deliberately wrong reference: the vectorised replace loop with the unbiased covariance (divide by n - 1)
    where the benchmark's loop uses the MLE, the slip a reference script most plausibly makes."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((seeds, n, dim))
    out = np.empty((seeds, g + 1))
    for gen in range(g + 1):
        _, mean, scatter = references.stats(x)
        cov = scatter / (n - 1)
        out[:, gen] = np.trace(cov, axis1=1, axis2=2) / dim
        x = mean[:, None, :] + rng.standard_normal((seeds, n, dim)) @ np.linalg.cholesky(cov).transpose(0, 2, 1)
    return out


@pytest.mark.parametrize("pool", ["replace", "accumulate"])
@pytest.mark.parametrize("dim", [2, 10])
def test_vectorised_reference_agrees_with_madloop_and_the_check_flags_a_wrong_one(pool, dim):
    seeds, n, g = 400, 12, 8
    ours = np.log(gaussian_table(pool, seeds, dim, n, g))
    ref = np.log(references.gaussian_loop_vectorised(3, seeds, dim, n, g, pool))
    for gen in (1, g):
        c = agreement.compare(ours[:, gen], ref[:, gen])
        assert c["agree"], (pool, dim, gen, c)
    if pool == "replace":
        # power: a reference with the unbiased covariance is g log(n / (n - 1)) = 0.70 higher at generation 8;
        # the runner's check flags it and the runner would exit non-zero
        wrong = agreement.compare(ours[:, g], np.log(unbiased_vectorised(seeds, dim, n, g)[:, g]))
        assert not wrong["agree"], wrong
        results = {"gaussian": {"rows": [{"case": "test", "agree_vectorised": [wrong]}]}}
        lines = run.disagreements(results, ["gaussian"])
        assert len(lines) == 1 and lines[0].startswith("DISAGREE [gaussian] test")


def test_vectorised_square_roots_agree():
    """Cholesky and eigh square roots give the same law (eigh is the fallback for non-PD covariances)."""
    seeds, dim, n, g = 400, 10, 12, 6
    a = np.log(references.gaussian_loop_vectorised(1, seeds, dim, n, g, "replace", sqrt="cholesky")[:, g])
    b = np.log(references.gaussian_loop_vectorised(2, seeds, dim, n, g, "replace", sqrt="eigh")[:, g])
    assert agreement.compare(a, b)["agree"]


def test_merged_statistics_equal_a_full_refit():
    """The competent accumulate reference keeps the pool as merged statistics; they equal refitting on every
    pooled sample (float64 rounding), so it runs the same algorithm as madloop's loop.stats_pool, O(n) per step."""
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 0.1, (5, m, 3)) for m in (7, 1, 12)]
    merged = references.stats(parts[0])
    for part in parts[1:]:
        merged = references.merge_stats(merged, references.stats(part))
    full = references.stats(np.concatenate(parts, axis=1))
    assert merged[0] == full[0] == 20
    np.testing.assert_allclose(merged[1], full[1], rtol=1e-12)
    np.testing.assert_allclose(merged[2], full[2], rtol=1e-10)


def test_sklearn_reference_restores_the_model_when_a_fit_raises():
    """scikit-learn overwrites the parameters before raising; the competent reference puts the old model back."""
    import warnings

    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    degenerate = np.zeros((50, 2))
    degenerate[:25, 0] = 1.0  # two points, repeated: every component's covariance is singular (reg_covar = 0)
    for restore in (True, False):
        gm = GaussianMixture(2, reg_covar=0.0, warm_start=True, max_iter=5, tol=0.0, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(rng.standard_normal((50, 2)))
            before = gm.means_.copy()
            kept, failed = references.refit_or_keep(gm, degenerate, restore=restore)
        assert failed
        if restore:
            np.testing.assert_array_equal(kept.means_, before)
        else:  # the published-script style carries on from the half-written model
            assert not np.allclose(kept.means_, before)


def test_sklearn_competent_reference_draws_fresh_samples_each_generation():
    """An integer random_state makes GaussianMixture.sample repeat its draws; the competent loop's stream advances,
    so its held-out NLL path differs from the published-script loop's after generation 0 (same generation 0)."""
    heldout = references.ring8(np.random.default_rng(1), 200)
    comp = references.gmm_loop(0, 64, 3, 50, 5, heldout, competent=True)
    script = references.gmm_loop(0, 64, 3, 50, 5, heldout, competent=False)
    assert comp[0] == script[0]
    assert not np.allclose(comp[1:], script[1:])


def test_batched_torch_step_equals_adamw_per_seed():
    """The batched PyTorch reference's training step is torch.optim.AdamW with clip_grad_norm_(1) per seed."""
    torch = pytest.importorskip("torch")
    from benchmarks import diffusion_loop

    a = diffusion_loop.parser().parse_args(["--width=8", "--depth=2", "--time-features=4", "--batch=6"])
    ref = diffusion_loop.BatchedTorch(a)
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 8), (1, 8), (8, 8), (1, 8), (8, 2), (1, 2)]
    params = [torch.randn(3, *s, generator=g).requires_grad_() for s in shapes]
    x0, eps = torch.randn(3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g)
    t = torch.rand(3, 6, generator=g)
    start = [p.detach().clone() for p in params]
    m, v, ema = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params], [p.clone() for p in start]
    for step in (1, 2):  # two steps: the second uses AdamW's moments
        for p in params:
            p.grad = None
        (ref.loss_fn(params, x0, t, eps) * (10.0 if step == 1 else 1.0)).backward()  # step 1 clips (large grad)
        scalars = [torch.tensor(c) for c in (0.01, 1 - 0.9**step, 1 - 0.999**step, 0.5)]
        ref.update(params, [p.grad for p in params], m, v, ema, *scalars)
    for s in range(3):
        mine = [p[s].detach().clone().requires_grad_() for p in start]
        opt = torch.optim.AdamW(mine, lr=0.01, weight_decay=0.0)
        for step in (1, 2):
            opt.zero_grad()
            loss = ref.loss_fn([p[None] for p in mine], x0[s : s + 1], t[s : s + 1], eps[s : s + 1])
            (loss * (10.0 if step == 1 else 1.0)).backward()
            norm = torch.nn.utils.clip_grad_norm_(mine, 1.0)
            if step == 1:
                assert norm > 1.0  # the clipping branch is exercised
            opt.step()
        for p, q in zip(params, mine, strict=True):
            torch.testing.assert_close(p[s].detach(), q.detach(), rtol=1e-5, atol=1e-6)


def test_table_marks_disagreement_and_states_repeat_counts():
    """The rendered table says DISAGREE beside a failed check and 'median of k' / '1 run' for each timing; the
    published-script GMM loop (another loop: it reuses its draws) is shown but does not gate the exit status."""
    bad = agreement.compare(np.arange(10.0), np.arange(10.0) + 10.0)  # z = 7.4
    good = agreement.compare(np.arange(10.0), np.arange(10.0) + 0.1)
    gmm = {
        "case": "ring8",
        "seeds": 4,
        "generations": 2,
        "madloop_first": 2.0,
        "madloop_steady": 1.0,
        "madloop_steady_all": [1.0, 1.1, 0.9],
        "madloop_compile": 1.0,
        "median_nll_madloop": [-0.8, 3.0],
        "agree_script_gates": False,
    }
    for style, check in (("competent", good), ("script", bad)):
        gmm |= {f"sklearn_{style}": 10.0, f"sklearn_{style}_all": [10.0], f"sklearn_{style}_failed_fits": 1}
        gmm |= {f"median_nll_sklearn_{style}": [-0.7, 2.0], f"agree_{style}": [good, check]}
    results = {"gmm": {"date": "d", "machine": "m", "note": "n", "rows": [gmm]}}
    table = run.markdown(results)
    assert "**DISAGREE**" in table and "median of 3" in table and "(1 run)" in table
    assert run.disagreements(results, ["gmm"]) == []  # only the non-gating script check failed
    gmm["agree_competent"] = [good, bad]
    assert len(run.disagreements(results, ["gmm"])) == 1


def family_replay_and_wrong_reference(family: str, lr_factor: float = 2.0) -> tuple[dict, dict]:
    """benchmarks/family_steps.py at tiny size: one measured row, and the replay check of a reference whose learning
    rate is off by ``lr_factor`` (the same compiled madloop program, so it costs only the PyTorch steps)."""
    from benchmarks import family_steps

    row = family_steps.measure_family(family, 4, steps=4, replay_steps=4, repeats=1, ref_repeats=1, tiny=True)
    return row, family_steps.replay(family, 4, 4, 4, tiny=True, lr_factor=lr_factor)


def check_family_row(row: dict, wrong: dict) -> None:
    assert row["replay"]["agree"] and row["replay"]["max_rel_diff"] < 1e-5, row["replay"]
    assert row["agree_torch"]["agree"], row["agree_torch"]
    assert not wrong["agree"] and wrong["max_rel_diff"] > 2 * wrong["tol"], wrong
    results = {"families": {"date": "d", "machine": "m", "note": "n", "rows": [row, {**row, "replay": wrong}]}}
    lines = run.disagreements(results, ["families"])
    assert len(lines) == 1 and lines[0].startswith("DISAGREE [families]") and "replay" in lines[0]
    table = run.markdown(results)
    assert table.count("**DISAGREE**") == 1 and "(1 run" in table


def test_family_steps_reference_replays_madloop_and_flags_a_wrong_learning_rate():
    """The families benchmark's PyTorch reference, fed madloop's own draws from madloop's initial weights, gives the
    same loss curve (flow matching, tiny networks); a reference with twice the learning rate fails the replay check
    and the runner flags the row."""
    pytest.importorskip("torch")
    check_family_row(*family_replay_and_wrong_reference("flow_matching"))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flow", "gan", "edm"])
def test_family_steps_reference_replays_the_other_families(family):
    pytest.importorskip("torch")
    check_family_row(*family_replay_and_wrong_reference(family))


def test_transformer_reference_trains_like_madloop_and_the_check_flags_wrong_ones():
    """The batched PyTorch transformer of benchmarks/transformer_step.py, from madloop's initial weights on madloop's
    minibatches, gives madloop's step-0 loss and its loss after a few AdamW steps (2 seeds, tiny sizes); a reference
    without the causal mask, or with twice the learning rate, is flagged (8-9% apart, against a 2e-4 tolerance)."""
    pytest.importorskip("torch")
    import dataclasses

    from benchmarks import transformer_step

    cfg, _, _, _ = transformer_step.preset_sizes()
    tiny = dataclasses.replace(cfg, width=8, depth=1, heads=2, batch=8)
    same, unmasked, faster = transformer_step.agreement(
        tiny, 5, 6, seeds=2, n=32, steps=4, references=({}, {"causal": False}, {"lr": 2 * tiny.lr})
    )
    assert same["agree"], same
    assert not unmasked["agree"] and unmasked["rel0"] > 100 * transformer_step.LOSS_RTOL, unmasked
    assert not faster["agree"] and faster["rel0"] < transformer_step.LOSS_RTOL, faster  # same start, other steps
    assert faster["rel_after"] > 100 * transformer_step.LOSS_RTOL, faster


def test_table_write_benchmark_round_trips_both_formats(capsys, monkeypatch):
    """benchmarks/table_write.py at tiny size: both formats read back equal, and the eval.every stride's rows."""
    from benchmarks import table_write

    table = table_write.phase_map_table(points=4, seeds=3, generations=10, every=4)
    assert sorted(table["generation"].unique()) == [0, 4, 8, 10] and len(table) == 4 * 3 * 4
    monkeypatch.setattr("sys.argv", ["table_write", "--points", "4", "--seeds", "3", "--generations", "10"])
    table_write.main()
    out = capsys.readouterr().out
    assert "| csv |" in out and "| parquet |" in out and "agreement: both tables read back equal" in out


def test_metric_groups_benchmark_compiles_both_ways_and_the_tables_agree(capsys, monkeypatch):
    """benchmarks/metric_groups.py at tiny size: a pairwise metric group gets madloop's options where they apply,
    a parameter-metric group none, and the two compilations of each group agree to float32 rounding."""
    from benchmarks import metric_groups

    tiny = ["data=gaussian", "model=gaussian", "loop.seeds=2", "loop.generations=2", "eval.n=64"]
    monkeypatch.setattr("sys.argv", ["metric_groups", "--repeats", "1", *tiny, "eval.metrics=[trace_ratio,mmd]"])
    metric_groups.main()
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" |")[0].strip("| "): line for line in lines if line[:2] == "| " and "metric group" not in line}
    assert "| no (none) |" in rows["moments (trace_ratio)"]
    assert "| yes (" in rows["mmd (mmd)"]
    rel = {k: float(row.rstrip(" |").split("| ")[-1]) for k, row in rows.items()}
    assert rel["moments (trace_ratio)"] < 1e-6  # no option: the same program twice
    # the same MMD summed in another order: float32 rounding, amplified by the estimate's cancellation (a wrong
    # computation, e.g. the diagonal left in, is off by O(1))
    assert rel["mmd (mmd)"] < 1e-2


@pytest.mark.slow
def test_gaussian_stages_benchmark_rebuilds_the_loop(tmp_path, monkeypatch):
    """benchmarks/gaussian_stages.py at tiny size: every stage and the loop are timed, and its last stage (the loop
    rebuilt from madloop's own functions) follows the same law as madloop's loop: the final log trace ratios of 200
    seeds agree within 4.5 SE. A last stage that forgot the MLE's (n - 1) / n shrinkage would fail at this size."""
    from benchmarks import gaussian_stages

    out = tmp_path / "stages.json"
    argv = ["gaussian_stages", "--seeds", "200", "--generations", "40", "--dims", "3", "--repeats", "1"]
    monkeypatch.setattr("sys.argv", [*argv, "--json", str(out)])
    gaussian_stages.main()
    rows = json.loads(out.read_text())["rows"]
    assert [r["stage"] for r in rows] == [*gaussian_stages.NAMES, "madloop"]
    assert all(r["steady"] > 0 for r in rows)
    keys = jax.random.split(jax.random.key(0), 200)
    stage = np.log(np.asarray(gaussian_stages.stage_program(5, 3, 41)(keys)) / 3)
    loop = madloop.run_table([*run.gaussian_overrides(3, "replace", gaussian_stages.N, 40, 200), "loop.seed=7"]).query(
        "generation == 40"
    )["trace_ratio"]
    ok, dist = agree(stage, np.log(loop.to_numpy()))
    assert ok, dist
    ok, _ = agree(stage + 41 * np.log(gaussian_stages.N / (gaussian_stages.N - 1)), np.log(loop.to_numpy()))
    assert not ok


@pytest.mark.slow
def test_device_check_script_runs_quick_on_cpu(tmp_path):
    """benchmarks/device_check.sh --quick: the GPU table's script, at small sizes on this CPU, so that it does not
    rot between the sessions that have a GPU (the diffusion section runs where PyTorch is installed)."""
    env = {**os.environ, "PY": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", "benchmarks/device_check.sh", "--quick"], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for section in ("targets", "digits", "steps", "gaussian", "gmm"):
        assert f"== section {section}: exit 0" in proc.stdout, proc.stdout[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"gaussian", "gmm"} <= set(results)
    assert "DISAGREE" not in (tmp_path / "benchmarks.md").read_text()
    # the targets table: every target of the sweeps issue measured, and both Gaussian loops agree with their law
    targets = json.loads((tmp_path / "targets.json").read_text())["rows"]
    assert len(targets) == 11 and all(np.isfinite(r["value"]) and r["value"] > 0 for r in targets)
    assert all(r["met"] is not None for r in targets)
    assert "DISAGREES" not in proc.stdout
    # the digits U-Net loop ran (a reported row, no goal) and the training-step sweep wrote its rows, FLOPs counted
    (digits,) = json.loads((tmp_path / "digits.json").read_text())["rows"]
    assert digits["goal"] is None and digits["value"] > 0
    for network, count in (("mlp", 4), ("unet", 2)):
        steps = json.loads((tmp_path / f"steps_{network}.json").read_text())["rows"]
        assert len(steps) == count and all(r["gflop_per_step"] > 0 and 0 < r["fraction"] < 1.5 for r in steps)
    # and the last table holds every target row of both files
    assert "of 11 targets met" in proc.stdout.split("every section together")[-1]


def test_torch_gmm_reference_takes_madloop_s_em_step():
    """benchmarks/gmm_torch.py's batched EM step equals madloop's EM step chain by chain (the same algorithm: the
    speed ratio compares like with like); the same step with another reg_covar is told apart."""
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    from benchmarks import gmm_torch
    from madloop.mixture import Mixture
    from madloop.models.gmm import em_step

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 64, 2)).astype(np.float32) + rng.choice([-2.0, 2.0], size=(3, 64, 1)).astype(np.float32)
    means = x[:, :4].copy()  # K = 4 components started on data points
    a = rng.normal(size=(3, 4, 2, 2)).astype(np.float32)
    covs = (a @ a.transpose(0, 1, 3, 2) + 0.5 * np.eye(2, dtype=np.float32)).astype(np.float32)
    weights = np.full((3, 4), 0.25, np.float32)
    t = gmm_torch.em_step(*(torch.as_tensor(v) for v in (x, means, covs, weights)))
    for s in range(3):
        m = em_step(
            Mixture(jnp.asarray(weights[s]), jnp.asarray(means[s]), jnp.asarray(covs[s])), x[s], jnp.ones(64), 1e-6
        )
        np.testing.assert_allclose(t[0][s].numpy(), m.means, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(t[1][s].numpy(), m.covs, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(t[2][s].numpy(), m.weights, rtol=2e-4, atol=2e-6)
    wrong = gmm_torch.em_step(*(torch.as_tensor(v) for v in (x, means, covs, weights)), reg_covar=1e-1)
    assert not np.allclose(wrong[1].numpy(), t[1].numpy(), rtol=2e-4, atol=2e-5)
