"""Noise-transition-matrix machinery shared by ``forward_t``, ``backward_t`` (Patrini et al., "Making Deep Neural
Networks Robust to Label Noise: a Loss Correction Approach", CVPR 2017) and ``t_revision`` (Xia et al., "Are
Anchor Points Really Indispensable in Label-Noise Learning?", NeurIPS 2019).

``T[i, j] = p(noisy label j | clean class i)`` (row-stochastic, the convention of :mod:`tune_lnl.data.noise`).

* **Anchor-point estimator** (Patrini Sec. 4.2 / Theorem 3; T-Revision Sec. 2, its initial ``T^``): with
  ``P[n, j] = p^(y~ = j | x_n)`` the softmax of a network trained with cross-entropy on the noisy labels, the
  anchor of class ``i`` is ``x^i = argmax_n P[n, i]`` and ``T^[i, j] = P[x^i, j]``. Both papers take, on
  MNIST / CIFAR-10, the sample at the 97th ``percentile`` of column ``i`` instead of the argmax (robust to
  outliers) and the argmax on CIFAR-100 (``percentile: 100``). Exactly as both official codes
  (giorgiop/loss-correction ``NoiseEstimator``, xiaoboxia/T-Revision ``tools.fit``): the threshold is
  ``np.percentile(P[:, i], q, interpolation='higher')``, every value ``>=`` it is discarded, the anchor is the
  arg-max of the rest (the first one on ties); the rows are then normalised to sum to 1.
  ``variant: official`` (default) reproduces one more detail of both codes: they discard the values IN PLACE
  (``robust_eta = eta_corr[:, i]`` is a numpy view), so the row of a later class ``k > i`` reads ``0`` in
  every earlier column ``i`` where its anchor held one of column ``i``'s discarded top values
  (:func:`anchor_transition`). ``variant: paper`` reads the unfiltered probabilities. They differ only when an
  anchor is among another class's top ``100 - q`` percent, which is rare; the papers' numbers come from the
  official codes.
* **True T** (``t_source: oracle``, and the analytics-only estimation error): the matrix the run's noise is
  drawn from where its type has one (:func:`tune_lnl.data.noise.transition_matrix`, or the user's ``matrix``),
  else the realised clean -> noisy matrix of the training split (instance-dependent, human noise). Never used
  for training unless ``t_source: oracle`` asks for it (labelled ``t_oracle: 1`` in every epoch's metrics).
  The estimation error is ``||T^ - T||_1 / C`` (entry-wise; T-Revision's ``tools.error`` for a row-stochastic
  ``T``), logged as ``t_error``.
* **Losses** (per sample, ``p = softmax(logits)``): forward correction ``-log((T^T p)_{y~})`` (Patrini
  Theorem 2), backward correction ``(T^{-1} l(p))_{y~}`` with ``l(p)_k = -log p_k`` (Patrini Theorem 1; its
  expectation over ``y~ | y`` is the clean loss ``l(p)_y``), both with ``p`` clipped to ``[1e-7, 1 - 1e-7]``
  before the logarithm / the product as the official Keras code does (``K.clip(y_pred, K.epsilon(), 1 -
  K.epsilon())``; it bounds the backward loss, whose negative coefficients are otherwise unbounded below);
  T-Revision's importance-reweighted cross-entropy ``beta * CE`` with ``beta = p_{y~} / (T^T p)_{y~}``.

Phases (0-based epochs): ``[0, warmup)``: cross-entropy on the noisy labels; at the start of epoch ``warmup``
T is estimated from that network's softmax over the whole (un-augmented) training set (or the true T is taken:
``t_source: oracle``); with ``retrain: true`` the network is then re-initialised (fresh seeded weights, fresh
optimizer) as Patrini's code does, else training continues from the warm-up network (T-Revision's code). Each
phase has its own learning-rate schedule (``lr_schedule: step``: lr / 10 at 50% and 75% of the phase).
The warm-up network is the last warm-up epoch's, where both official codes keep the best one by a noisy
validation loss / accuracy (a selection this package leaves to the proxy). The estimated T and the phase state
are part of the checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import dataset_of, transition_matrix
from ..data.noise import RATE_TYPES, empirical_transition, read_matrix
from ..errors import ConfigError
from ..models import build_model
from . import hparams
from .base import make_optimizer, step_lr
from .constraints import NON_NEGATIVE, OneOf, Range, warmup_inside
from .hparams import hp
from .losses import cross_entropy
from .single_network import SingleNetwork

#: the probability clip of the official Keras losses (``K.epsilon()``)
EPS = 1e-7


# -- the estimator and the true T ----------------------------------------------------------------------------
def anchor_transition(prob: torch.Tensor, percentile: float, variant: str = "official") -> torch.Tensor:
    """The anchor-point estimate ``[C, C]`` (float64, rows summing to 1) from ``prob`` ``[N, C]`` (the noisy
    class posteriors of N samples; see the module docstring). ``percentile`` 100: the arg-max of each column;
    below 100: the largest value below the column's ``percentile`` ('higher' interpolation)."""
    p = prob.detach().double()
    n, c = p.shape
    if percentile >= 100.0:
        return _row_normalised(p[p.argmax(0)])
    rank = min(n - 1, math.ceil((percentile / 100.0) * (n - 1)))  # numpy's 'higher': ceil((q / 100) (n - 1))
    thresh = torch.sort(p, dim=0).values[rank]                      # [C]: each column's threshold
    anchors = torch.where(p >= thresh, torch.zeros_like(p), p).argmax(0)  # first arg-max, as numpy
    rows = p[anchors]                                               # row i: the anchor of class i
    if variant == "official":  # column j < i was filtered in place before row i was read
        earlier = torch.ones(c, c, dtype=torch.bool, device=p.device).tril(-1)
        rows = torch.where(earlier & (rows >= thresh), torch.zeros_like(rows), rows)
    return _row_normalised(rows)


