"""NCE+RCE, the Active Passive Loss of Ma, Huang, Wang, Romano, Erfani & Bailey, "Normalized Loss
Functions for Deep Learning with Noisy Labels", ICML 2020 (arXiv 2006.13554).

With ``p = softmax(z)``:

* normalized loss (Sec. 3, Eq. 2): ``L_norm = L(f(x), y) / sum_j L(f(x), j)``; for cross entropy
  (Eq. 3) ``NCE = -log p_y / (-sum_k log p_k)``, in ``[0, 1]`` and summing to 1 over the labels
  ``y`` (its robustness: ``sum_j L_norm(f(x), j) = 1`` is a constant, Lemma 1);
* reverse cross entropy (the passive loss, from SCE): ``RCE = -A (1 - p_y)`` with ``log 0``
  clipped to ``A`` (:func:`tune_lnl.methods.losses.rce`, shared with ``sce``);
* APL (Sec. 4, Eq. 6): ``L = alpha NCE + beta RCE``, per sample, mean over the batch.

Defaults: the released CIFAR-10 config (github HanxunH/Active-Passive-Losses,
``configs/cifar10/{sym,asym}/nce+rce.yaml``: alpha 1.0, beta 1.0). Its other configs: MNIST alpha
1.0, beta 10.0 (``configs/mnist/*/nce+rce.yaml``; the first trial of
``search_spaces/nce_rce_mnist.yaml``), CIFAR-100 alpha 10.0, beta 0.1, WebVision alpha 50.0,
beta 0.1. The paper's grid: alpha in {0.1, 1, 10}, beta in {0.1, 1, 10, 100}, chosen on a 20%
noisy validation split. ``A = -4`` (SCE's text); the official ``ReverseCrossEntropy`` clips the
one-hot label at 1e-4, i.e. ``A = ln 1e-4 = -9.21`` (RCE 2.3 times heavier; set ``A: -9.2103`` for
the code's scale). The code also clips gradients at norm 5 (``grad_bound``), which we do not.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainables.sce import A_RULE
from tune_lnl.methods.constraints import NON_NEGATIVE
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.losses import rce
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


def nce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Normalized cross entropy ``-log p_y / (-sum_k log p_k)`` per sample (APL Eq. 3)."""
    logp = F.log_softmax(logits, dim=1)
    return logp.gather(1, labels.unsqueeze(1)).squeeze(1) / logp.sum(1)


class NCERCE(SingleNetwork):
    """NCE+RCE (Ma et al., ICML 2020): alpha NCE + beta RCE (APL Eq. 6)."""
    name = "nce_rce"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        alpha: float = hp(1.0, "weight of normalized cross entropy, the active loss (APL Eq. 6; official config: "
                               "1.0 CIFAR-10 and MNIST, 10.0 CIFAR-100)", NON_NEGATIVE)
        beta: float = hp(1.0, "weight of reverse cross entropy, the passive loss (APL Eq. 6; official config: "
                              "1.0 CIFAR-10, 10.0 MNIST, 0.1 CIFAR-100)", NON_NEGATIVE)
        A: float = hp(-4.0, "log 0 clipped to A in reverse cross entropy (SCE Eq. 5: -4; official code: "
                            "ln 1e-4 = -9.21)", A_RULE)

    def loss(self, logits, labels):
        hp_ = self.hp
        return hp_.alpha * nce(logits, labels) + hp_.beta * rce(logits, labels, hp_.A)  # APL Eq. 6


class NCERCETrainable(MethodTrainable):
    method_cls = NCERCE
