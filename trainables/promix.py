"""ProMix (Xiao, Dong, Wang, Feng, Wu, Chen & Zhao, "ProMix: Combating Label Noise via Maximizing Clean
Sample Utility", IJCAI 2023): two peer networks, each with a primary head ``h`` and an auxiliary pseudo
head ``h_AP`` on the same features, trained on a clean set that grows by progressive selection, with
semi-supervised learning on the rest and debiasing of both the losses and the pseudo-labels.

Equations (paper Sec. 3; the paper's text was not at hand to quote, so its equation numbers are not
given: each piece names its section and the official code's line it was checked against, github
Justherozen/ProMix, Train_promix.py and utils/utils.py at commit 40d8378):

* warm-up (epochs ``< warmup``, Sec. 4.1 "pretrain"): CE of both networks on the noisy labels (weak
  view); ``conf_penalty`` adds the negative entropy ``sum_c p_c log p_c`` (official: asymmetric noise only);
* class-wise small-loss selection, CSS (Sec. 3.1), per network at the start of each later epoch: in
  each class ``j``, the ``k = max(ceil(rho N / C), 1)`` samples labelled ``j`` with the smallest CE of
  that network's un-augmented logits (all of the class when fewer), ``rho`` ramping linearly from
  ``rho_start`` to ``rho_end`` over the first ``rampup`` epochs (:func:`class_wise_small_loss`);
* matched high-confidence selection, MHCS (Sec. 3.1), per batch: a sample is also clean when the
  network's (weak-view, un-debiased) probability of its label exceeds ``tau`` (``max_j p_j > tau`` and
  ``argmax p = y`` for ``tau >= 0.5``; :func:`matched_high_confidence`);
* label guessing by agreement, LGA (Sec. 3.3), in the last ``start_expand`` epochs: when under a
  share ``lga_threshold`` of the batch is clean, unselected samples on which both networks agree with
  confidence ``> tau`` join (the most confident first, up to ``floor(B lga_threshold)``) with the
  network's debiased arg-max as label (:func:`label_guess_by_agreement`);
* debiased margin-based loss, DML (Sec. 3.2, logit adjustment): every training loss reads the logits
  ``z + alpha_out log pi`` (:func:`dml_logits`), ``pi`` the network's estimate of its own prediction
  bias, a moving average ``pi <- m pi + (1 - m) mean_batch p`` of its weak-view probabilities, one
  ``pi`` over the clean samples (for the clean-set losses) and one ``pi_u`` over the rest (for the
  pseudo head's unlabeled loss; :func:`bias_update`, after the step's loss as in the code);
* debiased pseudo-labels (Sec. 3.2): ``softmax(z - beta_pl log pi)`` (:func:`debiased_probs`);
* the losses of one network (``C`` its clean set in the batch with labels ``P``: the noisy label for
  CSS/MHCS samples, the debiased arg-max for LGA ones; ``U`` the rest; ``w = min(epoch / rampup, 1)``):
  primary head ``CE_C(h(weak), P) + w (CE_C(h(strong), P) + mixup_C + fmix_C)``; pseudo head the same
  terms plus ``lambda_u(epoch) [CE_U(h_AP(weak), q) + w CE_U(h_AP(strong), q)]`` with
  ``q = sharpen(debiased_probs(h(weak), pi_u), T)`` (APH, Sec. 3.2: the primary head makes the
  pseudo-labels, only the pseudo head learns from them). ``lambda_u(epoch) = lambda_u min(epoch /
  (2 rampup), 1)``, and (``stop_unlabeled``, the official code) 0 from epoch ``2 rampup`` on. mixup:
  ``Beta(mixup_alpha, mixup_alpha)``, ``max(l, 1 - l)``; fmix: FMix (Harris et al. 2020; a low-frequency
  binary mask of mean ``l ~ U(0, 1)``, :func:`fmix_mask`), loss ``l CE(y) + (1 - l) CE(y[perm])``.

The model whose accuracy is the proxy: the mean of the two primary heads' logits (the code's
``Acc Mean``); each network's primary head is logged too (``_a``, ``_b``).

Defaults: the official code's CIFAR-10N command (run.sh, ``--noise_type worst``, the argparse
defaults of Train_promix.py): 600 epochs, batch 256, SGD lr 0.05 momentum 0.9 weight decay 5e-4, cosine
to lr / 1000, warm-up 10, rampup 50, rho 0.5 -> 0.5, tau 0.99, alpha_out = beta_pl = 0.8, m 0.9999,
T 0.5, lambda_u 0.1, start_expand 250, lga_threshold 0.9, mixup Beta(4, 4), FMix always on.

What differs from the code, on purpose (cost, or the project's conventions): both heads of a network
share one mixup and one FMix draw and their backbone pass (the code draws separately per head: 4 extra
passes per network per step instead of our 1); the weak and strong views go through a network in one
batch (BatchNorm sees them together); the CSS ranks raw losses (the code's min-max normalisation does
not change a ranking); the epoch's last batch is dropped only when it holds one sample; the code's
``NegEntropy`` clamps the logits at 1e-12 before the softmax (ours does not).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, make_optimizer, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, RATE, Range, warmup_inside
from tune_lnl.methods.hparams import AnnealedLrSchedule, Common, Optimizer, hp, like
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.semi import MeanLogits, beta_lambda, labeled_unlabeled_plan, mixup, per_sample_ce, sharpen
from tune_lnl.methods.two_networks import TwoNetworks
from tune_lnl.models import build_model


# -- the pieces (each tested against a hand computation and the official code's numbers) --------------
def class_wise_small_loss(losses: torch.Tensor, labels: torch.Tensor, num_classes: int, rho: float) -> torch.Tensor:
    """CSS: a boolean mask ``[N]`` of the ``max(ceil(rho N / C), 1)`` smallest ``losses`` of each class
    (all of a class with fewer samples), ranked within each class by one stable sort."""
    n = losses.numel()
    k = max(math.ceil(n / num_classes * rho), 1)
    order = torch.argsort(losses, stable=True)
    order = order[torch.argsort(labels[order], stable=True)]  # by class, by loss within a class
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=losses.device) - starts[labels[order]]
    mask = torch.zeros(n, dtype=torch.bool, device=losses.device)
    mask[order[rank < k]] = True
    return mask


def matched_high_confidence(probs: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """MHCS: the probability of the given label exceeds ``tau`` (``[B]`` bool)."""
    return probs.gather(1, labels.view(-1, 1)).squeeze(1) > tau


def label_guess_by_agreement(chosen: torch.Tensor, probs_a: torch.Tensor, probs_b: torch.Tensor, tau: float,
                             threshold: float) -> torch.Tensor:
    """LGA: ``chosen`` (``[B]`` bool) plus, when it holds under ``threshold`` of the batch, the
    unchosen samples both networks predict alike with confidence ``> tau``, the highest mean
    confidence first, up to ``floor(B threshold)`` chosen in all. No host sync."""
    b = chosen.numel()
    s_a, y_a = probs_a.max(1)
    s_b, y_b = probs_b.max(1)
    cand = (s_a > tau) & (s_b > tau) & (y_a == y_b) & ~chosen
    n = chosen.sum()
    room = math.floor(b * threshold) - n
    score = torch.where(cand, (s_a + s_b) / 2, torch.full_like(s_a, -math.inf))
    rank = torch.empty_like(y_a)
    rank[torch.argsort(score, descending=True, stable=True)] = torch.arange(b, device=chosen.device)
    return chosen | (cand & (rank < room) & (n < b * threshold))


def dml_logits(logits: torch.Tensor, pi: torch.Tensor, alpha: float) -> torch.Tensor:
    """The debiased margin-based loss's logits ``z + alpha log pi`` (logit adjustment)."""
    return logits + alpha * pi.log()


