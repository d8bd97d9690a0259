"""MLC: Mutual Label Correction (Liu et al., "Co-Correcting: Noise-tolerant Medical Image
Classification via mutual Label Correction" / the MLC paper in shared/papers), as a plain
PyTorch object (:class:`MLC`) plus its Ray Tune adapter (:class:`MLCTrainable`).

Two networks A and B train in three stages (epoch ``e``, 0-based):

1. ``e < stage1``: co-teaching. Each network ranks the batch by its own loss against the noisy
   label and keeps the ``1 - forget_rate(e)`` smallest; its PEER is trained on that selection.
2. ``stage1 <= e < stage2``: the same exchange on the PENCIL loss (Eq. 8) against the label
   distribution ``y_d = softmax(y~)`` (Eq. 5); after the network step the label table ``y~`` of
   every sample of the batch moves against the SUM of both networks' gradients (Eq. 7).
3. ``e >= stage2``: the same exchange on ``lc`` alone, label table frozen.

Every network loss adds the co-regularization ``xi * ld``, ``ld = dist ** mu`` (Eq. 2-3).

``variant: paper`` follows the paper's equations. ``variant: official`` reproduces what the
authors' published code computes (see shared/reference/mlc-official-code-notes.md): losses on
``softmax(softmax(logits))``, ``lo`` on ``softmax(softmax(y~))``, ``lc``/``le`` averaged over
classes, ``dist`` as the sum of per-tensor mean squared differences, network A receiving the
gradient of ``xi * ld`` twice, and the step-wise lr decay over the last stage.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tune_lnl.label_table import gradient_step, init_table, stage_lr, stage_of
from tune_lnl.losses import cross_entropy, pencil_lc, pencil_le, pencil_lo
from tune_lnl.method import LossMeter
from tune_lnl.ray_adapter import MethodTrainable
from tune_lnl.selection import cross_update_losses, forget_rate_at, small_loss_selection  # noqa: F401
from tune_lnl.two_networks import TwoNetworks

#: The paper's MNIST settings: Table I label-update steps, forget rate = noise rate, stage1 50
#: for pair-0.45 (published code), everything else from Sec. V-A.3.
PAPER_MNIST = {
    "common": {"epochs": 320, "stage1": 30, "stage2": 140, "lr": 1e-3, "lr2": 1e-4, "batch_size": 128,
               "alpha": 0.4, "beta": 0.1, "K": 10.0, "mu": -1.0, "xi": 0.01, "num_gradual": 10},
    "sym-0.2": {"lambda": 1000.0, "forget_rate": 0.2},
    "sym-0.4": {"lambda": 3000.0, "forget_rate": 0.4},
    "sym-0.8": {"lambda": 3000.0, "forget_rate": 0.8},
    "pair-0.2": {"lambda": 2000.0, "forget_rate": 0.2},
    "pair-0.45": {"lambda": 2500.0, "forget_rate": 0.45, "stage1": 50},
}


def lr_at(epoch: int, cfg: dict) -> float:
    """paper: ``lr`` before stage2, then ``lr2``. official: ``lr`` before stage2, then ``lr2``,
    ``lr2/10``, ``lr2/100`` over successive thirds of the remaining epochs."""
    if epoch < cfg["stage2"] or cfg["variant"] == "paper":
        return stage_lr(epoch, cfg)
    rest = max(1, cfg["epochs"] - cfg["stage2"])
    return cfg["lr2"] / 10 ** min(2, (epoch - cfg["stage2"]) * 3 // rest)


def param_distance(net_a: torch.nn.Module, net_b: torch.nn.Module, variant: str, detach_b: bool = False) -> torch.Tensor:
    """Eq. 2, ``dist = ||theta_1 - theta_2||_2`` over the whole parameter vector (paper); the
    published code's ``sum_t mean((theta_1t - theta_2t)^2)`` over parameter tensors (official)."""
    diffs = [pa - (pb.detach() if detach_b else pb) for pa, pb in zip(net_a.parameters(), net_b.parameters())]
    if variant == "paper":
        return torch.sqrt(sum((d * d).sum() for d in diffs))
    return sum((d * d).mean() for d in diffs)


