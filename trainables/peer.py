"""Peer loss (Liu & Guo, "Peer Loss Functions: Learning from Noisy Labels without Knowing Noise
Rates", ICML 2020; arXiv 1910.03231), with cross entropy ``l`` and the alpha-weighted form:

    l_peer(n) = l(f(x_n), y_n) - alpha * l(f(x_n1), y_n2)

(peer loss, Sec. 3; ``alpha``: its weighted form, Sec. 5, with ``alpha = 1`` the plain peer loss),
where ``n1`` and ``n2`` are two training samples drawn independently and uniformly at random, so
the peer term pairs an image with an unrelated label: it estimates the loss of a prediction that
ignores the image and penalises fitting the noisy label marginal.

Here, per batch: the ``x_n1`` are a second, independent batch of the epoch (their own permutation
and augmentation from the run's generator, as the official code's second shuffled "peer" loader),
the ``y_n2`` the noisy labels of indices drawn uniformly (``torch.randint``) from the same
generator; so a checkpoint resumes the same draws. The two forward passes are separate (the
official code's; batch-norm statistics per pass).

Schedule (official multi-class code, github weijiaheng/Multi-class-Peer-Loss-functions,
``MNIST/runner.py`` and ``Fashion_MNIST/runner.py``, ``f_alpha`` "Setting 1" and
``adjust_learning_rate``): ``alpha = 0`` for ``warmup`` epochs (plain cross entropy: the peer term
is not even computed), then ``alpha`` rises linearly from ``alpha_start`` to ``alpha`` over the
remaining epochs (``np.linspace(0, 1, 180)`` after 120 of 300 epochs: the last epoch reaches
``alpha``); the learning rate is ``lr / (1 + alpha_e)`` (``scale_lr``), which keeps the step of
the CE term's gradient roughly constant as the peer term grows. Those are the defaults (300
epochs, warm-up 120, alpha 0 -> 1). The CIFAR-10 runner's schedules are piecewise-linear ramps
to alpha 20 (sparse noise) or 5 (uniform) after a 20-epoch warm-up, with an lr plan dividing by 10
every 40 epochs; only a single linear ramp is offered here. Difference from the official code:
it re-creates the optimizer every epoch (Adam's moments reset; ours persist).

The cross entropy of the peer phase is the official code's ``-log(p_y + eps)`` (``eps`` 1e-5, its
``CrossEntropyLossStable``), not the paper's exact one (``eps: 0``). It matters: with the exact CE
the peer term ``-alpha CE(f(x_n1), y_n2)`` is unbounded below, and a network that grows confident
can lower it without limit. In the FashionMNIST run of docs/methods.md (exact CE at the time)
every final seed collapsed once alpha approached 1 (test accuracy of the last epochs 52% / 25%
after 86% / 82% at the proxy's epoch); ``eps`` caps each term at ``-log(eps)`` = 11.5. The
warm-up is plain cross entropy (the CE baseline, bit for bit).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from tune_lnl.methods.base import LossMeter, set_lr, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, warmup_inside
from tune_lnl.methods.hparams import Common, hp, like
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


def bounded_ce(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-sample ``-log(p_y + eps)``, at most ``-log(eps)`` (the official code's ``CrossEntropyLossStable``
    with ``eps`` 1e-5); ``eps = 0``: the exact cross entropy."""
    if eps == 0.0:
        return cross_entropy(logits, labels)
    p_y = torch.softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return -torch.log(p_y + eps)


def peer_loss(logits: torch.Tensor, labels: torch.Tensor, peer_logits: torch.Tensor, peer_labels: torch.Tensor,
              alpha: float, eps: float = 0.0) -> torch.Tensor:
    """Per-sample ``CE(f(x_n), y_n) - alpha CE(f(x_n1), y_n2)`` (``peer_logits`` = f(x_n1),
    ``peer_labels`` = y_n2, already paired row by row), each CE :func:`bounded_ce` with ``eps``."""
    return bounded_ce(logits, labels, eps) - alpha * bounded_ce(peer_logits, peer_labels, eps)


def peer_alpha(epoch: int, hp) -> float:
    """The weight of the peer term at 0-based ``epoch``: 0 before ``warmup``, then
    ``np.linspace(alpha_start, alpha, epochs - warmup)[epoch - warmup]``."""
    if epoch < hp.warmup:
        return 0.0
    n = int(hp.epochs) - int(hp.warmup)
    t = (epoch - hp.warmup) / (n - 1) if n > 1 else 0.0
    return float(hp.alpha_start) + (float(hp.alpha) - float(hp.alpha_start)) * t


class Peer(SingleNetwork):
    """Peer loss (Liu & Guo, ICML 2020) with the official warm-up and linear alpha ramp."""
    name = "peer"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        alpha: float = hp(1.0, "weight of the peer term at the last epoch (official MNIST/Fashion-MNIST: 1.0)",
                          NON_NEGATIVE)
        alpha_start: float = hp(0.0, "weight of the peer term at the first epoch after warmup (official: 0.0)",
                                NON_NEGATIVE)
        warmup: int = hp(120, "epochs of plain cross entropy before the peer term (official MNIST: 120 of 300)",
                         NON_NEGATIVE)
        scale_lr: bool = hp(True, "learning rate lr / (1 + alpha_e) while the peer term is on (official code)")
        eps: float = hp(1e-5, "added to p_y inside the log of both cross entropies of the peer phase (official "
                              "code: 1e-5; bounds the peer term, so the loss below; 0: the paper's exact CE)",
                        NON_NEGATIVE)
        epochs: int = like(Common, "epochs", 300, "training epochs, warm-up included (official MNIST: 300)")

    @classmethod
    def check_config(cls, hp):
        return warmup_inside(hp, "the peer term must run")

    def loss(self, logits, labels):
        """The warm-up's per-sample loss (cross entropy); the peer phase: :meth:`train_epoch`."""
        return cross_entropy(logits, labels)

    def train_epoch(self) -> dict:
        if self.epoch < self.hp.warmup:
            return {**super().train_epoch(), "alpha": 0.0}  # plain cross entropy
        alpha = peer_alpha(self.epoch, self.hp)
        lr = step_lr(self.epoch, self.hp) / ((1.0 + alpha) if self.hp.scale_lr else 1.0)
        set_lr(self.opt, lr)
        meter, noisy_all = LossMeter(self.device), self.data.train_noisy
        peers = self.data.batches(int(self.hp.batch_size), self.gen, self.augment)  # the x_n1 (own permutation)
        for (_, x, noisy), (_, x1, _) in zip(self.train_batches(), peers):
            n2 = torch.randint(0, noisy_all.numel(), (x1.shape[0],), generator=self.gen, device=self.device)
            loss = peer_loss(self.net(x), noisy, self.net(x1), noisy_all[n2], alpha, self.hp.eps).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            meter.add(loss)
        return {"train_loss": meter.mean, "lr": lr, "alpha": alpha}


class PeerTrainable(MethodTrainable):
    method_cls = Peer
