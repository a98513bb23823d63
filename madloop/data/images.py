"""Real image data sets, read from installed packages or local files (never downloaded).

Images are float32 arrays [n, h, w, c] scaled to [-1, 1], with int32 labels [n].

- ``digits``: scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, 10 classes; pixel values 0..16).
- ``mnist``: the standard MNIST files in a local folder, as the four IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
  ``.gz``) or one ``mnist.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras's layout).
- ``cifar10``: CIFAR-10's binary version in a local folder (``data_batch_1.bin`` .. ``data_batch_5.bin`` and
  ``test_batch.bin``, in the folder, in its ``cifar-10-batches-bin`` subfolder, or inside
  ``cifar-10-binary.tar.gz`` there), read as bytes; the Python version's pickles are never loaded.

References:
    Alpaydin & Kaynak 1998, UCI "Optical Recognition of Handwritten Digits" (scikit-learn's ``load_digits``).
    LeCun et al. 1998, "Gradient-based learning applied to document recognition" (MNIST; the IDX format).
    Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images" (CIFAR-10; the binary version's
    layout: per image one label byte, then 1,024 red, 1,024 green and 1,024 blue bytes, rows first).
"""

from __future__ import annotations

import functools
import gzip
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from madloop import config as C
from madloop.data.toy import DataSource
from madloop.precision import float_dtype, on_device
from madloop.types import Data, Key


@dataclass(frozen=True)
class DigitsData(C.DataConfig):
    """scikit-learn's 8 x 8 handwritten digits (1,797 images, 10 classes) in [-1, 1]; the loop carries each image
    as a row of 64 pixels. A fixed stratified split (``split_seed``) holds out ``heldout`` of every class: the
    evaluation's reference set (359 images at 0.2); the loop draws its real data from the rest (1,438)."""

    heldout: float = 0.2
    split_seed: int = 0


@dataclass(frozen=True)
class LocalImages(C.DataConfig):
    """The fields of an image set read from a user's local folder (each set is its own subclass and option).

    Attributes:
        path: the folder holding the files (required).
        size: resize to ``size`` x ``size`` (block means when it divides the side); null keeps the side.
        train_n: the loop draws its real data from the first ``train_n`` training images; null = all.
        heldout_n: the evaluation's reference set: a fixed stratified subset (seed 0) of this many test images.
    """

    path: str | None = None
    size: int | None = None
    train_n: int | None = None
    heldout_n: int = 2000


@dataclass(frozen=True)
class MnistData(LocalImages):
    """MNIST (LeCun et al. 1998) from a local folder, never downloaded: the four IDX files (optionally ``.gz``)
    or Keras's ``mnist.npz``. Images are scaled to [-1, 1] (pixel / 127.5 - 1) and carried as rows of
    ``size`` x ``size`` pixels (784 at 28; ``size`` at most 28, block means when it divides 28); the training set
    has 60,000 images (the fields are ``LocalImages``'s).
    """


@dataclass(frozen=True)
class Cifar10Data(LocalImages):
    """CIFAR-10 (Krizhevsky 2009; 50,000 training and 10,000 test images of 32 x 32 x 3, 10 classes) from a local
    folder, never downloaded: the binary version (``data_batch_1.bin`` .. ``data_batch_5.bin``,
    ``test_batch.bin``; in the folder, in its ``cifar-10-batches-bin`` subfolder or in ``cifar-10-binary.tar.gz``
    there). Pixels are scaled to [-1, 1] (value / 127.5 - 1); each image is a row of size x size x 3 values
    (``size`` at most 32, block means when it divides 32); the training set has 50,000 images (the fields are
    ``LocalImages``'s).
    """


# IDX type codes (the third byte of the magic number) and their big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class ImageSet(NamedTuple):
    """A labelled image set. Attributes: images [n, h, w, c] float32 in [-1, 1]; labels [n] int32."""

    images: np.ndarray
    labels: np.ndarray