def co_regularization(net_a, net_b, mu: float, xi: float, variant: str) -> torch.Tensor:
    """``xi * ld`` with ``ld = dist ** mu`` (Eq. 3), as ONE term whose backward gives each
    network the gradient of its own loss's ``xi * ld`` (paper). official: A gets it twice."""
    ld = param_distance(net_a, net_b, variant).clamp_min(1e-12) ** mu
    if variant == "paper":
        return xi * ld
    # published code: the xi*ld gradient reaches A twice, B once
    ld_a_only = param_distance(net_a, net_b, variant, detach_b=True).clamp_min(1e-12) ** mu
    return xi * (ld + ld_a_only)


def per_sample_loss(logits: torch.Tensor, ytilde: torch.Tensor, noisy: torch.Tensor, stage: int,
                    cfg: dict) -> torch.Tensor:
    """Per-sample network loss of the stage (Eq. 8 without ``xi*ld``), ``y~`` treated as fixed."""
    official = cfg["variant"] == "official"
    out = F.softmax(logits, dim=1) if official else logits  # official: the code's double softmax
    if stage == 1:
        return cross_entropy(out, noisy)
    lc = pencil_lc(out, ytilde, class_mean=official)                # lc(p, y_d)
    if stage == 3:
        return lc
    lo_in = F.softmax(ytilde, dim=1) if official else ytilde
    lo = pencil_lo(lo_in, noisy)                                     # lo(y^, y_d)
    le = pencil_le(out, class_mean=official)                         # le(p)
    return lc + cfg["alpha"] * lo + cfg["beta"] * le                 # Eq. 8


def label_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, ytilde: torch.Tensor,
               noisy: torch.Tensor, cfg: dict) -> torch.Tensor:
    """``L1 + L2`` as a function of ``y~`` (detached logits), batch-mean: its gradient w.r.t.
    ``y~`` is ``dL1/dy~ + dL2/dy~`` of Eq. 7 (``le`` and ``xi*ld`` do not depend on ``y~``).
    The published code uses the raw logits here (single softmax)."""
    official = cfg["variant"] == "official"
    lo_in = F.softmax(ytilde, dim=1) if official else ytilde
    lo = pencil_lo(lo_in, noisy)
    total = 0.0
    for logits in (logits_a, logits_b):
        total = total + (pencil_lc(logits.detach(), ytilde, class_mean=official) + cfg["alpha"] * lo).mean()
    return total


class MLC(TwoNetworks):
    name = "mlc"
    tables = ("ytilde",)  # the label table is checkpointed with the networks
    defaults = {
        "variant": "paper", "model": "mlp", "augment": True, "lambda": 1000.0, "forget_rate": 0.2,
        **PAPER_MNIST["common"],
    }

    def build(self) -> None:
        super().build()  # networks A and B, their optimizers, the augmentation
        # Eq. 4: y~ = K * onehot(noisy label), one row per training sample (dataset index)
        self.ytilde = init_table(self.data.train_noisy, self.data.num_classes, self.cfg["K"])

    def train_epoch(self) -> dict:
        cfg, e = self.cfg, self.epoch
        stage = stage_of(e, cfg)
        rate = forget_rate_at(e, cfg["forget_rate"], cfg["num_gradual"])
        lr = lr_at(e, cfg)
        self.set_lr(lr)
        meter = LossMeter(self.device)
        for idx, x, noisy in self.train_batches():
            ytilde = self.ytilde[idx]
            logits_a, logits_b = self.net_a(x), self.net_b(x)
            loss_a = per_sample_loss(logits_a, ytilde, noisy, stage, cfg)
            loss_b = per_sample_loss(logits_b, ytilde, noisy, stage, cfg)
            # co-teaching exchange: each network is trained on its PEER's small-loss selection
            train_a, train_b = cross_update_losses(loss_a, loss_b, rate)
            reg = co_regularization(self.net_a, self.net_b, cfg["mu"], cfg["xi"], cfg["variant"])
            total = train_a + train_b + reg
            self.update_both(total)
            if stage == 2:
                # Eq. 7: y~ <- y~ - lambda * (dL1/dy~ + dL2/dy~), every sample of the batch
                self.ytilde[idx] = gradient_step(
                    ytilde, lambda yt: label_loss(logits_a, logits_b, yt, noisy, cfg), cfg["lambda"])
            meter.add(total)
        with torch.no_grad():
            dist = float(param_distance(self.net_a, self.net_b, cfg["variant"]))
        label_acc = self.clean_agreement(self.ytilde.argmax(1))  # analytics only
        return {"stage": stage, "forget_rate": rate, "lr": lr, "train_loss": meter.mean,
                "dist": dist, "label_acc": label_acc}



class MLCTrainable(MethodTrainable):
    method_cls = MLC