def _row_normalised(t: torch.Tensor) -> torch.Tensor:
    return t / t.sum(1, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny)


def nominal_transition(data_cfg, num_classes: int) -> torch.Tensor | None:
    """The ``[C, C]`` matrix the run's noise is drawn from (float64), None when its type has none
    (instance-dependent, human, real noise)."""
    kind = data_cfg.noise_type
    if kind == "matrix":
        opts = data_cfg.noise_options
        rows = opts["matrix"] if "matrix" in opts else read_matrix(opts["path"])
        return torch.as_tensor(rows, dtype=torch.float64)
    if kind == "none" or (kind in RATE_TYPES and kind != "instance"):
        mapping = dataset_of(data_cfg).asymmetric_map if kind == "asymmetric" else None
        return transition_matrix(kind, float(data_cfg.noise_rate), num_classes, mapping)
    return None


def true_transition(data_cfg, data) -> torch.Tensor | None:
    """The setting's true T (float64, CPU): :func:`nominal_transition`, else the realised clean -> noisy matrix of
    the training split; None when the clean training labels are unknown (real noise)."""
    nominal = nominal_transition(data_cfg, data.num_classes)
    if nominal is not None:
        return nominal
    clean = data.train_clean
    if bool((clean < 0).any()):
        return None
    return empirical_transition(clean, data.train_noisy, data.num_classes)


def estimation_error(t_est: torch.Tensor, t_true: torch.Tensor) -> float:
    """``||T^ - T||_1 / C`` (entry-wise L1 over the classes)."""
    return float((t_est.double().cpu() - t_true.double().cpu()).abs().sum() / t_true.shape[0])


