"""Per-epoch analytics of noisy-label training: logged (result.json, TensorBoard, the report),
never used to select anything.

* :func:`divergence`: the two networks' disagreement ``KL(p1||p2) + KL(p2||p1)`` on held-out
  images (MLC paper Eq. 1, its Fig. 2), mean over the images;
* :func:`label_correction`: for label-correcting methods (MLC, PENCIL), the share of training
  samples whose corrected label (arg-max of the label table) is the clean label, overall and
  split into originally-clean and originally-noisy samples;
* :class:`SelectionMeter`: for small-loss selection (Co-teaching, Co-teaching+, JoCoR, MLC), the
  precision of the selected set: the share of selected samples whose noisy label is clean; its
  recall (the share of clean-labelled samples selected) and the kept share (CORES^2's sieve).

Clean labels are read here only; samples whose clean label is unknown (``-1``, Clothing1M) are
left out of every share.
"""
from __future__ import annotations

import torch

from .losses import symmetric_kl


@torch.no_grad()
def divergence(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """MLC paper Eq. 1, ``KL(p1||p2) + KL(p2||p1)`` with ``p = softmax(logits)``, averaged over
    the rows (images); NaN for no rows."""
    if logits_a.shape[0] == 0:
        return float("nan")
    return float(symmetric_kl(logits_a.double(), logits_b.double()).mean())


def _share(hit: torch.Tensor, among: torch.Tensor) -> float:
    n = int(among.sum())
    return float((hit & among).sum()) / n if n else float("nan")


@torch.no_grad()
def label_correction(corrected: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """``label_acc``: share of training samples (clean label known) whose ``corrected`` label is
    the clean one; ``label_acc_clean``: the same among samples whose noisy label was right
    (how many correct labels were KEPT); ``label_acc_noisy``: among samples whose noisy label was
    wrong (how many wrong labels were CORRECTED). NaN where a group is empty."""
    known = clean >= 0
    right = corrected == clean
    was_clean = known & (noisy == clean)
    return {"label_acc": _share(right, known), "label_acc_clean": _share(right, was_clean),
            "label_acc_noisy": _share(right, known & ~was_clean)}


class SelectionMeter:
    """Precision of one epoch's small-loss selections, accumulated on the device (no host sync
    per batch): ``selected samples whose noisy label equals the clean label / selected samples``
    over every selection :meth:`add` is given (Co-teaching: both networks' selections)."""

    def __init__(self, train_noisy: torch.Tensor, train_clean: torch.Tensor):
        self.train_noisy, self.train_clean = train_noisy, train_clean
        self.kept = torch.zeros((), dtype=torch.long, device=train_noisy.device)
        self.good = torch.zeros((), dtype=torch.long, device=train_noisy.device)
        #: per selection: the samples it chose from (clean label known) and the clean-labelled ones among them
        self.seen = torch.zeros((), dtype=torch.long, device=train_noisy.device)
        self.seen_good = torch.zeros((), dtype=torch.long, device=train_noisy.device)

    def add(self, idx: torch.Tensor, *selections: torch.Tensor) -> None:
        """``idx``: the batch's dataset indices; each selection either positions in the batch
        (int64) or a boolean mask over it."""
        clean = self.train_clean.index_select(0, idx)
        known = clean >= 0
        good = self.train_noisy.index_select(0, idx) == clean  # never true where clean is -1
        self.seen += known.sum() * len(selections)
        self.seen_good += good.sum() * len(selections)
        for sel in selections:
            if sel.dtype == torch.bool:
                self.kept += (sel & known).sum()
                self.good += (sel & good).sum()
            else:
                self.kept += known.index_select(0, sel).sum()
                self.good += good.index_select(0, sel).sum()

    @property
    def precision(self) -> float:
        kept = int(self.kept)
        return int(self.good) / kept if kept else float("nan")

    @property
    def recall(self) -> float:
        """Selected clean-labelled samples / clean-labelled samples selected from (NaN: none)."""
        seen_good = int(self.seen_good)
        return int(self.good) / seen_good if seen_good else float("nan")

    @property
    def kept_fraction(self) -> float:
        """Selected samples / samples selected from (clean label known; NaN: none)."""
        seen = int(self.seen)
        return int(self.kept) / seen if seen else float("nan")
