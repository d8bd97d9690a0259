"""Generalized label smoothing (Wei, Liu, Liu, Niu, Sugiyama & Liu, "To Smooth or Not? When Label
Smoothing Meets Noisy Labels", ICML 2022; arXiv 2106.04149).

Label smoothing (Eq. 1) trains on the target ``y_r = (1 - r) e_y + (r / C) 1`` (``e_y`` the one-hot
noisy label, ``C`` classes); GLS lets the smooth rate ``r <= 1`` be negative (negative label
smoothing, NLS; positive is PLS, ``r = 0`` plain cross entropy). The loss is the cross entropy
against that target:

    GLS = -sum_k y_r,k log p_k = (1 - r) (-log p_y) + r * mean_k(-log p_k)

(the official ``loss_gls`` computes exactly this). ``r = 0`` is cross entropy; for ``r < 0`` the
target's off-label entries are negative and the loss is unbounded below (it keeps pushing the
other classes' probabilities down), which is the method.

Training protocol (official code, github UCSC-REAL/negative-label-smoothing, README "Warm-up with
CE loss": "when noise rates are large, warming up with CE loss makes PLS and NLS reach a better
performance"): ``warmup`` epochs of plain cross entropy (``main_warmup.py``: 120 epochs), then GLS
(``main_GLS_load.py``: 100 epochs at learning rate ``1e-6``, SGD momentum 0.9, nesterov, weight decay
1e-4). ``warmup: 0`` is the README's "direct training" (better for low noise). Phases by 0-based
epoch ``e``: ``e < warmup``: cross entropy at ``lr`` (and its schedule); ``e >= warmup``: GLS at
``lr2``. The official GLS stage starts from the warm-up checkpoint with the best TEST accuracy;
here it continues from the last warm-up epoch (the test set never selects).

Defaults: the official CIFAR-10 protocol's warm-up 120 and GLS learning rate 1e-6, 220 epochs in
all; smooth rate -0.2 (NLS: the paper's conclusion for high noise; its grid, README: 0.8, 0.6,
0.4, 0.2, 0.0, -0.2, -0.4, -0.6, -0.8, -1.0, -2.0, -4.0, -6.0, -8.0, best rate per setting
selected from it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods.base import step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, Range, warmup_inside
from tune_lnl.methods.hparams import Common, hp, like
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


def gls(logits: torch.Tensor, labels: torch.Tensor, rate: float) -> torch.Tensor:
    """Per-sample cross entropy against ``(1 - rate) e_y + rate / C`` (GLS Eq. 1, any ``rate <= 1``):
    ``(1 - rate) (-log p_y) + rate * mean_k(-log p_k)``; ``rate = 0`` is cross entropy."""
    logp = F.log_softmax(logits, dim=1)
    nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1)
    return (1.0 - rate) * nll - rate * logp.mean(1)


class GLS(SingleNetwork):
    """Generalized (positive or negative) label smoothing (Wei et al., ICML 2022), after a CE warm-up."""
    name = "gls"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        smooth_rate: float = hp(-0.2, "smooth rate r of the target (1 - r) e_y + r / C (Eq. 1): < 0 negative (NLS), "
                                      "> 0 positive label smoothing, 0 cross entropy (paper grid: 0.8 .. -8.0)",
                                Range(high=1.0))
        warmup: int = hp(120, "epochs of cross entropy before GLS (0: direct training; official CIFAR-10: 120)",
                         NON_NEGATIVE)
        lr2: float = hp(1e-6, "learning rate of the GLS phase (official CIFAR-10 code: 1e-6)", POSITIVE)
        epochs: int = like(Common, "epochs", 220, "training epochs, warm-up included (official: 120 + 100)")

    @classmethod
    def check_config(cls, hp):
        return warmup_inside(hp, "GLS must run")

    def loss(self, logits, labels):
        """The GLS phase's per-sample loss (the warm-up's is ``rate = 0``: cross entropy)."""
        return gls(logits, labels, self.hp.smooth_rate)

    def train_epoch(self) -> dict:
        warm = self.epoch < self.hp.warmup
        lr = step_lr(self.epoch, self.hp) if warm else float(self.hp.lr2)
        rate = 0.0 if warm else float(self.hp.smooth_rate)
        train_loss = self.fit_epoch(lr, lambda logits, noisy: gls(logits, noisy, rate))
        return {"train_loss": train_loss, "lr": lr, "stage": 1 if warm else 2, "smooth_rate": rate}


class GLSTrainable(MethodTrainable):
    method_cls = GLS