def debiased_probs(logits: torch.Tensor, pi: torch.Tensor, beta: float) -> torch.Tensor:
    """Debiased pseudo-label probabilities ``softmax(z - beta log pi)``."""
    return F.softmax(logits - beta * pi.log(), dim=1)


def bias_update(pi: torch.Tensor, probs: torch.Tensor, mask: torch.Tensor, m: float) -> torch.Tensor:
    """``m pi + (1 - m) mean_{mask} probs``; ``pi`` unchanged when ``mask`` selects nothing."""
    k = mask.sum()
    mean = (probs * mask.unsqueeze(1)).sum(0) / k.clamp_min(1)
    return torch.where(k > 0, m * pi + (1.0 - m) * mean, pi)


def fmix_mask(h: int, w: int, lam: float, coin: float, noise: torch.Tensor, decay: float = 3.0) -> torch.Tensor:
    """FMix's binary mask ``[h, w]`` (Harris et al. 2020): the real inverse FFT of the Fourier
    coefficients ``noise`` (``[h, w // 2 + 1, 2]``, standard normal) scaled by ``1 / max(f, 1 / max(h,
    w))^decay``, its ``ceil(lam h w)`` (``coin > 0.5``) or ``floor`` largest pixels 1, the rest 0."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[: w // 2 + 1].view(1, -1)
    freqs = (fy * fy + fx * fx).sqrt()
    scale = 1.0 / freqs.clamp_min(1.0 / max(h, w)).pow(decay)
    spec = scale * torch.complex(noise[..., 0].double().cpu(), noise[..., 1].double().cpu())
    return fmix_binarise(torch.fft.irfftn(spec, s=(h, w)), lam, coin)


def fmix_binarise(img: torch.Tensor, lam: float, coin: float) -> torch.Tensor:
    """FMix's binarisation: the ``ceil(lam h w)`` (``coin > 0.5``) or ``floor`` largest pixels of the
    low-frequency image ``img`` ``[h, w]`` 1, the rest 0 (float32, on the CPU)."""
    h, w = img.shape
    num = math.ceil(lam * h * w) if coin > 0.5 else math.floor(lam * h * w)
    mask = torch.zeros(h * w, dtype=torch.float32)
    mask[torch.argsort(img.reshape(-1), descending=True, stable=True)[:num]] = 1.0
    return mask.view(h, w)


def fmix_loss(logits: torch.Tensor, labels: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """FMix's loss ``lam CE(z, y) + (1 - lam) CE(z, y[perm])`` (batch means)."""
    z = logits.float()
    return lam * F.cross_entropy(z, labels) + (1 - lam) * F.cross_entropy(z, labels[perm])


