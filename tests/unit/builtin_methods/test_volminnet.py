"""VolMinNet: T's parameterisation (row-stochastic, I at a large negative W), log det T of a hand
2x2, the loss by hand (plain Python math), the official code's numbers (T, loss, logit
gradients, one step of T by Adam and by SGD), the lr milestones, the estimation error, exact
resume (T and its optimizer state restored) across a milestone, learning."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.volminnet import SigmoidT, VolMinNet, log_volume, lr_factor, make_t_optimizer, noisy_ce
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.transition import estimation_error

# 4 samples x 3 classes; the official driver's input (/work/scratch/volminnet/driver.py)
LOGITS = [[2.0, 0.5, -1.0], [0.1, 1.2, 0.3], [-0.5, 0.0, 1.5], [1.0, 1.0, -2.0]]
LABELS = [0, 2, 2, 1]
W = [[0.0, -1.0, -3.0], [-2.0, 0.5, -0.5], [-4.0, -1.5, 1.0]]


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def hand_T(w):
    """T = rownorm(I + sigmoid(W) off the diagonal), by hand."""
    C = len(w)
    rows = []
    for i in range(C):
        a = [1.0 if j == i else sig(w[i][j]) for j in range(C)]
        rows.append([v / sum(a) for v in a])
    return rows


def det3(m):
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def softmax(v):
    e = [math.exp(x - max(v)) for x in v]
    return [x / sum(e) for x in e]


def _T(w):
    t = SigmoidT(len(w), 0.0).double()
    with torch.no_grad():
        t.w.copy_(torch.tensor(w, dtype=torch.float64))
    return t


def test_T_is_row_stochastic_and_I_at_large_negative_W():
    t = SigmoidT(10, 40.0)                      # W = -40: sigmoid ~ 4e-18 off the diagonal
    assert torch.allclose(t(), torch.eye(10), atol=1e-12, rtol=0)
    g = torch.Generator().manual_seed(0)
    t = SigmoidT(10, 0.0)
    with torch.no_grad():
        t.w.copy_(3 * torch.randn(10, 10, generator=g))
    T = t()
    assert (T > 0).all() and torch.allclose(T.sum(1), torch.ones(10), atol=1e-6)
    (T * torch.randn(10, 10, generator=g)).sum().backward()
    assert torch.equal(t.w.grad.diagonal(), torch.zeros(10))  # W's diagonal never moves


def test_T_by_hand():
    got = _T(W)().tolist()
    want = hand_T(W)
    for i in range(3):
        assert got[i] == pytest.approx(want[i], rel=1e-13)
    # the official init: W = -2, T_ii = 1 / (1 + 2 sigmoid(-2)), T_ij = sigmoid(-2) / (1 + 2 sigmoid(-2))
    T0 = SigmoidT(3, 2.0).double()().tolist()
    s = sig(-2.0)
    assert T0[0] == pytest.approx([1 / (1 + 2 * s), s / (1 + 2 * s), s / (1 + 2 * s)], rel=1e-7)


def test_logdet_of_a_hand_2x2():
    a, b = 0.7, -1.3
    sa, sb = sig(a), sig(b)
    # T = [[1, sa], [sb, 1]] row-normalised: det = (1 - sa sb) / ((1 + sa)(1 + sb))
    want = math.log((1 - sa * sb) / ((1 + sa) * (1 + sb)))
    assert log_volume(_T([[0.0, a], [b, 0.0]])()).item() == pytest.approx(want, rel=1e-13)
    assert log_volume(torch.eye(4, dtype=torch.float64)).item() == 0.0  # log det I = 0


def test_loss_by_hand():
    lam = 0.5
    T = hand_T(W)
    ces = []
    for z, y in zip(LOGITS, LABELS):
        p = softmax(z)
        ces.append(-math.log(sum(p[i] * T[i][y] for i in range(3))))   # -log (p @ T)[y]
    want = sum(ces) / 4 + lam * math.log(abs(det3(T)))
    Tt = _T(W)()
    per = noisy_ce(torch.tensor(LOGITS, dtype=torch.float64), Tt, torch.tensor(LABELS))
    assert per.tolist() == pytest.approx(ces, rel=1e-12)
    assert (per.mean() + lam * log_volume(Tt)).item() == pytest.approx(want, rel=1e-12)


def test_T_equal_I_is_cross_entropy():
    z, y = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS)
    got = noisy_ce(z, torch.eye(3, dtype=torch.float64), y)
    assert torch.allclose(got, torch.nn.functional.cross_entropy(z, y, reduction="none"), rtol=1e-13, atol=0)


# The official code's numbers: xuefeng-li1/Provably-end-to-end-label-noise-learning-without-anchor-points
# @ 06e4167e054c953a4fdf013b8db9ff420d3cdae5, models.sig_t (T), main.py (loss = nll_loss(log(softmax @ T), y)
# + lam * T.slogdet().logabsdet; Adam(lr 0.01) for T on MNIST, SGD(lr 0.01, momentum 0.9) on CIFAR-10), run in
# float64 by /work/scratch/volminnet/driver.py on LOGITS / LABELS / W above (output: driver_output.txt there).
OFFICIAL = {
    # (optimizer, lam, W or None: the official init -2)
    ("adam", 1e-4, None): dict(
        logdet=-0.6815059078262623, ce=0.7631585567328258, loss=0.7630904061420433,
        grad=[[-0.04572386335389093, 0.037382663631107114, 0.008341199722783816],
              [0.03029853920733717, 0.0910218420618912, -0.12132038126922837],
              [0.021038094069035097, 0.034685953186608366, -0.055724047255643464],
              [0.09547759115724398, -0.10023114051578866, 0.004753549358544668]],
        w=[[-2.0, -2.0099999199756557, -2.0099999825173627], [-2.0099999946555203, -2.0, -1.9900000036161303],
           [-2.0099999971035394, -2.0099999971122524, -2.0]]),
    ("adam", 0.5, "W"): dict(
        logdet=-0.965001435769329, ce=0.7038466186317509, loss=0.22134590074708643,
        grad=[[-0.04765213865705471, 0.03811364916350927, 0.009538489493545452],
              [0.04286900297925467, 0.03913380731075592, -0.08200281029001057],
              [0.02354273669190456, 0.025327534038139005, -0.04887027073004356],
              [0.06392175078092673, -0.0678444887785402, 0.003922737997613491]],
        w=[[0.0, -0.9900000012003483, -2.9900000079899733], [-1.9900000030201235, 0.5, -0.49000000078758543],
           [-3.9900000652080756, -1.4900000020844042, 1.0]]),
    ("sgd", 0.5, "W"): dict(
        logdet=-0.965001435769329, ce=0.7038466186317509, loss=0.22134590074708643,
        w=[[0.0, -0.999166908541467, -2.9998748432355646], [-1.9996688878221285, 0.5, -0.4987302965845243],
           [-3.9999846645761212, -1.4995202466964015, 1.0]]),
}


@pytest.mark.parametrize("case", list(OFFICIAL), ids=lambda c: f"{c[0]}-lam{c[1]}-{c[2] or 'init'}")
def test_official_loss_gradient_and_one_T_step(case):
    opt_name, lam, w = case
    want = OFFICIAL[case]
    t = _T(W) if w else SigmoidT(3, 2.0).double()
    opt = make_t_optimizer(t.parameters(), VolMinNet.Hyper(t_optimizer=opt_name, t_lr=0.01))
    logits = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    T = t()
    ce = noisy_ce(logits, T, torch.tensor(LABELS)).mean()
    vol = log_volume(T)
    loss = ce + lam * vol
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert vol.item() == pytest.approx(want["logdet"], rel=1e-12)
    assert ce.item() == pytest.approx(want["ce"], rel=1e-12)
    assert loss.item() == pytest.approx(want["loss"], rel=1e-12)
    if "grad" in want:
        for got_row, want_row in zip(logits.grad.tolist(), want["grad"]):
            assert got_row == pytest.approx(want_row, rel=1e-10, abs=1e-14)
    for got_row, want_row in zip(t.w.detach().tolist(), want["w"]):
        assert got_row == pytest.approx(want_row, rel=1e-12, abs=1e-14)


def test_lr_milestones_and_estimation_error():
    hp = VolMinNet.Hyper(milestone1=2, milestone2=3)
    assert [lr_factor(e, hp) for e in range(5)] == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert [lr_factor(e, VolMinNet.Hyper()) for e in (0, 29, 30, 59, 60, 79)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])  # official CIFAR: MultiStepLR([30, 60], 0.1)
    # official tools.error: sum |T - T_true| / sum |T_true| (= / C for a row-stochastic T_true);
    # by hand: (0.2 + 0.2 + 0.1 + 0.1) / 2
    T_true = torch.tensor([[0.8, 0.2], [0.1, 0.9]], dtype=torch.float64)
    assert estimation_error(torch.eye(2), T_true) == pytest.approx(0.3)


def _cfg(data_root, **kw):
    kw = {**dict(optimizer="adam", lr=1e-3, t_optimizer="adam", milestone1=2, milestone2=3, noise_rate=0.4), **kw}
    return tiny_cfg("volminnet", data_root, **kw)


@pytest.fixture(scope="module")
def straight(data_root, tmp_path_factory):
    """4 epochs straight vs 2 + save + load + 2 (T, its Adam state and the milestone lr restored)."""
    data = load_noisy_data(_cfg(data_root))
    path = tmp_path_factory.mktemp("volminnet") / "v.pt"
    return assert_exact_resume(lambda: VolMinNet(_cfg(data_root), data), path)


def test_resume_holds_T_and_its_optimizer(straight):
    state = straight.method_state()
    assert set(state) >= {"net", "opt", "trans", "t_opt"}
    assert state["t_opt"]["state"]  # Adam moments of W: the checkpoint holds them
    assert not torch.allclose(straight.trans(), SigmoidT(10, 2.0)())  # T moved
    assert [h["lr"] for h in straight.history] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    assert [h["t_lr"] for h in straight.history] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-4])
    # t_error is the official error of the learned T against the setting's nominal T (sym-0.4 here)
    m = straight
    by_hand = torch.full((10, 10), 0.4 / 9, dtype=torch.float64).fill_diagonal_(0.6)  # symmetric 0.4
    T = m.trans().detach().double()
    assert m.history[-1]["t_error"] == pytest.approx(float((T - by_hand).abs().sum() / 10), rel=1e-9)


def test_it_learns(straight):
    assert straight.history[-1]["test_acc"] > 0.5
