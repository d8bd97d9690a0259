"""Bootstrapping (Reed, Lee, Anguelov, Szegedy, Erhan & Rabinovich, "Training Deep Neural Networks
on Noisy Labels with Bootstrapping", ICLR 2015 workshop; arXiv 1412.6596, Sec. 3.2).

The training target mixes the noisy one-hot label ``t`` with the network's own prediction
``q = softmax(z)``, and the loss is the cross entropy against it:

* soft (the paper's ``L_soft``): ``L = -sum_k [beta t_k + (1 - beta) q_k] log q_k
  = beta CE(q, t) + (1 - beta) H(q)``;
* hard (the paper's ``L_hard``): ``L = -sum_k [beta t_k + (1 - beta) z_k] log q_k`` with ``z = onehot(argmax q)``,
  ``= beta CE(q, t) + (1 - beta) CE(q, argmax q)``.

Gradient through the target: NOT detached. The paper derives soft bootstrapping as softmax
regression with minimum-entropy regularisation (the ``(1 - beta) H(q)`` term), which is the
objective only when the ``q`` inside the target is differentiated too; the Keras reference
(``boot_soft`` in github YisenWang/symmetric_cross_entropy_for_noisy_labels, ``loss.py``) has no
stop-gradient either. For the hard variant the arg-max one-hot is piecewise constant, so nothing
flows through it anyway. ``beta = 1`` is cross entropy (both variants).

Defaults: the paper's values, soft ``beta = 0.95``, hard ``beta = 0.8`` (the MNIST and the later
experiments; the same in every paper since). ``beta``'s default is the soft variant's: set
``beta: 0.8`` with ``variant: hard``. (The Keras reference also clips ``q`` to [1e-7, 1 - 1e-7]
before the log; ours uses the exact log-softmax.)
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods.constraints import OneOf, Range
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork

VARIANTS = ("soft", "hard")


def bootstrap(logits: torch.Tensor, labels: torch.Tensor, beta: float, variant: str = "soft") -> torch.Tensor:
    """Per-sample bootstrapping loss (Reed et al. Sec. 3.2, ``L_soft`` / ``L_hard``); the target's ``q`` is
    not detached (see the module docstring)."""
    logp = F.log_softmax(logits, dim=1)
    ce = F.nll_loss(logp, labels, reduction="none")
    if variant == "soft":
        other = -(logp.exp() * logp).sum(1)                                  # H(q)
    elif variant == "hard":
        other = F.nll_loss(logp, logp.argmax(1), reduction="none")           # CE(q, argmax q)
    else:
        raise ValueError(f"bootstrap variant must be one of {VARIANTS}, got {variant!r}")
    return beta * ce + (1.0 - beta) * other


class Bootstrap(SingleNetwork):
    """Soft or hard bootstrapping (Reed et al., ICLR 2015 workshop)."""
    name = "bootstrap"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        variant: str = hp("soft", "soft (target mixes the prediction q) or hard (its arg-max one-hot)",
                          OneOf(VARIANTS))
        beta: float = hp(0.95, "weight of the noisy label in the target; 1 is cross entropy (paper: 0.95 soft, "
                               "0.8 hard)", Range(0.0, 1.0))

    def loss(self, logits, labels):
        return bootstrap(logits, labels, self.hp.beta, self.hp.variant)


class BootstrapTrainable(MethodTrainable):
    method_cls = Bootstrap
