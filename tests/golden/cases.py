"""The fixed set of small runs whose metrics.csv are kept as golden files (tests/golden/*.csv).

Every family x regime x pool, SIMS (loop and sweep), curation, count and float sweeps, images, and the loop
switches (no warm start, n_initial, statistics pool off, float64). Regenerate with ``python -m tests.golden.make``
(only for an intended numeric change, in its own commit).
"""

from __future__ import annotations

SMALL = ["loop.generations=3", "loop.seeds=2", "eval.n=200", "eval.snapshots=0", "eval.snapshot_n=8"]
DIFFUSION = [
    "model=diffusion",
    "model.width=16",
    "model.depth=2",
    "model.time_features=8",
    "model.train_steps=30",
    "model.finetune_steps=10",
    "model.sample_steps=8",
    "model.batch=32",
]
FAMILIES = {
    "gaussian": ["data=gaussian", "data.dim=3", "model=gaussian"],
    "gmm": ["data=ring8", "model=gmm", "model.components=4", "model.init_iters=10", "model.iters=3"],
    "kde": ["data=moons", "model=kde"],
    "diffusion": ["data=ring8", *DIFFUSION],
}
REGIMES = ("fully_synthetic", "synthetic_augmentation", "fresh_data")
POOLS = ("replace", "accumulate", "accumulate_subsample")
COUNTS = ["regime.n_real=64", "regime.n_synth=64"]

CASES: dict[str, list[str]] = {}
for family, fam in FAMILIES.items():
    for regime in REGIMES:
        for pool in POOLS:
            CASES[f"{family}-{regime}-{pool}"] = [*fam, f"regime={regime}", f"regime.pool={pool}", *COUNTS, *SMALL]

CASES.update(
    {
        "sims-augmentation": [
            "data=ring8",
            *DIFFUSION,
            "regime=synthetic_augmentation",
            "guidance=sims",
            "guidance.n_aux=64",
            "guidance.aux_steps=5",
            *COUNTS,
            *SMALL,
        ],
        "sims-omega-sweep": [
            "data=ring8",
            *DIFFUSION,
            "regime=fully_synthetic",
            "guidance=sims",
            "guidance.n_aux=64",
            "guidance.aux_steps=5",
            "sweep.guidance.omega=[0.0,1.5]",
            "guidance.control=modes",
            *COUNTS,
            *SMALL,
        ],
        "curation-k-choice": [
            "data=ring8",
            "model=gmm",
            "model.components=4",
            "model.init_iters=10",
            "model.iters=3",
            "curation=k_choice",
            "curation.k=3",
            "sweep.curation.temperature=[0.1,1.0]",
            *COUNTS,
            *SMALL,
        ],
        "gaussian-lam-weight-sweep": [
            "data=gaussian",
            "model=gaussian",
            "regime=synthetic_augmentation",
            "sweep.bias.lam=[0.8,1.0]",
            "sweep.regime.real_weight=[0.5,2.0]",
            *COUNTS,
            *SMALL,
        ],
        "gaussian-count-sweep": [
            "data=gaussian",
            "model=gaussian",
            "regime=fresh_data",
            "regime.n_real=64",
            "regime.n_synth=64",
            "sweep.regime.n_real=[16,64]",
            "sweep.regime.n_synth=[8,64]",
            *SMALL,
        ],
        "gmm-stats-off-no-warm": [
            *FAMILIES["gmm"],
            "regime.pool=accumulate",
            "loop.stats_pool=false",
            "loop.warm_start=false",
            *COUNTS,
            *SMALL,
        ],
        "gaussian-stats-off": [
            *FAMILIES["gaussian"],
            "regime.pool=accumulate",
            "loop.stats_pool=false",
            *COUNTS,
            *SMALL,
        ],
        "gaussian-n-initial": [
            *FAMILIES["gaussian"],
            "regime=fresh_data",
            "regime.n_initial=200",
            *COUNTS,
            *SMALL,
        ],
        "gaussian-float64": [*FAMILIES["gaussian"], "loop.precision=float64", "data.dim=10", *COUNTS, *SMALL],
        "gaussian-unbiased-chunked": [
            *FAMILIES["gaussian"],
            "model.estimator=unbiased",
            "loop.chunk=1",
            *COUNTS,
            *SMALL,
        ],
        "diffusion-cfg-conditional": [
            "data=ring8",
            *DIFFUSION,
            "model.classes=8",
            "model.bias=cfg",
            "bias.lam=0.5",
            "model.prediction=x0",
            "model.sampler=ddim",
            *COUNTS,
            *SMALL,
        ],
        "digits-diffusion-mlp": [
            "data=digits",
            *DIFFUSION,
            "regime=synthetic_augmentation",
            "regime.n_real=128",
            "regime.n_synth=128",
            *SMALL,
        ],
        "digits-diffusion-unet": [
            "data=digits",
            *DIFFUSION,
            "model.network=unet",
            "model.channels=[4,8]",
            "model.train_steps=5",
            "model.finetune_steps=2",
            "model.sample_steps=3",
            "regime.n_real=64",
            "regime.n_synth=64",
            "loop.generations=1",
            "loop.seeds=1",
            "eval.n=100",
            "eval.snapshots=0",
            "eval.snapshot_n=8",
        ],
        "grid25-gmm-mixture-metrics": [
            "data=grid25",
            "model=gmm",
            "model.components=25",
            "model.init_iters=5",
            "model.iters=2",
            "regime=synthetic_augmentation",
            "regime.pool=accumulate_subsample",
            "regime.subsample=100",
            "regime.n_real=128",
            "regime.n_synth=64",
            *SMALL,
        ],
    }
)
