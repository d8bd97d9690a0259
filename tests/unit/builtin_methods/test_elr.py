"""ELR: the target update and the loss against a hand computation (plain Python math from the paper's
formulas), against the official code's numbers, Lemma 4.2's gradient and its direction (p moves towards
t), exact resume (the target table included), learning."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.elr import ELR, elr_loss, elr_target_update
from tune_lnl.data import load_noisy_data

BETA, LAM = 0.7, 3.0
EPS = 1e-4

# The official code's driver input (/work/scratch/elr/driver.py): 6 samples, 3 classes, targets start at 0,
# two successive calls: (batch indices, logits, labels)
CALLS = [
    ([4, 1, 3], [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-1.5, 3.0, 0.0]], [0, 2, 1]),
    ([1, 0, 4], [[1.0, 0.0, -1.0], [0.0, 12.0, 0.0], [0.5, 0.5, 2.0]], [2, 1, 0]),
]
# github shengliu66/ELR @ 934af53434a336b6db80d05d7649d23216e8ca6d, ELR/model/loss.py, elr_loss(num_examp=6,
# num_classes=3, beta=0.7), lambda 3, float32 on CPU: the loss, its gradient w.r.t. the logits and the target
# table after each call, as /work/scratch/elr/driver.py printed them (output.txt there)
OFFICIAL_LOSS = [-0.1996130347251892, 0.5860134363174438]
OFFICIAL_GRAD = [
    [[-0.11132769286632538, 0.021931499242782593, 0.08939618617296219],
     [0.10370693355798721, 0.1111101433634758, -0.2148171067237854],
     [0.007264516316354275, -0.0391213595867157, 0.03185681998729706]],
    [[0.18466392159461975, 0.10539261996746063, -0.2900565266609192],
     [2.048045416813693e-06, -4.132588856009534e-06, 2.048045416813693e-06],
     [-0.28217583894729614, 0.08176720887422562, 0.20040857791900635]],
]
OFFICIAL_TARGET = [
    [[0.0, 0.0, 0.0], [0.09018288552761078, 0.0996675118803978, 0.11014962941408157], [0.0, 0.0, 0.0],
     [0.00314140017144382, 0.28277984261512756, 0.014078778214752674],
     [0.23567911982536316, 0.011733772233128548, 0.0525871179997921], [0.0, 0.0, 0.0]],
    [[2.999700154759921e-05, 0.29993999004364014, 2.999700154759921e-05],
     [0.26270031929016113, 0.1431857943534851, 0.10411391407251358], [0.0, 0.0, 0.0],
     [0.00314140017144382, 0.28277984261512756, 0.014078778214752674],
     [0.2112596035003662, 0.05449787154793739, 0.24424251914024353], [0.0, 0.0, 0.0]],
]


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


def clamp(x):
    return min(max(x, EPS), 1 - EPS)


def hand_calls():
    """The paper's update and loss in plain Python: t <- beta t + (1 - beta) p~ (p~ clamped, renormalised),
    then mean CE + lambda mean log(1 - <p^, t>) with the new t (p^ clamped)."""
    table = [[0.0] * 3 for _ in range(6)]
    losses, tables = [], []
    for idx, logits, labels in CALLS:
        ce, reg = [], []
        for i, z, y in zip(idx, logits, labels):
            p = softmax(z)
            ph = [clamp(x) for x in p]
            table[i] = [BETA * t + (1 - BETA) * x / sum(ph) for t, x in zip(table[i], ph)]
            ce.append(-math.log(p[y]))
            reg.append(math.log(1 - sum(t * x for t, x in zip(table[i], ph))))
        losses.append(sum(ce) / len(ce) + LAM * sum(reg) / len(reg))
        tables.append([list(r) for r in table])
    return losses, tables


def our_calls(dtype=torch.float32):
    """Our functions, run like ELR.train_epoch does on the same input."""
    table = torch.zeros(6, 3, dtype=dtype)
    out = []
    for idx, logits, labels in CALLS:
        idx = torch.tensor(idx)
        z = torch.tensor(logits, dtype=dtype, requires_grad=True)
        rows = elr_target_update(table.index_select(0, idx), z, BETA)
        table.index_copy_(0, idx, rows)
        loss = elr_loss(z, torch.tensor(labels), rows, LAM).mean()
        loss.backward()
        out.append((loss.item(), z.grad.tolist(), table.tolist()))
    return out


def test_loss_and_targets_by_hand():
    losses, tables = hand_calls()
    ours = our_calls()
    for k in range(2):
        assert ours[k][0] == pytest.approx(losses[k], rel=1e-6, abs=1e-6)
        for got, want in zip(ours[k][2], tables[k]):
            assert got == pytest.approx(want, abs=1e-7)


def test_matches_the_official_code():
    ours = our_calls()
    for k in range(2):
        loss, grad, table = ours[k]
        assert loss == pytest.approx(OFFICIAL_LOSS[k], abs=1e-6)
        for got, want in zip(grad, OFFICIAL_GRAD[k]):
            assert got == pytest.approx(want, abs=1e-6)
        for got, want in zip(table, OFFICIAL_TARGET[k]):
            assert got == pytest.approx(want, abs=1e-7)
    # the hand computation (float64 Python) agrees with the official numbers too
    losses, _ = hand_calls()
    assert losses == pytest.approx(OFFICIAL_LOSS, abs=1e-6)


def test_regulariser_gradient_is_lemma_4_2_and_pulls_p_towards_t():
    """Two classes, p = (0.3, 0.7), t = (0.9, 0.1). Lemma 4.2: d/dz_c log(1 - <p, t>) = p_c (<p, t> - t_c) /
    (1 - <p, t>): <p, t> = 0.27 + 0.07 = 0.34, so the gradient is (0.3 (0.34 - 0.9), 0.7 (0.34 - 0.1)) / 0.66
    = (-0.254545..., +0.254545...): a descent step raises z_1 and lowers z_2, moving p_1 up towards t_1."""
    z = torch.tensor([[0.0, math.log(0.7 / 0.3)]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    reg = (elr_loss(z, torch.tensor([0]), t, 1.0) - elr_loss(z, torch.tensor([0]), t, 0.0)).sum()  # lambda term
    (g,) = torch.autograd.grad(reg, z)
    want = [0.3 * (0.34 - 0.9) / 0.66, 0.7 * (0.34 - 0.1) / 0.66]
    assert g[0].tolist() == pytest.approx(want, rel=1e-9)
    assert g[0, 0] < 0 < g[0, 1]
    p_after = torch.softmax(z.detach() - 0.1 * g, dim=1)[0, 0].item()
    assert 0.3 < p_after < 0.9  # one small step: p_1 moved towards t_1
    # and on the same sample CE alone (label 1, the "wrong" one) pulls the other way: the regulariser
    # counteracts memorisation when t is confident in class 0
    (g_ce,) = torch.autograd.grad(elr_loss(z, torch.tensor([1]), t, 0.0).sum(), z)
    assert g_ce[0, 0] > 0 > g_ce[0, 1]


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="symmetric", noise_rate=0.4, optimizer="adam", lr=1e-3, lr_schedule="constant"), **kw}
    return tiny_cfg("elr", data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


def test_defaults_are_the_papers_cifar10_values():
    h = ELR.Hyper()
    assert (h.beta, h.lambda_) == (0.7, 3.0)
    # the paper's CIFAR-10 optimisation: SGD momentum 0.9, lr 0.02, weight decay 1e-3, 120 epochs
    assert (h.optimizer, h.momentum, h.lr, h.weight_decay, h.epochs) == ("sgd", 0.9, 0.02, 1e-3, 120)


@pytest.fixture(scope="module")
def straight(data, data_root, tmp_path_factory):
    """4 epochs straight == 2 + save + load + 2 (the target table and Adam's state included)."""
    return assert_exact_resume(lambda: ELR(_cfg(data_root), data), tmp_path_factory.mktemp("elr") / "e.pt")


def test_targets_are_filled_and_learns(straight):
    t = straight.target
    assert t.shape == (straight.data.n_train, 10)
    # every row updated once per epoch, from 0, by normalised p~: its sum is 1 - beta^4 after 4 epochs
    assert t.sum(1).tolist() == pytest.approx([1 - BETA ** 4] * t.shape[0], abs=1e-5)
    assert straight.history[-1]["test_acc"] > 0.5
