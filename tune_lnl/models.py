"""Backbones. MNIST: the two-layer MLP (784-256-10) of Co-teaching / MLC."""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """784 -> 256 -> 10 with ReLU, as used by Co-teaching and the MLC paper on MNIST."""

    def __init__(self, in_features: int = 784, hidden: int = 256, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


MODELS = {"mlp": MLP}


def build_model(name: str, num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if name == "mlp":
        n_in = 1
        for s in in_shape:
            n_in *= s
        return MLP(n_in, 256, num_classes)
    return MODELS[name](num_classes=num_classes)
