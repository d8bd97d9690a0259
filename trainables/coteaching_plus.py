"""Co-teaching+ (Yu et al., "How does Disagreement Help Generalization against Label
Corruption?", ICML 2019): Co-teaching plus "update by disagreement", as a plain PyTorch object
(:class:`CoTeachingPlus`) plus its Ray Tune adapter (:class:`CoTeachingPlusTrainable`).

Two networks A and B; 0-based epoch ``e``:

* ``e < init_epoch``: exactly Co-teaching (:func:`tune_lnl.methods.selection.cross_update`): each
  network keeps the ``1 - forget_rate(e)`` smallest of its own cross-entropies on the batch and
  its PEER is trained on that selection.
* ``e >= init_epoch``: the same exchange restricted to the batch samples on which the two
  networks' arg-max predictions DISAGREE: among those ``n`` samples each network keeps its
  ``max(1, int((1 - forget_rate(e)) * n))`` smallest cross-entropies and its peer is trained on
  them (mean loss). If no sample of the batch disagrees, both networks are trained on the whole
  batch (mean cross-entropy). That is the authors' published code's fallback, which however
  applies it only while ``epoch * batch_index < 5000`` and skips the update (zero loss) after;
  here it applies always.

``forget_rate(e)`` ramps linearly from 0 to ``forget_rate`` over the first ``num_gradual`` epochs
(:func:`tune_lnl.methods.selection.forget_rate_at`). ``init_epoch``: the published code hard-codes 20
for CIFAR-10 (the default here), 0 for MNIST, 5 for CIFAR-100.

Where the published code differs (not reproduced): its cross-entropies are taken on
``softmax(logits)`` (a double softmax), its per-network loss on the selection is the mean
divided once more by the kept count, and when ``int((1 - r) * n)`` is 0 it keeps all ``n``
disagreeing samples instead of one.

The selection runs without a host sync (fixed-shape masks; the kept count is a device tensor),
so the per-batch disagreement count is accumulated on the device too.

Not included: the published code's linear decay of Adam's lr and beta1 from epoch 80 on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from tune_lnl.methods.base import LossMeter
from tune_lnl.methods.constraints import NON_NEGATIVE
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.selection import cross_update
from tune_lnl.methods.two_networks import SmallLossHyper, TwoNetworks


def kept_count(disagree: torch.Tensor, forget_rate: float) -> torch.Tensor:
    """``max(1, int((1 - forget_rate) * n))`` for the ``n`` disagreeing samples, a 0-dim device
    tensor (``int((1 - r) * n)`` in float64, as Python computes it for the plain selection)."""
    return torch.floor((1.0 - forget_rate) * disagree.sum().double()).long().clamp_min(1)


def disagreement_selection(losses: torch.Tensor, disagree: torch.Tensor, forget_rate: float,
                           keep: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask ``[B]`` of the ``max(1, int((1 - forget_rate) * n))`` smallest ``losses``
    among the ``n`` samples where ``disagree`` is True (all False when ``n == 0``); ``keep``:
    that count if already known (:func:`kept_count`). Ties: the lower index first."""
    if keep is None:
        keep = kept_count(disagree, forget_rate)
    ranked = torch.where(disagree, losses.detach(), float("inf"))
    order = torch.argsort(ranked, stable=True)
    # the first `keep` positions of the sorted order, scattered back to the samples
    first = torch.arange(order.numel(), device=order.device) < keep
    return torch.empty_like(disagree).scatter_(0, order, first) & disagree


def disagreement_update(logits_a: torch.Tensor, logits_b: torch.Tensor, labels: torch.Tensor,
                        forget_rate: float):
    """Co-teaching+'s update by disagreement. Returns ``(loss for A, loss for B, n_disagree,
    trained A on, trained B on)``: A's mean cross-entropy on the disagreeing samples B ranks
    small-loss, and vice versa; both networks' mean cross-entropy on the whole batch if no sample
    disagrees. ``n_disagree`` is a 0-dim device tensor; the last two are boolean masks over the
    batch (B's selection, A's selection; the whole batch if no sample disagrees), for the
    precision analytics."""
    loss_a, loss_b = cross_entropy(logits_a, labels), cross_entropy(logits_b, labels)
    disagree = logits_a.argmax(1) != logits_b.argmax(1)
    n_disagree = disagree.sum()
    keep = kept_count(disagree, forget_rate)  # both selections keep this many (<= n when n >= 1)
    keep_by_a = disagreement_selection(loss_a, disagree, forget_rate, keep)
    keep_by_b = disagreement_selection(loss_b, disagree, forget_rate, keep)
    any_disagree = n_disagree > 0
    # masked means over the `keep` selected samples; the whole batch if none disagrees (fallback)
    train_a = torch.where(any_disagree, torch.where(keep_by_b, loss_a, 0.0).sum() / keep, loss_a.mean())
    train_b = torch.where(any_disagree, torch.where(keep_by_a, loss_b, 0.0).sum() / keep, loss_b.mean())
    return (train_a, train_b, n_disagree, keep_by_b | ~any_disagree, keep_by_a | ~any_disagree)


class CoTeachingPlus(TwoNetworks):
    """Co-teaching+ (Yu et al., ICML 2019): Co-teaching on the samples the networks disagree on."""
    name = "coteaching_plus"

    @dataclass(frozen=True)
    class Hyper(SmallLossHyper):
        init_epoch: int = hp(20, "epoch from which the networks train on their disagreement (before: Co-teaching)",
                             NON_NEGATIVE)

    def train_epoch(self) -> dict:
        rate, lr = self.begin_epoch()
        by_disagreement = self.epoch >= self.hp.init_epoch
        meter = LossMeter(self.device)
        disagreeing = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        picked = self.selection_meter()  # analytics: precision of the samples trained on
        for idx, x, noisy in self.train_batches():
            logits_a, logits_b = self.net_a(x), self.net_b(x)
            if by_disagreement:
                train_a, train_b, n_disagree, on_a, on_b = disagreement_update(logits_a, logits_b, noisy, rate)
            else:  # plain Co-teaching (A trains on B's selection and vice versa)
                train_a, train_b, on_b, on_a = cross_update(cross_entropy(logits_a, noisy),
                                                            cross_entropy(logits_b, noisy), rate)
                n_disagree = (logits_a.argmax(1) != logits_b.argmax(1)).sum()
            self.update_both(train_a + train_b)  # the two terms touch disjoint networks
            meter.add(train_a)
            picked.add(idx, on_a, on_b)
            disagreeing += n_disagree
            seen += noisy.shape[0]
        return {"forget_rate": rate, "train_loss": meter.mean, "lr": lr,
                "disagree_frac": float(disagreeing) / max(1, seen), "select_precision": picked.precision}


class CoTeachingPlusTrainable(MethodTrainable):
    method_cls = CoTeachingPlus
