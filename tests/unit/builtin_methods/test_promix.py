"""ProMix: the selection rules (CSS, MHCS, LGA), the debiased margin-based loss, the debiased
pseudo-labels, the bias estimate, FMix's mask and one network's loss terms, against hand computations
and the official code's numbers; the auxiliary pseudo head; exact resume across the warm-up -> main
boundary (every phase, LGA included, runs) and learning.

Official numbers: github Justherozen/ProMix, commit 40d8378193f1a098473479ebcb56dbafa89dfacb,
printed by /work/scratch/promix/driver.py (its output: driver_output.txt there), which runs the
official functions (Train_promix.py: eval_train's class-wise selection, label_guessing and train()'s
loss lines; utils/utils.py: debias_output, debias_pl, bias_update, CE_Soft_Label; utils/fmix.py:
binarise_mask) on the fixed inputs written below."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.promix import (
    DualHead,
    ProMix,
    bias_update,
    class_wise_small_loss,
    debiased_probs,
    dml_logits,
    fmix_binarise,
    head_losses,
    label_guess_by_agreement,
    matched_high_confidence,
)
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.semi import sharpen

# -- A: class-wise small-loss selection (driver part A: N = 9, C = 3) -------------------------------
LOGITS_A = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-1.0, 2.0, 0.0], [1.5, 1.4, 0.0],
                         [0.0, 3.0, 0.5], [1.0, 0.2, 0.1], [0.3, 0.9, 0.8], [0.0, 0.0, 2.5], [2.0, 0.0, 0.1]])
LABELS_A = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])


@pytest.mark.parametrize("rho, official", [
    (0.5, [1, 0, 0, 1, 1, 0, 1, 1, 1]),   # k = ceil(9 / 3 * 0.5) = 2 per class (class 2: both)
    (0.0, [1, 0, 0, 0, 1, 0, 0, 1, 0]),   # k = max(0, 1) = 1
    (0.8, [1, 1, 0, 1, 1, 1, 1, 1, 1]),   # k = 3 (class 2: its 2)
])
def test_class_wise_small_loss_matches_official(rho, official):
    losses = F.cross_entropy(LOGITS_A, LABELS_A, reduction="none")
    assert class_wise_small_loss(losses, LABELS_A, 3, rho).int().tolist() == official


def test_class_wise_small_loss_by_hand():
    # class 0: losses 0.3, 0.1, 0.2 -> k = ceil(7 / 2 * 0.5) = 2: the 0.1 and 0.2; class 1: 4 of them, 2 smallest
    losses = torch.tensor([0.3, 0.1, 0.2, 0.9, 0.5, 0.7, 0.4])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    assert class_wise_small_loss(losses, labels, 2, 0.5).tolist() == [False, True, True, False, True, False, True]


# -- B: MHCS and LGA on a batch of 6 (driver part B: tau 0.6) ---------------------------------------
PX1 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.65, 0.3, 0.05], [0.2, 0.1, 0.7],
                    [0.9, 0.05, 0.05], [0.3, 0.4, 0.3]])
PX2 = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.62, 0.3, 0.08], [0.1, 0.1, 0.8],
                    [0.1, 0.85, 0.05], [0.2, 0.6, 0.2]])
LABELS_B = torch.tensor([0, 2, 1, 2, 0, 1])
CSS_B = torch.tensor([False, False, False, False, False, True])


def test_mhcs_and_lga_match_official():
    chosen = CSS_B | matched_high_confidence(PX1, LABELS_B, 0.6)
    assert chosen.int().tolist() == [1, 0, 0, 1, 1, 1]                     # official w_x after MHCS
    # 4 of 6 < 0.9: room floor(5.4) - 4 = 1; candidates 1 (mean 0.75) and 2 (0.635): the first joins
    assert label_guess_by_agreement(chosen, PX1, PX2, 0.6, 0.9).int().tolist() == [1, 1, 0, 1, 1, 1]
    # 4 of 6 >= 0.5: nothing added
    assert label_guess_by_agreement(chosen, PX1, PX2, 0.6, 0.5).int().tolist() == [1, 0, 0, 1, 1, 1]


# -- C: DML, debiased pseudo-labels, bias update, one network's loss (driver part C) ----------------
PI = torch.tensor([0.5, 0.3, 0.2])
PI_U = torch.tensor([0.2, 0.2, 0.6])
ZW = torch.tensor([[1.0, -0.5, 0.3], [0.2, 1.5, -1.0], [0.0, 0.4, 0.9], [-0.3, 0.1, 0.8]])
ZS = torch.tensor([[0.5, 0.0, 0.1], [0.4, 1.0, -0.5], [0.3, 0.2, 0.6], [0.0, -0.2, 1.1]])
QW = torch.tensor([[0.8, -0.2, 0.0], [0.1, 1.2, -0.6], [-0.4, 0.5, 0.7], [0.2, 0.3, 0.4]])
QS = torch.tensor([[0.6, 0.1, -0.1], [0.0, 0.9, -0.2], [0.1, 0.1, 0.5], [0.3, -0.1, 0.9]])
LAB_C = torch.tensor([0, 1, 1, 2])
MHCS_C = torch.tensor([True, True, False, False])
CHOSEN_C = torch.tensor([True, True, True, False])   # sample 2 added by LGA


def test_dml_and_debiased_probs_by_hand_and_official():
    z, pi = ZW.double().numpy(), PI.double().numpy()
    want_out = z + 0.8 * np.log(pi)
    e = np.exp(z - 0.8 * np.log(pi))
    want_pl = e / e.sum(1, keepdims=True)
    assert dml_logits(ZW.double(), PI.double(), 0.8).numpy() == pytest.approx(want_out, rel=1e-12)
    assert debiased_probs(ZW.double(), PI.double(), 0.8).numpy() == pytest.approx(want_pl, rel=1e-12)
    # official debias_output / debias_pl, row 0
    assert dml_logits(ZW, PI, 0.8)[0].tolist() == pytest.approx([0.4454822540, -1.4631782770, -0.9875503182], abs=1e-6)
    assert debiased_probs(ZW, PI, 0.8)[0].tolist() == pytest.approx([0.4220565557, 0.1417124420, 0.4362310469],
                                                                    abs=1e-6)


def test_uniform_bias_is_plain_ce_and_softmax():
    # identities: with pi uniform, z + a log(1/C) shifts every logit alike (CE unchanged) and the
    # debiased pseudo-label is the plain softmax
    u = torch.full((3,), 1 / 3, dtype=torch.float64)
    z = ZW.double()
    assert F.cross_entropy(dml_logits(z, u, 0.8), LAB_C).item() == pytest.approx(F.cross_entropy(z, LAB_C).item(),
                                                                                 rel=1e-12)
    assert torch.allclose(debiased_probs(z, u, 0.8), F.softmax(z, 1), rtol=1e-12)


def test_bias_update_matches_official():
    px = F.softmax(ZW, 1)
    got = bias_update(PI, px, CHOSEN_C, 0.9)
    assert got.tolist() == pytest.approx([0.4828213453, 0.3089752197, 0.2082034200], abs=1e-6)
    got_u = bias_update(PI_U, px, ~CHOSEN_C, 0.9)
    assert got_u.tolist() == pytest.approx([0.1981950700, 0.2071438581, 0.5946610570], abs=1e-6)
    # by hand: m pi + (1 - m) mean of the chosen rows; no rows: unchanged
    want = 0.9 * PI.double() + 0.1 * F.softmax(ZW.double(), 1)[:3].mean(0)
    assert bias_update(PI.double(), F.softmax(ZW.double(), 1), CHOSEN_C, 0.9).tolist() == pytest.approx(
        want.tolist(), rel=1e-12)
    assert torch.equal(bias_update(PI, px, torch.zeros(4, dtype=torch.bool), 0.9), PI)


def _hand_head_losses(w, lam_u):
    """The same terms in numpy, written from the module docstring's equations."""
    z = {k: v.double().numpy() for k, v in dict(zw=ZW, zs=ZS, qw=QW, qs=QS).items()}
    pi, pi_u = np.log(PI.double().numpy()), np.log(PI_U.double().numpy())

    def logsm(a):
        return a - np.log(np.exp(a).sum(1, keepdims=True))
    guess = (z["zw"] - 0.8 * pi).argmax(1)
    t = np.eye(3)[np.where(MHCS_C.numpy(), LAB_C.numpy(), guess)]
    c = CHOSEN_C.numpy()

    def ce(a, bias, targets, rows):
        return float((-(targets * logsm(a + 0.8 * bias)).sum(1))[rows].mean())
    loss = sum(ce(z[a], pi, t, c) + w * ce(z[b], pi, t, c) for a, b in (("zw", "zs"), ("qw", "qs")))
    e = np.exp(z["zw"] - 0.8 * pi_u)
    q = (e / e.sum(1, keepdims=True)) ** 2
    q /= q.sum(1, keepdims=True)
    loss += lam_u * (ce(z["qw"], pi_u, q, ~c) + w * ce(z["qs"], pi_u, q, ~c))
    return loss, t