def soft_ce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean soft cross entropy ``-sum_c t_c log softmax(z)_c`` over the rows of ``mask`` (all: None); 0
    for none."""
    per = F.cross_entropy(logits.float(), targets, reduction="none")
    if mask is None:
        return per.mean()
    return (per * mask).sum() / mask.sum().clamp_min(1)


def head_losses(zw, zs, qw, qs, y, mhcs, chosen, pi, pi_u, w: float, lam_u: float, alpha: float, beta_pl: float,
                T: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One network's loss terms without mixing, and the clean set's targets ``[B, C]``: ``z*`` the
    primary head's logits (weak, strong view), ``q*`` the pseudo head's, ``y`` one-hot labels, ``mhcs``
    the CSS/MHCS mask (label kept), ``chosen`` the clean set after LGA (others get the debiased
    arg-max), ``pi`` / ``pi_u`` the bias estimates of the clean set / the rest."""
    with torch.no_grad():
        zd = zw.detach().float()
        guess = F.one_hot(debiased_probs(zd, pi, beta_pl).argmax(1), y.shape[1]).to(y.dtype)
        targets = torch.where(mhcs.unsqueeze(1), y, guess)  # CSS / MHCS: the label; LGA: the guess
        q_u = sharpen(debiased_probs(zd, pi_u, beta_pl), T)
    m = chosen.to(zd.dtype)
    loss = 0.0
    for head_w, head_s in ((zw, zs), (qw, qs)):  # the primary head, then the pseudo head
        loss = loss + soft_ce(dml_logits(head_w, pi, alpha), targets, m)
        loss = loss + w * soft_ce(dml_logits(head_s, pi, alpha), targets, m)
    if lam_u > 0:  # the pseudo head only learns the rest's pseudo-labels
        mu = 1.0 - m
        loss = loss + lam_u * (soft_ce(dml_logits(qw, pi_u, alpha), q_u, mu)
                               + w * soft_ce(dml_logits(qs, pi_u, alpha), q_u, mu))
    return loss, targets


