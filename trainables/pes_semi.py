"""PES(semi) (Bai, Yang, Han, Yang, Li, Mao, Niu & Liu, "Understanding and Improving Early Stopping for
Learning with Noisy Labels", NeurIPS 2021): progressive early stopping, then MixMatch on the samples the
early-stopped network agrees with (the paper's Algorithm 1, "Progressive Early Stopping with
Semi-Supervised Learning"). One network; stages by 0-based epoch ``e``:

1. ``e < T1``: the whole network on the noisy labels (cross-entropy; the main optimizer, SGD).
2. ``T1 <= e < T1 + T2``: the last two parts of the network (:mod:`tune_lnl.methods.layer_groups`: for a
   ResNet ``layer4`` and ``fc``, the paper's parts 2 and 3; never the first part, so for the two-layer
   MLP the output layer) re-initialised at the stage's first epoch and trained alone (the rest frozen,
   its batch-norm statistics still updated as in the code) with a fresh Adam at ``lr2``,
   cross-entropy on the noisy labels.
3. ``T1 + T2 <= e < T1 + T2 + T3``: the same for the last part (the output layer), Adam at ``lr3``.
4. the rest: semi-supervised training (MixMatch, Berthelot et al. 2019, as DivideMix uses it). At the
   start of every epoch the network's un-augmented predictions split the training set:
   ``labeled = {i : argmax_c f(x_i)_c = y~_i}`` (the prediction agrees with the noisy label; kept with
   that label), the rest unlabeled. Each step takes ``b_x`` labeled and ``b_u`` unlabeled samples,
   ``b_u = B / 2`` if there are more unlabeled than labeled samples, else ``int(B n_u / N)``, and
   ``b_x = B - b_u``; ``N // B`` steps per epoch. With two weak views of each sample:

   * guess ``q = sharpen((p(u1) + p(u2)) / 2, T)`` (no gradient; MixMatch's label guessing and
     sharpening ``p_c^(1/T) / sum_k p_k^(1/T)``);
   * mix ``[x1, x2, u1, u2]`` with targets ``[y, y, q, q]`` (``y`` one-hot) by one permutation and
     ``l' = max(l, 1 - l)``, ``l ~ Beta(alpha, alpha)`` (MixMatch mixup; DivideMix Eq. 5-7);
   * ``L = Lx + lambda_u * r * Lu`` (MixMatch's ``L_X + lambda_U L_U``; DivideMix Eq. 8-9) with
     ``Lx = sum_c w_c mean_b(-t_bc log softmax(z_b)_c)`` over the mixed labeled part, ``Lu = mean((softmax(z)
     - t)^2)`` over the mixed unlabeled part, ``r = clip((m - T1) / rampup_length, 0, 1)`` (``m`` the
     main epoch with its batch fraction: the code's ramp, 16 epochs) and the class weights (``class_balance``)
     ``w_c = mean_{k: n_k > 0} n_k / n_c`` (``n_c`` the labeled samples of noisy class ``c``; 0 where
     ``n_c = 0``, at most 3), all 1 without it.

Main epochs: the epochs of stages 1 and 4 (the refinement epochs do not count, as in the official code,
whose refinement runs inside one epoch): ``m = e`` in stage 1, ``e - T2 - T3`` in stage 4, out of
``epochs - T2 - T3``. ``lr_schedule: cosine`` (the code's ``--optim cos``) anneals ``lr`` to ``lr / 100``
over them; MixMatch's ``alpha`` becomes ``alpha2`` from half of them on.

``variant``: in the official code the re-initialised layers are new modules that the main SGD optimizer
(made before them) never holds, so after the refinement they keep their refined weights for the rest
of training: ``official`` (the default; what the paper's numbers come from) keeps them fixed in
stage 4, ``paper`` trains the whole network there (Algorithm 1 as written).

Defaults: the official code's CIFAR-10 setup (github tmllab/PES, PES_semi.py, argparse defaults and its
``cifar10`` branch, commit 5466238): PreAct ResNet-18 (here: ``resnet34``'s torchvision layout, or any
backbone), 300 epochs, batch 128, SGD lr 0.02, momentum 0.9, weight decay 5e-4, cosine to lr / 100,
``T1 = 20``, one refinement of the final layer alone for 5 epochs with Adam lr 1e-4 (its ``--T2 5``,
``renew_layers(0)``: here ``T2 = 0, T3 = 5``), ``alpha = 4`` then 0.75 from epoch 150, ``T = 0.5``,
``lambda_u = 150`` (its default; the README runs CIFAR-10 instance-40% with 15, the CIFAR-N script uses
5). The paper's three-part split with ``T2 = 7, T3 = 5`` (and ``T1 = 25``) is its setup without
semi-supervised learning (PES_cs.py).

Cheaper than the official code, same math otherwise: the selection pass uses the un-augmented images
(the code averages the softmax of two augmented views) and the unlabeled guess is one forward pass over
both views together (the code: one per view; identical without batch normalisation). Both loaders cycle
through permutations across epoch ends (the code drops each loader's last partial batch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, set_lr, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, OneOf, Range
from tune_lnl.methods.hparams import AnnealedLrSchedule, Common, Optimizer, hp, like
from tune_lnl.methods.layer_groups import last_parts, layer_parts, parameters_of, reinitialise
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.semi import beta_lambda, cycled_batches, linear_rampup, mixmatch_loss, mixup, sharpen
from tune_lnl.methods.single_network import SingleNetwork

#: the official code's cap on the class weights of ``Lx``
CLASS_WEIGHT_CAP = 3.0


def confident_mask(logits: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """PES's labeled set: ``argmax_c logits_ic == noisy_i`` (bool ``[N]``)."""
    return logits.argmax(1) == noisy


