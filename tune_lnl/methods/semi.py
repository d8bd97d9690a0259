"""The parts the semi-supervised methods share (DivideMix, UNICON, PES(semi), ELR+, SOP+, ProMix), each
usable on its own by a plugin; each is tested against a hand computation in tests/unit/methods/test_semi.py.

* the per-epoch scoring pass: :func:`per_sample_ce` (every training sample's loss, on the device) and
  :func:`gmm_clean_probability` (DivideMix's two-component GMM division, Sec. 3.1);
* MixMatch (Berthelot et al. 2019) as DivideMix uses it (Sec. 3.2, Alg. 1): :func:`sharpen`,
  :func:`co_refine` (Eq. 3), :func:`co_guess` (Eq. 4), :func:`beta_lambda` and :func:`mixup`
  (Eq. 5-7), :func:`mixmatch_loss` (Eq. 8-9), :func:`uniform_prior_penalty` (Eq. 10) and
  :func:`linear_rampup` (the code's lambda_u ramp);
* mean-teacher weights: :func:`ema_model` (torch's ``AveragedModel`` with an EMA update);
* labeled / unlabeled batches: :func:`labeled_unlabeled_plan` (the index batches of one epoch; the
  images come from ``TrainingData.view_batches``, weak and strong views batched on the device).

Randomness comes from the run's generator (``Method.gen``), so that a resumed run draws what an
uninterrupted one would.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import betaincinv
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .losses import soft_cross_entropy

__all__ = ["sharpen", "co_refine", "co_guess", "beta_lambda", "mixup", "mixmatch_loss", "uniform_prior_penalty",
           "linear_rampup", "per_sample_ce", "gmm_clean_probability", "ema_model", "labeled_unlabeled_plan"]


def sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    """Temperature sharpening ``p_c^(1/T) / sum_k p_k^(1/T)`` over dim 1 (MixMatch; DivideMix Alg. 1
    lines 13 and 16). ``T = 1`` returns ``p`` renormalised."""
    q = p.pow(1.0 / T)
    return q / q.sum(1, keepdim=True)


def co_refine(y_onehot: torch.Tensor, w: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Label co-refinement (DivideMix Eq. 3): ``w y + (1 - w) p``, ``w`` ``[B]`` the other network's
    clean probability of each labeled sample, ``p`` the network's (view-averaged) prediction. Not
    sharpened (:func:`sharpen` it)."""
    w = w.reshape(-1, 1).to(p.dtype)
    return w * y_onehot.to(p.dtype) + (1.0 - w) * p


def co_guess(*probs: torch.Tensor) -> torch.Tensor:
    """Label co-guessing (DivideMix Eq. 4): the mean of the predictions of both networks on each
    augmented view of the unlabeled samples. Not sharpened."""
    return torch.stack(probs).mean(0)


def beta_lambda(alpha: float, generator: torch.Generator) -> float:
    """MixUp's mixing weight: ``l ~ Beta(alpha, alpha)``, returned as ``max(l, 1 - l)`` (MixMatch Eq. 9,
    DivideMix Alg. 1 line 20: the mixed sample stays nearer its first input). Drawn by the inverse
    CDF of one uniform from ``generator``; ``alpha <= 0`` gives 1 (no mixing)."""
    if alpha <= 0:
        return 1.0
    u = float(torch.rand((), generator=generator, device=generator.device))
    lam = float(betaincinv(alpha, alpha, u))
    return max(lam, 1.0 - lam)


