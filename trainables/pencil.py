"""PENCIL (Yi & Wu, "Probabilistic End-to-end Noise Correction for Learning with Noisy Labels",
CVPR 2019): ONE network that learns, besides its weights, a label distribution per training
sample, as a plain PyTorch object (:class:`PENCIL`) plus its Ray Tune adapter
(:class:`PENCILTrainable`).

Each training sample ``i`` owns a row ``y~_i`` of a label table, initialised ``K * onehot(noisy)``
(MLC paper Eq. 4); its label distribution is ``y_d = softmax(y~)`` (Eq. 5). Three stages by
0-based epoch ``e``:

1. ``e < stage1``: backbone learning, cross-entropy on the noisy labels.
2. ``stage1 <= e < stage2``: the network minimises ``lc + alpha * lo + beta * le`` (Eq. 8 without
   MLC's co-regularization ``xi * ld``; per-sample, mean over the batch) with ``y_d`` fixed; after
   the network step every row of the batch moves ``y~ <- y~ - lambda * dL/dy~`` (Eq. 6), the
   gradient of the same batch-mean loss taken on the DETACHED logits of that step's forward
   pass (only ``lc`` and ``lo`` depend on ``y~``).
3. ``e >= stage2``: fine-tuning on ``lc`` alone, ``y~`` frozen.

The loss terms are those of :func:`tune_lnl.methods.losses.pencil_lc` (flipped KL of the prediction ``p``
against ``y_d``), :func:`~tune_lnl.methods.losses.pencil_lo` (CE of ``y_d`` against the noisy label) and
:func:`~tune_lnl.methods.losses.pencil_le` (entropy of ``p``), summed over classes (MLC's ``paper``
variant; no class mean, no double softmax); ``lc + beta * le`` is computed in one pass
(:func:`~tune_lnl.methods.losses.pencil_lc_le`). The label update uses the closed-form gradient
(:func:`label_grad`, checked against autograd in the tests).

Learning rate: ``lr`` before ``stage2``, ``lr2`` from ``stage2`` on (set on the optimizer's
param groups at the start of each epoch; Adam state carries over).

Sources: the shared folder holds no PENCIL paper. The method is taken from the MLC paper
(shared/papers/mlc-mutual-label-correction.txt, Sec. IV-B/C, Eq. 4-8, which adopts PENCIL's label
distribution, update and loss) and shared/reference/mlc-official-code-notes.md ("PENCIL: three
stages ..."). The defaults follow the MLC paper's MNIST setup, which MLC inherited from PENCIL:
stage1 30, stage2 140, lr 1e-3 then 1e-4, alpha 0.4, beta 0.1, K 10, lambda 100 (MLC Table I's
1000 for sym-0.2 divided by C = 10), batch 128, Adam; 200 epochs rather than MLC's 320.

Units of lambda: these are the paper's equations (sums over classes), while Table I's lambdas were
tuned with code whose ``lc`` is a mean over the C classes, i.e. a C times smaller step. Table I's
value as it stands is an unstable step (docs/reproduction.md section 4: the label table
oscillates and sym-0.8 ends below chance), so the shipped files and the default take Table I / C
(section 5).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, set_lr
from tune_lnl.methods.hparams import like
from tune_lnl.methods.label_table import LabelTable, check_stages, init_table, stage_lr, stage_of
from tune_lnl.methods.losses import cross_entropy, pencil_lc_le
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


def per_sample_loss(logits: torch.Tensor, ytilde: torch.Tensor, noisy: torch.Tensor, stage: int,
                    alpha: float, beta: float) -> torch.Tensor:
    """The stage's per-sample loss ``[B]`` of the network with logits ``logits``."""
    if stage == 1:
        return cross_entropy(logits, noisy)                 # PENCIL stage 1: CE on the noisy labels
    log_yd = F.log_softmax(ytilde, dim=1)                   # log y_d, y_d = softmax(y~) (MLC Eq. 5)
    if stage == 3:
        return pencil_lc_le(logits, log_yd)                 # PENCIL stage 3: lc(p, y_d) only
    lo = F.nll_loss(log_yd, noisy, reduction="none")        # lo(y^, y_d) = -log y_d[y] (MLC Eq. 8)
    # lc(p, y_d) + beta * le(p) in one pass (tune_lnl.methods.losses.pencil_lc_le), + alpha * lo: MLC Eq. 8
    return pencil_lc_le(logits, log_yd, beta) + alpha * lo  # (without MLC's xi * ld)


