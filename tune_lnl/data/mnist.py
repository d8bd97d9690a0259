"""MNIST (torchvision layout ``<root>/MNIST/raw/``): 60k/10k grey 28x28 digits, device-resident,
the MLC code's augmentation (random perspective + brightness/contrast jitter).

:func:`load_idx` reads any dataset of MNIST's idx layout through torchvision (FashionMNIST too)."""
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


def check_mnist_files(raw: Path, what: str = "MNIST") -> None:
    """Refuse present-but-wrong idx files (truncated, another dataset) with a message naming
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
                f"{path}: not the official {what} file (magic number {got_magic}, {got_size} bytes; expected "
                f"{magic}, {size} bytes): truncated or replaced. Delete it and put the official file there "
                f"(or its .gz).")


def load_idx(root: str | os.PathLike, torchvision_cls, what: str
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A dataset of MNIST's idx layout (``<root>/<what>/raw/``) through torchvision as uint8
    ``[N, 1, 28, 28]`` images and int64 labels.

    Downloads when the files are absent and the network allows; otherwise raises
    :class:`~tune_lnl.errors.DataError` naming the folder to fill."""
    root = Path(root)
    raw = root / torchvision_cls.__name__ / "raw"
    check_mnist_files(raw, what)
    train, test = open_torchvision(torchvision_cls, root, what, raw,
                                   f"Put the four files {', '.join(MNIST_FILES)} (or their .gz) into {raw}")
    return (train.data.unsqueeze(1).contiguous(), train.targets.long(),
            test.data.unsqueeze(1).contiguous(), test.targets.long())


def load_mnist(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST (``<root>/MNIST/raw/``), see :func:`load_idx`."""
    from torchvision.datasets import MNIST as TorchvisionMNIST
    return load_idx(root, TorchvisionMNIST, "MNIST")


class MNIST(InMemoryDataset):
    num_classes = 10
    image_shape = (1, 28, 28)
    default_augment = "perspective_jitter"
    #: asymmetric noise as in the GCE / SCE / APL code: 7 -> 1, 2 -> 7, 5 <-> 6, 3 -> 8
    asymmetric_map = {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}

    def load(self, root: Path) -> Arrays:
        return Arrays(*load_mnist(root))
