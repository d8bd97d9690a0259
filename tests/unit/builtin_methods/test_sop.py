"""SOP: the loss and one u/v step against a hand computation (plain Python math, gradients by finite
differences of the hand loss), against the official code's numbers, the variants' gradient routing,
exact resume (the u, v tables included), learning."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.sop import SOP, sop_loss
from tune_lnl.config import ConfigError, load_space
from tune_lnl.data import load_noisy_data

EPS = 1e-4
LR_U, LR_V = 1.0, 10.0
# The official code's driver input (/work/scratch/sop/driver.py): tables of 5 samples, 3 classes, batch [3, 0, 4]
U = [[0.3], [0.9], [0.05], [1.2], [0.5]]
V = [[0.1, 0.7, 0.2], [0.0, 0.3, 0.4], [0.6, 0.1, 0.1], [0.2, 0.9, 0.5], [0.8, 0.05, 0.3]]
IDX = [3, 0, 4]
LOGITS = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-1.5, 3.0, 0.0]]
LABELS = [0, 2, 1]
# github shengliu66/SOP @ 4d991cedf1fafec98f858a213ccc31e52318a77f, model/loss.py, overparametrization_loss
# (num_classes 3, ratio_consistency 0) and one step of train.py's u/v optimizer (SGD, lr_u 1, lr_v 10, momentum 0,
# weight decay 0), float32 on CPU, as /work/scratch/sop/driver.py printed them (output.txt there); by ratio_balance
OFFICIAL = {
    0.0: dict(
        loss=0.9798568487167358,
        grad=[[-3.5213438422943e-06, 6.423829290724825e-07, 2.878960685848142e-06],
              [0.12498946487903595, -0.009940378367900848, -0.1150490939617157],
              [4.630032037766796e-07, -2.5380388706253143e-06, 2.0750362637045328e-06]],
        u=[0.43405404686927795, 0.8999999761581421, 0.05000000074505806, 1.2000000476837158, 0.33338022232055664]),
    0.1: dict(
        loss=1.0951688289642334,
        grad=[[-3.7748397971881786e-06, 6.886272103656665e-07, 3.0862131552567007e-06],
              [0.13198211789131165, -0.010496865957975388, -0.12148524820804596],
              [5.091858952255279e-07, -2.7911964934901334e-06, 2.2820127014711034e-06]],
        u=[0.44356662034988403, 0.8999999761581421, 0.05000000074505806, 1.2000000476837158, 0.3333849310874939]),
}
OFFICIAL_V = [[0.08666666597127914, -3.873332977294922, 0.20000000298023224],  # the same for both
              [0.0, 0.30000001192092896, 0.4000000059604645],
              [0.6000000238418579, 0.10000000149011612, 0.10000000149011612],
              [0.20000000298023224, -8.819998741149902, -1.1666667461395264],
              [-6.02666711807251, 0.05000000074505806, -0.06000000983476639]]


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


def clip(x, lo, hi):
    return min(max(x, lo), hi)


def hand_loss(z, u_q, v_q, u_m, v_m, balance):
    """The batch loss in plain Python from the module's equations; u_q, v_q: the u, v rows inside q (the
    cross-entropy and the balance term), u_m, v_m: those inside the squared loss (so that each variant's
    gradient routing is a choice of which argument to differentiate)."""
    b, c = len(z), len(z[0])
    ce = mse = 0.0
    qs = []
    for i in range(b):
        y = [float(k == LABELS[i]) for k in range(c)]
        s_q = [clip(u_q[i][0] ** 2 * y[k], 0, 1) - clip(v_q[i][k] ** 2 * (1 - y[k]), 0, 1) for k in range(c)]
        s_m = [clip(u_m[i][0] ** 2 * y[k], 0, 1) - clip(v_m[i][k] ** 2 * (1 - y[k]), 0, 1) for k in range(c)]
        q = [max(pk + sk, EPS) for pk, sk in zip(softmax(z[i]), s_q)]
        q = [clip(x / max(sum(q), EPS), EPS, 1.0) for x in q]
        qs.append(q)
        ce -= math.log(q[LABELS[i]])
        top = max(range(c), key=lambda k: z[i][k])
        mse += sum((float(k == top) + s_m[k] - y[k]) ** 2 for k in range(c))
    loss = (ce + mse) / b
    if balance:
        avg = [clip(sum(q[k] for q in qs) / b, EPS, 1.0) for k in range(c)]
        loss += balance * -sum(math.log(a) for a in avg) / c
    return loss


def fd(f, rows, h=1e-6):
    """Central finite differences of f(rows) w.r.t. every entry of the nested list rows."""
    out = []
    for i, r in enumerate(rows):
        g = []
        for k in range(len(r)):
            up, down = [list(x) for x in rows], [list(x) for x in rows]
            up[i][k] += h
            down[i][k] -= h
            g.append((f(up) - f(down)) / (2 * h))
        out.append(g)
    return out


def hand_step(balance, variant):
    """Hand loss, and the u, v rows after one SGD step (gradients of the routed arguments)."""
    u, v = [U[i] for i in IDX], [V[i] for i in IDX]
    if variant == "official":  # u in q and in the squared loss, v only in the squared loss
        gu = fd(lambda x: hand_loss(LOGITS, x, v, x, v, balance), u)
        gv = fd(lambda x: hand_loss(LOGITS, u, v, u, x, balance), v)
    else:                      # paper: v only in q, u only in the squared loss
        gu = fd(lambda x: hand_loss(LOGITS, u, v, x, v, balance), u)
        gv = fd(lambda x: hand_loss(LOGITS, u, x, u, v, balance), v)
    new_u = [[a - LR_U * g for a, g in zip(r, gr)] for r, gr in zip(u, gu)]
    new_v = [[a - LR_V * g for a, g in zip(r, gr)] for r, gr in zip(v, gv)]
    return hand_loss(LOGITS, u, v, u, v, balance), new_u, new_v


def our_step(balance, variant="official", dtype=torch.float32):
    """sop_loss and the row update exactly as SOP.train_epoch runs them."""
    idx = torch.tensor(IDX)
    tu, tv = torch.tensor(U, dtype=dtype), torch.tensor(V, dtype=dtype)
    z = torch.tensor(LOGITS, dtype=dtype, requires_grad=True)
    u = tu.index_select(0, idx).requires_grad_(True)
    v = tv.index_select(0, idx).requires_grad_(True)
    loss = sop_loss(z, torch.tensor(LABELS), u, v, balance, variant)
    loss.backward()
    with torch.no_grad():
        tu.index_copy_(0, idx, u.sub_(u.grad, alpha=LR_U))
        tv.index_copy_(0, idx, v.sub_(v.grad, alpha=LR_V))
    return loss.item(), z.grad.tolist(), tu, tv


@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize("balance", [0.0, 0.1])
def test_loss_and_uv_step_by_hand(balance, variant):
    loss, new_u, new_v = hand_step(balance, variant)
    got_loss, _, tu, tv = our_step(balance, variant, torch.float64)
    assert got_loss == pytest.approx(loss, rel=1e-12)
    for j, i in enumerate(IDX):
        assert tu[i].tolist() == pytest.approx(new_u[j], abs=1e-6)
        assert tv[i].tolist() == pytest.approx(new_v[j], abs=1e-5)  # lr_v 10 times a finite difference
    for i in set(range(5)) - set(IDX):  # rows outside the batch never move
        assert tu[i].tolist() == U[i] and tv[i].tolist() == V[i]


@pytest.mark.parametrize("balance", [0.0, 0.1])
def test_matches_the_official_code(balance):
    loss, grad, tu, tv = our_step(balance)
    want = OFFICIAL[balance]
    assert loss == pytest.approx(want["loss"], abs=1e-6)
    for got, exp in zip(grad, want["grad"]):
        assert got == pytest.approx(exp, abs=1e-7)
    assert tu.flatten().tolist() == pytest.approx(want["u"], abs=1e-6)
    for got, exp in zip(tv.tolist(), OFFICIAL_V):
        assert got == pytest.approx(exp, abs=1e-5)


def test_variants_route_the_gradients():
    """official: v learns only from the squared loss (the balance term leaves it alone, as the official
    numbers show), u from both; paper: u only from the squared loss (the balance term leaves it alone)."""
    _, _, u0, v0 = our_step(0.0, "official")
    _, _, u1, v1 = our_step(0.1, "official")
    assert torch.equal(v0, v1) and not torch.equal(u0, u1)
    _, _, u0, v0 = our_step(0.0, "paper")
    _, _, u1, v1 = our_step(0.1, "paper")
    assert torch.equal(u0, u1) and not torch.equal(v0, v1)


def test_noise_term_separates_a_mislabelled_sample():
    """Identity of the squared loss (Sec. 3): with the network sure of class 1 and the label 0, its gradient
    grows u (the label's weight, u^2 -> 1) and v_1 (the predicted class, v_1^2 -> 1); with the network
    agreeing with the label it shrinks both (a clean sample's s_i -> 0)."""
    z = torch.tensor([[0.0, 5.0, 0.0]])
    for label, sign in ((0, -1.0), (1, 1.0)):
        grads = {}
        for variant in ("paper", "official"):  # u (paper), v (official): trained by the squared loss alone
            u = torch.full((1, 1), 0.5, requires_grad=True)
            v = torch.full((1, 3), 0.5, requires_grad=True)
            sop_loss(z, torch.tensor([label]), u, v, 0.0, variant).backward()
            grads[variant] = (u.grad, v.grad)
        # by hand: d/du ||hard + s - y||^2 = 2 (hard_y + u^2 - 1) 2u = 4u (u^2 - 1 + [top == y]);
        # d/dv_k = -2 (hard_k - v_k^2) 2 v_k = -4 v_k ([top == k] - v_k^2) for k != y
        top = 1
        assert grads["paper"][0].item() == pytest.approx(4 * 0.5 * (0.25 - 1 + float(top == label)))
        assert torch.sign(grads["paper"][0]).item() == sign
        other = 1 if label == 0 else 0
        assert grads["official"][1][0, other].item() == pytest.approx(-4 * 0.5 * (float(top == other) - 0.25))
        assert torch.sign(grads["official"][1][0, other]).item() == sign


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="symmetric", noise_rate=0.4, optimizer="adam", lr=1e-3, lr_schedule="constant",
                 init_std=1e-3), **kw}
    return tiny_cfg("sop", data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


def test_defaults_and_consistency_refused(tmp_path):
    h = SOP.Hyper()
    assert (h.lr_u, h.lr_v, h.init_std, h.ratio_balance, h.ratio_consistency, h.variant) == (
        10.0, 10.0, 1e-8, 0.0, 0.0, "official")
    # the paper's CIFAR-10 optimisation: SGD momentum 0.9, lr 0.02, weight decay 5e-4, 120 epochs
    assert (h.optimizer, h.momentum, h.lr, h.weight_decay, h.epochs) == ("sgd", 0.9, 0.02, 5e-4, 120)
    f = tmp_path / "s.yaml"
    f.write_text("method: sop\ndataset: mnist\nfixed: {ratio_consistency: 0.9}\n"
                 "settings:\n  s:\n    noise: {type: symmetric, rate: 0.5}\n")
    with pytest.raises(ConfigError, match="ratio_consistency"):
        load_space(f)


@pytest.fixture(scope="module")
def straight(data, data_root, tmp_path_factory):
    """4 epochs straight == 2 + save + load + 2 (u, v and the network's Adam state included)."""
    return assert_exact_resume(lambda: SOP(_cfg(data_root, ratio_balance=0.1), data),
                               tmp_path_factory.mktemp("sop") / "s.pt")


def test_tables_move_and_it_learns(straight):
    m = straight
    assert m.u.shape == (m.data.n_train, 1) and m.v.shape == (m.data.n_train, 10)
    assert m.u.abs().max() > 1e-2 and m.v.abs().max() > 1e-2  # moved from the 1e-3 init
    assert m.history[-1]["test_acc"] > 0.5
