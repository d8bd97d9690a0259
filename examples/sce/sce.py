"""Symmetric cross entropy (Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy
Labels", ICCV 2019), a method that is NOT built into tune_lnl, as a plugin: one file, outside
the package, named in a space file as ``method: "sce:SCE"``.

With ``p = softmax(z)`` the prediction and ``q`` the one-hot noisy label:

* (Eq. 3) cross entropy ``CE = -sum_k q_k log p_k = -log p_y``;
* (Eq. 5) reverse cross entropy ``RCE = -sum_k p_k log q_k``: ``log q_k`` is 0 for ``k = y``
  and ``log 0`` is clipped to ``A`` (the paper: ``A = -4``), so ``RCE = -A (1 - p_y)``;
* (Eq. 6) ``SCE = alpha * CE + beta * RCE``.

The paper's values: MNIST alpha 0.01, beta 1.0; CIFAR-10 alpha 0.1, beta 1.0; A = -4.
"""
import torch
import torch.nn.functional as F

import tune_lnl


class SCE(tune_lnl.SingleNetwork):
    # every run-config key the method reads, with its default: the network's (model, epochs,
    # lr, ...) from SingleNetwork, plus this loss's own
    defaults = {**tune_lnl.SingleNetwork.defaults, "alpha": 0.1, "beta": 1.0, "A": -4.0}
    # the method's own value rules (checked on every fixed value, paper value and range bound)
    constraints = {"alpha": tune_lnl.NON_NEGATIVE, "beta": tune_lnl.NON_NEGATIVE,
                   "A": tune_lnl.Range(high=0.0, high_open=True)}  # A = log(0) clipped: negative

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample SCE ``[B]`` (Eq. 6)."""
        ce = F.cross_entropy(logits, labels, reduction="none")                              # Eq. 3
        p_y = logits.float().softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
        rce = -self.cfg["A"] * (1.0 - p_y)                                                  # Eq. 5
        return self.cfg["alpha"] * ce + self.cfg["beta"] * rce                              # Eq. 6
