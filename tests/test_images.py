"""Image data: scikit-learn's digits, the fixed split, and MNIST from IDX / npz files the tests write."""

import gzip
import struct

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from madloop.data import images as I


def test_digits_are_sklearns_images_scaled_to_plus_minus_one():
    data = I.digits()
    ref = load_digits()
    assert data.images.shape == (1797, 8, 8, 1) and data.images.dtype == np.float32
    assert data.images.min() == -1.0 and data.images.max() == 1.0
    np.testing.assert_array_equal((data.images[..., 0] + 1.0) * 8.0, ref.images)
    np.testing.assert_array_equal(np.bincount(data.labels), np.bincount(ref.target))


def test_the_split_is_fixed_stratified_and_disjoint():
    labels = I.digits().labels
    train, held = I.split(labels, 0.2, seed=0)
    assert np.intersect1d(train, held).size == 0 and train.size + held.size == labels.size
    for c in range(10):  # every class gives round(0.2 x its count) images
        assert np.sum(labels[held] == c) == round(0.2 * np.sum(labels == c))
    again = I.split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(held, again[1])
    assert not np.array_equal(held, I.split(labels, 0.2, seed=1)[1])


def write_idx(path, array: np.ndarray, code: int, compress: bool) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", pixels, 0x08, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, 0x08, compress)
    np.testing.assert_array_equal(I.read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), pixels)
    data = I.mnist(tmp_path, "test")
    assert data.images.shape == (7, 28, 28, 1)
    np.testing.assert_allclose(data.images[..., 0], pixels / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(data.labels, labels)
    # a wider type round-trips too (IDX stores big-endian)
    wide = rng.standard_normal((3, 4)).astype(np.float32)
    write_idx(tmp_path / "wide", wide, 0x0D, False)
    np.testing.assert_array_equal(I.read_idx(tmp_path / "wide"), wide)


def test_mnist_reads_npz_and_names_what_is_missing(tmp_path):
    x = np.full((3, 28, 28), 255, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(3), x_test=x[:1], y_test=np.arange(1))
    data = I.mnist(tmp_path, "train")
    assert data.images.shape == (3, 28, 28, 1) and np.all(data.images == 1.0)
    with pytest.raises(FileNotFoundError, match=r"no MNIST files in .*train-images-idx3-ubyte\[.gz\].*mnist.npz"):
        I.mnist(tmp_path / "absent", "train")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        I.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8), 0x08, False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="header says shape"):
        I.read_idx(tmp_path / "short")


def test_resize_keeps_constant_images_and_averages_when_shrinking():
    ones = np.ones((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(I.resize(ones, 14), np.ones((2, 14, 14, 1)), atol=1e-6)
    stripes = np.zeros((1, 4, 4, 1), np.float32)
    stripes[:, :, ::2] = 1.0  # vertical stripes average to 0.5 when halving the width
    np.testing.assert_allclose(I.resize(stripes, 2), np.full((1, 2, 2, 1), 0.5), atol=1e-6)
    corner = np.zeros((1, 4, 4, 1), np.float32)
    corner[:, :2, :2] = 1.0  # one 2 x 2 block lit: one output pixel lit
    np.testing.assert_allclose(I.resize(corner, 2)[0, ..., 0], [[1.0, 0.0], [0.0, 0.0]], atol=1e-6)
    assert I.resize(ones, 10).shape == (2, 10, 10, 1)  # 28 -> 10 is not a divisor: interpolation


def test_digits_loop_runs_and_evaluates_against_the_held_out_split():
    """data=digits in the loop: 64-pixel rows drawn without replacement from the 1,438 training images, sample
    metrics against the 359 held-out images (sw2 with unequal sizes)."""
    import madloop
    from madloop.data import make_source

    source = make_source(madloop.compose(["data=digits"]).data)
    assert source.dim == 64 and source.shape == (8, 8, 1) and source.size == 1438 and source.classes == 10
    assert source.heldout.shape == (359, 64)
    x, y = source.sample_labeled(jax.random.key(0), 1438)  # without replacement: every training image once
    data = I.digits()
    train, _ = I.split(data.labels, 0.2, seed=0)
    order = np.lexsort(np.asarray(x).T)
    np.testing.assert_array_equal(
        np.asarray(x)[order], data.images[train].reshape(-1, 64)[np.lexsort(data.images[train].reshape(-1, 64).T)]
    )
    np.testing.assert_array_equal(np.bincount(np.asarray(y)), np.bincount(data.labels[train]))
    common = ["data=digits", "loop.generations=2", "loop.seeds=2", "plots=false", "eval.n=200"]
    common += ["eval.metrics=[sw2,fd,precision,recall]", "regime.n_real=300", "regime.n_synth=300"]
    gauss = madloop.simulate([*common, "model=gaussian"])
    assert np.all(np.isfinite(gauss.metrics["fd"])) and gauss.heldout.shape == (359, 64)
    # the fitted Gaussian's samples are worse than the real data but not absurd: fd grows from generation 0
    assert gauss.metrics["fd"][:, 2].mean() > gauss.metrics["fd"][:, 0].mean()


def test_digits_config_errors_name_the_field():
    import madloop
    from madloop.config import ConfigError

    with pytest.raises(ConfigError, match=r"data.heldout=1.5: must lie in \(0, 1\)"):
        madloop.compose(["data=digits", "data.heldout=1.5"])
    with pytest.raises(ConfigError, match="regime.n_real=2000: must be <= the 1438 training images"):
        madloop.compose(["data=digits", "regime.n_real=2000"])