def test_head_losses_by_hand_and_official():
    y = F.one_hot(LAB_C, 3).float()
    loss, targets = head_losses(ZW, ZS, QW, QS, y, MHCS_C, CHOSEN_C, PI, PI_U, 0.4, 0.02, 0.8, 0.8, 0.5)
    # official: loss_net1 + loss_net1_ph without the mixing terms, w = 0.4, beta = 0.02, T = 0.5
    assert loss.item() == pytest.approx(1.8748553991, abs=1e-6)
    assert targets.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]  # official pseudo_label_l
    want, t = _hand_head_losses(0.4, 0.02)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert targets.numpy() == pytest.approx(t)
    # the pseudo head's unlabeled targets are sharpened debiased predictions (semi.sharpen)
    assert sharpen(debiased_probs(ZW, PI_U, 0.8), 0.5).sum(1).tolist() == pytest.approx([1.0] * 4)


def test_head_losses_gradients_reach_only_the_heads_terms():
    # the unlabeled term trains the pseudo head only: with lam_u the primary head's gradient is unchanged
    y = F.one_hot(LAB_C, 3).float()
    grads = []
    for lam_u in (0.0, 0.5):
        zw, qw = ZW.clone().requires_grad_(True), QW.clone().requires_grad_(True)
        loss, _ = head_losses(zw, ZS, qw, QS, y, MHCS_C, CHOSEN_C, PI, PI_U, 0.4, lam_u, 0.8, 0.8, 0.5)
        grads.append(torch.autograd.grad(loss, (zw, qw)))
    assert torch.equal(grads[0][0], grads[1][0])
    assert not torch.equal(grads[0][1][3], grads[1][1][3])


