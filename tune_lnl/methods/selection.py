"""Small-loss sample selection shared by the two-network methods (Co-teaching, MLC, ...)."""
from __future__ import annotations

import torch


def forget_rate_at(epoch: int, forget_rate: float, num_gradual: int) -> float:
    """Co-teaching schedule: linear from 0 to ``forget_rate`` over the first ``num_gradual``
    epochs (epoch 0 forgets nothing, epoch ``num_gradual - 1`` forgets ``forget_rate``)."""
    if num_gradual <= 1 or epoch >= num_gradual - 1:
        return forget_rate
    return forget_rate * epoch / (num_gradual - 1)


def small_loss_selection(losses: torch.Tensor, forget_rate: float) -> torch.Tensor:
    """Indices of the ``int((1 - forget_rate) * B)`` smallest losses (at least one)."""
    keep = max(1, int((1.0 - forget_rate) * losses.shape[0]))
    return torch.topk(losses.detach(), keep, largest=False, sorted=False).indices


def cross_update(loss_a: torch.Tensor, loss_b: torch.Tensor, forget_rate: float):
    """Co-teaching's exchange: A's training loss is its mean loss on the samples B ranks as
    small-loss, and vice versa. Returns ``(loss for A, loss for B, A's selection, B's
    selection)``, the selections as positions in the batch (for the precision analytics)."""
    keep_by_a = small_loss_selection(loss_a, forget_rate)
    keep_by_b = small_loss_selection(loss_b, forget_rate)
    return (loss_a.index_select(0, keep_by_b).mean(), loss_b.index_select(0, keep_by_a).mean(),
            keep_by_a, keep_by_b)
