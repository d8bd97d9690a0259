"""Symmetric cross entropy (Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy
Labels", ICCV 2019), a method that is NOT built into tune_lnl, as a plugin: one file, outside
the package, named in a space file as ``method: "sce:SCE"``.

With ``p = softmax(z)`` the prediction and ``q`` the one-hot noisy label:

* (Eq. 3) cross entropy ``CE = -sum_k q_k log p_k = -log p_y``;
* (Eq. 5) reverse cross entropy ``RCE = -sum_k p_k log q_k``: ``log q_k`` is 0 for ``k = y``
  and ``log 0`` is clipped to ``A`` (the paper: ``A = -4``), so ``RCE = -A (1 - p_y)``;
* (Eq. 6) ``SCE = alpha * CE + beta * RCE``.

The paper's values: MNIST alpha 0.01, beta 1.0; CIFAR-10 alpha 0.1, beta 1.0; A = -4.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl import NON_NEGATIVE, Range, SingleNetwork, hp


class SCE(SingleNetwork):
    """Symmetric cross entropy (Wang et al., ICCV 2019): alpha * CE + beta * reverse CE."""

    # the hyperparameters: the network's (model, epochs, lr, optimizer, ...) from
    # SingleNetwork.Hyper, plus this loss's own, each with its default, meaning and value rules
    # (checked on every fixed value, paper value and range bound of a space file)
    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        alpha: float = hp(0.1, "weight of cross entropy (Eq. 6; paper: 0.01 MNIST, 0.1 CIFAR-10)", NON_NEGATIVE)
        beta: float = hp(1.0, "weight of reverse cross entropy (Eq. 6; paper: 1.0)", NON_NEGATIVE)
        A: float = hp(-4.0, "log(0) clipped to A in reverse cross entropy (Eq. 5; paper: -4)",
                      Range(high=0.0, high_open=True))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample SCE ``[B]`` (Eq. 6)."""
        ce = F.cross_entropy(logits, labels, reduction="none")                              # Eq. 3
        p_y = logits.float().softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
        rce = -self.hp.A * (1.0 - p_y)                                                      # Eq. 5
        return self.hp.alpha * ce + self.hp.beta * rce                                      # Eq. 6
