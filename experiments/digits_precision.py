"""Does feature-space precision fall at lambda = 1 on digits? MAD's fully synthetic loop under MAD's protocol.

Usage:
    python experiments/digits_precision.py --csv docs/data/digits_precision.csv [--seeds 8] [--generations 10]
    python experiments/digits_precision.py --from-csv docs/data/digits_precision.csv --out docs/digits_precision.png

The first version of ``experiment=digits_fully_synthetic`` found precision flat at lambda = 1, against MAD's
"precision falls". Its protocol differed from MAD's in three ways, each varied here:
- **Refits.** Every generation is retrained from scratch (MAD), and, for comparison, fine-tuned from the previous
  one (``--protocols`` includes ``finetune``).
- **Sampling bias.** The sampler's temperature (lam = noise variance), and classifier-free guidance on a conditional
  model (weight w = 1 / lam - 1, as MAD biased its DDPM), at lam in {1, 0.6}.
- **The k-NN balls.** k in {3, 5, 10}, in two feature spaces: the source's feature classifier (64 features) and a
  second classifier of another width, trained with another key (128 features). The real-vs-real floor of every
  (extractor, k) is measured at the same sample size (359 against the 359 held-out images).

Every generation's 359 evaluation samples are kept, and the metrics at each k and extractor are computed from them
after the run (``madloop.metrics.prdc``, the same function the loop uses).

References:
    Alemohammad et al. 2023, "Self-Consuming Generative Models Go MAD", Sec. 3 (MNIST, DDPM, lambda).
    Kynkäänniemi et al. 2019 (k-NN precision and recall); Naeem et al. 2020 (density and coverage).
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import t as student  # noqa: E402

import madloop  # noqa: E402
from madloop import metrics as M  # noqa: E402
from madloop.parts import parts_of  # noqa: E402

PRESET = "experiment=digits_fully_synthetic"
PROTOCOLS = {
    "temperature": ["loop.warm_start=false"],
    "cfg": ["loop.warm_start=false", "model.classes=10", "model.label_dropout=0.1", "model.bias=cfg"],
    "finetune": ["loop.warm_start=true"],  # the first version's protocol (temperature bias)
}
KS = (3, 5, 10)
SECOND = {"channels": (16, 32), "features": 128, "seed": 1}  # the second feature extractor's settings


def extractors() -> dict[str, tuple]:
    """{name: (apply, params)}: the source's feature classifier and a second one (another width and key)."""
    from madloop.classifier import Settings, fit_classifier
    from madloop.data.images import digits, split

    data = digits()
    train, held = split(data.labels, 0.2, 0)
    pick = lambda idx: (data.images[idx], data.labels[idx])  # noqa: E731
    first = fit_classifier(pick(train), pick(held), 10)
    second = fit_classifier(pick(train), pick(held), 10, Settings(**SECOND))
    return {"classifier": first, "classifier_b": second}


def scores(feats: jax.Array, real: jax.Array, k: int) -> jax.Array:
    """[4] precision, recall, density, coverage of feats [m, f] against real [n, f] with k-NN balls."""
    out = M.prdc(M.kth_neighbour_distance(real, k), real, feats, k)
    return jnp.stack([out["precision"], out["recall"], out["density"], out["coverage"]])


def run(a: argparse.Namespace, rest: list[str]) -> None:
    rows, floors = [], []
    clfs = extractors()
    for protocol in a.protocols:
        overrides = [
            PRESET,
            *PROTOCOLS[protocol],
            f"loop.seeds={a.seeds}",
            f"loop.generations={a.generations}",
            f"eval.snapshots={a.generations - 1}",  # every generation's samples
            "eval.snapshot_n=359",
            *rest,
        ]
        t0 = time.perf_counter()
        result = madloop.simulate(overrides)
        seconds = time.perf_counter() - t0
        table = result.table()
        source = parts_of(madloop.compose(overrides)).source
        held = source.heldout
        gens = result.snapshot_generations
        for name, clf in clfs.items():
            real_f = clf.apply(clf.params, held)[0]
            feats = jax.vmap(jax.vmap(lambda x, c=clf: c.apply(c.params, x)[0]))(jnp.asarray(result.snapshots))
            for k in KS:
                s = np.asarray(jax.vmap(jax.vmap(lambda f, k=k, r=real_f: scores(f, r, k)))(feats))  # [B, G, 4]
                for b in range(s.shape[0]):
                    for gi, g in enumerate(gens):
                        rows.append(
                            {
                                "protocol": protocol,
                                "seed": int(result.seed[b]),
                                "lam": float(result.knobs["lam"][b]) if "lam" in result.knobs else 1.0,
                                "generation": int(g),
                                "extractor": name,
                                "k": k,
                                **dict(zip(("precision", "recall", "density", "coverage"), s[b, gi], strict=True)),
                            }
                        )
                if protocol == a.protocols[0]:  # real vs real: 359 training images per seed against the held-out
                    keys = jax.random.split(jax.random.key(17), a.seeds)
                    real_draws = jax.vmap(lambda key, s=source, n=held.shape[0]: s.sample(key, n))(keys)
                    rf = jax.vmap(lambda x, c=clf: c.apply(c.params, x)[0])(real_draws)
                    f = np.asarray(jax.vmap(lambda x, k=k, r=real_f: scores(x, r, k))(rf))
                    for i in range(a.seeds):
                        floors.append(
                            {
                                "extractor": name,
                                "k": k,
                                "seed": i,
                                **dict(zip(("precision", "recall", "density", "coverage"), f[i], strict=True)),
                            }
                        )
        extra = table[["seed", "generation", "fd", "class_entropy", "confidence"]].assign(
            protocol=protocol, lam=table["lam"] if "lam" in table else 1.0
        )
        extra.to_csv(a.csv.replace(".csv", f"_{protocol}_table.csv"), index=False)
        print(f"{protocol}: {seconds:.0f} s (compilation included)", flush=True)
        pd.DataFrame(rows).to_csv(a.csv, index=False)  # after every protocol: a cut-short run keeps what it finished
        pd.DataFrame(floors).to_csv(a.csv.replace(".csv", "_floors.csv"), index=False)


def ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    values = values[np.isfinite(values)]
    return float(values.mean()), float(student.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def report(table: pd.DataFrame, floors: pd.DataFrame, out: str) -> None:
    g = int(table.generation.max())
    print(f"precision: generation 0 -> {g}, change paired per seed, mean [95% CI]; floor = real vs real at n = 359")
    print("| protocol | lam | extractor | k | floor | generation 0 | generation G | change |")
    print("|---|---|---|---|---|---|---|---|")
    for (protocol, lam, name, k), t in table.groupby(["protocol", "lam", "extractor", "k"], sort=False):
        wide = t.pivot_table(index="seed", columns="generation", values="precision")
        f = ci(floors[(floors.extractor == name) & (floors.k == k)]["precision"].to_numpy())
        m0, m1 = ci(wide[0].to_numpy()), ci(wide[g].to_numpy())
        d = ci((wide[g] - wide[0]).to_numpy())
        print(
            f"| {protocol} | {lam:g} | {name} | {k} | {f[0]:.3f} ± {f[1]:.3f} | {m0[0]:.3f} ± {m0[1]:.3f} | "
            f"{m1[0]:.3f} ± {m1[1]:.3f} | {d[0]:+.3f} [{d[0] - d[1]:+.3f}, {d[0] + d[1]:+.3f}] |"
        )
    protocols = list(dict.fromkeys(table.protocol))
    fig, axes = plt.subplots(2, len(protocols), figsize=(4.2 * len(protocols), 6.4), squeeze=False)
    for col, protocol in enumerate(protocols):
        for row, name in enumerate(("classifier", "classifier_b")):
            ax = axes[row, col]
            for i, k in enumerate(KS):
                for lam, style in ((1.0, "-"), (0.6, "--")):
                    t = table[
                        (table.protocol == protocol) & (table.extractor == name) & (table.k == k) & (table.lam == lam)
                    ]
                    if t.empty:
                        continue
                    s = t.groupby("generation")["precision"].agg(["mean", "sem"])
                    ax.plot(s.index, s["mean"], style, color=f"C{i}", label=f"k={k}, λ={lam:g}")
                    ax.fill_between(
                        s.index, s["mean"] - 1.96 * s["sem"], s["mean"] + 1.96 * s["sem"], color=f"C{i}", alpha=0.12
                    )
                fl = floors[(floors.extractor == name) & (floors.k == k)]["precision"].mean()
                ax.axhline(fl, color=f"C{i}", ls=":", lw=1)
            ax.set_title(f"{protocol}: precision, {name}", fontsize=9)
            ax.set_xlabel("generation")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(
        f"digits, fully synthetic loop; {table.seed.nunique()} seeds; dotted: real-vs-real floors", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default="docs/data/digits_precision.csv")
    p.add_argument("--from-csv", default=None)
    p.add_argument("--out", default="docs/digits_precision.png")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--protocols", type=lambda s: s.split(","), default=list(PROTOCOLS), help="e.g. temperature,cfg")
    a, rest = p.parse_known_args()
    path = a.from_csv or a.csv
    if not a.from_csv:
        run(a, rest)
    floors = pd.read_csv(path.replace(".csv", "_floors.csv"))
    report(pd.read_csv(path), floors, a.out)


if __name__ == "__main__":
    main()
