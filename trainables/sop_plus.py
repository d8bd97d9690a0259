"""SOP+ (Liu, Zhu, Qu & You, "Robust Training under Label Noise by Over-parameterization", ICML 2022): SOP
(trainables/sop.py: the per-sample noise ``s_i = u_i^2 y_i - v_i^2 (1 - y_i)``, its loss and the u/v SGD,
imported from there) plus the two terms of SOP+ (the paper's Sec. 4, "SOP+"; its equation numbers were not
at hand): a consistency term between two views and the class-balance term. Per batch, with ``x_w`` the weak
view (the run's ``augment``; un-augmented when it is off), ``x_s`` the strong one (``strong_augment``), both
through the network in ONE forward pass (one batch-norm batch, as the code's ``torch.cat([data, data2])``),
``z_w, z_s`` their logits:

    L = L_SOP(z_w; u, v) + ratio_balance (-(1/C) sum_c log clamp(mean_b q_c, 1e-4, 1))
        + ratio_consistency mean_b KL(softmax(z_w) || softmax(z_s)),

``q`` SOP's corrected prediction on the weak view (sop.py), the KL's first argument detached (the weak view is
the target; only the strong view's logits get its gradient): ``KL = sum_c p_wc (log p_wc - log p_sc)``. Both new
terms act on the network only (the balance term also on ``u`` in the ``official`` variant, as in sop.py).

The code (github shengliu66/SOP, model/loss.py ``overparametrization_loss`` with ``ratio_consistency > 0``,
trainer/trainer.py) is this with its weak view = random crop + flip and its strong view = AutoAugment's CIFAR-10
policy + crop + flip + Cutout 16; ours is :mod:`tune_lnl.data.randaugment` (RandAugment + Cutout, FixMatch's).
``ratio_consistency: 0`` skips the strong view (one forward pass: SOP with the balance term, as the code).

Defaults: the only released SOP+ config, config_cifar100.json: ratio_consistency 0.9, ratio_balance 0.1, 300
epochs (its cosine annealing to 2e-4 is not available: ``lr_schedule: step``, lr / 10 at 50% and 75%); lr_u 10,
lr_v 10, weight decay 5e-4, lr 0.02 and SGD momentum 0.9 are SOP's CIFAR-10 values (sop.py; CIFAR-100: lr_u 1,
lr_v 10, weight decay 1e-3). The paper's Table A.1 itself was not at hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainables.sop import SOP
from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, set_lr, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE
from tune_lnl.methods.hparams import Common, hp, like
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.semi import labeled_unlabeled_plan


def consistency_kl(logits_weak: torch.Tensor, logits_strong: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(softmax(z_w) || softmax(z_s))`` ``[B]``, the weak view's prediction detached (the target)."""
    z_w = logits_weak.detach()
    z_w = z_w if z_w.dtype == torch.float64 else z_w.float()
    log_pw = F.log_softmax(z_w, dim=1)
    log_ps = F.log_softmax(logits_strong if logits_strong.dtype == torch.float64 else logits_strong.float(), dim=1)
    return torch.linalg.vecdot(log_pw.exp(), log_pw - log_ps, dim=1)


class SOPPlus(SOP):
    """SOP+ (Liu et al., ICML 2022): SOP + a weak/strong-view consistency KL + the class-balance term."""
    name = "sop_plus"

    @dataclass(frozen=True)
    class Hyper(hparams.StrongView, SOP.Hyper):
        """SOP's with SOP+'s two weights on, the strong view, and the SOP+ config's epochs (module docstring)."""
        epochs: int = like(Common, "epochs", 300, "training epochs (official SOP+ config: 300)")
        ratio_balance: float = hp(0.1, "weight of the class-balance term (official SOP+: 0.1)", NON_NEGATIVE)
        ratio_consistency: float = hp(0.9, "weight of the weak/strong-view consistency KL (official SOP+: 0.9); "
                                           "0: no strong view", NON_NEGATIVE)

    def build(self) -> None:
        super().build()  # the network, its optimizer, u and v
        self.strong = self.data.augmentation(self.hp.strong_augment)

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        set_lr(self.opt, lr)
        ratio = float(self.hp.ratio_consistency)
        if ratio == 0:
            return super().train_epoch()
        everyone = torch.arange(self.data.n_train, device=self.device)
        plan = [idx for idx, _ in labeled_unlabeled_plan(everyone, everyone[:0], int(self.hp.batch_size), self.gen)]
        meter = LossMeter(self.device)
        for idx, (x_weak, x_strong), noisy in self.view_batches(plan, [self.augment, self.strong]):
            z_weak, z_strong = self.net(torch.cat([x_weak, x_strong])).chunk(2)
            extra = ratio * consistency_kl(z_weak, z_strong).mean()
            meter.add(self.sop_step(idx, z_weak, noisy, extra))
        return {"train_loss": meter.mean, "lr": lr, **self.noise_stats()}


class SOPPlusTrainable(MethodTrainable):
    method_cls = SOPPlus
