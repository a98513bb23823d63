"""Image data: scikit-learn's digits, the fixed split, and MNIST from IDX / npz files the tests write."""

import gzip
import struct
from dataclasses import replace

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


def test_the_held_out_images_are_an_argument_of_the_reference_program():
    """A finite source's held-out images enter the reference program as an argument: as a constant, XLA folded the
    feature classifier over them while compiling (2.2 s of a digits run's first call in float32, 27 s in
    float64). The lowered program holds no [359, 64] constant and takes the images as a parameter."""
    import madloop
    from madloop.engine import simulation

    sim = simulation(madloop.compose(["data=digits", "model=gaussian", "eval.metrics=[fd,precision]"]))
    _, k_heldout, k_proj = sim.keys()
    text = sim.programs.reference.lower(k_heldout, k_proj, sim.programs.fixed_heldout).as_text()
    main = next(line for line in text.splitlines() if "func.func public @main" in line)
    assert "tensor<359x64xf32>" in main, main
    assert not [line for line in text.splitlines() if "stablehlo.constant" in line and "359x64" in line]


def test_digits_config_errors_name_the_field():
    import madloop
    from madloop.config import ConfigError

    with pytest.raises(ConfigError, match=r"data.heldout=1.5: must lie in \(0, 1\)"):
        madloop.compose(["data=digits", "data.heldout=1.5"])
    with pytest.raises(ConfigError, match="regime.n_real=2000: must be <= the 1438 training images"):
        madloop.compose(["data=digits", "regime.n_real=2000"])


def write_mnist(folder, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """A small MNIST folder of gzipped IDX files: random 28 x 28 pixels, labels cycling through the 10 classes.
    Returns the (train, test) pixels [n, 28, 28] uint8."""
    rng = np.random.default_rng(0)
    parts = []
    for part, n in (("train", n_train), ("t10k", n_test)):
        pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", pixels, 0x08, True)
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8), 0x08, True)
        parts.append(pixels)
    return parts[0], parts[1]


