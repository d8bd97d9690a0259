"""Co-teaching (Han et al., NeurIPS 2018): two networks; each ranks the batch by its own
cross-entropy against the noisy label, keeps the ``1 - forget_rate(e)`` smallest, and its PEER
is trained on that selection. ``forget_rate(e)`` ramps linearly from 0 to ``forget_rate`` over
the first ``num_gradual`` epochs (Tk = 10 in the paper), then stays constant.

Not included: the original code's linear decay of Adam's lr and beta1 from epoch 80 on
(constant lr here)."""
from __future__ import annotations

from tune_lnl.methods.base import LossMeter
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.selection import cross_update
from tune_lnl.methods.two_networks import TwoNetworks


class CoTeaching(TwoNetworks):
    """Co-teaching (Han et al., NeurIPS 2018): each network trains its peer on its small-loss samples."""
    name = "coteaching"
    # hyperparameters: TwoNetworks.Hyper (the small-loss schedule, optimizer, backbone and budget)

    def train_epoch(self) -> dict:
        rate, lr = self.begin_epoch()
        meter = LossMeter(self.device)
        picked = self.selection_meter()  # analytics: precision of the small-loss selections
        for idx, x, noisy in self.train_batches():
            train_a, train_b, keep_by_a, keep_by_b = cross_update(cross_entropy(self.net_a(x), noisy),
                                                                  cross_entropy(self.net_b(x), noisy), rate)
            self.update_both(train_a + train_b)  # the two terms touch disjoint networks
            meter.add(train_a)
            picked.add(idx, keep_by_a, keep_by_b)
        return {"forget_rate": rate, "train_loss": meter.mean, "lr": lr, "select_precision": picked.precision}


class CoTeachingTrainable(MethodTrainable):
    method_cls = CoTeaching