@functools.cache
def digits() -> ImageSet:
    """scikit-learn's 8 x 8 digits as [1797, 8, 8, 1] in [-1, 1] (pixel / 8 - 1) with labels 0..9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 8.0 - 1.0)[..., None]
    return ImageSet(images, bunch.target.astype(np.int32))


def split(labels: np.ndarray, heldout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed stratified split: (train indices, held-out indices), each sorted.

    Every class gives round(heldout x its count) images to the held-out set, chosen by a numpy generator seeded
    with ``seed``, so the split depends only on the labels, ``heldout`` and ``seed``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        out.append(rng.permutation(members)[: int(round(heldout * len(members)))])
    held = np.sort(np.concatenate(out))
    return np.setdiff1d(np.arange(len(labels)), held), held


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array of its stored type and shape.

    The header is two zero bytes, a type code, the number of dimensions k, then k big-endian uint32 sizes.

    Raises:
        ValueError: when the file is not IDX or its size does not match its header.
    """
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    start = 4 + 4 * ndim
    if len(raw) - start != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"{path}: {len(raw) - start} data bytes, header says shape {shape} of {dtype}")
    return np.frombuffer(raw, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def has_mnist(folder: str | Path) -> bool:
    """Whether a folder holds both MNIST parts: each as its IDX pair (optionally ``.gz``), or ``mnist.npz``."""
    folder = Path(folder).expanduser()
    idx = all(_find(folder, image) and _find(folder, label) for image, label in MNIST_FILES.values())
    return idx or (folder / "mnist.npz").is_file()


def mnist(folder: str | Path, part: str = "train") -> ImageSet:
    """MNIST's ``train`` or ``test`` part from a local folder as [n, 28, 28, 1] in [-1, 1] (pixel / 127.5 - 1).

    Raises:
        FileNotFoundError: one line naming the folder and the files looked for, when neither the IDX pair nor
            mnist.npz is there.
    """
    folder = Path(folder).expanduser()
    image_name, label_name = MNIST_FILES[part]
    image_file, label_file = _find(folder, image_name), _find(folder, label_name)
    if image_file is not None and label_file is not None:
        images, labels = read_idx(image_file), read_idx(label_file)
    elif (folder / "mnist.npz").is_file():
        with np.load(folder / "mnist.npz") as npz:
            suffix = "train" if part == "train" else "test"
            images, labels = npz[f"x_{suffix}"], npz[f"y_{suffix}"]
    else:
        raise FileNotFoundError(
            f"no MNIST files in {folder}: expected {image_name}[.gz] and {label_name}[.gz], or mnist.npz "
            "(madloop never downloads data)"
        )
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"MNIST {part} in {folder}: images {images.shape} and labels {labels.shape} do not match")
    return ImageSet((images.astype(np.float32) / 127.5 - 1.0)[..., None], labels.astype(np.int32))


CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = ("test_batch.bin",)
CIFAR_TARBALL = "cifar-10-binary.tar.gz"
_CIFAR_RECORD = 1 + 32 * 32 * 3  # a label byte, then the red, green and blue planes (32 x 32 each, rows first)


def _cifar_folder(folder: Path) -> Path | None:
    """The folder that holds the .bin batches: ``folder`` or its ``cifar-10-batches-bin``; None if neither."""
    for candidate in (folder, folder / "cifar-10-batches-bin"):
        if all((candidate / name).is_file() for name in CIFAR_TRAIN + CIFAR_TEST):
            return candidate
    return None


def has_cifar10(folder: str | Path) -> bool:
    """Whether a folder holds CIFAR-10's binary batches (directly, in ``cifar-10-batches-bin``, or in the
    ``cifar-10-binary.tar.gz`` archive)."""
    folder = Path(folder).expanduser()
    return _cifar_folder(folder) is not None or (folder / CIFAR_TARBALL).is_file()


def decode_cifar(raw: bytes, name: str = "CIFAR-10 batch") -> ImageSet:
    """One binary batch's bytes as [n, 32, 32, 3] in [-1, 1] with labels [n] (a record: label, R, G, B planes).

    Raises:
        ValueError: when the size is not a whole number of 3,073-byte records or a label is not in 0..9.
    """
    if len(raw) == 0 or len(raw) % _CIFAR_RECORD:
        raise ValueError(f"{name}: {len(raw)} bytes is not a whole number of {_CIFAR_RECORD}-byte records")
    records = np.frombuffer(raw, np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int32)
    if labels.max() > 9:
        raise ValueError(f"{name}: label {labels.max()} outside 0..9 (not CIFAR-10's binary version)")
    planes = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # [n, h, w, c]
    return ImageSet(planes.astype(np.float32) / 127.5 - 1.0, labels)


