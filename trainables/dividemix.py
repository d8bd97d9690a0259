"""DivideMix (Li, Socher & Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning",
ICLR 2020): two networks; each epoch every network's per-sample loss is modelled by a two-component
Gaussian mixture that divides the training set into a labeled (probably clean) and an unlabeled
(probably noisy) part, and each network is trained by MixMatch on the division made by the OTHER
network (co-divide), so that the two do not confirm their own errors.

Phases by 0-based epoch ``e``:

1. ``e < warmup``: warm-up. Each network separately, on all samples (its own permutation, batches
   of ``2 * batch_size`` as the official loader), cross-entropy on the noisy labels (paper Eq. 1),
   plus ``conf_penalty`` times the negative entropy ``sum_c p_c log p_c`` (the confidence penalty
   of Sec. 3.1 that the paper uses for asymmetric noise only: set it per setting, 1 there, else 0).
2. ``e >= warmup``: co-divide, then semi-supervised training.

Co-divide (Sec. 3.1): ``l_i = CE(net(x_i), y~_i)`` on the un-augmented training images (eval mode,
one pass per network on the device: :func:`tune_lnl.methods.semi.per_sample_ce`), min-max
normalised, a 2-component GMM, ``w_i`` = the posterior of the smaller-mean component
(:func:`~tune_lnl.methods.semi.gmm_clean_probability`). Network A trains on B's division and B on
A's: labeled ``{i: w_i > p_threshold}`` (with their ``w_i``), unlabeled the rest. Both divisions are
made before either network trains (as the official loop). Tables ``prob_a`` / ``prob_b``: the last
division by A's / B's GMM.

One step of the trained network ``net`` (the other one, ``net'``, in eval mode; Alg. 1), with a
labeled batch ``x`` (noisy one-hot ``y``, clean probability ``w``) and an unlabeled batch ``u`` of
the same size, each seen in two augmented views (M = 2):

* co-refinement (Eq. 3 in :mod:`tune_lnl.methods.semi`'s numbering): ``y_bar = w y + (1 - w) p``,
  ``p`` the mean of ``net``'s two predictions on ``x``, then sharpened: ``y_hat = Sharpen(y_bar, T)``
  (``q_c^(1/T) / sum_k q_k^(1/T)``);
* co-guessing (Eq. 4 there): ``q = Sharpen(mean of net's and net''s predictions on both views of u, T)``;
* MixMatch (Eq. 5-7): ``lambda ~ Beta(alpha, alpha)``, ``lambda' = max(lambda, 1 - lambda)``, every
  input and target of ``[x1, x2, u1, u2]`` mixed with a random permutation of them;
* loss (Eq. 8-10): ``L = L_X + lambda_u * ramp * L_U + lambda_r * L_reg`` with ``L_X`` the soft
  cross-entropy on the mixed labeled part, ``L_U`` the squared error between prediction and target
  on the mixed unlabeled part (the official code's mean over samples AND classes: the
  ``lambda_u`` values are in those units), ``L_reg = sum_c pi_c log(pi_c / mean_b p_c)`` with the
  uniform prior over the whole mixed batch, and ``ramp = clip((e + b / n_iter - warmup) / 16, 0, 1)``
  (the official ``linear_rampup``; ``n_iter = n_labeled // batch_size + 1``).

Evaluation (``eval_models``): the ensemble, the mean of A's and B's logits, first (the official
test output ``net1(x) + net2(x)``, same arg-max; what the proxy scores), then A and B alone.

Defaults: the paper's CIFAR-10 values (Sec. 4.1, and Train_cifar.py of github LiJunnan1992/DivideMix):
warm-up 10 epochs, p_threshold 0.5, T 0.5, alpha 4, lambda_u 25 (the paper picks it per noise level
from {0, 25, 50, 150}: 0 for 20% symmetric, 25 for 50%, 50 for 80%, 150 for 90% (r = 0.9); the 50%
value is the default), lambda_r 1; PreAct ResNet-18 (we: the run's ``model``), SGD momentum 0.9,
weight decay 5e-4, lr 0.02, batch 64 (+ 64 unlabeled; 128 in warm-up), 300 epochs, lr / 10 at epoch
150 (``lr_schedule: half``).

What differs from the official code (none of it changes the math of a step): the GMM has a fixed
``random_state`` (from the run's seed and the epoch; the official one is unseeded); the official
code averages the normalised losses of the last 5 epochs before fitting at r = 0.9 only (not
done); mixup's lambda and permutation come from the run's generator. The official losses were
cross-checked on fixed inputs (tests/unit/builtin_methods/test_dividemix.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, RATE, warmup_inside
from tune_lnl.methods.hparams import AnnealedLrSchedule, Common, Optimizer, hp, like
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.semi import (
    MeanLogits,
    beta_lambda,
    co_guess,
    co_refine,
    gmm_clean_probability,
    labeled_unlabeled_plan,
    linear_rampup,
    mixmatch_loss,
    mixup,
    per_sample_ce,
    sharpen,
    uniform_prior_penalty,
)
from tune_lnl.methods.two_networks import TwoNetworks


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The confidence penalty of the warm-up (DivideMix Sec. 3.1, for asymmetric noise): the batch
    mean of ``sum_c p_c log p_c`` (the negative entropy; adding it to the loss raises the entropy)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return (logp.exp() * logp).sum(1).mean()


@dataclass(frozen=True)
class SemiHyper(hparams.AnnealedLrSchedule, hparams.Optimizer, hparams.Common):
    """What DivideMix and UNICON share: the warm-up, MixMatch and the loss weights, and DivideMix's
    CIFAR-10 optimisation (module docstring)."""
    epochs: int = like(Common, "epochs", 300, "training epochs (paper, CIFAR-10: 300)")
    batch_size: int = like(Common, "batch_size", 64, "labeled (and unlabeled) batch size; warm-up batches are "
                                                     "twice it (paper: 64 + 64; warm-up 128)")
    lr: float = like(Common, "lr", 0.02, "learning rate (paper, CIFAR-10: 0.02)")
    optimizer: str = like(Optimizer, "optimizer", "sgd", "adam or sgd (paper: SGD, momentum 0.9)")
    weight_decay: float = like(Optimizer, "weight_decay", 5e-4, "L2 weight decay (paper: 5e-4)")
    lr_schedule: str = like(AnnealedLrSchedule, "lr_schedule", "half", "constant, step, half (lr / 10 from 50%: "
                            "the paper's epoch 150 of 300) or cosine (to lr * lr_final: UNICON)")
    warmup: int = hp(10, "warm-up epochs of plain cross-entropy (paper: CIFAR-10 10, CIFAR-100 30)", NON_NEGATIVE)
    T: float = hp(0.5, "sharpening temperature of the refined and guessed labels (paper: 0.5)", POSITIVE)
    alpha: float = hp(4.0, "mixup's Beta(alpha, alpha) (paper: 4; 0 = no mixing)", NON_NEGATIVE)
    lambda_u: float = hp(25.0, "weight of the unlabeled loss L_U (paper, CIFAR-10: 0 at 20% sym., 25 at 50%, "
                               "50 at 80%, 150 at 90%)", NON_NEGATIVE)
    lambda_r: float = hp(1.0, "weight of the uniform-prior penalty L_reg (paper: 1)", NON_NEGATIVE)
    rampup: float = hp(16.0, "epochs over which lambda_u ramps up after the warm-up (official code: 16)",
                       NON_NEGATIVE)
    conf_penalty: float = hp(0.0, "weight of the warm-up's negative-entropy penalty (paper: 1 for asymmetric "
                                  "noise, 0 otherwise)", NON_NEGATIVE)


class DivideMix(TwoNetworks):
    """DivideMix (Li et al., ICLR 2020): GMM co-divide + MixMatch with co-refinement and co-guessing."""
    name = "dividemix"
    tables = ("prob_a", "prob_b")  # the last division: clean probability by A's / B's GMM

    @dataclass(frozen=True)
    class Hyper(SemiHyper):
        """DivideMix's own, the shared warm-up / MixMatch ones and the paper's CIFAR-10 optimisation."""
        p_threshold: float = hp(0.5, "clean-probability threshold of the labeled set (paper: 0.5)", RATE)

    @classmethod
    def check_config(cls, hp_):
        return warmup_inside(hp_, "the semi-supervised phase must run")

    def build(self) -> None:
        super().build()  # networks A and B, an optimizer each
        self.prob_a = torch.ones(self.data.n_train, device=self.device)
        self.prob_b = torch.ones(self.data.n_train, device=self.device)
        self.ensemble = MeanLogits(self.net_a, self.net_b)

    def eval_models(self):
        return {"ensemble": self.ensemble, "a": self.net_a, "b": self.net_b}

    # -- epochs -------------------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        self.set_lr(lr)
        if self.epoch < int(self.hp.warmup):
            loss = (self.warmup_network(self.net_a, self.opt_a) + self.warmup_network(self.net_b, self.opt_b)) / 2
            return {"train_loss": loss, "lr": lr, "phase": 1}
        return {"lr": lr, "phase": 2, **self.semi_epoch()}

    def warmup_network(self, net: nn.Module, opt: torch.optim.Optimizer) -> float:
        """One warm-up epoch of ``net``: CE (+ ``conf_penalty`` * negative entropy), batches of 2 * batch_size."""
        every = torch.arange(self.data.n_train, device=self.device)
        plan = [lab for lab, _ in labeled_unlabeled_plan(every, every[:0], 2 * int(self.hp.batch_size), self.gen)]
        meter, pen = LossMeter(self.device), float(self.hp.conf_penalty)
        for _, (x,), noisy in self.view_batches(plan, [self.augment]):
            logits = net(x)
            loss = F.cross_entropy(logits.float(), noisy)
            if pen > 0:
                loss = loss + pen * neg_entropy(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            meter.add(loss)
        return meter.mean

    def semi_epoch(self) -> dict:
        """Divide, then train A on its division and B on its own (:meth:`division`), one after the other."""
        self.begin_division()
        picked, losses, sizes = self.selection_meter(), [], []
        every = torch.arange(self.data.n_train, device=self.device)
        for k, (net, other, opt) in enumerate(((self.net_a, self.net_b, self.opt_a),
                                              (self.net_b, self.net_a, self.opt_b))):
            labeled, w = self.division(k)
            picked.add(every, labeled)  # analytics only (never selects)
            sizes.append(int(labeled.sum()))
            losses.append(self.train_network(net, other, opt, labeled, w))
        return {"train_loss": sum(losses) / 2, "n_labeled": sum(sizes) / 2, "selection_precision": picked.precision}

    def begin_division(self) -> None:
        """Score every training sample with both networks and fit each one's GMM (co-divide)."""
        seed = int(self.run.seed) * 7919 + self.epoch * 2
        self.prob_a = gmm_clean_probability(per_sample_ce(self.data, self.net_a), seed % 2**32)
        self.prob_b = gmm_clean_probability(per_sample_ce(self.data, self.net_b), (seed + 1) % 2**32)

    def division(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labeled mask [N], w [N])`` for network ``k`` (0: A, 1: B): the OTHER network's division."""
        prob = self.prob_b if k == 0 else self.prob_a
        return prob > float(self.hp.p_threshold), prob

    # -- the semi-supervised step -------------------------------------------------------------------
    def plan(self, labeled: torch.Tensor, unlabeled: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's ``(labeled, unlabeled)`` index batches (as many unlabeled as labeled per batch)."""
        return labeled_unlabeled_plan(labeled, unlabeled, int(self.hp.batch_size), self.gen)

    def step_augments(self) -> list:
        """The views of each sample a step sees: two weak ones (the run's ``augment``)."""
        return [self.augment, self.augment]

    def train_network(self, net: nn.Module, other: nn.Module, opt: torch.optim.Optimizer,
                      labeled_mask: torch.Tensor, w: torch.Tensor) -> float:
        """One semi-supervised epoch of ``net`` (``other`` fixed, eval mode); its mean loss."""
        labeled = labeled_mask.nonzero().squeeze(1)
        unlabeled = (~labeled_mask).nonzero().squeeze(1)
        pairs = self.plan(labeled, unlabeled)
        n_iter = labeled.numel() // int(self.hp.batch_size) + 1
        meter = LossMeter(self.device)
        batches = self.view_batches([torch.cat(p) for p in pairs], self.step_augments())
        for b, ((lab, _), (_, views, noisy)) in enumerate(zip(pairs, batches)):
            other.eval()
            n = lab.numel()
            ramp = linear_rampup(self.epoch + b / n_iter, int(self.hp.warmup), float(self.hp.rampup))
            loss = self.step_loss(net, other, views, n, noisy[:n], w.index_select(0, lab), ramp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            meter.add(loss)
        return meter.mean

    @torch.no_grad()
    def targets(self, net: nn.Module, other: nn.Module, views: list[torch.Tensor], n: int, noisy: torch.Tensor,
                w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_hat, q)``: the sharpened co-refined labels of the ``n`` labeled samples and the sharpened
        co-guessed labels of the unlabeled ones, from the two weak views ``views[0]``, ``views[1]``."""
        x1, x2 = views[0], views[1]
        p_u = [F.softmax(m(v[n:]).float(), dim=1) for m in (net, other) for v in (x1, x2)]
        p_x = (F.softmax(net(x1[:n]).float(), dim=1) + F.softmax(net(x2[:n]).float(), dim=1)) / 2
        T = float(self.hp.T)
        y = F.one_hot(noisy, self.data.num_classes).float()
        return sharpen(co_refine(y, w, p_x), T), sharpen(co_guess(*p_u), T)

    def mix_views(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views MixMatch mixes (DivideMix: the two weak ones)."""
        return views[0], views[1]

    def step_loss(self, net, other, views, n, noisy, w, ramp) -> torch.Tensor:
        """``L_X + lambda_u ramp L_U + lambda_r L_reg`` (+ :meth:`extra_loss`) of one step."""
        t_x, t_u = self.targets(net, other, views, n, noisy, w)
        v1, v2 = self.mix_views(views)
        inputs = torch.cat([v1[:n], v2[:n], v1[n:], v2[n:]])
        mixed_x, mixed_t = mixup(inputs, torch.cat([t_x, t_x, t_u, t_u]), beta_lambda(float(self.hp.alpha), self.gen),
                                 self.gen)
        logits = net(mixed_x)
        lx, lu = mixmatch_loss(logits[:2 * n], mixed_t[:2 * n], logits[2 * n:], mixed_t[2 * n:])
        loss = lx + (float(self.hp.lambda_u) * ramp) * lu + float(self.hp.lambda_r) * uniform_prior_penalty(logits)
        return loss + self.extra_loss(net, views, n)

    def extra_loss(self, net: nn.Module, views: list[torch.Tensor], n: int) -> torch.Tensor | float:
        """A method's additional term of the step (DivideMix: none; UNICON: its contrastive loss)."""
        return 0.0


class DivideMixTrainable(MethodTrainable):
    method_cls = DivideMix