# -- D: FMix's binarisation (driver part D: a fixed 4 x 4 image, lam 0.3) -----------------------------
IMG = torch.tensor([[0.1, 0.9, 0.4, 0.3], [0.8, 0.2, 0.7, 0.05], [0.6, 0.35, 0.15, 0.5], [0.25, 0.45, 0.55, 0.65]])


def test_fmix_binarise_matches_official():
    # coin > 0.5: ceil(0.3 * 16) = 5 largest pixels; else floor: 4
    assert fmix_binarise(IMG, 0.3, 0.844).int().tolist() == [[0, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert fmix_binarise(IMG, 0.3, 0.238).int().tolist() == [[0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]


def test_dual_head_adds_a_pseudo_head_on_the_same_features():
    torch.manual_seed(0)
    from tune_lnl.models import build_model
    net = DualHead(build_model("mlp", 10, (1, 28, 28)), 10)
    x = torch.rand(5, 1, 28, 28)
    z, q = net(x, pseudo=True)
    f = net.body(x)
    assert f.shape == (5, 256)
    assert torch.equal(z, net(x)) and torch.allclose(z, net.head(f)) and torch.allclose(q, net.pseudo_head(f))
    assert not torch.allclose(z, q)


def test_check_config():
    assert ProMix.check_config(ProMix.Hyper()) == []
    assert ProMix.check_config(ProMix.Hyper(warmup=600, epochs=600))
    assert ProMix.check_config(ProMix.Hyper(start_expand=700, epochs=600))


# -- runs ---------------------------------------------------------------------------------------------
def _cfg(data_root, **kw):
    base = dict(noise_rate=0.4, train_subset=512, epochs=4, warmup=2, rampup=2, start_expand=1, batch_size=128,
                lr=1e-3, optimizer="adam", weight_decay=0.0, augment=False, lr_schedule="constant")
    return tiny_cfg("promix", data_root, **{**base, **kw})


@pytest.fixture(scope="module")
def straight(data_root, tmp_path_factory):
    """4 epochs (warm-up 2, then selection + SSL; LGA in the last) straight == 2 + save + load + 2:
    the checkpoint sits on the warm-up -> main boundary."""
    data = load_noisy_data(_cfg(data_root))
    path = tmp_path_factory.mktemp("promix") / "p.pt"
    return assert_exact_resume(lambda: ProMix(_cfg(data_root), data), path)


def test_every_phase_runs(straight):
    h = straight.history
    assert [m["phase"] for m in h] == [0, 0, 1, 1]
    assert [m["w"] for m in h[2:]] == [1.0, 1.0]
    assert h[2]["lambda_u"] == pytest.approx(0.1 * 2 / 4)   # ramp over 2 * rampup, then off (stop_unlabeled)
    assert h[3]["lambda_u"] == pytest.approx(0.1 * 3 / 4)
    k = math.ceil(straight.data.n_train / 10 * 0.5)   # CSS: k per class (rho 0.5), fewer where a class is small
    assert 0.8 * 10 * k <= h[2]["n_labeled"] <= 10 * k
    assert all(math.isfinite(m["train_loss"]) for m in h)
    assert not torch.equal(straight.pi[0], torch.full((10,), 0.1))  # the bias estimates moved


def test_it_learns(straight):
    assert straight.history[-1]["test_acc"] > 0.5
