"""Real image data sets, read from installed packages or local files (never downloaded).

Images are float32 arrays [n, h, w, c] scaled to [-1, 1], with int32 labels [n].

- ``digits``: scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, 10 classes; pixel values 0..16).
- ``mnist``: the standard MNIST files in a local folder, as the four IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
  ``.gz``) or one ``mnist.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras's layout).

References:
    Alpaydin & Kaynak 1998, UCI "Optical Recognition of Handwritten Digits" (scikit-learn's ``load_digits``).
    LeCun et al. 1998, "Gradient-based learning applied to document recognition" (MNIST; the IDX format).
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop.data.toy import DataSource
from madloop.types import Data, Key


@dataclass(frozen=True)
class DigitsData(C.DataConfig):
    """scikit-learn's 8 x 8 handwritten digits (1,797 images, 10 classes) in [-1, 1]; the loop carries each image
    as a row of 64 pixels. A fixed stratified split (``split_seed``) holds out ``heldout`` of every class: the
    evaluation's reference set (359 images at 0.2); the loop draws its real data from the rest (1,438)."""

    heldout: float = 0.2
    split_seed: int = 0


@dataclass(frozen=True)
class MnistData(C.DataConfig):
    """MNIST (LeCun et al. 1998) from a local folder, never downloaded: the four IDX files (optionally ``.gz``)
    or Keras's ``mnist.npz``. Images are scaled to [-1, 1] (pixel / 127.5 - 1) and carried as rows of
    ``size`` x ``size`` pixels (784 at 28).

    Attributes:
        path: the folder holding the files (required).
        size: resize to ``size`` x ``size`` (block means when it divides 28); null keeps 28.
        train_n: the loop draws its real data from the first ``train_n`` training images; null = all (60,000).
        heldout_n: the evaluation's reference set: a fixed stratified subset (seed 0) of this many test images.
    """

    path: str | None = None
    size: int | None = None
    train_n: int | None = None
    heldout_n: int = 2000


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


@functools.lru_cache(maxsize=2)
def mnist_parts(folder: str, size: int | None, train_n: int | None, heldout_n: int) -> tuple[ImageSet, ImageSet]:
    """``data=mnist``'s (training images, held-out images), cached per arguments: the first ``train_n`` training
    images (None = all) and ``stratified(test labels, heldout_n, seed=0)`` of the test part, resized to
    ``size`` x ``size`` unless ``size`` is None."""
    train, test = mnist(folder, "train"), mnist(folder, "test")
    held = stratified(test.labels, heldout_n, seed=0)
    parts = ImageSet(train.images[:train_n], train.labels[:train_n]), ImageSet(test.images[held], test.labels[held])
    if size is None or size == train.images.shape[1]:
        return parts
    return tuple(ImageSet(resize(p.images, size), p.labels) for p in parts)


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
    x = jnp.asarray(train.images.reshape(n_train, -1))
    y = jnp.asarray(train.labels)

    def sample_labeled(key: Key, n: int) -> tuple[Data, jax.Array]:
        idx = jax.random.choice(key, n_train, (n,), replace=False)
        return x[idx], y[idx]

    return DataSource(
        dim=x.shape[1],
        sample=lambda key, n: sample_labeled(key, n)[0],
        classes=classes,
        sample_labeled=sample_labeled,
        shape=tuple(shape),
        heldout=jnp.asarray(heldout.images.reshape(len(heldout.images), -1)),
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


def check_digits(d: DigitsData) -> None:
    """Field checks of ``data=digits``."""
    if not isinstance(d.heldout, int | float) or not 0 < d.heldout < 1:
        raise C.ConfigError("data.heldout", d.heldout, "must lie in (0, 1) (the held-out share of each class)")
    C.int_at_least("data.split_seed", d.split_seed, 0)


def check_mnist(d: MnistData) -> None:
    """Checks the fields, then that ``data.path`` holds readable MNIST files with enough images (loaded once and
    cached, so that the data source reuses them)."""
    if d.size is not None and (not isinstance(d.size, int) or isinstance(d.size, bool) or not 1 <= d.size <= 28):
        raise C.ConfigError("data.size", d.size, "must be an integer in [1, 28] (null keeps 28 x 28)")
    if d.train_n is not None:
        C.int_at_least("data.train_n", d.train_n, 1, " (null = all training images)")
    C.int_at_least("data.heldout_n", d.heldout_n, 1)
    if d.heldout_n > 10_000:
        raise C.ConfigError("data.heldout_n", d.heldout_n, "must be an integer in [1, 10000] (MNIST's test images)")
    if d.path is None or not has_mnist(d.path):
        expected = ", ".join(f"{i}[.gz] and {lab}[.gz]" for i, lab in MNIST_FILES.values())
        raise C.ConfigError(
            "data.path",
            d.path,
            ("required: a local folder with the MNIST files" if d.path is None else "no MNIST files there")
            + f" (expected {expected}, or mnist.npz); madloop never downloads data",
        )
    try:
        train, held = mnist_parts(d.path, d.size, d.train_n, d.heldout_n)
    except (OSError, ValueError, KeyError) as exc:
        raise C.ConfigError("data.path", d.path, f"unreadable MNIST files: {exc}") from None
    if d.train_n is not None and len(train.labels) < d.train_n:
        raise C.ConfigError("data.train_n", d.train_n, f"must be <= the {len(train.labels)} training images there")
    if len(held.labels) < d.heldout_n:
        raise C.ConfigError("data.heldout_n", d.heldout_n, f"must be <= the {len(held.labels)} test images there")


C.register("data", "digits", DigitsData, build=digits_source, check=check_digits)
C.register("data", "mnist", MnistData, build=mnist_source, check=check_mnist)
