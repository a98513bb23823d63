"""The feature classifier of image metrics: a small CNN trained on the real training images, cached on disk.

Image metrics compare a generation's samples with the held-out real images in this network's penultimate feature
space (``fd`` is "FID with a digits classifier", as the MAD paper used a LeNet for MNIST) and read its softmax
output (the predicted class histogram, its entropy and the mean confidence). The network is trained once per data
set and settings with a fixed key, and its weights are cached on disk under a hash of the training images, the
labels and every setting, so each run of a sweep scores with the same classifier.

References:
    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium" (FID).
    Alemohammad et al. 2023, "Self-Consuming Generative Models Go MAD", Sec. 3.2, footnote 3 (FID with LeNet
    features for MNIST).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from madloop.models.networks import Conv3x3, downsample
from madloop.types import Data, Params

VERSION = 1  # bump when the architecture or the training changes: it is part of the cache key


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the classifier is built and trained (every field enters the cache key).

    Attributes:
        channels: convolution channels of the two stages.
        features: width of the penultimate layer (the feature space of ``fd`` and precision/recall).
        steps: Adam steps; batch: minibatch size; lr: learning rate (cosine decay); weight_decay: AdamW's.
        seed: the fixed training key.
    """

    channels: tuple[int, int] = (32, 64)
    features: int = 64
    steps: int = 1000
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


class ConvClassifier(nn.Module):
    """Conv3x3 ReLU, Conv3x3 ReLU, 2x2 mean pool (repeated while the side exceeds 7), Conv3x3 ReLU, Dense -> features
    (ReLU) -> Dense -> logits. Per example: x [h w c] (a flattened image row) -> (features [f], logits [C])."""

    shape: tuple[int, int, int]
    classes: int
    channels: tuple[int, int]
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(self.shape)
        h = nn.relu(Conv3x3(self.channels[0])(h))
        h = nn.relu(Conv3x3(self.channels[0])(h))
        while h.shape[0] > 7 and h.shape[0] % 2 == 0 and h.shape[1] % 2 == 0:
            h = downsample(h)
        h = nn.relu(Conv3x3(self.channels[1])(h))
        feats = nn.relu(nn.Dense(self.features)(h.reshape(-1)))
        return feats, nn.Dense(self.classes)(feats)


class Classifier(NamedTuple):
    """A trained feature classifier.

    Attributes:
        module: the network (static; ``apply`` vmaps it over rows).
        params: its weights.
        accuracy: accuracy on the held-out images it was checked on.
        key: the cache key (hex digest) its weights are stored under.
    """

    module: ConvClassifier
    params: Params
    accuracy: float
    key: str

    def apply(self, params: Params, x: Data) -> tuple[jax.Array, jax.Array]:
        """(features [n, f], logits [n, C]) of image rows x [n, h w c]."""
        return jax.vmap(lambda xi: self.module.apply({"params": params}, xi))(x)


SHIPPED = Path(__file__).parent / "weights"  # weights that ship with the package (data=digits' default split)