def label_grad(logits: torch.Tensor, ytilde: torch.Tensor, noisy: torch.Tensor, alpha: float) -> torch.Tensor:
    """``dL/dy~`` of the stage-2 batch-mean loss ``L`` on the DETACHED ``logits``, in closed form:
    with ``y_d = softmax(y~)`` and ``p = softmax(logits)``, ``d lc / d y~ = y_d - p`` and
    ``d lo / d y~ = y_d - e_y`` (``le`` does not depend on ``y~``), so per sample
    ``dL/dy~ = ((y_d - p) + alpha * (y_d - e_y)) / B``. Tests compare it with autograd."""
    b, c = ytilde.shape
    yd = F.softmax(ytilde, dim=1)
    p = F.softmax(logits.detach(), dim=1)
    onehot = F.one_hot(noisy, c).to(yd.dtype)
    # -(p - (1 + alpha) y_d + alpha e_y) / B
    return torch.add(p, yd, alpha=-(1.0 + alpha)).add_(onehot, alpha=alpha).div_(-b)


def label_update(logits: torch.Tensor, ytilde: torch.Tensor, noisy: torch.Tensor, alpha: float,
                 beta: float, lam: float) -> torch.Tensor:
    """New label rows ``y~ - lambda * dL/dy~`` with ``L`` the stage-2 batch-mean loss on the
    detached ``logits`` (:func:`label_grad`; ``beta``: ``le`` does not depend on ``y~``)."""
    return torch.add(ytilde, label_grad(logits, ytilde, noisy, alpha), alpha=-lam)  # MLC Eq. 6


class PENCIL(SingleNetwork):
    """PENCIL (Yi & Wu, CVPR 2019): one network that also learns a label distribution per sample."""
    name = "pencil"
    tables = ("ytilde",)  # the label table is checkpointed with the networks

    @dataclass(frozen=True)
    class Hyper(LabelTable, hparams.Optimizer, hparams.Common):
        """The label table's, the optimizer's (no lr schedule: PENCIL's lr is stage-wise) and the
        backbone's; 200 epochs rather than MLC's 320."""
        #: Table I's sym-0.2 value / C: the published code's step (see the module docstring)
        lambda_: float = like(LabelTable, "lambda", 100.0)

    @classmethod
    def check_config(cls, hp):
        return check_stages(hp)

    def loss(self, logits, labels):
        """Stage 1's per-sample loss (cross-entropy on the noisy labels); later stages: :meth:`train_epoch`."""
        return cross_entropy(logits, labels)

    def build(self) -> None:
        super().build()  # the network, its optimizer
        # MLC Eq. 4: y~ = K * onehot(noisy label), one row per training sample (dataset index)
        self.ytilde = init_table(self.data.train_noisy, self.data.num_classes, self.hp.K)

    def train_epoch(self) -> dict:
        hp_, e = self.hp, self.epoch
        stage = stage_of(e, hp_)
        lr = stage_lr(e, hp_)
        set_lr(self.opt, lr)
        alpha, beta = hp_.alpha, hp_.beta
        meter = LossMeter(self.device)
        for idx, x, noisy in self.train_batches():
            ytilde = self.ytilde.index_select(0, idx)  # a copy of the batch's rows
            logits = self.net(x)
            loss = per_sample_loss(logits, ytilde, noisy, stage, alpha, beta).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if stage == 2:
                new_rows = label_update(logits, ytilde, noisy, alpha, beta, hp_.lambda_)
                self.ytilde.index_copy_(0, idx, new_rows)
            meter.add(loss)
        return {"stage": stage, "lr": lr, "train_loss": meter.mean,
                **self.label_correction(self.ytilde)}  # analytics only: label_acc, _clean, _noisy



class PENCILTrainable(MethodTrainable):
    method_cls = PENCIL
