"""The image metrics: the digits feature classifier, feature-space fd and PRDC, the class histogram."""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from madloop import config as C
from madloop import metrics as M
from madloop.curation import KChoiceCuration, NoCuration, make_curation
from madloop.data.images import DigitsData
from madloop.metrics.fidelity import kid, polynomial_reference
from madloop.types import GenerativeModel

NAMES = ("fd", "precision", "recall", "density", "coverage", "class_entropy", "confidence", *M.class_columns(10))


@pytest.fixture(scope="module")
def digits():
    from madloop.data import make_source

    source = make_source(DigitsData())
    return source, source.classifier()


def context(source, curation=None) -> M.Context:
    """An image run's parts as the metrics read them (a family without density or moments, as diffusion)."""
    family = GenerativeModel(None, None, None)
    curation = make_curation(NoCuration() if curation is None else curation, source)
    return M.Context(source, family, curation, C.EvalConfig())


def test_the_digits_classifier_is_accurate_reproducible_and_cached(digits, tmp_path, monkeypatch):
    """Held-out accuracy >= 0.95 (0.975 measured: 350 of 359) for the shipped weights; two trainings into two
    empty caches give the same weights bit for bit; a training run is stored under a key that changes with the
    data and the settings, a later call reads it from disk, and a damaged file is retrained."""
    from madloop import classifier as K
    from madloop.data import images as I

    source, clf = digits
    assert clf.accuracy >= 0.95
    # data=digits' default classifier ships in the package (regenerate with python -m madloop.classifier): its
    # key must match the current data, architecture and settings, or every run would train a new one.
    assert (K.SHIPPED / f"conv-{clf.key}.msgpack").exists()
    data = I.digits()
    train, held = I.split(data.labels, 0.2, seed=0)
    parts = (data.images[train], data.labels[train]), (data.images[held], data.labels[held])
    settings = K.Settings(steps=30)  # a short training: reproducibility and the cache's behaviour, not accuracy

    def fit_into(folder):
        """A classifier trained (nothing in memory, an empty cache ``folder``) and the one file it cached."""
        monkeypatch.setenv("MADLOOP_CACHE_DIR", str(folder))
        K._MEMO.clear()
        fitted = K.fit_classifier(*parts, 10, settings)
        files = list((folder / "classifiers").glob("*.msgpack"))
        assert len(files) == 1 and fitted.key in files[0].name
        return fitted, files[0]

    def same_weights(x, y):
        return all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True))

    a, file_a = fit_into(tmp_path / "one")
    b, file_b = fit_into(tmp_path / "two")  # trained again from scratch, not read from the first cache
    assert same_weights(a.params, b.params) and b.accuracy == a.accuracy and b.key == a.key
    assert file_b.read_bytes() == file_a.read_bytes()
    # A later call reads the cached file: zeroed weights written there come back as they are (a retrain would not)
    zeros = jax.tree.map(np.zeros_like, a.params)
    assert not same_weights(a.params, zeros)
    file_b.write_bytes(flax.serialization.to_bytes(zeros))
    K._MEMO.clear()
    assert same_weights(K.fit_classifier(*parts, 10, settings).params, zeros)
    other = K.cache_key(data.images[train][1:], data.labels[train][1:], 10, settings)
    assert other != a.key and K.cache_key(*parts[0], 10, K.Settings(steps=31)) != a.key
    file_b.write_bytes(b"truncated")  # a damaged cache file is retrained and replaced
    K._MEMO.clear()
    c = K.fit_classifier(*parts, 10, settings)
    assert same_weights(c.params, a.params) and file_b.read_bytes() == file_a.read_bytes()


def test_fd_of_real_images_is_near_zero_and_grows_with_noise(digits):
    """fd in the classifier's feature space: 359 real training images against the 359 held-out ones is small next
    to the features' total variance (the finite-sample bias: 9-21 against tr = 1.2e3, measured); Gaussian pixel
    noise raises it monotonically and lowers precision, density and confidence."""
    source, clf = digits
    ctx = context(source)
    ref = M.make_reference(jax.random.key(0), source.heldout, ctx, NAMES)
    assert ref.features.shape == (359, 64) and ref.classifier is not None
    x = source.sample(jax.random.key(1), 359)
    noise = jax.random.normal(jax.random.key(2), x.shape)
    out = [M.evaluate_samples(NAMES, x + s * noise, ctx, ref) for s in (0.0, 0.3, 0.6)]
    fd = [float(o["fd"]) for o in out]
    trace = float(jnp.trace(ref.stats["fd"].cov))
    assert fd[0] < 0.03 * trace, (fd, trace)
    assert fd[0] < fd[1] < fd[2] and fd[2] > 5 * fd[0]
    assert out[0]["precision"] > 0.9 and out[0]["recall"] > 0.9 and out[0]["coverage"] > 0.9
    for name in ("precision", "density", "coverage", "confidence"):
        assert out[0][name] > out[1][name] > out[2][name], name
    # every class is predicted about 1/10 of the time for real images: entropy near log 10
    shares = np.array([float(out[0][f"class_{c}"]) for c in range(10)])
    assert abs(shares.sum() - 1) < 1e-6 and np.all(np.abs(shares - 0.1) < 0.03)
    assert float(out[0]["class_entropy"]) > np.log(10) - 0.02


