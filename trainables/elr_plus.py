"""ELR+ (Liu, Niles-Weed, Razavian & Fernandez-Granda, "Early-Learning Regularization Prevents Memorization
of Noisy Labels", NeurIPS 2020, Sec. 4.3 and the ELR+ part of the appendix): the ELR regulariser of
trainables/elr.py (its target update and ``log(1 - <p, t>)`` are imported from there) with three additions:
two networks A and B, weight averaging (a mean-teacher EMA of each network), and mixup. The paper's equation
numbers were not at hand; the formulas below are the paper's ELR objective and the released code's ELR+ step
(github shengliu66/ELR, ELR_plus/trainer/trainer.py ``_train_epoch``, ELR_plus/model/loss.py ``elr_plus_loss``).

Each network ``k`` owns a target table ``t^k`` (``target_a``, ``target_b``: zeros at the start) and an EMA copy
``ema_k``. One epoch trains A for a whole epoch, then B (the official single-GPU order), each on its own
permutation of the training set. A step of network ``k`` on a batch ``(x, y)`` (``x`` augmented, ``y`` noisy
one-hot), with ``o`` the OTHER network:

* targets from the other network's weight average (temporal ensembling, ELR Sec. 4.1 on ``ema_o``'s output):
  ``t_i <- beta t_i + (1 - beta) softmax(ema_o(x_i))`` (the un-mixed batch; no clamp, the official
  ``update_hist``), stored before the loss;
* mixup: ``l ~ Beta(alpha, alpha)``, ``l = max(l, 1 - l)``, a permutation ``pi`` of the batch;
  ``x~ = l x + (1 - l) x_pi``, ``y~ = l y + (1 - l) y_pi``, ``q = l t + (1 - l) t_pi`` (the mixed targets);
* loss: ``L = mean_b [ -sum_c y~_c log softmax(z)_c ] + w(s) lambda mean_b log(1 - <p^, q>)`` with
  ``z = net_k(x~)``, ``p^`` the clamped softmax (ELR's regulariser on the mixed targets), ``w(s)`` the sigmoid
  ramp ``exp(-5 (1 - min(s / S_lambda, 1))^2)`` (``lambda_rampup`` = S_lambda epochs; 0: w = 1, CIFAR-10);
* after the SGD step: ``ema_k <- a ema_k + (1 - a) net_k`` with ``a = ema_alpha exp(-5 (1 - min(s' / S_ema,
  1))^2)`` (``ema_rampup`` = S_ema epochs).

``s`` counts steps in epochs as the code counts iterations: ``s = (epoch L + b + 1) / L`` for batch ``b`` of ``L =
ceil(N / batch_size)`` per epoch, the EMA's ``s' = s + 1 / L`` (its ``global_step + 1``); both networks use the
same numbers. The prediction (the proxy; evaluated first, then A and B alone) is the mean of the two
networks' logits (the code's ``_valid_epoch`` / ``_test_epoch`` on one GPU).

Defaults: github shengliu66/ELR ELR_plus/config_cifar10.json (CIFAR-10, symmetric noise): beta 0.7, lambda 3,
mixup_alpha 1, ema_alpha 0.997, coef_step 0 (lambda_rampup 0), ema_step 40000 iterations = 113.6 epochs of the
code's 352 per epoch (45000 training images, batch 128), PreActResNet-18, SGD momentum 0.9, weight decay 5e-4,
lr 0.02, batch 128, 200 epochs, lr / 10 at epoch 150. (Asymmetric CIFAR-10: beta 0.9, lambda 1; CIFAR-100:
beta 0.9, lambda 7, coef_step 40000, 250 epochs.) What differs from the code:

* ``lr_schedule: step`` divides by 10 at 50% and 75% of the epochs (the code: once, at 75%);
* the EMA is torch's ``AveragedModel`` over parameters AND buffers (:func:`tune_lnl.methods.semi.ema_model`),
  evaluated in eval mode: its batch-norm statistics are the average of the network's. The code averages the
  parameters only and runs the EMA network in train mode (batch statistics for the targets, its own running
  statistics). Identical for networks without batch norm (the MLP). Its first update copies the network (the
  code starts from a separately initialised network, weighted ``1 - exp(-5)`` = 0.7% at the first step);
* the code's CIFAR-100 only step ``y~ <- normalise(y~ q)`` (``num_classes == 100``) is not done.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainables.elr import elr_regulariser, elr_target_update
from tune_lnl.methods.base import LossMeter, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, RATE
from tune_lnl.methods.hparams import Common, LrSchedule, Optimizer, hp, like
from tune_lnl.methods.losses import soft_cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.semi import MeanLogits, beta_lambda, ema_model, ema_update, mixup, sigmoid_rampup
from tune_lnl.methods.two_networks import TwoNetworks


def elr_plus_loss(logits: torch.Tensor, mixed_labels: torch.Tensor, mixed_targets: torch.Tensor,
                  weight: float) -> torch.Tensor:
    """The batch loss: mean soft cross-entropy against the mixed one-hot labels plus ``weight`` (``w(s)
    lambda``) times the mean ELR regulariser ``log(1 - <p^, q>)`` against the mixed targets ``q``."""
    return soft_cross_entropy(logits, mixed_labels).mean() + weight * elr_regulariser(logits, mixed_targets).mean()


class ELRPlus(TwoNetworks):
    """ELR+ (Liu et al., NeurIPS 2020): two networks, each regularised by ELR towards targets from the other's
    EMA, trained on mixup batches; the prediction is the mean of their logits."""
    name = "elr_plus"
    tables = ("target_a", "target_b")  # each network's ELR targets, checkpointed with the networks

    @dataclass(frozen=True)
    class Hyper(LrSchedule, Optimizer, Common):
        """ELR+'s own and the official CIFAR-10 config's optimisation (module docstring)."""
        epochs: int = like(Common, "epochs", 200, "training epochs (official CIFAR-10: 200)")
        lr: float = like(Common, "lr", 0.02, "learning rate (official CIFAR-10: 0.02)")
        optimizer: str = like(Optimizer, "optimizer", "sgd", "adam or sgd (official: SGD, momentum 0.9)")
        weight_decay: float = like(Optimizer, "weight_decay", 5e-4, "L2 weight decay (official CIFAR-10: 5e-4)")
        lr_schedule: str = like(LrSchedule, "lr_schedule", "step", "constant, or step (lr / 10 at 50% and 75%; "
                                "the official config: once, at epoch 150 of 200)")
        beta: float = hp(0.7, "momentum of the ELR targets t (official: CIFAR-10 0.7, asymmetric 0.9, "
                              "CIFAR-100 0.9)", RATE)
        lambda_: float = hp(3.0, "weight of the regulariser log(1 - <p, q>) (official: CIFAR-10 3, asymmetric 1, "
                                 "CIFAR-100 7)", NON_NEGATIVE, key="lambda")
        mixup_alpha: float = hp(1.0, "mixup's Beta(alpha, alpha); 0: no mixup (official: 1)", NON_NEGATIVE)
        ema_alpha: float = hp(0.997, "decay of the weight average after its ramp (official: 0.997)", RATE)
        ema_rampup: float = hp(113.6, "epochs of the EMA decay's sigmoid ramp (official: ema_step 40000 "
                                      "iterations = 113.6 CIFAR-10 epochs)", NON_NEGATIVE)
        lambda_rampup: float = hp(0.0, "epochs of lambda's sigmoid ramp; 0: none (official: coef_step, "
                                       "CIFAR-10 0, CIFAR-100 40000 iterations = 113.6 epochs)", NON_NEGATIVE)

    def build(self) -> None:
        super().build()  # the networks, their optimizers
        self.ema_a = ema_model(self.net_a, float(self.hp.ema_alpha)).eval()  # teachers: always eval mode
        self.ema_b = ema_model(self.net_b, float(self.hp.ema_alpha)).eval()
        self.ensemble = MeanLogits(self.net_a, self.net_b)
        n, c = self.data.n_train, self.data.num_classes
        self.target_a = torch.zeros(n, c, device=self.device)
        self.target_b = torch.zeros(n, c, device=self.device)

    @property
    def steps_per_epoch(self) -> int:
        """The code's iterations per epoch (``len(data_loader)``), the unit of its ramps."""
        return math.ceil(self.data.n_train / int(self.hp.batch_size))

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        self.set_lr(lr)
        loss_a = self.fit_network(self.net_a, self.opt_a, self.ema_a, self.ema_b, self.target_a)
        loss_b = self.fit_network(self.net_b, self.opt_b, self.ema_b, self.ema_a, self.target_b)
        return {"train_loss": (loss_a + loss_b) / 2, "train_loss_a": loss_a, "train_loss_b": loss_b, "lr": lr,
                **self.label_correction(self.target_a)}

    def fit_network(self, net, opt, ema, teacher, table: torch.Tensor) -> float:
        """One epoch of one network (module docstring); returns its mean loss."""
        hp_, c, per_epoch = self.hp, self.data.num_classes, self.steps_per_epoch
        beta, lam_elr, alpha = float(hp_.beta), float(hp_.lambda_), float(hp_.mixup_alpha)
        meter = LossMeter(self.device)
        for b, (idx, x, noisy) in enumerate(self.train_batches()):
            step = self.epoch * per_epoch + b + 1  # the code's global_step + local_step
            with torch.no_grad():
                rows = elr_target_update(table.index_select(0, idx), teacher(x), beta, clamp=False)
            table.index_copy_(0, idx, rows)
            lam = beta_lambda(alpha, self.gen)
            x_mix, mixed = mixup(x, torch.cat([F.one_hot(noisy, c).to(rows.dtype), rows], 1), lam, self.gen)
            weight = lam_elr * sigmoid_rampup(step / per_epoch, float(hp_.lambda_rampup))
            loss = elr_plus_loss(net(x_mix), mixed[:, :c], mixed[:, c:], weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            decay = float(hp_.ema_alpha) * sigmoid_rampup((step + 1) / per_epoch, float(hp_.ema_rampup))
            ema_update(ema, net, decay)
            meter.add(loss)
        return meter.mean

    def eval_models(self):
        return {"ensemble": self.ensemble, "a": self.net_a, "b": self.net_b}

    def method_state(self) -> dict:
        return {**super().method_state(), "ema_a": self.ema_a.state_dict(), "ema_b": self.ema_b.state_dict()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.ema_a.load_state_dict(state["ema_a"])
        self.ema_b.load_state_dict(state["ema_b"])


class ELRPlusTrainable(MethodTrainable):
    method_cls = ELRPlus
