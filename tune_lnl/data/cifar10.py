"""CIFAR-10 as uint8 tensors, loaded through torchvision's own parser of the official files.

The folder ``<root>/cifar-10-batches-py/`` holds the python-pickle release of CIFAR-10:
``data_batch_1`` .. ``data_batch_5`` (10000 images each), ``test_batch`` and ``batches.meta``.
torchvision refuses files whose md5 differs from the official release; :func:`load_cifar` only
requires the files to exist, checks the md5s itself and warns (naming the file) where one
differs -- a modified copy of the dataset, or the tiny files the tests write. Files that cannot be
parsed (truncated, of the wrong size) are refused. CIFAR-100 (:mod:`tune_lnl.data.cifar100`)
shares this loader.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from ..errors import DataError
from .base import InMemoryDataset, open_torchvision
from .splits import Arrays

__all__ = ["CIFAR10_CLASSES", "CIFAR10_FILES", "load_cifar", "load_cifar10", "CIFAR10Dataset"]

CIFAR10_CLASSES = 10


def official_md5(torchvision_cls) -> dict[str, str]:
    """file name -> md5 of the official release (torchvision's own table)."""
    out = {name: md5 for name, md5 in torchvision_cls.train_list + torchvision_cls.test_list}
    out[torchvision_cls.meta["filename"]] = torchvision_cls.meta["md5"]
    return out


CIFAR10_FILES = tuple(official_md5(CIFAR10))


def existence_only(torchvision_cls):
    """torchvision's CIFAR class with existence-only integrity checks.

    ``check_integrity(path, None)`` only tests that the file exists, so blanking the md5s in the
    file tables makes both ``_check_integrity`` and ``_load_meta`` accept any file; the parsing
    (pickles, ``[N, 3072]`` rows, labels) stays torchvision's. The download archive keeps its
    md5 (``tgz_md5``), so a download is still verified."""
    return type(f"Lenient{torchvision_cls.__name__}", (torchvision_cls,), {
        "train_list": [[name, None] for name, _ in torchvision_cls.train_list],
        "test_list": [[name, None] for name, _ in torchvision_cls.test_list],
        "meta": {**torchvision_cls.meta, "md5": None}})


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load_cifar(root: str | os.PathLike, torchvision_cls, what: str
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A CIFAR release (``torchvision_cls``: ``CIFAR10`` or ``CIFAR100``) as ``(train_x, train_y,
    test_x, test_y)``: contiguous uint8 ``[N, 3, 32, 32]`` images (CHW, torchvision's order) and
    int64 labels (CIFAR-100: the fine labels).

    Downloads when the files are absent and the network allows; otherwise raises
    :class:`~tune_lnl.errors.DataError` naming the folder to fill. Files whose md5 differs from
    the official release are loaded with a warning."""
    root = Path(root)
    md5s = official_md5(torchvision_cls)
    folder = root / torchvision_cls.base_folder
    train, test = open_torchvision(
        existence_only(torchvision_cls), root, what, folder,
        f"Put the python version of {what} (the files {', '.join(md5s)}, as extracted from "
        f"{torchvision_cls.filename}) into {folder}")
    for name, md5 in md5s.items():
        if _md5(folder / name) != md5:
            warnings.warn(f"{what} file {folder / name} does not match the official md5 {md5} "
                          f"(modified or not the official release); loading it anyway", stacklevel=2)

    def images(ds) -> torch.Tensor:  # torchvision keeps NHWC numpy; back to NCHW
        return torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))

    def labels(ds) -> torch.Tensor:
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        if y.shape != (len(ds.data),):
            raise DataError(f"{folder}: {len(ds.data)} images but {y.numel()} labels: the files are not the official "
                            f"{what} release")
        return y

    return images(train), labels(train), images(test), labels(test)


def load_cifar10(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CIFAR-10 (``<root>/cifar-10-batches-py/``: 50000 train images in the order data_batch_1..5,
    10000 test), see :func:`load_cifar`."""
    return load_cifar(root, CIFAR10, "CIFAR-10")


class CIFAR10Dataset(InMemoryDataset):
    """CIFAR-10 (``<root>/cifar-10-batches-py/``), device-resident, CIFAR crop + flip."""
    num_classes = CIFAR10_CLASSES
    image_shape = (3, 32, 32)
    default_augment = "crop_flip"
    #: asymmetric noise as in the GCE / SCE / APL / ELR / DivideMix code: truck -> automobile,
    #: bird -> airplane, deer -> horse, cat <-> dog
    asymmetric_map = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

    def load(self, root: Path) -> Arrays:
        return Arrays(*load_cifar10(root))
