"""CIFAR-10 as uint8 tensors, loaded through torchvision's own parser of the official files.

The folder ``<root>/cifar-10-batches-py/`` holds the python-pickle release of CIFAR-10:
``data_batch_1`` .. ``data_batch_5`` (10000 images each), ``test_batch`` and ``batches.meta``.
torchvision refuses files whose md5 differs from the official release; :class:`_CIFAR10` only
requires the files to exist, and :func:`load_cifar10` checks the md5s itself and warns (naming
the file) where one differs -- a modified copy of the dataset, or the tiny files the tests write.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from .base import InMemoryDataset, open_torchvision
from .splits import Arrays

__all__ = ["CIFAR10_CLASSES", "CIFAR10_FILES", "load_cifar10", "CIFAR10Dataset"]

CIFAR10_CLASSES = 10
CIFAR10_FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
# file name -> md5 of the official release (taken from torchvision's own table)
_OFFICIAL_MD5 = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list}
_OFFICIAL_MD5[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
CIFAR10_FILES = tuple(_OFFICIAL_MD5)


class _CIFAR10(CIFAR10):
    """torchvision's CIFAR10 with existence-only integrity checks.

    ``check_integrity(path, None)`` only tests that the file exists, so blanking the md5s in the
    file tables makes both ``_check_integrity`` and ``_load_meta`` accept any file; the parsing
    (pickles, ``[N, 3072]`` rows, labels) stays torchvision's. The download archive keeps its
    md5 (``tgz_md5``), so a download is still verified."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _warn_on_checksum_mismatch(folder: Path) -> None:
    for name, md5 in _OFFICIAL_MD5.items():
        if _md5(folder / name) != md5:
            warnings.warn(f"CIFAR-10 file {folder / name} does not match the official md5 {md5} "
                          f"(modified or not the official release); loading it anyway",
                          stacklevel=3)


def load_cifar10(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CIFAR-10 as ``(train_x, train_y, test_x, test_y)``: contiguous uint8 ``[N, 3, 32, 32]``
    images (CHW; 50000 train in the order data_batch_1..5, 10000 test) and int64 labels.

    Downloads when the files are absent and the network allows; otherwise raises
    :class:`~tune_lnl.errors.DataError` naming the folder to fill. Files whose md5 differs
    from the official release are loaded with a warning."""
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    train, test = open_torchvision(
        _CIFAR10, root, "CIFAR-10", folder,
        f"Put the python version of CIFAR-10 (the files {', '.join(CIFAR10_FILES)}, as extracted from "
        f"cifar-10-python.tar.gz) into {folder}")
    _warn_on_checksum_mismatch(folder)

    def images(ds: CIFAR10) -> torch.Tensor:  # torchvision keeps NHWC numpy; back to NCHW
        return torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))

    def labels(ds: CIFAR10) -> torch.Tensor:
        return torch.as_tensor(ds.targets, dtype=torch.int64)

    return images(train), labels(train), images(test), labels(test)


class CIFAR10Dataset(InMemoryDataset):
    """CIFAR-10 (``<root>/cifar-10-batches-py/``), device-resident, CIFAR crop + flip."""
    num_classes = CIFAR10_CLASSES
    image_shape = (3, 32, 32)
    default_augment = "crop_flip"

    def load(self, root: Path) -> Arrays:
        return Arrays(*load_cifar10(root))
