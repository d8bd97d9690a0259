"""Backbones. MNIST: the two-layer MLP (784-256-10) of Co-teaching / MLC. CIFAR-10: the 6-conv
CNN of the MLC authors' code and the CIFAR ResNets (20/32/56 layers, option-A shortcuts) of
He et al. 2016, Sec. 4.2. CIFAR-100 / CIFAR-N: the CIFAR ResNet-34 (torchvision's ResNet-34 with a
3x3 stride-1 stem and no max-pool). Clothing1M: torchvision's ImageNet ResNet-18. Every backbone takes its
input channels, image size and number of classes from the dataset (:func:`build_model`)."""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, DataError


class MLP(nn.Module):
    """784 -> 256 -> 10 with ReLU, as used by Co-teaching and the MLC paper on MNIST."""

    def __init__(self, in_features: int = 784, hidden: int = 256, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN6(nn.Module):
    """Six 3x3 convs (padding 1; 64, 64, 128, 128, 196, 16 channels), each followed by
    BatchNorm2d and ReLU, a 2x2 max-pool after every second conv, then flatten and one linear
    layer: ``16 * (H // 8) * (W // 8)`` features, i.e. 256 for 32x32 inputs."""

    CHANNELS = (64, 64, 128, 128, 196, 16)

    def __init__(self, num_classes: int = 10, in_channels: int = 3, in_size: tuple[int, int] = (32, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for k, c_out in enumerate(self.CHANNELS):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if k % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        h, w = in_size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in * (h // 8) * (w // 8), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class ShortcutA(nn.Module):
    """He et al.'s option A: identity, or -- where a block halves the resolution and widens the
    channels -- take every second pixel and append zero channels. No parameters."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride, self.extra_channels = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the option-A shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = ShortcutA(stride, c_out - c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. 2016, Sec. 4.2: 3x3 conv (16) -> 3 stages of ``n`` basic blocks with 16, 32, 64
    channels on 32x32, 16x16, 8x8 maps (stride 2 in the first conv of stages 2 and 3) -> global
    average pooling -> linear. Depth ``6n + 2``. Convs use He (Kaiming-normal, fan-in) init;
    BN starts at weight 1, bias 0; the linear layer keeps PyTorch's default init."""

    def __init__(self, n: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        c_in = 16
        for stage, c_out in enumerate((16, 32, 64)):
            for k in range(n):
                blocks.append(BasicBlock(c_in, c_out, stride=2 if stage > 0 and k == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(3, num_classes, in_channels)


def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(5, num_classes, in_channels)


def resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(9, num_classes, in_channels)


RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for inputs in [0, 1]."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def resnet18_weights_path() -> Path:
    """Where torch.hub caches the torchvision ImageNet ResNet-18 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(RESNET18_URL)


def resnet18_imagenet(num_classes: int = 14, pretrained: bool = True) -> nn.Sequential:
    """torchvision ResNet-18 behind an ImageNet :class:`Normalize` (inputs in [0, 1]) with a new
    ``num_classes``-way ``fc``. ``pretrained`` loads the ImageNet weights from the torch.hub cache
    only (never downloads); absent, a :class:`~tune_lnl.errors.DataError` says where to put them."""
    from torchvision.models import resnet18

    path = resnet18_weights_path()
    if pretrained and not path.is_file():
        raise DataError(
            f"the ImageNet weights of ResNet-18 are not cached: put the file {RESNET18_URL} "
            f"at {path} (torch.hub cache; $TORCH_HOME moves it), or set `pretrained: false` "
            f"to train from scratch.")
    net = resnet18(weights=None)
    if pretrained:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return nn.Sequential(OrderedDict(normalize=Normalize(), backbone=net))


def resnet18(num_classes: int = 14, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """torchvision's ResNet-18 (e.g. Clothing1M's 224x224 inputs in [0, 1], ImageNet
    normalisation inside); ``pretrained``: ImageNet weights, which must already be in torch's cache."""
    if in_channels != 3:
        raise ConfigError(f"resnet18 takes 3-channel images (ImageNet); this dataset has {in_channels}")
    return resnet18_imagenet(num_classes, pretrained=pretrained)


def resnet34(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The ResNet-34 of the CIFAR-N benchmark (and of Co-learning, ELR, ...): torchvision's
    ResNet-34 (basic blocks [3, 4, 6, 3], 64-512 channels) with the CIFAR stem -- one 3x3
    stride-1 convolution and no max-pool, so a 32x32 image reaches the last stage at 4x4."""
    from torchvision.models import resnet34 as torchvision_resnet34

    net = torchvision_resnet34(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


MODELS = {"mlp": MLP, "cnn6": CNN6, "resnet20": resnet20, "resnet32": resnet32, "resnet56": resnet56,
          "resnet34": resnet34, "resnet18": resnet18}


def build_model(name: str, num_classes: int, in_shape: tuple[int, ...], pretrained: bool = False) -> nn.Module:
    """``name`` from :data:`MODELS`; ``in_shape`` is one image's ``(C, H, W)``. ``pretrained``
    applies to ``resnet18`` only (ImageNet weights)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if pretrained and name != "resnet18":
        raise ConfigError(f"pretrained weights exist only for resnet18, not {name!r}")
    if name == "resnet18":
        return resnet18(num_classes, in_shape[0], pretrained=pretrained)
    if name == "mlp":
        n_in = 1
        for s in in_shape:
            n_in *= s
        return MLP(n_in, 256, num_classes)
    if name == "cnn6":
        return CNN6(num_classes, in_channels=in_shape[0], in_size=tuple(in_shape[1:3]))
    return MODELS[name](num_classes=num_classes, in_channels=in_shape[0])