class DualHead(nn.Module):
    """A backbone whose last ``num_classes``-way linear layer is the primary head ``h`` plus a second,
    freshly initialised linear head on the same features, the auxiliary pseudo head ``h_AP``.
    ``forward(x)`` is ``h``; ``forward(x, pseudo=True)`` returns ``(h, h_AP)``."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        name = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
        if not name:
            raise ValueError("promix: the backbone has no final linear layer to add a pseudo head beside")
        parent, _, child = name[-1].rpartition(".")
        owner = backbone.get_submodule(parent) if parent else backbone
        self.head = getattr(owner, child)
        setattr(owner, child, nn.Identity())
        self.body = backbone
        self.pseudo_head = nn.Linear(self.head.in_features, num_classes)

    def forward(self, x: torch.Tensor, pseudo: bool = False):
        f = self.body(x)
        return (self.head(f), self.pseudo_head(f)) if pseudo else self.head(f)


class ProMix(TwoNetworks):
    """ProMix (Xiao et al., IJCAI 2023): CSS + MHCS + LGA selection, DML, the auxiliary pseudo head."""
    name = "promix"

    @dataclass(frozen=True)
    class Hyper(hparams.StrongView, hparams.AnnealedLrSchedule, hparams.Optimizer, hparams.Common):
        """ProMix's own and the official CIFAR-10N optimisation (module docstring)."""
        epochs: int = like(Common, "epochs", 600, "training epochs (official CIFAR-N: 600)")
        batch_size: int = like(Common, "batch_size", 256, "training batch size (official: 256)")
        lr: float = like(Common, "lr", 0.05, "learning rate (official: 0.05)")
        optimizer: str = like(Optimizer, "optimizer", "sgd", "adam or sgd (official: SGD, momentum 0.9)")
        weight_decay: float = like(Optimizer, "weight_decay", 5e-4, "L2 weight decay (official: 5e-4)")
        lr_final: float = like(AnnealedLrSchedule, "lr_final", 1e-3, "cosine: the final lr as a share of lr "
                                                                       "(official: eta_min = lr * 0.1^3)")
        warmup: int = hp(10, "warm-up epochs of plain CE (official CIFAR-10: 10, CIFAR-100: 30)", NON_NEGATIVE)
        rampup: int = hp(50, "epochs of the linear ramps of rho and of w (official warmup_ep: 50)", POSITIVE)
        rho_start: float = hp(0.5, "CSS share of each class at epoch 0 (official CIFAR-10N: 0.5)", Range(0.0, 1.0))
        rho_end: float = hp(0.5, "CSS share after the ramp (official CIFAR-10N: 0.5)", Range(0.0, 1.0))
        tau: float = hp(0.99, "MHCS / LGA confidence threshold (official: CIFAR-10 0.99, CIFAR-100 0.95)", RATE)
        debias_output: float = hp(0.8, "alpha of the DML logits z + alpha log pi (official: 0.8)", NON_NEGATIVE)
        debias_pl: float = hp(0.8, "beta of the debiased pseudo-labels softmax(z - beta log pi) (official: 0.8)",
                              NON_NEGATIVE)
        bias_m: float = hp(0.9999, "momentum of the bias estimates pi (official: 0.9999)", RATE)
        T: float = hp(0.5, "sharpening temperature of the pseudo head's targets (official: 0.5)", POSITIVE)
        lambda_u: float = hp(0.1, "weight of the pseudo head's unlabeled loss after its ramp (official: 0.1)",
                             NON_NEGATIVE)
        stop_unlabeled: bool = hp(True, "switch the unlabeled loss off from epoch 2 rampup on (official code)")
        start_expand: int = hp(250, "LGA runs in the last start_expand epochs (official: 250)", NON_NEGATIVE)
        lga_threshold: float = hp(0.9, "LGA adds samples while under this share of the batch is clean "
                                       "(official: 0.9)", Range(0.0, 1.0))
        mixup_alpha: float = hp(4.0, "mixup's Beta(alpha, alpha) on the clean set (official: 4; 0: off)",
                                NON_NEGATIVE)
        fmix: bool = hp(True, "the FMix term on the clean set (official: always on)")
        conf_penalty: bool = hp(False, "negative-entropy penalty in the warm-up (official: asymmetric noise only)")

    @classmethod
    def check_config(cls, hp):
        out = warmup_inside(hp, "the selection phase must run")
        if hp.start_expand > hp.epochs:
            out.append(("needs start_expand <= epochs", {"start_expand": hp.start_expand, "epochs": hp.epochs}))
        return out

    def build(self) -> None:
        d, hp_ = self.data, self.hp
        nets = [DualHead(build_model(hp_.model, d.num_classes, d.image_shape, pretrained=hp_.pretrained),
                         d.num_classes).to(self.device) for _ in range(2)]
        self.net_a, self.net_b = nets
        self.mean = MeanLogits(self.net_a, self.net_b)  # the official ``Acc Mean``
        self.opt_a = make_optimizer(self.net_a.parameters(), hp_)
        self.opt_b = make_optimizer(self.net_b.parameters(), hp_)
        c = d.num_classes
        #: the bias estimates (clean set, rest) of each network, uniform at the start
        self.pi = torch.full((4, c), 1.0 / c, device=self.device)
        self.strong = self.data.augmentation(hp_.strong_augment)

    def eval_models(self):
        return {"mean": self.mean, "a": self.net_a, "b": self.net_b}

    def method_state(self) -> dict:
        return {**super().method_state(), "pi": self.pi.clone()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.pi = state["pi"].to(self.device).clone()

    def ramp(self, length: float) -> float:
        return 1.0 if self.epoch >= length else self.epoch / length

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        self.set_lr(lr)
        if self.epoch < self.hp.warmup:
            return {"train_loss": self.warmup_epoch(), "lr": lr, "phase": 0}
        return {**self.main_epoch(), "lr": lr, "phase": 1}

    def warmup_epoch(self) -> float:
        meter = LossMeter(self.device)
        for _, x, noisy in self.train_batches():
            za, zb = self.net_a(x), self.net_b(x)
            loss = F.cross_entropy(za, noisy) + F.cross_entropy(zb, noisy)
            if self.hp.conf_penalty:
                for z in (za, zb):
                    p = F.softmax(z.float(), dim=1)
                    loss = loss + (p * F.log_softmax(z.float(), dim=1)).sum(1).mean()
            self.update_both(loss)
            meter.add(loss)
        return meter.mean

    def select(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This epoch's CSS masks of both networks (from their un-augmented training logits)."""
        hp_ = self.hp
        rho = hp_.rho_start + (hp_.rho_end - hp_.rho_start) * self.ramp(hp_.rampup)
        d = self.data
        masks = [class_wise_small_loss(per_sample_ce(d, net), d.train_noisy, d.num_classes, rho)
                 for net in (self.net_a, self.net_b)]
        return masks[0], masks[1], rho

    def main_epoch(self) -> dict:
        css_a, css_b, rho = self.select()
        hp_ = self.hp
        w = self.ramp(hp_.rampup)
        lam_u = hp_.lambda_u * self.ramp(2 * hp_.rampup)
        if hp_.stop_unlabeled and self.epoch >= 2 * hp_.rampup:
            lam_u = 0.0
        lga = self.epoch >= self.epochs - hp_.start_expand
        everyone = torch.arange(self.data.n_train, device=self.device)
        plan = [lab for lab, _ in labeled_unlabeled_plan(everyone, everyone[:0], int(hp_.batch_size), self.gen)]
        meter, chosen_n, batches = LossMeter(self.device), torch.zeros((), device=self.device), 0
        sel = self.selection_meter()
        for idx, (xw, xs), noisy in self.view_batches(plan, [self.augment, self.strong]):
            loss, n_a = self.promix_step(xw, xs, noisy, css_a[idx], css_b[idx], w, lam_u, lga)
            meter.add(loss)
            chosen_n += n_a
            batches += 1
        sel.add(everyone, css_a)
        return {"train_loss": meter.mean, "rho": rho, "n_labeled": int(css_a.sum()),
                "selection_precision": sel.precision, "batch_clean_share": float(chosen_n) / max(1, len(plan)),
                "lambda_u": lam_u, "w": w, "lga": bool(lga)}

    def promix_step(self, xw, xs, noisy, css_a, css_b, w, lam_u, lga):
        """One step of both networks; returns the loss and net a's clean share of the batch."""
        hp_, b = self.hp, xw.shape[0]
        y = F.one_hot(noisy, self.data.num_classes).float()
        outs = []
        for net in (self.net_a, self.net_b):
            z, q = net(torch.cat([xw, xs]), pseudo=True)
            outs.append((z[:b], z[b:], q[:b], q[b:]))
        with torch.no_grad():
            probs = [F.softmax(o[0].detach().float(), dim=1) for o in outs]
            chosen = [css | matched_high_confidence(p, noisy, hp_.tau) for css, p in zip((css_a, css_b), probs)]
            mhcs = list(chosen)
            if lga:
                chosen = [label_guess_by_agreement(c, probs[0], probs[1], hp_.tau, hp_.lga_threshold)
                          for c in chosen]
        total = 0.0
        for k, (net, (zw, zs, qw, qs)) in enumerate(zip((self.net_a, self.net_b), outs)):
            total = total + self.net_loss(net, k, xw, y, zw, zs, qw, qs, mhcs[k], chosen[k], w, lam_u)
        with torch.no_grad():
            for k in range(2):
                self.pi[2 * k] = bias_update(self.pi[2 * k], probs[k], chosen[k], hp_.bias_m)
                self.pi[2 * k + 1] = bias_update(self.pi[2 * k + 1], probs[k], ~chosen[k], hp_.bias_m)
        self.update_both(total)
        return total.detach(), chosen[0].float().mean()

    def net_loss(self, net, k, xw, y, zw, zs, qw, qs, mhcs, chosen, w, lam_u):
        """One network's primary + pseudo head loss (module docstring)."""
        hp_ = self.hp
        pi = self.pi[2 * k]
        loss, targets = head_losses(zw, zs, qw, qs, y, mhcs, chosen, pi, self.pi[2 * k + 1], w, lam_u,
                                    hp_.debias_output, hp_.debias_pl, hp_.T)
        if w > 0:
            loss = loss + w * self.mix_losses(net, xw[chosen], targets[chosen], pi)
        return loss

    def mix_losses(self, net, x, t, pi):
        """mixup + FMix on the clean set, both heads from one backbone pass (module docstring)."""
        n, hp_, a = x.shape[0], self.hp, self.hp.debias_output
        if n == 0:
            return 0.0
        parts, losses = [], []
        if hp_.mixup_alpha > 0:
            xm, tm = mixup(x, t, beta_lambda(hp_.mixup_alpha, self.gen), self.gen)
            parts.append(xm)
            losses.append(lambda z, tm=tm: soft_ce(z, tm))
        if hp_.fmix and x.dim() == 4:
            g = self.gen
            lam, coin = (float(v) for v in torch.rand(2, generator=g, device=g.device))
            h, wd = x.shape[-2:]
            noise = torch.randn(h, wd // 2 + 1, 2, generator=g, device=g.device)
            perm = torch.randperm(n, generator=g, device=g.device).to(x.device)
            mask = fmix_mask(h, wd, lam, coin, noise).to(x.device, x.dtype)
            parts.append(mask * x + (1 - mask) * x[perm])
            labels = t.argmax(1)
            losses.append(lambda z, lam=lam, perm=perm, labels=labels: fmix_loss(z, labels, perm, lam))
        if not parts:
            return 0.0
        z, q = net(torch.cat(parts), pseudo=True)
        out = 0.0
        for i, fn in enumerate(losses):
            rows = slice(i * n, (i + 1) * n)
            out = out + fn(dml_logits(z[rows], pi, a)) + fn(dml_logits(q[rows], pi, a))
        return out


class ProMixTrainable(MethodTrainable):
    method_cls = ProMix