def test_mnist_source_reads_the_folder_scales_resizes_and_holds_out_a_stratified_subset(tmp_path):
    from madloop.data import make_source

    train, test = write_mnist(tmp_path, 60, 30)
    source = make_source(I.MnistData(path=str(tmp_path), heldout_n=20))
    assert source.dim == 784 and source.shape == (28, 28, 1) and source.size == 60 and source.classes == 10
    # the training images the source draws from (finite_source's sampling is tested with digits)
    parts = I.mnist_parts(str(tmp_path), None, None, 20)
    x, y = parts[0].images.reshape(60, -1), parts[0].labels
    rows = train.reshape(60, -1) / 127.5 - 1.0  # bytes 0..255 -> [-1, 1]
    assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x, rows, atol=1e-6)
    np.testing.assert_array_equal(y, np.arange(60) % 10)
    # the held-out reference: 20 of the 30 test images (3 per class), 2 per class, fixed
    held = I.stratified(np.arange(30) % 10, 20, seed=0)
    assert len(held) == 20 and np.all(np.bincount(held % 10) == 2)
    np.testing.assert_allclose(source.heldout, test[held].reshape(20, -1) / 127.5 - 1.0, atol=1e-6)
    # size=14: 196-pixel rows, each pixel the mean of a 2 x 2 block of the scaled image
    small = make_source(I.MnistData(path=str(tmp_path), size=14, heldout_n=20))
    assert small.dim == 196 and small.shape == (14, 14, 1)
    blocks = (test[held] / 127.5 - 1.0).reshape(20, 14, 2, 14, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(small.heldout, blocks.reshape(20, -1), atol=1e-6)
    # train_n: the first train_n training images only
    assert make_source(I.MnistData(path=str(tmp_path), train_n=25, heldout_n=20)).size == 25
    first, _ = I.mnist_parts(str(tmp_path), None, 25, 20)
    np.testing.assert_allclose(first.images.reshape(25, -1), rows[:25], atol=1e-6)


def test_mnist_config_composes_from_a_folder_and_errors_name_the_field(tmp_path):
    import madloop
    from madloop.config import ConfigError
    from madloop.parts import validate

    write_mnist(tmp_path, 60, 30)
    cfg = madloop.compose(["data=mnist", f"data.path={tmp_path}", "data.heldout_n=20", "regime.n_real=60"])
    assert cfg.data == I.MnistData(path=str(tmp_path), heldout_n=20) and cfg.regime.n_real == 60
    (tmp_path / "broken").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (tmp_path / "broken" / name).write_bytes(b"\x01\x02\x03\x04")
    (tmp_path / "broken" / "t10k-labels-idx1-ubyte").write_bytes(b"\x01")
    bad = [  # (data fields, regime.n_real, message); validated without recomposing
        ({}, 61, "regime.n_real=61: must be <= the 60 training images"),
        ({"train_n": 61}, 20, "data.train_n=61: must be <= the 60 training images there"),
        ({"heldout_n": 31}, 20, "data.heldout_n=31: must be <= the 30 test images there"),
        ({"heldout_n": 10001}, 20, r"data.heldout_n=10001: must be an integer in \[1, 10000\]"),
        ({"size": 29}, 20, r"data.size=29: must be an integer in \[1, 28\]"),
        ({"size": 0}, 20, r"data.size=0: must be an integer in \[1, 28\]"),
        ({"train_n": 0}, 20, "data.train_n=0: must be an integer >= 1"),
        ({"path": None}, 20, "data.path=null: required: a local folder with the MNIST files"),
        ({"path": str(tmp_path / "absent")}, 20, "absent: no MNIST files there .* madloop never downloads"),
        ({"path": str(tmp_path / "broken")}, 20, "broken: unreadable MNIST files: .*not an IDX file"),
    ]
    for data, n_real, message in bad:
        wrong = replace(cfg, data=replace(cfg.data, **data), regime=replace(cfg.regime, n_real=n_real))
        with pytest.raises(ConfigError, match=message):
            validate(wrong)


def test_image_pipeline_runs_two_tiny_generations(tmp_path):
    """The whole image path from the command line: a class-conditional diffusion model on digits (tiny budgets),
    2 generations x 2 seeds of the fully synthetic loop with classifier-free guidance as the sampling bias, image
    metrics in the classifier's feature space; it writes metrics.csv, image grids and class histograms. (The
    U-Net's compilation alone takes over a minute at these settings; its loop wiring is traced below.)"""
    import subprocess
    import sys

    import pandas as pd

    args = [
        "data=digits", "model=diffusion", "model.width=32", "model.depth=1", "model.time_features=4",
        "model.classes=10", "model.bias=cfg", "model.prediction=x0", "model.train_steps=20",
        "model.finetune_steps=5", "model.sample_steps=4", "model.batch=16", "regime=fully_synthetic",
        "regime.n_real=64", "regime.n_synth=64", "loop.generations=2", "loop.seeds=2", "bias.lam=0.5",
        "eval.n=64", "eval.snapshot_n=16", "eval.snapshots=1",
        "eval.metrics=[fd,precision,recall,class_entropy,confidence,class_0,class_1,class_2,class_3,class_4,"
        "class_5,class_6,class_7,class_8,class_9]",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "madloop.run", *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run"
    for f in ("metrics.png", "samples.png", "classes.png"):
        assert (out / f).stat().st_size > 1000, f
    table = pd.read_csv(out / "metrics.csv")
    assert len(table) == 2 * 3 and table["finite"].eq(1).all()
    shares = table[[f"class_{c}" for c in range(10)]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-5)  # a histogram per row
    assert np.all(table["class_entropy"] <= np.log(10) + 1e-5) and np.all(table["confidence"] > 0.1)
    assert np.all(np.isfinite(table[["fd", "precision", "recall"]].to_numpy()))


def test_image_grid_tiles_rows_in_reading_order():
    from madloop import report

    rows = np.stack([np.full(4, v, np.float32) for v in (-1.0, 0.0, 0.5)])  # three 2 x 2 one-channel images
    grid = report.image_grid(rows, (2, 2, 1), columns=2)
    assert grid.shape == (2 * 3 - 1, 2 * 3 - 1)
    np.testing.assert_array_equal(grid[:2, :2], -1.0)
    np.testing.assert_array_equal(grid[:2, 3:], 0.0)
    np.testing.assert_array_equal(grid[3:, :2], 0.5)
    assert np.all(np.isnan(grid[2, :])) and np.all(np.isnan(grid[3:, 3:]))  # the gutter, the empty fourth cell


def test_a_unet_loop_traces_with_image_shaped_rows():
    """model.network=unet inside the loop: generation 0 and a generation step trace (jax.eval_shape: no
    compilation) with the image shape passed from the data source to the denoiser; the snapshots are image
    rows and the conditional training rows carry the label column."""
    import jax.numpy as jnp

    import madloop
    from madloop.engine import Programs
    from madloop.knobs import knobs_of

    cfg = madloop.compose(
        ["data=digits", "model=diffusion", "model.network=unet", "model.channels=[4,8]", "model.classes=10"]
        + ["regime.n_real=32", "regime.n_synth=32", "eval.n=32", "eval.snapshot_n=8", "loop.generations=2"]
    )
    programs = Programs(cfg)
    ref = jax.eval_shape(programs.reference, jax.random.key(0), jax.random.key(1), programs.fixed_heldout)
    knobs = knobs_of(cfg)
    state, row = jax.eval_shape(programs.loop.start, jax.random.key(2), knobs, ref)
    assert state.real.shape == (32, 65) and state.snapshots.shape[-1] == 64
    assert {"fd", "class_entropy", "class_9"} <= set(row.metrics)
    after, _ = jax.eval_shape(programs.loop.step, jax.random.key(2), knobs, ref, state, jnp.int32(1))
    assert jax.tree.map(lambda a: a.shape, after) == jax.tree.map(lambda a: a.shape, state)
    with pytest.raises(madloop.ConfigError, match="model.network=unet: needs an image source"):
        madloop.compose(["model=diffusion", "model.network=unet"])
    with pytest.raises(madloop.ConfigError, match=r"model.channels=\[4,8,8,8,8\]: 5 levels pool by 16"):
        madloop.compose(["data=digits", "model=diffusion", "model.network=unet", "model.channels=[4,8,8,8,8]"])


def write_cifar(folder, n_per_batch: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """A small CIFAR-10 binary folder: five training batches of ``n_per_batch`` records and a test batch of
    ``n_test``; random bytes, labels cycling through the 10 classes. Returns the (train, test) images as
    [n, 32, 32, 3] uint8 (what a correct reader must give back, before scaling)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"train": [], "test": []}
    names = [(f"data_batch_{i}.bin", "train", n_per_batch) for i in range(1, 6)] + [("test_batch.bin", "test", n_test)]
    for name, part, n in names:
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        # a record: the label byte, then the red, green and blue planes, each 32 x 32 with rows first
        records = np.concatenate([labels[:, None], images.transpose(0, 3, 1, 2).reshape(n, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        out[part].append(images)
    return np.concatenate(out["train"]), np.concatenate(out["test"])


def test_cifar10_reads_the_binary_batches_in_every_layout(tmp_path):
    import tarfile

    train, test = write_cifar(tmp_path / "flat", 4, 30)
    data = I.cifar10(tmp_path / "flat", "train")
    assert data.images.shape == (20, 32, 32, 3) and data.images.dtype == np.float32
    np.testing.assert_allclose(data.images, train / 127.5 - 1.0, atol=1e-6)  # channels last, the planes in order
    np.testing.assert_array_equal(data.labels, np.arange(20) % 4)  # each batch of 4 starts its labels at 0
    # a channel mix-up (reading the record as interleaved RGB) would give other pixels: the check has power
    wrong = np.frombuffer(train.transpose(0, 3, 1, 2).tobytes(), np.uint8).reshape(20, 32, 32, 3)
    assert not np.allclose(data.images, wrong / 127.5 - 1.0)
    np.testing.assert_allclose(I.cifar10(tmp_path / "flat", "test").images, test / 127.5 - 1.0, atol=1e-6)
    # the official archive's layout: cifar-10-batches-bin/ inside the folder, and the .tar.gz itself
    (tmp_path / "nested").mkdir()
    (tmp_path / "flat").rename(tmp_path / "nested" / "cifar-10-batches-bin")
    assert I.has_cifar10(tmp_path / "nested")
    np.testing.assert_array_equal(I.cifar10(tmp_path / "nested", "test").labels, np.arange(30) % 10)
    (tmp_path / "tar").mkdir()
    with tarfile.open(tmp_path / "tar" / I.CIFAR_TARBALL, "w:gz") as tar:
        tar.add(tmp_path / "nested" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    np.testing.assert_allclose(I.cifar10(tmp_path / "tar", "train").images, train / 127.5 - 1.0, atol=1e-6)
    with pytest.raises(FileNotFoundError, match=r"no CIFAR-10 files in .*data_batch_1.bin .*never downloads"):
        I.cifar10(tmp_path / "absent", "train")
    with pytest.raises(ValueError, match="not a whole number of 3073-byte records"):
        I.decode_cifar(b"\x00" * 3000)


def test_cifar10_source_and_config_errors_name_the_field(tmp_path):
    import madloop
    from madloop.config import ConfigError
    from madloop.data import make_source
    from madloop.parts import validate

    train, test = write_cifar(tmp_path, 12, 30)
    source = make_source(I.Cifar10Data(path=str(tmp_path), size=8, heldout_n=20))
    assert source.dim == 192 and source.shape == (8, 8, 3) and source.size == 60 and source.classes == 10
    held = I.stratified(np.arange(30) % 10, 20, seed=0)
    blocks = (test[held] / 127.5 - 1.0).reshape(20, 8, 4, 8, 4, 3).mean(axis=(2, 4))  # 4 x 4 block means
    np.testing.assert_allclose(source.heldout, blocks.reshape(20, -1), atol=1e-5)
    cfg = madloop.compose(["data=cifar10", f"data.path={tmp_path}", "data.heldout_n=20", "regime.n_real=60"])
    assert cfg.data == I.Cifar10Data(path=str(tmp_path), heldout_n=20)
    (tmp_path / "broken").mkdir()
    for name in I.CIFAR_TRAIN + I.CIFAR_TEST:
        (tmp_path / "broken" / name).write_bytes(b"\x01" * 100)
    bad = [
        ({}, 61, "regime.n_real=61: must be <= the 60 training images"),
        ({"heldout_n": 31}, 20, "data.heldout_n=31: must be <= the 30 test images there"),
        ({"size": 33}, 20, r"data.size=33: must be an integer in \[1, 32\]"),
        ({"path": None}, 20, "data.path=null: required: a local folder with the CIFAR-10 files"),
        ({"path": str(tmp_path / "absent")}, 20, "absent: no CIFAR-10 files there .* never downloads"),
        ({"path": str(tmp_path / "broken")}, 20, "broken: unreadable CIFAR-10 files: .*not a whole number"),
    ]
    for data, n_real, message in bad:
        wrong = replace(cfg, data=replace(cfg.data, **data), regime=replace(cfg.regime, n_real=n_real))
        with pytest.raises(ConfigError, match=message):
            validate(wrong)
    # the loop runs on CIFAR rows (a Gaussian on 4 x 4 x 3 block means: the wiring, not a model of CIFAR)
    table = madloop.run_table(
        [
            "data=cifar10",
            f"data.path={tmp_path}",
            "data.size=4",
            "data.heldout_n=20",
            "model=gaussian",
            "regime.n_real=60",
            "regime.n_synth=60",
            "loop.generations=2",
            "loop.seeds=2",
            "eval.n=20",
            "eval.metrics=[sw2]",
        ]
    )
    assert len(table) == 6 and np.isfinite(table["sw2"]).all()
