"""JoCoR (Wei et al., CVPR 2020): both networks are trained on ONE small-loss selection of the
per-sample joint loss

    l = (1 - co_lambda) * (CE(p_A, y) + CE(p_B, y)) + co_lambda * (KL(p_A||p_B) + KL(p_B||p_A)),

the co-regularization pulling their predictions together (both networks receive its gradient).
The kept share ``1 - forget_rate(e)`` follows Co-teaching's ramp. co_lambda: its code's default
is 0.1; the authors report 0.5-0.9 working best."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods.base import LossMeter
from tune_lnl.methods.constraints import RATE
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.losses import symmetric_kl_log
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.selection import small_loss_selection
from tune_lnl.methods.two_networks import SmallLossHyper, TwoNetworks


def joint_loss(logits_a, logits_b, noisy, co_lambda: float) -> torch.Tensor:
    """JoCoR's per-sample joint loss (its Eq. 5 with the co-regularization of Eq. 3); each
    network's log-probabilities computed once, shared by its CE and the symmetric KL."""
    log_pa, log_pb = F.log_softmax(logits_a, dim=1), F.log_softmax(logits_b, dim=1)
    ce = F.nll_loss(log_pa, noisy, reduction="none") + F.nll_loss(log_pb, noisy, reduction="none")
    return (1.0 - co_lambda) * ce + co_lambda * symmetric_kl_log(log_pa, log_pb)


class JoCoR(TwoNetworks):
    """JoCoR (Wei et al., CVPR 2020): both networks train on one small-loss selection of a joint loss."""
    name = "jocor"

    @dataclass(frozen=True)
    class Hyper(SmallLossHyper):
        co_lambda: float = hp(0.1, "weight of the co-regularization (symmetric KL) in the joint loss (code: 0.1; "
                                   "authors: 0.5-0.9 best)", RATE)

    def train_epoch(self) -> dict:
        rate, lr = self.begin_epoch()
        meter = LossMeter(self.device)
        picked = self.selection_meter()  # analytics: precision of the small-loss selection
        for idx, x, noisy in self.train_batches():
            losses = joint_loss(self.net_a(x), self.net_b(x), noisy, self.hp.co_lambda)
            # one small-loss selection, both networks trained on it
            keep = small_loss_selection(losses, rate)
            loss = losses.index_select(0, keep).mean()
            self.update_both(loss)
            meter.add(loss)
            picked.add(idx, keep)
        return {"forget_rate": rate, "train_loss": meter.mean, "lr": lr, "select_precision": picked.precision}


class JoCoRTrainable(MethodTrainable):
    method_cls = JoCoR