def class_weights(labels: torch.Tensor, num_classes: int, cap: float = CLASS_WEIGHT_CAP) -> torch.Tensor:
    """``w_c = mean_{k: n_k > 0} n_k / n_c`` for the class counts ``n`` of ``labels`` (0 where ``n_c = 0``),
    clipped at ``cap``: the official code's weights of the labeled loss (float ``[C]``)."""
    n = torch.bincount(labels, minlength=num_classes).double()
    present = n > 0
    mean = n[present].mean() if bool(present.any()) else n.new_ones(())
    w = torch.where(present, mean / n.clamp_min(1.0), torch.zeros_like(n))
    return w.clamp_max(cap).float()


def batch_sizes(n_labeled: int, n_unlabeled: int, batch_size: int) -> tuple[int, int]:
    """``(b_x, b_u)`` of one step: ``b_u = B // 2`` if ``n_u > n_l`` else ``int(n_u / (n_l + n_u) * B)``,
    ``b_x = B - b_u`` (the official code's split of each batch)."""
    if n_unlabeled > n_labeled:
        b_u = batch_size // 2
    else:
        b_u = int(n_unlabeled / (n_labeled + n_unlabeled) * batch_size)
    return batch_size - b_u, b_u


def pes_mixmatch_loss(net, x_views, u_views, y_onehot: torch.Tensor, T: float, lam: float,
                      weights: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Lx, Lu)`` of one MixMatch step (module docstring): ``x_views``/``u_views`` the two views of the
    labeled/unlabeled images, ``y_onehot`` the labeled samples' one-hot noisy labels, ``lam`` the mixing
    weight (already ``max(l, 1 - l)``); the mixup permutation is drawn from ``generator``."""
    b_x, b_u = x_views[0].shape[0], u_views[0].shape[0]
    if b_u:
        with torch.no_grad():
            p = F.softmax(net(torch.cat(u_views)).float(), dim=1)
            q = sharpen((p[:b_u] + p[b_u:]) / 2, T)
    else:
        q = torch.zeros((0, y_onehot.shape[1]), device=y_onehot.device)
    y = y_onehot.float()
    inputs = torch.cat([*x_views, *u_views])
    mixed_x, mixed_t = mixup(inputs, torch.cat([y, y, q, q]), lam, generator)
    logits = net(mixed_x)
    return mixmatch_loss(logits[:2 * b_x], mixed_t[:2 * b_x], logits[2 * b_x:], mixed_t[2 * b_x:], weights)


class PESSemi(SingleNetwork):
    """PES(semi) (Bai et al., NeurIPS 2021): progressive early stopping, then MixMatch on the agreeing samples."""
    name = "pes_semi"

    @dataclass(frozen=True)
    class Hyper(hparams.AnnealedLrSchedule, hparams.Optimizer, hparams.Common):
        """PES's stages, MixMatch's four, and the official code's CIFAR-10 optimisation (module docstring)."""
        epochs: int = like(Common, "epochs", 300, "training epochs, refinement epochs included (paper: 300)")
        lr: float = like(Common, "lr", 0.02, "learning rate of stages 1 and 4 (paper: 0.02)")
        optimizer: str = like(Optimizer, "optimizer", "sgd", "adam or sgd (paper: SGD, momentum 0.9)")
        weight_decay: float = like(Optimizer, "weight_decay", 5e-4, "L2 weight decay (paper: 5e-4)")
        lr_schedule: str = like(AnnealedLrSchedule, "lr_schedule", "cosine", "constant, step, half or cosine (to "
                                "lr * lr_final), over the main epochs (paper: cosine to lr / 100)")
        T1: int = hp(20, "epochs of the whole network before the refinement (paper, CIFAR-10: 20)", POSITIVE)
        T2: int = hp(0, "epochs of the last two parts re-initialised and trained alone (paper's semi runs: 0; "
                     "without semi: 7)", NON_NEGATIVE)
        T3: int = hp(5, "epochs of the last part re-initialised and trained alone (paper: 5)", NON_NEGATIVE)
        lr2: float = hp(1e-4, "Adam lr of the T2 stage (paper: 1e-4)", POSITIVE)
        lr3: float = hp(1e-4, "Adam lr of the T3 stage (paper: 1e-4)", POSITIVE)
        lambda_u: float = hp(150.0, "weight of the unlabeled loss Lu after its 16-epoch ramp (code default: 150; "
                             "README CIFAR-10 instance-40%: 15)", NON_NEGATIVE)
        rampup_length: float = hp(16.0, "epochs of lambda_u's linear ramp after T1 (code: 16)", NON_NEGATIVE)
        T: float = hp(0.5, "sharpening temperature of the unlabeled guess (paper: 0.5)", POSITIVE, Range(high=1.0))
        alpha: float = hp(4.0, "Beta(alpha, alpha) of MixMatch's mixup (paper: 4)", NON_NEGATIVE)
        alpha2: float = hp(0.75, "alpha from half of the main epochs on (code: 0.75; = alpha: no change)",
                           NON_NEGATIVE)
        class_balance: bool = hp(True, "weight Lx per class by mean count / count, at most 3 (code: on)")
        variant: str = hp("official", "official (re-initialised layers stay fixed after their refinement, as in "
                          "the code) or paper (all trained in the semi-supervised stage)", OneOf(("official", "paper")))

    @classmethod
    def check_config(cls, hp):
        if hp.T1 + hp.T2 + hp.T3 < hp.epochs:
            return []
        return [("needs T1 + T2 + T3 < epochs (the semi-supervised stage must run)",
                 {"T1": hp.T1, "T2": hp.T2, "T3": hp.T3, "epochs": hp.epochs})]

    def loss(self, logits, labels):
        """The per-sample loss of stages 1-3: cross-entropy on the noisy labels."""
        return cross_entropy(logits, labels)

    def build(self) -> None:
        super().build()  # the network, the main optimizer
        self.refine_opt: torch.optim.Optimizer | None = None
        self.refine_stage = 0

    # -- epochs and stages ------------------------------------------------------------------------
    def stage_of(self, e: int) -> int:
        hp_ = self.hp
        bounds = (hp_.T1, hp_.T1 + hp_.T2, hp_.T1 + hp_.T2 + hp_.T3)
        return 1 + sum(e >= b for b in bounds)

    def main_epoch(self, e: int) -> int:
        """The epoch's index among the main epochs (stages 1 and 4; module docstring)."""
        return e if e < self.hp.T1 else e - self.hp.T2 - self.hp.T3

    def main_lr(self) -> float:
        hp_, total = self.hp, self.epochs - self.hp.T2 - self.hp.T3
        m = self.main_epoch(self.epoch)
        return step_lr(m, hp_, 0, total)

    def stage_parts(self, stage: int):
        """The parts re-initialised in ``stage`` (2: the last two, 3: the last one, never the first
        part: a two-part MLP's stage 2 is its output layer); stage 4: those the refinements
        re-initialised (fixed there in the ``official`` variant)."""
        if stage == 4:
            stage = 2 if self.hp.T2 > 0 else 3 if self.hp.T3 > 0 else 0
        k = {2: 2, 3: 1}.get(stage, 0)
        return last_parts(self.net, min(k, len(layer_parts(self.net)) - 1))

    def set_trainable(self, stage: int) -> None:
        """``requires_grad`` of every parameter for ``stage`` (derived, never checkpointed)."""
        fixed = stage in (2, 3)
        for p in self.net.parameters():
            p.requires_grad_(not fixed)
        if stage in (2, 3) or self.hp.variant == "official":
            for p in parameters_of(self.stage_parts(stage)):
                p.requires_grad_(fixed)

    def train_epoch(self) -> dict:
        stage = self.stage_of(self.epoch)
        self.set_trainable(stage)
        if stage == 1:
            lr = self.main_lr()
            return {"stage": 1, "lr": lr, "train_loss": self.fit_epoch(lr)}
        if stage in (2, 3):
            return self.refine_epoch(stage)
        return self.semi_epoch()

    def refine_epoch(self, stage: int) -> dict:
        """One epoch of stage 2 or 3; its first epoch re-initialises the stage's parts and makes its Adam."""
        hp_ = self.hp
        start = hp_.T1 if stage == 2 else hp_.T1 + hp_.T2
        if self.epoch == start or self.refine_stage != stage:
            parts = self.stage_parts(stage)
            reinitialise(parts, self.run.seed * 10 + stage)
            params = parameters_of(parts)
            for p in params:  # fresh weights: the main optimizer's momentum of the old ones goes
                self.opt.state.pop(p, None)
            self.refine_opt = self.make_refine_opt(stage)
            self.refine_stage = stage
        lr = float(hp_.lr2 if stage == 2 else hp_.lr3)
        return {"stage": stage, "lr": lr, "train_loss": self.fit_epoch(lr, opt=self.refine_opt)}

    def make_refine_opt(self, stage: int) -> torch.optim.Optimizer:
        lr = float(self.hp.lr2 if stage == 2 else self.hp.lr3)
        return torch.optim.Adam(parameters_of(self.stage_parts(stage)), lr=lr, fused=True)

    # -- the semi-supervised stage ------------------------------------------------------------------
    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labeled, unlabeled)`` training indices from the network's un-augmented predictions."""
        confident = confident_mask(self.data.logits(self.net, "train"), self.data.train_noisy)
        return confident.nonzero().squeeze(1), (~confident).nonzero().squeeze(1)

    def semi_epoch(self) -> dict:
        hp_, d = self.hp, self.data
        labeled, unlabeled = self.split()
        meter, precision = LossMeter(self.device), self.selection_meter()
        precision.add(labeled, torch.arange(labeled.numel(), device=labeled.device))
        lr = self.main_lr()
        stats = {"stage": 4, "lr": lr, "n_labeled": int(labeled.numel()), "selection_precision": precision.precision}
        if labeled.numel() == 0:
            return {**stats, "train_loss": 0.0}
        set_lr(self.opt, lr)
        b_x, b_u = batch_sizes(labeled.numel(), unlabeled.numel(), int(hp_.batch_size))
        steps = max(1, d.n_train // int(hp_.batch_size))
        plan = [torch.cat(pair) for pair in zip(cycled_batches(labeled, b_x, steps, self.gen),
                                                cycled_batches(unlabeled, b_u, steps, self.gen))]
        weights = class_weights(d.train_noisy[labeled], d.num_classes) if hp_.class_balance else None
        m, total = self.main_epoch(self.epoch), self.epochs - hp_.T2 - hp_.T3
        alpha = float(hp_.alpha2 if m >= total / 2 else hp_.alpha)
        for b, (_, views, noisy) in enumerate(self.view_batches(plan, [self.augment, self.augment])):
            n_u = views[0].shape[0] - b_x
            x_views = [v[:b_x] for v in views]
            u_views = [v[b_x:] for v in views] if n_u else [v[:0] for v in views]
            y = F.one_hot(noisy[:b_x], d.num_classes)
            lam = beta_lambda(alpha, self.gen)
            lx, lu = pes_mixmatch_loss(self.net, x_views, u_views, y, float(hp_.T), lam, weights, self.gen)
            loss = lx + float(hp_.lambda_u) * linear_rampup(m + b / steps, hp_.T1, hp_.rampup_length) * lu
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            meter.add(loss)
        return {**stats, "train_loss": meter.mean}

    # -- checkpoint -------------------------------------------------------------------------------
    def method_state(self) -> dict:
        state = super().method_state()
        state["refine_stage"] = self.refine_stage
        if self.refine_opt is not None:
            state["refine_opt"] = self.refine_opt.state_dict()
        return state

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.refine_stage = int(state.get("refine_stage", 0))
        self.refine_opt = None
        if self.refine_stage and "refine_opt" in state:
            self.refine_opt = self.make_refine_opt(self.refine_stage)
            self.refine_opt.load_state_dict(state["refine_opt"])


class PESSemiTrainable(MethodTrainable):
    method_cls = PESSemi
