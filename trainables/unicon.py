"""UNICON (Karim, Rizve, Rahnavard, Mian & Shah, "UniCon: Combating Label Noise Through Uniform
Selection and Contrastive Learning", CVPR 2022): DivideMix (:mod:`trainables.dividemix`) with two
changes, a class-balanced clean selection and a contrastive term on the unlabeled samples.

Uniform selection (Sec. 3.1), before each network's semi-supervised epoch: with ``p_i`` the mean of
both networks' predictions on the un-augmented image ``x_i`` (eval mode) and ``y_i`` its noisy
one-hot label, the Jensen-Shannon divergence

    d_i = JSD(p_i, y_i) = 1/2 KL(p_i || m_i) + 1/2 KL(y_i || m_i),    m_i = (p_i + y_i) / 2

(natural logarithms as in the official code, in [0, ln 2]; ``variant: paper`` divides by ln 2: the
paper's normalised JSD in [0, 1]). The cut-off is ``d_cut = mean(d)``, lowered to
``d_cut - (d_cut - min(d)) / tau`` when it exceeds ``d_u``; the selection ratio is
``R = |{i: d_i < d_cut}| / N``, and from EACH class (by noisy label) the ``floor(R N / C)`` samples of
smallest ``d_i`` (all of the class if it has fewer) form the labeled set; the rest is unlabeled.
Both networks train on the same kind of selection (no co-divide): the official loop recomputes it
after network A's epoch (we too; B's predictions are reused, B has not changed). The weight of
a labeled sample in the co-refinement ``w y + (1 - w) p`` is ``w_i = 1 - d_i`` where ``d_i >= 0.5``,
else 1 (the official code's ``probability[probability < 0.5] = 0; w = 1 - probability``). Unlabeled
batches hold ``floor(batch_size / (2 R))`` samples (the official unlabeled loader), at most all
unlabeled ones.

The step (Sec. 3.2, Fig. 2): each labeled and unlabeled sample is seen in two weak views (the
run's ``augment``) and two strong ones (``strong_augment``). Co-refinement and co-guessing use the
weak views (as DivideMix); MixMatch mixes the STRONG views; and the unlabeled strong views add
SimCLR's contrastive loss (NT-Xent, Chen et al. 2020) on the projections ``z = normalise(BN(W h))``
of the penultimate features ``h``:

    L_C = 1/(2B) sum_i -log( exp(z_i . z_j(i) / kappa) / sum_{k != i} exp(z_i . z_k / kappa) ),

``j(i)`` the other strong view of the same image, over the ``2B`` projections of a batch. The loss
is ``L_X + lambda_u ramp L_U + lambda_c L_C + lambda_r L_reg`` (the rest as DivideMix).

Projection head: a ``Linear(d, proj_dim)`` + ``BatchNorm1d(proj_dim)`` (the official PreAct
ResNet-18's ``projection_head`` and ``bnl``) on the input of the backbone's last linear layer,
added here to whatever ``model`` the run uses (:class:`ProjectionNet`; trained with the network by
its optimizer), not to ``tune_lnl/models.py``.

Defaults: the official code's CIFAR-10 values (Train_cifar.py of github
nazmul-karim170/UNICON-Noisy-Label): warm-up 10, T 0.5, alpha 4, lambda_u 30, lambda_c 0.025,
kappa 0.05 (its ``SupConLoss`` temperature), d_u 0.7, tau 5, projection 128; SGD momentum 0.9,
weight decay 5e-4, lr 0.02, batch 64, 350 epochs, cosine annealing (the code anneals to 2e-4 = lr / 100
over 280 epochs, ``CosineAnnealingLR`` continuing past it; ours reaches lr / 100 at the last epoch).
Strong view: our RandAugment + Cutout (``tune_lnl.data.randaugment``; the code: crop, flip and
AutoAugment's CIFAR-10 policy).

Official-code quirks left out (reported, not reproduced): its second JSD pass of an epoch runs the
just-trained network in train mode (batch statistics; ours: eval mode); with natural logarithms the
JSD never exceeds ln 2 < d_u = 0.7, so the code's cut-off adjustment never fires (that branch would
raise a NameError, ``arg.tau``) -- ``variant: paper`` (JSD in [0, 1]) makes ``d_u`` and ``tau`` act;
a class with fewer than ``floor(R N / C)`` samples leaves sample 0 repeated in the code's labeled
set; its labeled loader drops the last partial batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainables.dividemix import DivideMix, SemiHyper
from tune_lnl.errors import ConfigError
from tune_lnl.methods import hparams
from tune_lnl.methods.base import make_optimizer
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, OneOf, Range
from tune_lnl.methods.hparams import Common, hp, like
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.semi import cycled_batches, labeled_unlabeled_plan

VARIANTS = ("official", "paper")


def jsd_to_label(p: torch.Tensor, labels: torch.Tensor, normalised: bool = False) -> torch.Tensor:
    """``JSD(p_i, onehot(y_i))`` ``[N]`` in nats (``normalised``: in bits, i.e. divided by ln 2)."""
    p = p.double() if p.dtype == torch.float64 else p.float()
    y = F.one_hot(labels, p.shape[1]).to(p.dtype)
    m = (p + y) / 2
    kl_p = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(1)  # KL(p || m)
    kl_y = -torch.log(m.gather(1, labels[:, None]).squeeze(1))  # KL(y || m) = -log m_y for a one-hot y
    d = (kl_p + kl_y) / 2
    return d / math.log(2.0) if normalised else d


def uniform_selection(d: torch.Tensor, labels: torch.Tensor, num_classes: int, d_u: float,
                      tau: float) -> tuple[torch.Tensor, float]:
    """UNICON's class-balanced selection: ``(labeled mask [N], selection ratio R)`` (module docstring)."""
    cutoff = d.mean()
    if bool(cutoff > d_u):
        cutoff = cutoff - (cutoff - d.min()) / tau
    n = d.numel()
    ratio = float((d < cutoff).sum()) / n
    per_class = int(ratio * n / num_classes)
    order = torch.argsort(d, stable=True)                           # ascending divergence ...
    order = order[torch.argsort(labels[order], stable=True)]       # ... within each class
    counts = torch.bincount(labels, minlength=num_classes)
    rank = torch.arange(n, device=d.device) - (counts.cumsum(0) - counts)[labels[order]]
    mask = torch.zeros(n, dtype=torch.bool, device=d.device)
    mask[order] = rank < per_class
    return mask, ratio


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, kappa: float) -> torch.Tensor:
    """SimCLR's NT-Xent of the L2-normalised projections ``z1``, ``z2`` ``[B, d]`` of two views (row ``i``
    of each: the same image), temperature ``kappa``: the mean over the ``2B`` anchors of the cross-entropy
    of the anchor's similarities to the ``2B - 1`` others, its positive the other view."""
    z = torch.cat([z1, z2]).float()
    b = z1.shape[0]
    sim = (z @ z.T / kappa).masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, positive)


