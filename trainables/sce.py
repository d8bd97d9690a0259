"""Symmetric cross entropy (Wang, Ma, Chen, Luo, Yi & Bailey, "Symmetric Cross Entropy for Robust
Learning with Noisy Labels", ICCV 2019; equation numbers of the arXiv version 1908.06112).

With ``p = softmax(z)`` the prediction and ``q`` the one-hot noisy label:

* (Eq. 3) cross entropy ``CE = -sum_k q_k log p_k = -log p_y``;
* (Eq. 5) reverse cross entropy ``RCE = -sum_k p_k log q_k``: ``log q_y = 0`` and ``log 0`` is
  clipped to the constant ``A < 0``, so ``RCE = -A (1 - p_y)``
  (:func:`tune_lnl.methods.losses.rce`, shared with ``nce_rce``);
* (Eq. 6) ``SL = alpha CE + beta RCE``, per sample, mean over the batch.

Defaults: the paper's CIFAR-10 values alpha 0.1, beta 1.0 (its MNIST values, alpha 0.01, beta
1.0, are the first trial of ``search_spaces/sce_mnist.yaml``), ``A = -4`` (the paper's text).
The official code (github YisenWang/symmetric_cross_entropy_for_noisy_labels, Keras, and its
PyTorch port in HanxunH/Active-Passive-Losses, ``SCELoss``) clips the one-hot label at 1e-4
instead, i.e. ``A = ln 1e-4 = -9.21``: the same loss with RCE 2.3 times heavier, so the code's
``beta = 1`` is ``beta = 2.3`` here (set ``A: -9.2103`` to run the code's scale); it also clips
``p`` at 1e-7 inside RCE (no effect above that). Ours matches the code's numbers at ``A = ln 1e-4``
(tests/unit/builtin_methods/test_robust_losses.py).
"""
from dataclasses import dataclass

from tune_lnl.methods.constraints import NON_NEGATIVE, Range
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.losses import cross_entropy, rce
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork

#: ``log 0`` clipped to A < 0 (SCE Eq. 5); shared by ``sce`` and ``nce_rce``
A_RULE = Range(high=0.0, high_open=True, message="A (the clipped log 0) must be < 0")


class SCE(SingleNetwork):
    """Symmetric cross entropy (Wang et al., ICCV 2019): alpha CE + beta RCE (Eq. 6)."""
    name = "sce"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        alpha: float = hp(0.1, "weight of cross entropy (Eq. 6; paper: 0.1 CIFAR-10, 0.01 MNIST)", NON_NEGATIVE)
        beta: float = hp(1.0, "weight of reverse cross entropy (Eq. 6; paper: 1.0)", NON_NEGATIVE)
        A: float = hp(-4.0, "log 0 clipped to A in reverse cross entropy (Eq. 5; paper: -4; official code: "
                            "ln 1e-4 = -9.21)", A_RULE)

    def loss(self, logits, labels):
        hp_ = self.hp
        return hp_.alpha * cross_entropy(logits, labels) + hp_.beta * rce(logits, labels, hp_.A)  # Eq. 6


class SCETrainable(MethodTrainable):
    method_cls = SCE