# -- the losses -------------------------------------------------------------------------------------------------
def _clipped_log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``log(clip(softmax(logits), EPS, 1 - EPS))`` (zero gradient outside the clip, as Keras's clip)."""
    return F.log_softmax(logits.float(), dim=1).clamp(math.log(EPS), math.log1p(-EPS))


def forward_loss(logits: torch.Tensor, labels: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Forward correction ``-log((T^T p)_{y~})`` per sample (Patrini Theorem 2); ``p`` clipped first."""
    noisy_post = _clipped_log_softmax(logits).exp() @ T.to(torch.float32)  # row b: (T^T p_b)^T
    return -noisy_post.gather(1, labels[:, None]).squeeze(1).log()


def backward_loss(logits: torch.Tensor, labels: torch.Tensor, T_inv: torch.Tensor) -> torch.Tensor:
    """Backward correction ``(T^{-1} l(p))_{y~} = sum_k T^{-1}[y~, k] (-log p_k)`` per sample (Patrini
    Theorem 1), ``T_inv`` the inverse of T; ``p`` clipped first."""
    return -(T_inv.to(torch.float32)[labels] * _clipped_log_softmax(logits)).sum(1)


def reweighted_loss(logits: torch.Tensor, labels: torch.Tensor, T: torch.Tensor, detach: bool = True) -> torch.Tensor:
    """T-Revision's importance-reweighted cross-entropy ``beta * CE`` per sample, ``beta = p_{y~} / (T^T
    p)_{y~}`` (``T``: the estimated T, or ``T^ + Delta T`` in the revision phase). ``detach``: no gradient through
    ``beta`` (the reweighting phase); without it the gradient reaches both the network and ``T`` through
    ``beta``, which is how ``Delta T`` learns (the revision phase)."""
    p = F.softmax(logits.float(), dim=1)
    p_y = p.gather(1, labels[:, None]).squeeze(1)
    noisy_y = (p @ T.to(torch.float32)).gather(1, labels[:, None]).squeeze(1)
    beta = p_y / noisy_y
    return (beta.detach() if detach else beta) * cross_entropy(logits.float(), labels)


# -- the shared hyperparameters and phases --------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """The hyperparameters of the warm-up / estimation phase (defaults: Patrini's CIFAR-10 setup)."""
    warmup: int = hp(120, "epochs of cross-entropy before T is estimated (Patrini CIFAR-10: a full 120-epoch run)",
                     NON_NEGATIVE)
    percentile: float = hp(97.0, "anchor of class i: the sample at this percentile of p(y~=i|x); 100 = the arg-max "
                                 "(paper: 97 on MNIST / CIFAR-10, arg-max on CIFAR-100)",
                           Range(0.0, 100.0, low_open=True))
    t_source: str = hp("estimate", "estimate (anchor points of the warm-up network) or oracle (the setting's true T, "
                                   "labelled t_oracle: 1)", OneOf(("estimate", "oracle")))
    variant: str = hp("official", "anchor estimator: official (the codes' in-place filtering) or paper",
                      OneOf(("official", "paper")))
    retrain: bool = hp(True, "after the estimate, re-initialise the network and optimizer (Patrini's code) or "
                             "continue from the warm-up network")


def check_warmup(hp_) -> list[tuple[str, object]]:
    """An estimate needs a warm-up network: ``1 <= warmup < epochs`` (an oracle T: ``0 <= warmup < epochs``)."""
    return warmup_inside(hp_, f"t_source {hp_.t_source}", low=1 if hp_.t_source == "estimate" else 0,
                         t_source=hp_.t_source)


class TransitionMethod(SingleNetwork):
    """One network: cross-entropy warm-up, then a T (estimated or the oracle's) that later phases use. Subclasses
    implement :meth:`corrected_epoch` (the epochs from ``warmup`` on) and may extend :meth:`on_estimate`."""

    @dataclass(frozen=True)
    class Hyper(Transition, SingleNetwork.Hyper):
        pass

    @classmethod
    def check_config(cls, hp_):
        return check_warmup(hp_)

    def loss(self, logits, labels):
        """The warm-up's per-sample loss: cross-entropy on the noisy labels."""
        return cross_entropy(logits, labels)

    def build(self) -> None:
        super().build()
        #: the T the corrected phases use (float64 [C, C] on the device), None before the estimate
        self.T: torch.Tensor | None = None
        self.true_T = true_transition(self.run.data, self.data)  # analytics (and the oracle) only
        if self.hp.t_source == "oracle" and self.true_T is None:
            raise ConfigError("t_source: oracle needs the setting's true T: this noise has no transition matrix "
                              "and its clean training labels are unknown")

    def estimate(self) -> None:
        """Set T at the start of epoch ``warmup``: the anchor-point estimate of the current network's softmax over
        the training set, or the oracle's; then (``retrain``, after a warm-up) re-initialise the network."""
        if self.hp.t_source == "oracle":
            T = self.true_T.clone()
        else:
            T = anchor_transition(F.softmax(self.data.logits(self.net, "train").double(), dim=1),
                                  self.hp.percentile, self.hp.variant)
        self.T = T.to(self.device)
        self.on_estimate()
        if self.hp.retrain and self.hp.warmup > 0:
            self.reinitialise()

    def on_estimate(self) -> None:
        """What a subclass derives from T when it is set (or restored)."""

    def reinitialise(self) -> None:
        """Fresh weights (seeded by the run's seed, never by the RNG state) loaded into the existing network
        object (its ``channels_last`` / ``compile`` set-up kept) and a fresh optimizer."""
        d = self.data
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.run.seed + 7919)
            fresh = build_model(self.hp.model, d.num_classes, d.image_shape, pretrained=self.hp.pretrained)
        self.net.load_state_dict(fresh.state_dict())
        self.opt = make_optimizer(self.net.parameters(), self.hp)

    def train_epoch(self) -> dict:
        hp_, e = self.hp, self.epoch
        if e >= hp_.warmup and self.T is None:
            self.estimate()
        if e < hp_.warmup:
            lr = step_lr(e, hp_, 0, hp_.warmup)
            stats = {"phase": 1, "train_loss": self.fit_epoch(lr), "lr": lr}
        else:
            stats = self.corrected_epoch()
        return {**stats, **self.t_stats()}

    def corrected_epoch(self) -> dict:
        raise NotImplementedError

    def current_T(self) -> torch.Tensor | None:
        """The T the method uses now (t_revision: with its slack)."""
        return self.T

    def t_stats(self) -> dict:
        """``t_oracle`` (1: the true T trains) and, once T is set and the true T is known, ``t_error`` (analytics
        only: ||T^ - T||_1 / C)."""
        out = {"t_oracle": int(self.hp.t_source == "oracle")}
        T = self.current_T()
        if T is not None and self.true_T is not None:
            out["t_error"] = estimation_error(T.detach(), self.true_T)
        return out

    def method_state(self) -> dict:
        empty = torch.empty(0, 0, dtype=torch.float64)
        return {**super().method_state(), "T": empty if self.T is None else self.T.detach().cpu().clone()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        T = state["T"]
        self.T = None if T.numel() == 0 else T.to(self.device, torch.float64)
        if self.T is not None:
            self.on_estimate()


class LossCorrection(TransitionMethod):
    """Patrini et al.'s forward (``correction = "forward"``) or backward (``"backward"``) loss correction with the
    T of :meth:`TransitionMethod.estimate` from epoch ``warmup`` on. Defaults: the paper's CIFAR-10 setup (ResNet,
    SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128; 120 epochs of cross-entropy, then 120 with the
    corrected loss from scratch; percentile 97)."""
    correction = "forward"

    @dataclass(frozen=True)
    class Hyper(TransitionMethod.Hyper):
        epochs: int = hparams.like(hparams.Common, "epochs", 240)
        lr: float = hparams.like(hparams.Common, "lr", 0.1)
        optimizer: str = hparams.like(hparams.Optimizer, "optimizer", "sgd")
        weight_decay: float = hparams.like(hparams.Optimizer, "weight_decay", 1e-4)
        lr_schedule: str = hparams.like(hparams.LrSchedule, "lr_schedule", "step")

    def on_estimate(self) -> None:
        if self.correction == "backward":  # Patrini Theorem 1 needs T invertible
            try:
                self.T_inv = torch.linalg.inv(self.T)
            except RuntimeError as exc:  # torch.linalg.LinAlgError
                raise FloatingPointError(f"backward correction: T is singular ({exc})") from None

    def corrected_epoch(self) -> dict:
        hp_ = self.hp
        lr = step_lr(self.epoch, hp_, hp_.warmup, hp_.epochs)
        if self.correction == "forward":
            train_loss = self.fit_epoch(lr, lambda logits, noisy: forward_loss(logits, noisy, self.T))
        else:
            train_loss = self.fit_epoch(lr, lambda logits, noisy: backward_loss(logits, noisy, self.T_inv))
        return {"phase": 2, "train_loss": train_loss, "lr": lr}

