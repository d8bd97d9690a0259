"""PENCIL: the stage losses and the label update against hand computations (plain Python math,
the label gradient derived by hand and checked by finite differences), the stage schedule on
real MNIST (stage 1 is the CE baseline, y~ moves only in stage 2, lr -> lr2), exact resume
across the stage boundaries, learning."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.ce import CE
from trainables.pencil import PENCIL, label_grad, label_update, per_sample_loss
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.label_table import stage_lr, stage_of

ALPHA, BETA, LAM = 0.4, 0.1, 1000.0

# B = 2 samples, C = 3 classes
LOGITS = [[1.0, -0.5, 0.3], [0.2, 1.5, -1.0]]
YTILDE = [[10.0, 0.0, 0.0], [0.5, 2.0, -1.0]]
NOISY = [0, 2]


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


def hand_loss(z, yt, y, stage):
    p = softmax(z)
    if stage == 1:
        return -math.log(p[y])
    yd = softmax(yt)
    lc = sum(pj * (math.log(pj) - math.log(dj)) for pj, dj in zip(p, yd))  # KL(p || y_d)
    if stage == 3:
        return lc
    lo = -math.log(yd[y])                                                 # CE(y^, y_d)
    le = -sum(pj * math.log(pj) for pj in p)                              # entropy of p
    return lc + ALPHA * lo + BETA * le


def hand_label_grad(z, yt, y, batch):
    """d(batch-mean loss)/d y~ of one sample, by hand: with y_d = softmax(y~),
    d lc/d y~_k = -sum_j p_j (delta_jk - y_d_k) = y_d_k - p_k,  d lo/d y~_k = y_d_k - [k == y],
    le does not depend on y~; the batch mean divides by B."""
    p, yd = softmax(z), softmax(yt)
    return [((yd[k] - p[k]) + ALPHA * (yd[k] - (k == y))) / batch for k in range(len(z))]


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_losses_by_hand(stage):
    got = per_sample_loss(_t(LOGITS), _t(YTILDE), torch.tensor(NOISY), stage, ALPHA, BETA)
    for i in range(2):
        assert got[i].item() == pytest.approx(hand_loss(LOGITS[i], YTILDE[i], NOISY[i], stage), rel=1e-12)


def test_hand_label_gradient_matches_finite_differences():
    h = 1e-6
    for z, yt, y in zip(LOGITS, YTILDE, NOISY):
        grad = hand_label_grad(z, yt, y, batch=1)
        for k in range(3):
            up, down = list(yt), list(yt)
            up[k] += h
            down[k] -= h
            num = (hand_loss(z, up, y, 2) - hand_loss(z, down, y, 2)) / (2 * h)
            assert grad[k] == pytest.approx(num, abs=1e-7)


def test_label_update_by_hand():
    logits = _t(LOGITS).requires_grad_(True)
    new = label_update(logits, _t(YTILDE), torch.tensor(NOISY), ALPHA, BETA, LAM)
    for i in range(2):
        g = hand_label_grad(LOGITS[i], YTILDE[i], NOISY[i], batch=2)
        want = [YTILDE[i][k] - LAM * g[k] for k in range(3)]
        assert new[i].tolist() == pytest.approx(want, rel=1e-10, abs=1e-9)
    assert logits.grad is None  # the label update never reaches the network


def test_closed_form_label_grad_matches_autograd():
    # the label step uses the closed form of dL/dy~; autograd on the stage-2 batch-mean loss
    # must agree (float64: to rounding, float32: ~1e-6 of the gradient's scale)
    g = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        z = 3 * torch.randn(128, 10, generator=g, dtype=dtype)
        yt = 10 * torch.randn(128, 10, generator=g, dtype=dtype)
        y = torch.randint(0, 10, (128,), generator=g)
        yt_ = yt.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(per_sample_loss(z, yt_, y, 2, ALPHA, BETA).mean(), yt_)
        closed = label_grad(z, yt, y, ALPHA)
        assert (closed - auto).abs().max().item() <= tol * auto.abs().max().item(), dtype


def test_schedule():
    cfg = PENCIL.Hyper(stage1=2, stage2=5, lr=1e-3, lr2=1e-4)
    assert [stage_of(e, cfg) for e in range(7)] == [1, 1, 2, 2, 2, 3, 3]
    assert [stage_lr(e, cfg) for e in range(7)] == [1e-3] * 5 + [1e-4] * 2


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="symmetric", noise_rate=0.4, seed=3, stage1=1, stage2=3, lr2=2e-4), **kw}
    return tiny_cfg(kw.pop("method", "pencil"), data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


def test_stage1_is_the_ce_baseline(data, data_root):
    pencil, ce = PENCIL(_cfg(data_root), data), CE(_cfg(data_root, method="ce"), data)
    m_pencil, m_ce = pencil.step(), ce.step()
    assert m_pencil["stage"] == 1
    assert m_pencil["train_loss"] == m_ce["train_loss"]
    for k, v in ce.net.state_dict().items():
        assert torch.equal(pencil.net.state_dict()[k], v), k


class _Recording(PENCIL):
    """PENCIL that keeps a copy of y~ and of the optimizer's lr after every epoch."""

    def build(self):
        super().build()
        self.table_history, self.opt_lrs = [], []

    def step(self):
        out = super().step()
        self.table_history.append(self.ytilde.clone())
        self.opt_lrs.append([g["lr"] for g in self.opt.param_groups])
        return out


@pytest.fixture(scope="module")
def straight(data, data_root, tmp_path_factory):
    """4 epochs (stages 1, 2, 2, 3) straight, checked against 2 + save + load + 2 (exact resume
    across the stage-2 -> stage-3 boundary, the y~ table included)."""
    path = tmp_path_factory.mktemp("pencil") / "p.pt"
    return assert_exact_resume(lambda: _Recording(_cfg(data_root), data), path)


def test_label_table_moves_only_in_stage2_and_lr_switches(straight):
    m = straight
    noisy = m.data.train_noisy
    init = 10.0 * torch.nn.functional.one_hot(noisy, 10).float()  # K * onehot(noisy)
    tables = m.table_history
    assert torch.equal(tables[0], init)                                # stage 1: untouched
    assert not torch.equal(tables[1], tables[0])                       # stage 2 moves y~ ...
    assert not torch.equal(tables[2], tables[1])
    assert (tables[1] != tables[0]).any(1).all()                       # ... every sample's row
    assert torch.equal(tables[3], tables[2])                           # stage 3: frozen
    assert m.opt_lrs == [[1e-3], [1e-3], [1e-3], [2e-4]]
    hist = m.history
    assert [h["stage"] for h in hist] == [1, 2, 2, 3]
    assert [h["lr"] for h in hist] == [1e-3, 1e-3, 1e-3, 2e-4]
    # label_acc after stage 1 is the agreement of the noisy with the clean labels
    clean_rate = float((noisy == m.data.train_clean).float().mean())
    assert hist[0]["label_acc"] == pytest.approx(clean_rate)


def test_it_learns(straight):
    assert straight.history[-1]["test_acc"] > 0.5