def mixup(x: torch.Tensor, targets: torch.Tensor, lam: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp (Zhang et al. 2018) with a permutation ``perm`` drawn from ``generator``:
    ``lam a + (1 - lam) a[perm]`` for the inputs and the (soft) targets alike (DivideMix Eq. 5-7)."""
    perm = torch.randperm(x.shape[0], generator=generator, device=generator.device).to(x.device)
    return (torch.lerp(x[perm], x, lam) if lam != 1.0 else x,
            torch.lerp(targets[perm], targets, lam) if lam != 1.0 else targets)


def mixmatch_loss(logits_x: torch.Tensor, targets_x: torch.Tensor, logits_u: torch.Tensor, targets_u: torch.Tensor,
                  class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Lx, Lu)`` of MixMatch (DivideMix Eq. 8-9): ``Lx`` the batch mean of the soft cross entropy
    ``-sum_c t_c log softmax(z)_c`` on the mixed labeled samples (``class_weights`` ``[C]``: each class's
    term weighted, ``-sum_c w_c t_c log softmax(z)_c``: PES(semi)'s class balance), ``Lu`` the mean
    squared error between ``softmax(z)`` and the targets on the mixed unlabeled samples, averaged over
    every element (samples and classes, as the official code's ``torch.mean``). An empty unlabeled
    batch gives ``Lu = 0``."""
    tx = targets_x if class_weights is None else targets_x * class_weights.to(targets_x.dtype)
    lx = soft_cross_entropy(logits_x, tx).mean()
    if logits_u.shape[0] == 0:
        return lx, logits_u.float().sum() * 0.0
    lu = (F.softmax(logits_u.float(), dim=1) - targets_u).square().mean()
    return lx, lu


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """DivideMix's regulariser (Eq. 10): ``sum_c pi_c log(pi_c / mean_b softmax(z_b)_c)`` with the
    uniform prior ``pi_c = 1 / C``: the KL from the uniform prior to the batch's mean prediction, 0
    when the batch predicts every class equally often on average."""
    p_mean = F.softmax(logits.float(), dim=1).mean(0)
    c = logits.shape[1]
    return (torch.log(torch.tensor(1.0 / c, device=logits.device)) - p_mean.log()).sum() / c


def linear_rampup(progress: float, warmup: float, length: float = 16.0) -> float:
    """``clip((progress - warmup) / length, 0, 1)``: the weight of the unlabeled loss rises linearly
    over ``length`` epochs after the warm-up (DivideMix's code: 16 epochs; ``progress`` = epoch +
    batch / batches per epoch)."""
    if length <= 0:
        return 1.0 if progress >= warmup else 0.0
    return float(np.clip((progress - warmup) / length, 0.0, 1.0))


def per_sample_ce(data, model: torch.nn.Module) -> torch.Tensor:
    """Every training sample's cross entropy ``[N]`` against its noisy label, from ``model``'s
    un-augmented logits in index order (``data.logits(model, "train")``, eval mode): the per-epoch
    scoring pass of the sample-selection methods, on the training device."""
    return F.cross_entropy(data.logits(model, "train").float(), data.train_noisy, reduction="none")


def gmm_clean_probability(losses: torch.Tensor, seed: int) -> torch.Tensor:
    """DivideMix's division (Sec. 3.1): the per-sample losses min-max normalised to [0, 1], a
    two-component one-dimensional Gaussian mixture fitted by EM (scikit-learn's
    ``GaussianMixture``: ``max_iter=10, tol=1e-2, reg_covar=5e-4``, the official code's settings;
    ``random_state=seed`` for reproducibility), and each sample's posterior probability of the
    component with the smaller mean: its probability of being clean. ``[N]`` float32 on
    ``losses.device``. Fewer than two distinct losses: all 1 (nothing to divide)."""
    from sklearn.mixture import GaussianMixture

    x = losses.detach().float()
    lo, hi = x.min(), x.max()
    if x.numel() < 2 or not bool(hi > lo):
        return torch.ones_like(x)
    x = ((x - lo) / (hi - lo)).cpu().double().numpy().reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    gmm.fit(x)
    clean = int(np.argmin(gmm.means_.ravel()))
    return torch.from_numpy(gmm.predict_proba(x)[:, clean]).float().to(losses.device)


def ema_model(model: torch.nn.Module, decay: float) -> AveragedModel:
    """Mean-teacher weights of ``model`` (Tarvainen & Valpola 2017; ELR+'s weight averaging): a copy
    whose parameters and buffers follow ``w_ema <- decay w_ema + (1 - decay) w`` at each
    ``update_parameters(model)`` (the first call copies ``model``). torch's ``AveragedModel`` with
    ``get_ema_multi_avg_fn``; an ``nn.Module`` to evaluate, its ``state_dict`` a checkpoint's part."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _cycle(pool: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` entries of ``pool``: consecutive slices of fresh permutations of it, one after the other."""
    rounds = math.ceil(count / pool.numel())
    perms = [pool[torch.randperm(pool.numel(), generator=generator, device=generator.device).to(pool.device)]
             for _ in range(rounds)]
    return torch.cat(perms)[:count]


def labeled_unlabeled_plan(labeled: torch.Tensor, unlabeled: torch.Tensor, batch_size: int,
                           generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of semi-supervised index batches ``(labeled_idx, unlabeled_idx)``: the labeled
    indices permuted (from ``generator``) and cut into batches of ``batch_size`` (a last batch of
    one dropped), each paired with ``batch_size`` unlabeled indices taken as consecutive slices of
    permutations of ``unlabeled``, a fresh one whenever the last is used up (DivideMix's labeled
    loader sets the epoch's length, its unlabeled loader cycles). No unlabeled samples: empty
    unlabeled batches."""
    n = labeled.numel()
    perm = labeled[torch.randperm(n, generator=generator, device=generator.device).to(labeled.device)]
    starts = [s for s in range(0, n, batch_size) if min(batch_size, n - s) >= 2]
    if unlabeled.numel() == 0:
        return [(perm[s:s + batch_size], unlabeled[:0]) for s in starts]
    pool = _cycle(unlabeled, batch_size * len(starts), generator)
    return [(perm[s:s + batch_size], pool[i * batch_size:(i + 1) * batch_size]) for i, s in enumerate(starts)]


# -- added for ELR+ (trainables/elr_plus.py); usable by any mean-teacher method ---------------------
__all__ += ["sigmoid_rampup", "ema_update", "MeanLogits"]


def sigmoid_rampup(progress: float, length: float) -> float:
    """``exp(-5 (1 - clip(progress / length, 0, 1))^2)`` (Laine & Aila 2017; the mean-teacher ramp ELR+'s
    code uses for lambda and the EMA decay); ``length <= 0`` gives 1 (no ramp)."""
    if length <= 0:
        return 1.0
    phase = 1.0 - float(np.clip(progress / length, 0.0, 1.0))
    return math.exp(-5.0 * phase * phase)


def ema_update(ema: AveragedModel, model: torch.nn.Module, decay: float) -> None:
    """``ema.update_parameters(model)`` with this step's ``decay`` (a decay that changes from step to step:
    ELR+'s ramped one); the model made by :func:`ema_model`, whose first update copies ``model``."""
    ema.multi_avg_fn = get_ema_multi_avg_fn(float(decay))
    ema.update_parameters(model)


class MeanLogits(torch.nn.Module):
    """The mean of several models' logits (the test-time prediction of two-network methods: ELR+'s and
    DivideMix's code average the two networks' outputs); holds no state of its own."""

    def __init__(self, *models: torch.nn.Module):
        super().__init__()
        self.members = torch.nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


# -- fixed-size cycled batches (PES(semi)'s labeled and unlabeled loaders) ------------------------
__all__ += ["cycled_batches"]


def cycled_batches(pool: torch.Tensor, batch_size: int, n_batches: int,
                   generator: torch.Generator) -> list[torch.Tensor]:
    """``n_batches`` batches of ``batch_size`` entries of ``pool``, cut from consecutive permutations of
    it (a fresh one whenever the last is used up): a shuffled loader that restarts when exhausted, for
    an epoch whose length is set elsewhere (PES(semi): ``N // batch_size`` steps, each with its own
    labeled and unlabeled batch sizes). An empty ``pool`` or ``batch_size`` 0: empty batches."""
    if n_batches <= 0:
        return []
    if pool.numel() == 0 or batch_size <= 0:
        return [pool[:0]] * n_batches
    return list(_cycle(pool, batch_size * n_batches, generator).split(batch_size))

