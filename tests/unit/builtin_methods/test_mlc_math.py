"""MLC's equations (trainables/mlc.py) against hand computations in plain Python math, the
paper's identities (Eq. 2-8) and the published code's documented behaviour
(shared/reference/mlc-official-code-notes.md); plus tiny end-to-end runs on real MNIST."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from trainables.mlc import (
    MLC,
    add_co_regularization_grad,
    co_regularization,
    forget_rate_at,
    label_grad,
    label_loss,
    lr_at,
    param_distance,
    per_sample_loss,
    small_loss_selection,
)

torch.set_num_threads(1)


ALPHA, BETA = 0.4, 0.1

# B = 3 samples, C = 4 classes
LOGITS = [[1.0, -0.5, 2.0, 0.3],
          [0.2, 0.1, -1.0, 3.0],
          [-2.0, 0.5, 0.0, 1.5]]
YTILDE = [[10.0, 0.0, 0.0, 0.0],
          [0.5, 3.0, -1.0, 2.0],
          [-0.3, 0.7, 4.0, 1.1]]
NOISY = [0, 3, 1]
LOGITS_B = [[0.3, 0.3, -0.7, 1.2],
            [2.0, -1.0, 0.5, 0.0],
            [0.1, 0.9, -0.4, -1.5]]


# -- hand-written reference math (lists of floats, no torch) ---------------------------------------

def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    s = sum(e)
    return [x / s for x in e]


def ce(v, y):  # cross-entropy of "logits" v against class y
    return -math.log(softmax(v)[y])


def kl_flipped(p, yd):  # sum_j p_j (log p_j - log yd_j)
    return sum(pj * (math.log(pj) - math.log(dj)) for pj, dj in zip(p, yd))


def entropy(p):
    return -sum(pj * math.log(pj) for pj in p)


def hand_loss(logits, yt, y, stage, variant):
    C = len(logits)
    if variant == "paper":
        p = softmax(logits)
        if stage == 1:
            return ce(logits, y)
        yd = softmax(yt)
        lc = kl_flipped(p, yd)
        if stage == 3:
            return lc
        lo = -math.log(yd[y])
        le = entropy(p)
        return lc + ALPHA * lo + BETA * le
    # official: q = softmax(logits) is fed where logits are expected (double softmax)
    q = softmax(logits)
    if stage == 1:
        return ce(q, y)
    s = softmax(q)
    yd = softmax(yt)
    lc = kl_flipped(s, yd) / C
    if stage == 3:
        return lc
    lo = ce(softmax(yt), y)  # CE with softmax(y~) treated as logits
    le = entropy(s) / C
    return lc + ALPHA * lo + BETA * le


def cfg_for(variant):
    return MLC.Hyper(variant=variant, alpha=ALPHA, beta=BETA)


def T(x):
    return torch.tensor(x, dtype=torch.float64)


# -- per-sample losses ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_per_sample_loss_matches_hand_computation(variant, stage):
    got = per_sample_loss(T(LOGITS), T(YTILDE), torch.tensor(NOISY), stage, cfg_for(variant))
    assert got.shape == (3,)
    want = [hand_loss(LOGITS[i], YTILDE[i], NOISY[i], stage, variant) for i in range(3)]
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10, atol=1e-12)


def test_official_stage1_ce_range_double_softmax():
    # double softmax with 10 classes: CE lies in [log(e + 9) - 1, log(e + 9)] = [1.46, 2.46]
    # (confident-right vs confident-wrong); log(10) = 2.30 is the value at a flat prediction
    big = torch.zeros(2, 10, dtype=torch.float64)
    big[0, 3] = 60.0  # confident and right
    big[1, 5] = 60.0  # confident and wrong
    got = per_sample_loss(big, torch.zeros(2, 10, dtype=torch.float64), torch.tensor([3, 3]), 1,
                          cfg_for("official"))
    lo_bound = -math.log(math.e / (math.e + 9))
    hi_bound = -math.log(1 / (math.e + 9))
    assert float(got[0]) == pytest.approx(lo_bound, rel=1e-9)
    assert float(got[1]) == pytest.approx(hi_bound, rel=1e-9)
    assert 1.45 < lo_bound < 1.47 and 2.45 < hi_bound < 2.47
    flat = per_sample_loss(torch.zeros(1, 10, dtype=torch.float64), torch.zeros(1, 10, dtype=torch.float64),
                           torch.tensor([0]), 1, cfg_for("official"))
    assert float(flat) == pytest.approx(math.log(10), rel=1e-12)


def test_paper_stage2_zero_when_prediction_equals_label_distribution():
    # lc(p, yd) = 0 when p == yd; the rest is alpha*CE(y~) + beta*H(p)
    yt = T([[0.3, -1.0, 2.0, 0.0]])
    loss = per_sample_loss(yt.clone(), yt, torch.tensor([2]), 2, cfg_for("paper"))
    p = softmax([0.3, -1.0, 2.0, 0.0])
    assert float(loss) == pytest.approx(ALPHA * -math.log(p[2]) + BETA * entropy(p), rel=1e-10)
    assert float(per_sample_loss(yt.clone(), yt, torch.tensor([2]), 3, cfg_for("paper"))) == pytest.approx(0, abs=1e-12)


# -- co-regularization ------------------------------------------------------------------------------

W_A = [[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]]
B_A = [0.1, -0.4]
W_B = [[0.2, -0.5, 1.0], [1.0, 0.3, 0.4]]
B_B = [-0.3, 0.6]


def two_nets():
    a, b = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()
    with torch.no_grad():
        a.weight.copy_(T(W_A)), a.bias.copy_(T(B_A))
        b.weight.copy_(T(W_B)), b.bias.copy_(T(B_B))
    return a, b


def flat(rows):
    return [x for r in rows for x in (r if isinstance(r, list) else [r])]


def test_param_distance_paper_is_euclidean_norm():
    a, b = two_nets()
    diffs = [x - y for x, y in zip(flat(W_A) + B_A, flat(W_B) + B_B)]
    want = math.sqrt(sum(d * d for d in diffs))
    assert float(param_distance(a, b, "paper").detach()) == pytest.approx(want, rel=1e-12)


def test_param_distance_official_is_sum_of_per_tensor_means():
    a, b = two_nets()
    dw = [x - y for x, y in zip(flat(W_A), flat(W_B))]
    db = [x - y for x, y in zip(B_A, B_B)]
    want = sum(d * d for d in dw) / 6 + sum(d * d for d in db) / 2
    assert float(param_distance(a, b, "official").detach()) == pytest.approx(want, rel=1e-12)
    # not the same as the mean over the whole vector
    assert want != pytest.approx(sum(d * d for d in dw + db) / 8)


@pytest.mark.parametrize("mu", [-1.0, -2.5, -0.25])
def test_co_regularization_paper_gradient_once_each(mu):
    xi = 0.01
    a, b = two_nets()
    reg = co_regularization(a, b, mu, xi, "paper")
    dA = [x - y for x, y in zip(flat(W_A) + B_A, flat(W_B) + B_B)]
    dist = math.sqrt(sum(d * d for d in dA))
    assert float(reg.detach()) == pytest.approx(xi * dist ** mu, rel=1e-12)
    reg.backward()
    # d(xi * dist^mu)/d theta_A = xi * mu * dist^(mu - 2) * (theta_A - theta_B); B gets the negative
    coef = xi * mu * dist ** (mu - 2)
    gA = [coef * d for d in dA]
    np.testing.assert_allclose(a.weight.grad.numpy().ravel(), gA[:6], rtol=1e-10)
    np.testing.assert_allclose(a.bias.grad.numpy(), gA[6:], rtol=1e-10)
    np.testing.assert_allclose(b.weight.grad.numpy().ravel(), [-g for g in gA[:6]], rtol=1e-10)
    np.testing.assert_allclose(b.bias.grad.numpy(), [-g for g in gA[6:]], rtol=1e-10)


@pytest.mark.parametrize("mu", [-1.0, -2.0])
def test_co_regularization_official_gradient_twice_for_a(mu):
    xi = 0.01
    a, b = two_nets()
    reg = co_regularization(a, b, mu, xi, "official")
    dw = [x - y for x, y in zip(flat(W_A), flat(W_B))]
    db = [x - y for x, y in zip(B_A, B_B)]
    S = sum(d * d for d in dw) / 6 + sum(d * d for d in db) / 2  # official dist
    reg.backward()
    # d(xi * S^mu)/d theta_A[t, k] = xi * mu * S^(mu - 1) * 2 * d[t, k] / n_t
    base = xi * mu * S ** (mu - 1)
    g_w = [base * 2 * d / 6 for d in dw]
    g_b = [base * 2 * d / 2 for d in db]
    np.testing.assert_allclose(a.weight.grad.numpy().ravel(), [2 * g for g in g_w], rtol=1e-10)
    np.testing.assert_allclose(a.bias.grad.numpy(), [2 * g for g in g_b], rtol=1e-10)
    np.testing.assert_allclose(b.weight.grad.numpy().ravel(), [-g for g in g_w], rtol=1e-10)
    np.testing.assert_allclose(b.bias.grad.numpy(), [-g for g in g_b], rtol=1e-10)


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("mu", [-1.0, -2.5, -0.25])
def test_closed_form_co_regularization_grad_matches_autograd(variant, mu):
    # training adds xi*ld's gradient in closed form (add_co_regularization_grad) on top of the
    # selection losses' gradients: same value and same .grad as autograd on co_regularization
    xi = 0.03
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    a1, b1 = make(), make()
    a2, b2 = make(), make()
    a2.load_state_dict(a1.state_dict()), b2.load_state_dict(b1.state_dict())
    x = torch.randn(6, 5, dtype=torch.float64)
    # a loss gradient already in .grad (as after the selection losses' backward), except one
    # parameter without any (.grad None): both paths must handle it
    for a, b in ((a1, b1), (a2, b2)):
        (a(x).square().sum() + b(x).sin().sum()).backward()
        a[2].bias.grad = None
    want = co_regularization(a1, b1, mu, xi, variant)
    want.backward()
    got = add_co_regularization_grad(a2, b2, mu, xi, variant)
    assert float(got) == pytest.approx(float(want.detach()), rel=1e-12)
    for p1, p2 in zip(list(a1.parameters()) + list(b1.parameters()), list(a2.parameters()) + list(b2.parameters())):
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-10, atol=1e-14)
    assert not got.requires_grad


# -- label update (Eq. 7) ---------------------------------------------------------------------------

def hand_label_grad_paper(yt, la, lb, y):
    B, C = len(yt), len(yt[0])
    out = []
    for i in range(B):
        yd = softmax(yt[i])
        pa, pb = softmax(la[i]), softmax(lb[i])
        oh = [1.0 if j == y[i] else 0.0 for j in range(C)]
        out.append([((yd[j] - pa[j]) + (yd[j] - pb[j]) + 2 * ALPHA * (yd[j] - oh[j])) / B for j in range(C)])
    return out


def hand_label_grad_official(yt, la, lb, y):
    # lc/C on raw logits: (yd - p)/C per network; lo = CE(softmax(y~) as logits, y):
    # with s = softmax(y~), r = softmax(s): d lo / d y~ = J_s (r - e_y), J_s = diag(s) - s s^T
    B, C = len(yt), len(yt[0])
    out = []
    for i in range(B):
        s = softmax(yt[i])
        r = softmax(s)
        pa, pb = softmax(la[i]), softmax(lb[i])
        u = [r[j] - (1.0 if j == y[i] else 0.0) for j in range(C)]
        su = sum(s[j] * u[j] for j in range(C))
        dlo = [s[j] * u[j] - s[j] * su for j in range(C)]
        out.append([((s[j] - pa[j]) / C + (s[j] - pb[j]) / C + 2 * ALPHA * dlo[j]) / B for j in range(C)])
    return out


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_label_loss_gradient_closed_form_and_descent(variant):
    cfg = cfg_for(variant)
    la = T(LOGITS).requires_grad_(True)  # the label step must not need/produce logit gradients
    lb = T(LOGITS_B)
    yt = T(YTILDE).requires_grad_(True)
    noisy = torch.tensor(NOISY)
    L = label_loss(la, lb, yt, noisy, cfg)
    (g,) = torch.autograd.grad(L, yt)
    hand = (hand_label_grad_paper if variant == "paper" else hand_label_grad_official)(YTILDE, LOGITS, LOGITS_B, NOISY)
    np.testing.assert_allclose(g.numpy(), hand, rtol=1e-9, atol=1e-14)
    # the value is L1 + L2 on y~ (batch-mean) -- hand value
    C = 4
    val = 0.0
    for logits in (LOGITS, LOGITS_B):
        for i in range(3):
            p, yd = softmax(logits[i]), softmax(YTILDE[i])
            lc = kl_flipped(p, yd) / (C if variant == "official" else 1)
            lo = -math.log(yd[NOISY[i]]) if variant == "paper" else ce(softmax(YTILDE[i]), NOISY[i])
            val += (lc + ALPHA * lo) / 3
    assert float(L.detach()) == pytest.approx(val, rel=1e-10)
    # a small step against the gradient decreases the loss
    with torch.no_grad():
        stepped = yt - 0.1 * g
        L2 = label_loss(la.detach(), lb, stepped, noisy, cfg)
    assert float(L2) < float(L.detach())
    # and the gradient does not flow into the networks' logits
    assert la.grad is None


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_closed_form_label_grad_matches_hand_and_autograd(variant):
    # the training step uses label_grad (closed form of Eq. 7's dL1/dy~ + dL2/dy~): it must equal
    # the hand computation and autograd on label_loss (float64: to rounding; float32: ~1e-6)
    cfg = cfg_for(variant)
    noisy = torch.tensor(NOISY)
    got = label_grad(T(LOGITS), T(LOGITS_B), T(YTILDE), noisy, cfg)
    hand = (hand_label_grad_paper if variant == "paper" else hand_label_grad_official)(YTILDE, LOGITS, LOGITS_B, NOISY)
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-9, atol=1e-14)
    g = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        la, lb = (3 * torch.randn(128, 10, generator=g, dtype=dtype) for _ in range(2))
        yt = 10 * torch.randn(128, 10, generator=g, dtype=dtype)
        y = torch.randint(0, 10, (128,), generator=g)
        yt_ = yt.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(label_loss(la, lb, yt_, y, cfg), yt_)
        closed = label_grad(la, lb, yt, y, cfg)
        # relative to the gradient's largest entry
        assert (closed - auto).abs().max().item() <= tol * auto.abs().max().item(), dtype


def test_label_step_moves_towards_peer_predictions():
    # paper: one Eq. 7 step from K*onehot(noisy) raises y~ exactly where both nets put mass
    B, C, K, lam = 2, 3, 10.0, 1.0
    yt = torch.zeros(B, C, dtype=torch.float64)
    yt[0, 0] = yt[1, 1] = K
    logits = T([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0]])
    yt_ = yt.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(label_loss(logits, logits, yt_, torch.tensor([0, 1]), cfg_for("paper")), yt_)
    new = yt - lam * g
    # sample 0: nets say class 1, label says 0 -> class-1 entry goes up, class-0 entry down
    assert new[0, 1] > yt[0, 1] and new[0, 0] < yt[0, 0]
    # the update changes each row by a vector summing to zero (softmax gradients)
    np.testing.assert_allclose((new - yt).sum(1).numpy(), [0.0, 0.0], atol=1e-12)


# -- schedules --------------------------------------------------------------------------------------

def test_forget_rate_schedule_by_hand():
    assert [forget_rate_at(e, 0.3, 4) for e in range(7)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.3, 0.3, 0.3])
    # the paper's MNIST setting: linear over the first 10 epochs
    got = [forget_rate_at(e, 0.45, 10) for e in range(12)]
    want = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.45, 0.45]
    assert got == pytest.approx(want, abs=1e-12)
    assert [forget_rate_at(e, 0.2, 1) for e in range(3)] == [0.2, 0.2, 0.2]
    assert [forget_rate_at(e, 0.2, 2) for e in range(3)] == pytest.approx([0.0, 0.2, 0.2])


def _lr_cfg(variant, epochs, stage2, lr=1e-3, lr2=1e-4):
    return MLC.Hyper(variant=variant, epochs=epochs, stage2=stage2, stage1=1, lr=lr, lr2=lr2)


def test_lr_schedule_paper_by_hand():
    cfg = _lr_cfg("paper", 10, 4)
    want = [1e-3] * 4 + [1e-4] * 6
    assert [lr_at(e, cfg) for e in range(10)] == pytest.approx(want, rel=1e-12)
    cfg = _lr_cfg("paper", 320, 140)
    assert lr_at(139, cfg) == pytest.approx(1e-3) and lr_at(140, cfg) == pytest.approx(1e-4)
    assert lr_at(319, cfg) == pytest.approx(1e-4)


def test_lr_schedule_official_by_hand():
    cfg = _lr_cfg("official", 10, 4)  # 6 remaining epochs: 2 at lr2, 2 at lr2/10, 2 at lr2/100
    want = [1e-3] * 4 + [1e-4] * 2 + [1e-5] * 2 + [1e-6] * 2
    assert [lr_at(e, cfg) for e in range(10)] == pytest.approx(want, rel=1e-12)
    cfg = _lr_cfg("official", 320, 140)  # the paper's MNIST run: thirds of 180 epochs
    for e, v in [(0, 1e-3), (139, 1e-3), (140, 1e-4), (199, 1e-4), (200, 1e-5), (259, 1e-5),
                 (260, 1e-6), (319, 1e-6)]:
        assert lr_at(e, cfg) == pytest.approx(v, rel=1e-12), e


# -- small-loss selection ---------------------------------------------------------------------------

def test_small_loss_selection_picks_exactly_the_k_smallest():
    losses = torch.tensor([0.9, 0.1, 0.5, 2.0, 0.05, 0.7, 1.1, 0.3, 0.8, 0.2])
    sel = small_loss_selection(losses, 0.3)  # keep int(0.7 * 10) = 7
    assert sorted(sel.tolist()) == sorted([4, 1, 9, 7, 2, 5, 8])
    sel = small_loss_selection(losses, 0.0)
    assert sorted(sel.tolist()) == list(range(10))
    sel = small_loss_selection(losses, 0.95)  # int(0.5) = 0 -> at least one
    assert sel.tolist() == [4]
    # B = 128, forget 0.45 -> int(0.55 * 128) = int(70.4) = 70
    big = torch.randperm(128, generator=torch.Generator().manual_seed(0)).float()
    sel = small_loss_selection(big, 0.45)
    assert sorted(big[sel].tolist()) == [float(i) for i in range(70)]


# -- tiny end-to-end runs on real MNIST -------------------------------------------------------------

def tiny_cfg(root, **over):
    cfg = dict(MLC.defaults)
    cfg.update(method="mlc", dataset="mnist", data_root=str(root), noise_type="symmetric",
               noise_rate=0.2, noise_seed=0, proxy="noisy_val", val_fraction=0.1, train_subset=512,
               test_subset=256, seed=0, device="cpu", epochs=3, stage1=1, stage2=2, num_gradual=2,
               batch_size=128, augment=True)
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def tiny_data(data_root):  # data_root: tests/conftest.py (real MNIST)
    from tune_lnl.data import load_noisy_data
    return load_noisy_data(tiny_cfg(data_root))


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_tiny_run_stages_and_label_table(tiny_data, data_root, variant):
    cfg = tiny_cfg(data_root, variant=variant)
    m = MLC(cfg, tiny_data)
    n, C = tiny_data.train_noisy.numel(), 10
    init = cfg["K"] * torch.nn.functional.one_hot(tiny_data.train_noisy, C).float()
    assert torch.equal(m.ytilde, init)  # Eq. 4
    stages = []
    for e in range(3):
        before = m.ytilde.clone()
        met = m.step()
        stages.append(met["stage"])
        after = m.ytilde
        if met["stage"] == 2:
            changed = (after != before).any(1)
            assert int(changed.sum()) == n  # every training sample is updated in stage 2
            assert torch.isfinite(after).all()
        else:
            assert torch.equal(after, before)
        if met["stage"] == 1:
            assert torch.equal(after, init)
        assert met["lr"] == pytest.approx([1e-3, 1e-3, 1e-4][e])
        assert met["forget_rate"] == pytest.approx([0.0, 0.2, 0.2][e])
        assert math.isfinite(met["train_loss"]) and math.isfinite(met["dist"])
    assert stages == [1, 2, 3]
    assert m.done and m.epoch == 3
    # label_acc is analytics on clean labels: the argmax of y~ against the clean labels
    acc = float((m.ytilde.argmax(1) == tiny_data.train_clean).float().mean())
    assert m.history[-1]["label_acc"] == pytest.approx(acc, abs=1e-6)


def test_training_never_reads_clean_labels(tiny_data, data_root):
    g = torch.Generator().manual_seed(99)
    garbage = dataclasses.replace(
        tiny_data,
        train_clean=torch.randint(0, 10, tiny_data.train_clean.shape, generator=g),
        val_clean=torch.randint(0, 10, tiny_data.val_clean.shape, generator=g))
    assert not torch.equal(garbage.train_clean, tiny_data.train_clean)
    cfg = tiny_cfg(data_root, epochs=3)
    m1, m2 = MLC(cfg, tiny_data), MLC(cfg, garbage)
    for _ in range(3):
        m1.step(), m2.step()
    clean_based = {"label_acc", "label_acc_clean", "label_acc_noisy", "select_precision",  # analytics
                   "epoch_time", "train_time"}
    for h1, h2 in zip(m1.history, m2.history):
        assert set(h1) == set(h2)
        for k in h1:
            if k not in clean_based and not k.startswith("clean_intact"):
                assert h1[k] == h2[k], k
    for p1, p2 in zip(list(m1.net_a.parameters()) + list(m1.net_b.parameters()),
                      list(m2.net_a.parameters()) + list(m2.net_b.parameters())):
        assert torch.equal(p1, p2)
    assert torch.equal(m1.ytilde, m2.ytilde)
    # the garbage clean labels do reach the analytics (so the comparison above can fail)
    assert [h["label_acc"] for h in m1.history] != [h["label_acc"] for h in m2.history]


# -- numerical health: degenerate warps stay finite, divergence is detected -------------------------

def test_degenerate_perspective_warp_stays_finite():
    from tune_lnl.data.augment import _homography, _warp
    # a corner draw RandomPerspective(0.5) can produce (integer inward offsets <= 7 on 28x28):
    # its homography's last row is (-1/27, 1/27, 1), zero at the pixel centre (27.5, 0.5)
    start = torch.tensor([[0, 0], [27, 0], [27, 27], [0, 27]], dtype=torch.float64)
    end = torch.tensor([[[7.0, 1.0], [20.0, 7.0], [26.0, 20.0], [6.0, 21.0]]], dtype=torch.float64)
    out = _warp(torch.ones(1, 1, 28, 28), _homography(start, end))
    assert torch.isfinite(out).all()


def test_nan_training_batch_does_not_pass_silently(tiny_data, data_root):
    m = MLC(tiny_cfg(data_root, epochs=1), tiny_data)

    def poisoned(x, gen):
        x = x.clone()
        x[0, 0, 0, 0] = float("nan")
        return x

    m.augment = poisoned
    try:
        met = m.step()
    except FloatingPointError:
        return
    assert math.isfinite(met["train_loss"])
    assert all(torch.isfinite(p).all() for p in m.net_a.parameters())