def cache_dir() -> Path:
    """Where trained classifier weights are cached: $MADLOOP_CACHE_DIR/classifiers, else
    $XDG_CACHE_HOME/madloop/classifiers (~/.cache/madloop/classifiers)."""
    root = os.environ.get("MADLOOP_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "madloop"
    return Path(root) / "classifiers"


def cache_key(images: np.ndarray, labels: np.ndarray, classes: int, settings: Settings) -> str:
    """A hex digest of the training images and labels (bytes and shapes), the class count and every setting."""
    h = hashlib.sha256()
    h.update(repr((VERSION, images.shape, str(images.dtype), labels.shape, classes, settings)).encode())
    h.update(np.ascontiguousarray(images, np.float32).tobytes())
    h.update(np.ascontiguousarray(labels, np.int64).tobytes())
    return h.hexdigest()[:24]


def _train(module: ConvClassifier, images: Data, labels: jax.Array, settings: Settings) -> Params:
    """AdamW with cosine decay on uniform minibatches: one jitted lax.scan from a fixed key."""
    key = jax.random.key(settings.seed)
    params = module.init(jax.random.fold_in(key, 0), images[0])["params"]
    tx = optax.adamw(optax.cosine_decay_schedule(settings.lr, settings.steps), weight_decay=settings.weight_decay)

    def loss(p, x, y):
        logits = jax.vmap(lambda xi: module.apply({"params": p}, xi)[1])(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def step(carry, i):
        p, opt = carry
        idx = jax.random.randint(jax.random.fold_in(key, i + 1), (settings.batch,), 0, images.shape[0])
        grads = jax.grad(loss)(p, images[idx], labels[idx])
        updates, opt = tx.update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(settings.steps))
    return params


_MEMO: dict[str, tuple[Params, float]] = {}  # per process: cache key -> (weights, held-out accuracy)


def fit_classifier(
    train: tuple[np.ndarray, np.ndarray],
    heldout: tuple[np.ndarray, np.ndarray],
    classes: int,
    settings: Settings = Settings(),
) -> Classifier:
    """The classifier of a labelled image set: the weights shipped in the package for its cache key (data=digits
    with the default split), else those in the disk cache, else trained (a fixed key) and cached there.

    Args:
        train: (images [n, h, w, c] float32, labels [n]) of the real training images.
        heldout: (images [m, h, w, c], labels [m]) on which its accuracy is measured (never trained on).
        classes: C.
        settings: architecture and training settings.

    Returns:
        The classifier, its held-out accuracy and its cache key. Within a process the result is memoised.
    """
    images, labels = np.asarray(train[0], np.float32), np.asarray(train[1])
    module = ConvClassifier(tuple(images.shape[1:]), classes, tuple(settings.channels), settings.features)
    key = cache_key(images, labels, classes, settings)
    held_x = jnp.asarray(np.asarray(heldout[0], np.float32).reshape(len(heldout[0]), -1))
    memo = key + cache_key(np.asarray(heldout[0]), np.asarray(heldout[1]), classes, settings)
    if memo not in _MEMO:
        name = f"conv-{key}.msgpack"
        path = cache_dir() / name
        x = jnp.asarray(images.reshape(len(images), -1))
        template = jax.eval_shape(lambda: module.init(jax.random.key(0), x[0])["params"])
        params = None
        for found in (SHIPPED / name, path):  # the package's weights first, then the user's cache
            if params is None and found.exists():
                try:
                    params = flax.serialization.from_bytes(template, found.read_bytes())
                except (ValueError, KeyError, TypeError):  # a truncated or stale file: train again, overwrite it
                    params = None
        if params is None:
            params = jax.jit(_train, static_argnums=(0, 3))(module, x, jnp.asarray(labels, jnp.int32), settings)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(flax.serialization.to_bytes(params))
            tmp.replace(path)  # atomic: concurrent runs of a sweep never read a half-written file
        logits = jax.jit(Classifier(module, params, 0.0, key).apply)(params, held_x)[1]
        accuracy = float(np.mean(np.argmax(np.asarray(logits), axis=1) == np.asarray(heldout[1])))
        _MEMO[memo] = (params, accuracy)
    params, accuracy = _MEMO[memo]
    return Classifier(module, params, accuracy, key)


def main() -> None:
    """Trains data=digits' classifier (default split and settings) and writes its weights into the package
    (``python -m madloop.classifier``): run it after changing the architecture, the training or VERSION."""
    import tempfile

    from madloop.data import images as I

    data = I.digits()
    train, held = I.split(data.labels, 0.2, seed=0)
    with tempfile.TemporaryDirectory() as fresh:  # train anew, never from a cache
        os.environ["MADLOOP_CACHE_DIR"] = fresh
        for old in SHIPPED.glob("conv-*.msgpack"):
            old.unlink()
        clf = fit_classifier((data.images[train], data.labels[train]), (data.images[held], data.labels[held]), 10)
    SHIPPED.mkdir(exist_ok=True)
    (SHIPPED / f"conv-{clf.key}.msgpack").write_bytes(flax.serialization.to_bytes(clf.params))
    print(f"digits classifier {clf.key}: held-out accuracy {clf.accuracy:.4f} -> {SHIPPED}")


if __name__ == "__main__":
    main()
