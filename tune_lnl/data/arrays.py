"""``dataset: {type: arrays, path: FILE.npz}``: the user's own images from a NumPy archive.

Keys of the archive (``numpy.savez``):

=====================  ==========================================================================
``train_images``       uint8, ``N x H x W`` (grey) or ``N x H x W x C``
``train_labels``       integers in [0, C): the training labels as the user has them
``train_clean_labels`` optional, integers in [0, C) or -1 (unknown): the clean labels; enable
                       ``clean_intact`` and the analytics under ``noise: {type: real}``
``test_images``        uint8, the same ``H x W (x C)`` as the training images
``test_labels``        integers in [0, C): clean test labels
``clean_val_index``    optional, distinct indices into the training set: a trusted clean subset
                       (their ``train_labels`` are taken as correct), the ``clean_val`` proxy
=====================  ==========================================================================

Noise: ``noise: {type: real}`` trains on ``train_labels`` as given; a synthetic noise type
(``symmetric``, ...) is drawn on top of them, which needs clean labels: allowed when the archive
has no ``train_clean_labels`` (the labels are then taken as clean) or when they equal
``train_labels``. The number of classes is ``num_classes:`` when given, else 1 + the largest
label (at most :data:`~tune_lnl.data.base.MAX_CLASSES`). The archive is read (memory-mapped) and
checked once, when the space file is loaded, also against the splits the file asks for (enough
training images for the noisy validation set, the clean one and training).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError, shown
from .augment import AUGMENTS
from .base import MAX_CLASSES, InMemoryDataset
from .noise import NOISE_TYPES, REAL_NOISE
from .splits import Arrays, split_problem

REQUIRED = ("train_images", "train_labels", "test_images", "test_labels")
OPTIONAL = ("train_clean_labels", "clean_val_index")


class ArraysDataset(InMemoryDataset):
    """A NumPy archive of uint8 images and integer labels (see the module docstring)."""
    options = {"path": None, "num_classes": 0, "augment": "none"}

    def __init__(self, path=None, num_classes: int = 0, augment: str = "none"):
        super().__init__(path=path, num_classes=num_classes, augment=augment)
        if not path:
            raise ConfigError("type arrays needs 'path: FILE.npz' (the archive of images and labels)")
        if not 0 <= num_classes <= MAX_CLASSES:
            raise ConfigError(f"num_classes: must lie in [0, {MAX_CLASSES}] (0: 1 + the largest label) "
                              f"(got {num_classes})")
        if augment not in AUGMENTS:
            raise ConfigError(f"augment: unknown value; allowed: {', '.join(AUGMENTS)} (got {shown(augment)})")
        self.path = Path(path).expanduser().resolve()
        self.default_augment = augment
        arrays = self._read()
        self.image_shape = tuple(arrays.train_x.shape[1:])
        given_clean = arrays.train_clean is None or bool(torch.equal(arrays.train_clean, arrays.train_y))
        self.noise_types = (NOISE_TYPES if given_clean else ()) + (REAL_NOISE,)
        self.has_clean_val = arrays.clean_val_index is not None
        self._clean_known = arrays.train_clean is not None and bool((arrays.train_clean >= 0).all())
        self._arrays = arrays

    def fail(self, key: str, msg: str):
        raise DataError(f"{self.path}: {key}: {msg}")

    def _read(self) -> Arrays:
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file (dataset: type arrays, path)")
        try:
            npz = np.load(self.path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 -- not an archive numpy can read
            raise DataError(f"{self.path}: not a NumPy .npz archive ({type(exc).__name__}: {exc})") from None
        with npz:
            keys = set(npz.files)
            for key in REQUIRED:
                if key not in keys:
                    self.fail(key, f"missing; the archive has {', '.join(sorted(keys)) or 'no arrays'} and needs "
                              f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})")
            unknown = keys - set(REQUIRED) - set(OPTIONAL)
            if unknown:
                self.fail(sorted(unknown)[0], f"unknown key; allowed: {', '.join(REQUIRED + OPTIONAL)}")
            a = {k: npz[k] for k in keys}
        train_x, test_x = self._images(a, "train_images"), self._images(a, "test_images")
        if train_x.shape[1:] != test_x.shape[1:]:
            self.fail("test_images", f"image shape {tuple(test_x.shape[1:])} (C, H, W) differs from train_images' "
                      f"{tuple(train_x.shape[1:])}")
        n, n_test = train_x.shape[0], test_x.shape[0]
        train_y = self._labels(a, "train_labels", n)
        test_y = self._labels(a, "test_labels", n_test)
        largest = max(int(train_y.max()), int(test_y.max())) if n and n_test else 0
        if largest >= MAX_CLASSES:
            key = "train_labels" if int(train_y.max()) == largest else "test_labels"
            self.fail(key, f"label {largest} is beyond any class count (at most {MAX_CLASSES} classes: labels are "
                      f"class indices 0 to {MAX_CLASSES - 1})")
        self.num_classes = int(self.opts["num_classes"]) or largest + 1
        if self.num_classes < 2:
            self.fail("train_labels", f"{self.num_classes} class: LNL needs at least 2")
        clean = self._labels(a, "train_clean_labels", n, unknown_ok=True) if "train_clean_labels" in a else None
        for key, labels in (("train_labels", train_y), ("test_labels", test_y), ("train_clean_labels", clean)):
            if labels is not None and labels.numel() and int(labels.max()) >= self.num_classes:
                self.fail(key, f"label {int(labels.max())} outside [0, {self.num_classes}) "
                          f"(num_classes: {self.num_classes})")
        index = None
        if "clean_val_index" in a:
            index = self._integers(a, "clean_val_index")
            if index.dim() != 1 or not index.numel():
                self.fail("clean_val_index",
                          f"must be a non-empty 1-D array of training indices (shape {tuple(index.shape)})")
            if int(index.min()) < 0 or int(index.max()) >= n:
                self.fail("clean_val_index", f"index {int(index.min()) if int(index.min()) < 0 else int(index.max())} "
                          f"outside [0, {n}) (the training images)")
            if torch.unique(index).numel() != index.numel():
                self.fail("clean_val_index", "indices must be distinct")
        return Arrays(train_x, train_y, test_x, test_y, clean, index)

    def _images(self, a: dict, key: str) -> torch.Tensor:
        x = a[key]
        if x.dtype != np.uint8:
            self.fail(key, f"dtype {x.dtype}; images must be uint8 (0-255)")
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)  # N H W C -> N C H W
        else:
            self.fail(key, f"shape {x.shape}; must be N x H x W or N x H x W x C")
        if x.shape[0] == 0:
            self.fail(key, "holds no image")
        return torch.from_numpy(np.ascontiguousarray(x))

    def _integers(self, a: dict, key: str) -> torch.Tensor:
        y = a[key]
        if not np.issubdtype(y.dtype, np.integer):
            self.fail(key, f"dtype {y.dtype}; must be integers")
        return torch.from_numpy(y.astype(np.int64))

    def _labels(self, a: dict, key: str, n: int, unknown_ok: bool = False) -> torch.Tensor:
        y = self._integers(a, key)
        if y.shape != (n,):
            self.fail(key, f"shape {tuple(y.shape)}; must be ({n},): one label per image")
        low = -1 if unknown_ok else 0
        if y.numel() and int(y.min()) < low:
            self.fail(key, f"label {int(y.min())} is negative" + (" (-1 means unknown)" if unknown_ok else ""))
        return y

    def clean_labels_known(self, noise_type: str) -> bool:
        return noise_type != REAL_NOISE or self._clean_known

    def check_splits(self, val_fraction: float, clean_val_size: int, train_subset: int, proxy: str) -> None:
        n = self._arrays.train_x.shape[0]
        n = min(train_subset, n) if train_subset else n
        trusted = self._arrays.clean_val_index
        problem = split_problem(n, val_fraction, clean_val_size or (0 if trusted is None or train_subset
                                                                    else trusted.numel()), proxy)
        if problem:
            self.fail("train_images", problem)

    def load(self, root: Path) -> Arrays:
        return self._arrays