class ProjectionNet(nn.Module):
    """A backbone whose last linear layer is split off (``classifier``), plus UNICON's projection head
    ``Linear(d, dim) + BatchNorm1d(dim)`` on that layer's input. ``forward``: the logits, as the bare
    backbone; :meth:`project`: the L2-normalised projection."""

    def __init__(self, model: nn.Module, dim: int, num_classes: int):
        super().__init__()
        named = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not named or named[-1][1].out_features != num_classes:
            raise ConfigError(f"unicon: the backbone {type(model).__name__} does not end in a linear layer with "
                              f"{num_classes} outputs; no place for the projection head")
        name, last = named[-1]
        parent = model.get_submodule(name.rpartition(".")[0])
        setattr(parent, name.rpartition(".")[2], nn.Identity())
        self.features, self.classifier = model, last
        self.head = nn.Sequential(nn.Linear(last.in_features, dim), nn.BatchNorm1d(dim)).to(last.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.features(x)), dim=1)


class UNICON(DivideMix):
    """UNICON (Karim et al., CVPR 2022): DivideMix with JSD uniform selection and a contrastive term."""
    name = "unicon"
    tables = ("jsd",)  # the last selection's divergences (analytics; recomputed every epoch)

    @dataclass(frozen=True)
    class Hyper(hparams.StrongView, SemiHyper):
        """UNICON's own, the shared warm-up / MixMatch ones and the official CIFAR-10 optimisation."""
        epochs: int = like(Common, "epochs", 350, "training epochs (official code, CIFAR-10: 350)")
        lambda_u: float = like(SemiHyper, "lambda_u", 30.0, "weight of the unlabeled loss L_U (official code: 30)")
        lr_schedule: str = like(SemiHyper, "lr_schedule", "cosine")
        lambda_c: float = hp(0.025, "weight of the contrastive loss L_C (official code: 0.025)", NON_NEGATIVE)
        kappa: float = hp(0.05, "temperature of the contrastive loss (official code: 0.05)", POSITIVE)
        d_u: float = hp(0.7, "mean JSD above which the selection cut-off is lowered (official code: 0.7)",
                        NON_NEGATIVE)
        tau: float = hp(5.0, "filter coefficient: the lowered cut-off is mean - (mean - min) / tau (official: 5)",
                        Range(1.0))
        proj_dim: int = hp(128, "width of the projection head (official code: 128)", POSITIVE)
        variant: str = hp("official", "official (JSD in nats, as the released code) or paper (JSD / ln 2 in [0, 1]: "
                                      "d_u and tau take effect)", OneOf(VARIANTS))

    def build(self) -> None:
        super().build()  # networks A and B (+ optimizers, replaced below), the ensemble
        c = self.data.num_classes
        self.net_a = ProjectionNet(self.net_a, int(self.hp.proj_dim), c)
        self.net_b = ProjectionNet(self.net_b, int(self.hp.proj_dim), c)
        self.opt_a = make_optimizer(self.net_a.parameters(), self.hp)
        self.opt_b = make_optimizer(self.net_b.parameters(), self.hp)
        self.ensemble.members = nn.ModuleList([self.net_a, self.net_b])
        self.strong = self.data.augmentation(self.hp.strong_augment)
        del self.prob_a, self.prob_b
        self.jsd = torch.zeros(self.data.n_train, device=self.device)
        self.ratio = 0.0

    # -- selection ----------------------------------------------------------------------------------
    def begin_division(self) -> None:
        """Network B's predictions on the training set (B does not change while A trains)."""
        self.p_b = F.softmax(self.data.logits(self.net_b, "train").float(), dim=1)

    def division(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The uniform selection from both networks' mean prediction, before network ``k`` trains."""
        p = (F.softmax(self.data.logits(self.net_a, "train").float(), dim=1) + self.p_b) / 2
        noisy = self.data.train_noisy
        self.jsd = jsd_to_label(p, noisy, normalised=self.hp.variant == "paper")
        labeled, self.ratio = uniform_selection(self.jsd, noisy, self.data.num_classes, float(self.hp.d_u),
                                                float(self.hp.tau))
        return labeled, torch.where(self.jsd < 0.5, 1.0, 1.0 - self.jsd)

    def plan(self, labeled, unlabeled):
        """Labeled batches of ``batch_size``, unlabeled ones of ``batch_size / (2 R)`` (official loaders)."""
        b = int(self.hp.batch_size)
        batches = [lab for lab, _ in labeled_unlabeled_plan(labeled, unlabeled[:0], b, self.gen)]
        size = min(int(b / (2 * self.ratio)), unlabeled.numel()) if self.ratio > 0 else 0
        return list(zip(batches, cycled_batches(unlabeled, size, len(batches), self.gen)))

    # -- the step -----------------------------------------------------------------------------------
    def step_augments(self) -> list:
        """Two weak views (targets) and two strong ones (MixMatch, contrastive loss)."""
        return [self.augment, self.augment, self.strong, self.strong]

    def mix_views(self, views):
        return views[2], views[3]

    def extra_loss(self, net, views, n):
        """``lambda_c L_C`` on the unlabeled samples' two strong views (none with fewer than 2)."""
        if views[2].shape[0] - n < 2 or float(self.hp.lambda_c) == 0:
            return 0.0
        return float(self.hp.lambda_c) * nt_xent(net.project(views[2][n:]), net.project(views[3][n:]),
                                                 float(self.hp.kappa))


class UNICONTrainable(MethodTrainable):
    method_cls = UNICON
