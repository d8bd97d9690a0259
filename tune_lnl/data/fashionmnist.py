"""FashionMNIST (torchvision layout ``<root>/FashionMNIST/raw/``, the same four idx files as
MNIST, 60k/10k grey 28x28 images of 10 clothing classes), device-resident like MNIST.

Classes: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker,
8 bag, 9 ankle boot. The literature has no single asymmetric mapping for FashionMNIST; ours flips
visually confusable classes, five of the ten as for MNIST and CIFAR-10 (so the overall rate is
about r/2): T-shirt/top <-> shirt, pullover -> coat, sandal -> sneaker, ankle boot -> sneaker.
``augment: true`` is the CIFAR crop (pad 4) + horizontal flip: clothes stay clothes when
mirrored, unlike digits.
"""
from __future__ import annotations

from pathlib import Path

from .base import InMemoryDataset
from .mnist import load_idx
from .splits import Arrays


class FashionMNIST(InMemoryDataset):
    num_classes = 10
    image_shape = (1, 28, 28)
    default_augment = "crop_flip"
    asymmetric_map = {0: 6, 6: 0, 2: 4, 5: 7, 9: 7}

    def load(self, root: Path) -> Arrays:
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST
        return Arrays(*load_idx(root, TorchvisionFashionMNIST, "FashionMNIST"))
