"""CIFAR-100 (torchvision's python release ``<root>/cifar-100-python/``: ``train`` 50000 images,
``test`` 10000, ``meta``), the 100 fine labels, device-resident with the CIFAR crop + flip.

Asymmetric noise: within each block of 5 consecutive class indices, class -> the next one
(wrapping inside the block), as in the GCE / SCE / APL / ELR code, so every class flips and the
overall rate is r.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.datasets import CIFAR100

from .base import InMemoryDataset
from .cifar10 import load_cifar, official_md5
from .noise import block_successor_map
from .splits import Arrays

CIFAR100_CLASSES = 100
CIFAR100_FILES = tuple(official_md5(CIFAR100))


def load_cifar100(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CIFAR-100 with its fine labels, see :func:`tune_lnl.data.cifar10.load_cifar`."""
    return load_cifar(root, CIFAR100, "CIFAR-100")


class CIFAR100Dataset(InMemoryDataset):
    """CIFAR-100 (``<root>/cifar-100-python/``), device-resident, CIFAR crop + flip."""
    num_classes = CIFAR100_CLASSES
    image_shape = (3, 32, 32)
    default_augment = "crop_flip"
    asymmetric_map = block_successor_map(CIFAR100_CLASSES, 5)

    def load(self, root: Path) -> Arrays:
        return Arrays(*load_cifar100(root))