def test_image_groups_read_features_pixels_and_logits_once(digits):
    """On an image source fd and the k-NN metrics compare classifier features, sw2 and mmd pixels, the class
    metrics read the logits and the curation's reward the pixels: each equals its building block on those inputs
    (one classifier call per evaluation, shared)."""
    source, clf = digits
    ctx = context(source, KChoiceCuration(reward="class", label=3))
    names = M.select(ctx)
    sample_names = ("sw2", "mmd", "mmd_local", "mmd_multi", "fd", "precision", "recall", "density", "coverage", "kid")
    assert names == (*sample_names, "class_entropy", "confidence", "reward", *M.class_columns(10))
    ref = M.make_reference(jax.random.key(3), source.heldout, ctx, names)
    assert set(ref.stats) == {"sw2", "mmd", "fd", "prdc", "kid"}
    x = source.sample(jax.random.key(1), 359)
    x = x + 0.3 * jax.random.normal(jax.random.key(2), x.shape)
    got = M.evaluate_samples(names, x, ctx, ref)
    feats, logits = clf.apply(clf.params, x)
    held = clf.apply(clf.params, source.heldout)[0]
    fd, mmd = M.group_of("fd"), M.group_of("mmd")
    want = {
        "sw2": M.sliced_w2(ref.stats["sw2"].proj_sorted, x, ref.stats["sw2"].directions),
        **mmd.compute(x, source.heldout, mmd.prepare(None, source.heldout, ctx), ctx),  # mmd, mmd_local, mmd_multi
        "fd": M.frechet_distance(*fd.prepare(None, feats, ctx), *fd.prepare(None, held, ctx)),
        **M.prdc(M.kth_neighbour_distance(held, 5), held, feats, 5),
        **kid(feats, held, polynomial_reference(held)),  # KID on the classifier's features, as fd
        **M.class_stats(logits, 10),
        "reward": jnp.mean(ctx.curation.reward(x)),
    }
    assert set(got) == set(names)
    for name in names:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(ref.features, held, rtol=1e-6)
    assert M.evaluate_params(names, None, ctx, ref) == {}


def test_class_stats_by_hand():
    """Four samples predicted as classes 0, 0, 1, 2 of C = 3: shares (1/2, 1/4, 1/4), entropy
    -(1/2 ln 1/2 + 2/4 ln 1/4) = 1.0397 nats; confidences from the softmax of each row."""
    logits = jnp.array([[2.0, 0, 0], [1.0, 0, 0], [0, 3.0, 0], [0, 0, 0.5]])
    out = M.class_stats(logits, 3)
    np.testing.assert_allclose([out["class_0"], out["class_1"], out["class_2"]], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(out["class_entropy"], -(0.5 * np.log(0.5) + 0.5 * np.log(0.25)), rtol=1e-6)
    p = np.exp(np.asarray(logits)) / np.exp(np.asarray(logits)).sum(1, keepdims=True)
    np.testing.assert_allclose(out["confidence"], p.max(1).mean(), rtol=1e-6)
    collapsed = M.class_stats(jnp.array([[5.0, 0, 0]] * 4), 3)
    assert float(collapsed["class_entropy"]) == 0.0 and float(collapsed["class_0"]) == 1.0


def test_feature_space_fd_is_float64_accurate_on_the_digits_classifier(digits):
    """The digits classifier's 64 features have near-singular covariances (dead ReLUs, eigenvalues 1e-6 to 1e5):
    fd of the training images against the held-out set equals scipy's float64 sqrtm of the same moments to 1e-4
    (the eigenvalues of L1^T C2 L1 gave 9.211 for 9.315), and the held-out set against itself is 0 to 1e-4 of its
    trace (that gave -0.155)."""
    import scipy.linalg

    source, clf = digits
    x, _ = source.sample_labeled(jax.random.key(0), 359)
    feats = [np.asarray(clf.apply(clf.params, s)[0], np.float64) for s in (x, source.heldout)]
    mus, covs = [f.mean(0) for f in feats], [np.cov(f.T) for f in feats]
    want = np.sum((mus[0] - mus[1]) ** 2) + np.trace(covs[0] + covs[1])
    want -= 2 * np.trace(scipy.linalg.sqrtm(covs[0] @ covs[1]).real)
    f32 = lambda *a: (jnp.asarray(v, jnp.float32) for v in a)
    got = float(M.frechet_distance(*f32(mus[0], covs[0], mus[1], covs[1])))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    same = float(M.frechet_distance(*f32(mus[1], covs[1], mus[1], covs[1])))
    assert abs(same) < 1e-4 * np.trace(covs[1]), (same, np.trace(covs[1]))


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy's sqrtm on the singular reference case
@pytest.mark.parametrize("dead", [0, 20])
def test_frechet_distance_in_64_dimensions_matches_scipy(dead):
    """The 64-d path (feature spaces) against scipy's sqrtm, also with 20 constant (dead ReLU) features, whose
    covariances are singular."""
    import scipy.linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 64)), rng.normal(size=(300, 64)) @ np.diag(np.linspace(0.5, 2, 64)) + 0.1
    a[:, :dead], b[:, :dead] = 0.0, 0.0
    mu1, mu2, c1, c2 = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    want = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real)
    got = float(M.frechet_distance(*(jnp.asarray(v, jnp.float32) for v in (mu1, c1, mu2, c2))))
    np.testing.assert_allclose(got, want, rtol=1e-3)
