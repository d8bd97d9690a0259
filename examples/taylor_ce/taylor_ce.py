"""Taylor cross entropy (Feng, Shu, Lin, Lv, Li & An, "Can Cross Entropy Loss Be Robust to Label
Noise?", IJCAI 2020), a method that is NOT built into tune_lnl, as a plugin: one file, outside the
package, named in a space file as ``method: "taylor_ce:TaylorCE"``.

Cross entropy ``-log p_y`` is the Taylor series ``sum_{k>=1} (1 - p_y)^k / k`` around ``p_y = 1``;
the paper keeps its first ``t`` terms:

    L_t = sum_{k=1}^{t} (1 - p_y)^k / k

``t = 1`` is MAE up to a factor (``1 - p_y``, bounded: robust, underfits), ``t -> infinity`` is
cross entropy (fits, not robust); a small ``t`` trades between them. Default ``t = 2``.
"""
from dataclasses import dataclass

import torch

from tune_lnl import Range, SingleNetwork, cross_entropy, hp


class TaylorCE(SingleNetwork):
    """Taylor cross entropy (Feng et al., IJCAI 2020): the first t terms of CE's Taylor series in 1 - p_y."""

    # the hyperparameters: the network's (model, epochs, lr, optimizer, ...) from
    # SingleNetwork.Hyper, plus this loss's own, each with its default, meaning and value rules
    # (checked on every fixed value, paper value and range bound of a space file)
    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        t: int = hp(2, "order of the Taylor series: t = 1 is MAE / 2, t -> infinity cross entropy (default 2)",
                    Range(1.0, message="t (the number of Taylor terms) must be >= 1"))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample ``sum_{k=1}^{t} (1 - p_y)^k / k`` ``[B]``."""
        u = -torch.expm1(-cross_entropy(logits, labels))  # 1 - p_y, with p_y = exp(-CE)
        return sum(u.pow(k) / k for k in range(1, int(self.hp.t) + 1))