def cifar10(folder: str | Path, part: str = "train") -> ImageSet:
    """CIFAR-10's ``train`` (five batches, 50,000 images) or ``test`` part (10,000) from a local folder, as
    [n, 32, 32, 3] in [-1, 1] with labels [n].

    Raises:
        FileNotFoundError: one line naming the folder and the files looked for.
    """
    folder = Path(folder).expanduser()
    names = CIFAR_TRAIN if part == "train" else CIFAR_TEST
    found = _cifar_folder(folder)
    if found is not None:
        parts = [decode_cifar((found / name).read_bytes(), str(found / name)) for name in names]
    elif (folder / CIFAR_TARBALL).is_file():
        with tarfile.open(folder / CIFAR_TARBALL, "r:gz") as tar:  # members read as bytes, nothing extracted
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [name for name in names if name not in members]
            if missing:
                raise FileNotFoundError(f"{folder / CIFAR_TARBALL}: no {', '.join(missing)} inside")
            parts = [decode_cifar(tar.extractfile(members[name]).read(), name) for name in names]
    else:
        raise FileNotFoundError(
            f"no CIFAR-10 files in {folder}: expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin "
            f"(there or in cifar-10-batches-bin/), or {CIFAR_TARBALL} (madloop never downloads data)"
        )
    return ImageSet(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def stratified(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a fixed stratified subset of exactly ``min(n, len(labels))`` images.

    Each class is shuffled by a numpy generator seeded with ``seed``; its k-th member of m gets the rank
    (k + 0.5) / m, and the n lowest ranks are kept, so every class gives about n x its share images.
    """
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.sort(np.argsort(rank, kind="stable")[:n])


READERS = {"mnist": mnist, "cifar10": cifar10}


@functools.lru_cache(maxsize=2)
def local_parts(
    kind: str, folder: str, size: int | None, train_n: int | None, heldout_n: int
) -> tuple[ImageSet, ImageSet]:
    """A local data set's (training images, held-out images), cached per arguments: the first ``train_n``
    training images (None = all) and ``stratified(test labels, heldout_n, seed=0)`` of the test part, resized to
    ``size`` x ``size`` unless ``size`` is None. ``kind``: ``mnist`` or ``cifar10``."""
    read = READERS[kind]
    train, test = read(folder, "train"), read(folder, "test")
    held = stratified(test.labels, heldout_n, seed=0)
    parts = ImageSet(train.images[:train_n], train.labels[:train_n]), ImageSet(test.images[held], test.labels[held])
    if size is None or size == train.images.shape[1]:
        return parts
    return tuple(ImageSet(resize(p.images, size), p.labels) for p in parts)


def mnist_parts(folder: str, size: int | None, train_n: int | None, heldout_n: int) -> tuple[ImageSet, ImageSet]:
    """``data=mnist``'s (training images, held-out images): ``local_parts("mnist", ...)``."""
    return local_parts("mnist", folder, size, train_n, heldout_n)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Images [n, h, w, c] resized to [n, size, size, c]: block means when size divides h and w (28 -> 14 or 7:
    each output pixel is the mean of its block), else antialiased linear interpolation (jax.image.resize)."""
    n, h, w, c = images.shape
    if h % size == 0 and w % size == 0:
        return images.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4), dtype=np.float32)
    return np.asarray(jax.image.resize(images, (n, size, size, c), method="linear", antialias=True))


def finite_source(train: ImageSet, heldout: ImageSet, classes: int) -> DataSource:
    """A data source over a finite image set: ``sample(key, n)`` draws n distinct training images (uniformly
    without replacement; rows of h w c pixels), labelled; evaluation uses the fixed held-out images."""
    n_train, *shape = train.images.shape
    x = on_device(train.images.reshape(n_train, -1), float_dtype())  # the run's precision (float64 in x64 mode)
    y = on_device(train.labels)

    def sample_labeled(key: Key, n: int) -> tuple[Data, jax.Array]:
        idx = jax.random.choice(key, n_train, (n,), replace=False)
        return x[idx], y[idx]

    return DataSource(
        dim=x.shape[1],
        sample=lambda key, n: sample_labeled(key, n)[0],
        classes=classes,
        sample_labeled=sample_labeled,
        shape=tuple(shape),
        heldout=on_device(heldout.images.reshape(len(heldout.images), -1), float_dtype()),
        size=n_train,
        classifier=functools.cache(lambda: _classifier(train, heldout, classes)),
    )


def _classifier(train: ImageSet, heldout: ImageSet, classes: int):
    from madloop.classifier import fit_classifier  # Flax and Optax load only when image metrics are computed

    return fit_classifier((train.images, train.labels), (heldout.images, heldout.labels), classes)


def digits_source(cfg: DigitsData) -> DataSource:
    data = digits()
    train, held = split(data.labels, cfg.heldout, cfg.split_seed)
    pick = lambda idx: ImageSet(data.images[idx], data.labels[idx])
    return finite_source(pick(train), pick(held), 10)


def mnist_source(cfg: MnistData) -> DataSource:
    train, held = mnist_parts(cfg.path, cfg.size, cfg.train_n, cfg.heldout_n)
    return finite_source(train, held, 10)


def cifar10_source(cfg: Cifar10Data) -> DataSource:
    train, held = local_parts("cifar10", cfg.path, cfg.size, cfg.train_n, cfg.heldout_n)
    return finite_source(train, held, 10)


def check_digits(d: DigitsData) -> None:
    """Field checks of ``data=digits``."""
    if not isinstance(d.heldout, int | float) or not 0 < d.heldout < 1:
        raise C.ConfigError("data.heldout", d.heldout, "must lie in (0, 1) (the held-out share of each class)")
    C.int_at_least("data.split_seed", d.split_seed, 0)


def _check_local(d: LocalImages, kind: str, label: str, side: int, n_test: int, expected: str) -> None:
    """Checks a local image set's fields, then that ``data.path`` holds readable files with enough images
    (loaded once and cached, so that the data source reuses them)."""
    if d.size is not None and (not isinstance(d.size, int) or isinstance(d.size, bool) or not 1 <= d.size <= side):
        raise C.ConfigError("data.size", d.size, f"must be an integer in [1, {side}] (null keeps {side} x {side})")
    if d.train_n is not None:
        C.int_at_least("data.train_n", d.train_n, 1, " (null = all training images)")
    C.int_at_least("data.heldout_n", d.heldout_n, 1)
    if d.heldout_n > n_test:
        raise C.ConfigError(
            "data.heldout_n", d.heldout_n, f"must be an integer in [1, {n_test}] ({label}'s test images)"
        )
    present = has_mnist if kind == "mnist" else has_cifar10
    if d.path is None or not present(d.path):
        raise C.ConfigError(
            "data.path",
            d.path,
            (f"required: a local folder with the {label} files" if d.path is None else f"no {label} files there")
            + f" (expected {expected}); madloop never downloads data",
        )
    try:
        train, held = local_parts(kind, d.path, d.size, d.train_n, d.heldout_n)
    except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
        raise C.ConfigError("data.path", d.path, f"unreadable {label} files: {exc}") from None
    if d.train_n is not None and len(train.labels) < d.train_n:
        raise C.ConfigError("data.train_n", d.train_n, f"must be <= the {len(train.labels)} training images there")
    if len(held.labels) < d.heldout_n:
        raise C.ConfigError("data.heldout_n", d.heldout_n, f"must be <= the {len(held.labels)} test images there")


def check_mnist(d: MnistData) -> None:
    """Field checks of ``data=mnist``, then that ``data.path`` holds readable MNIST files with enough images."""
    expected = ", ".join(f"{i}[.gz] and {lab}[.gz]" for i, lab in MNIST_FILES.values()) + ", or mnist.npz"
    _check_local(d, "mnist", "MNIST", 28, 10_000, expected)


def check_cifar10(d: Cifar10Data) -> None:
    """Field checks of ``data=cifar10``, then that ``data.path`` holds readable CIFAR-10 binary batches."""
    expected = f"data_batch_1.bin .. data_batch_5.bin and test_batch.bin, or {CIFAR_TARBALL}"
    _check_local(d, "cifar10", "CIFAR-10", 32, 10_000, expected)


C.register("data", "digits", DigitsData, build=digits_source, check=check_digits)
C.register("data", "mnist", MnistData, build=mnist_source, check=check_mnist)
C.register("data", "cifar10", Cifar10Data, build=cifar10_source, check=check_cifar10)
