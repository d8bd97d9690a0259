"""MNIST (torchvision layout ``<root>/MNIST/raw/``): 60k/10k grey 28x28 digits, device-resident,
the MLC code's augmentation (random perspective + brightness/contrast jitter)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import DataError
from .base import InMemoryDataset, open_torchvision
from .splits import Arrays

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: the uncompressed idx files: (magic number, size in bytes) = header + items
MNIST_FORMAT = {"train-images-idx3-ubyte": (2051, 16 + 60000 * 784), "train-labels-idx1-ubyte": (2049, 8 + 60000),
                "t10k-images-idx3-ubyte": (2051, 16 + 10000 * 784), "t10k-labels-idx1-ubyte": (2049, 8 + 10000)}


def check_mnist_files(raw: Path) -> None:
    """Refuse present-but-wrong MNIST files (truncated, another dataset) with a message naming
    the file, instead of a parser error deep in torchvision or, worse, silently other data."""
    for name, (magic, size) in MNIST_FORMAT.items():
        path = raw / name
        if not path.exists():
            continue  # absent: torchvision extracts the .gz or downloads; else DataError
        with open(path, "rb") as f:
            got_magic = int.from_bytes(f.read(4), "big")
        got_size = path.stat().st_size
        if got_magic != magic or got_size != size:
            raise DataError(
                f"{path}: not the official MNIST file (magic number {got_magic}, {got_size} bytes; expected "
                f"{magic}, {size} bytes): truncated or replaced. Delete it and put the official file there "
                f"(or its .gz).")


def load_mnist(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST through torchvision as uint8 ``[N, 1, 28, 28]`` images and int64 labels.

    Downloads when the files are absent and the network allows; otherwise raises
    :class:`~tune_lnl.errors.DataError` naming the folder to fill."""
    from torchvision.datasets import MNIST as TorchvisionMNIST

    root = Path(root)
    raw = root / "MNIST" / "raw"
    check_mnist_files(raw)
    train, test = open_torchvision(TorchvisionMNIST, root, "MNIST", raw,
                                   f"Put the four files {', '.join(MNIST_FILES)} (or their .gz) into {raw}")
    return (train.data.unsqueeze(1).contiguous(), train.targets.long(),
            test.data.unsqueeze(1).contiguous(), test.targets.long())


class MNIST(InMemoryDataset):
    num_classes = 10
    image_shape = (1, 28, 28)
    default_augment = "perspective_jitter"

    def load(self, root: Path) -> Arrays:
        return Arrays(*load_mnist(root))
