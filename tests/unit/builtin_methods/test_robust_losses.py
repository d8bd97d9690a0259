"""SCE, NCE+RCE, GLS and bootstrapping: each loss against a hand computation (plain Python math from
the papers' equations) on one fixed 3 x 4 input, against the numbers the official code prints for
that input, and against the papers' identities (RCE = -A (1 - p_y); NCE in [0, 1], summing to 1
over the labels; GLS at r = 0 and bootstrapping at beta = 1 are cross entropy); exact resume (GLS
across its warm-up boundary), and learning on real MNIST.

Official numbers: /work/scratch/losses/driver.py (kept outside the project) runs the official loss
functions on LOGITS / LABELS below, float64, one row at a time (their modules return batch means):
  * HanxunH/Active-Passive-Losses@04bce5344035ca69102b9cfb0228df0f49f1707d, loss.py: SCELoss,
    ReverseCrossEntropy, NormalizedCrossEntropy, NCEandRCE (their RCE clips the one-hot at 1e-4:
    A = ln 1e-4);
  * UCSC-REAL/negative-label-smoothing@05078f675b42c13c89219eb8f2238bd4d794d83d, loss.py: loss_gls;
  * YisenWang/symmetric_cross_entropy_for_noisy_labels@ec778df4a15192f8ccee2efb0fce8b94b8e00262,
    loss.py: boot_soft / boot_hard (Keras; transcribed to numpy in the driver, TF 1 not installable).
"""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.bootstrap import Bootstrap, bootstrap
from trainables.ce import CE
from trainables.gls import GLS, gls
from trainables.nce_rce import NCERCE, nce
from trainables.sce import SCE
from tune_lnl.data import load_noisy_data
from tune_lnl.methods import method_class
from tune_lnl.methods.losses import cross_entropy, rce

LOGITS = [[2.0, 1.0, 0.1, -1.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 3.0, 0.0, 1.0]]
LABELS = [0, 2, 3]
LN_1E4 = math.log(1e-4)  # the official codes' A (one-hot clipped at 1e-4)

#: the driver's output (see the module docstring)
OFFICIAL = {
    "sce(0.1, 1.0)": [3.3784634445287836, 7.046384811020436, 8.393089515561496],
    "rce": [3.333532144290748, 6.907755374908447, 8.174571270301115],
    "nce": [0.05837317029825177, 0.25, 0.2243345719606463],
    "nce+rce(1, 1)": [3.391905314589, 7.157755374908447, 8.398905842261762],
    "gls(+0.4)": [1.0393130023803545, 1.3862943611198906, 2.285182452603812],
    "gls(-0.6)": [-0.43568699761964547, 1.3862943611198904, 2.0351824526038125],
    "gls(-2.0)": [-2.5006869976196455, 1.3862943611198904, 1.6851824526038124],
    "boot_soft(0.95)": [0.47488099176785403, 1.3862943611198904, 2.1056776642818815],
    "boot_hard(0.8)": [0.4493130023803543, 1.3862943611198904, 1.785182452603813],
}


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


def hand(kind, z, y, **kw):
    """The losses from the papers' equations, one sample, plain Python."""
    p = softmax(z)
    C = len(z)
    if kind == "ce":
        return -math.log(p[y])
    if kind == "rce":  # SCE Eq. 5: -sum_k p_k log q_k, log q_y = 0, log 0 := A
        return -sum(p[k] * (0.0 if k == y else kw["A"]) for k in range(C))
    if kind == "nce":  # APL: -log p_y / sum_j (-log p_j)
        return -math.log(p[y]) / sum(-math.log(pk) for pk in p)
    if kind == "gls":  # CE against (1 - r) e_y + r / C
        r = kw["r"]
        return -sum(((1 - r) * (k == y) + r / C) * math.log(p[k]) for k in range(C))
    if kind == "boot":  # Reed et al.: -sum_k (beta t_k + (1 - beta) m_k) log q_k, m = q or onehot(argmax q)
        b = kw["beta"]
        m = p if kw["variant"] == "soft" else [float(k == max(range(C), key=p.__getitem__)) for k in range(C)]
        return -sum((b * (k == y) + (1 - b) * m[k]) * math.log(p[k]) for k in range(C))
    raise ValueError(kind)


def _z():
    return torch.tensor(LOGITS, dtype=torch.float64)


def _y():
    return torch.tensor(LABELS)


def _rows(kind, **kw):
    return [hand(kind, z, y, **kw) for z, y in zip(LOGITS, LABELS)]


def _sce(z, y, alpha, beta, A):  # the method's own loss, through its Hyper
    return SCE.loss(type("M", (), {"hp": SCE.Hyper(alpha=alpha, beta=beta, A=A)})(), z, y)


def _nce_rce(z, y, alpha, beta, A):
    return NCERCE.loss(type("M", (), {"hp": NCERCE.Hyper(alpha=alpha, beta=beta, A=A)})(), z, y)


# -- RCE and SCE ---------------------------------------------------------------------------------
def test_rce_by_hand_and_its_identity():
    got = rce(_z(), _y(), -4.0)
    assert got.tolist() == pytest.approx(_rows("rce", A=-4.0), rel=1e-12)
    p_y = [softmax(z)[y] for z, y in zip(LOGITS, LABELS)]
    for A in (-4.0, -1.5, LN_1E4):  # RCE = -A (1 - p_y)
        assert rce(_z(), _y(), A).tolist() == pytest.approx([-A * (1 - q) for q in p_y], rel=1e-12)


def test_rce_matches_the_official_code_at_its_A():
    # (the official one-hot is float32: its log(1e-4) differs from ours in the 8th digit, hence rel=1e-7)
    assert rce(_z(), _y(), LN_1E4).tolist() == pytest.approx(OFFICIAL["rce"], rel=1e-7)


def test_sce_by_hand_and_official():
    for alpha, beta in ((0.1, 1.0), (0.01, 1.0), (2.0, 0.5)):
        want = [alpha * c + beta * r for c, r in zip(_rows("ce"), _rows("rce", A=-4.0))]
        assert _sce(_z(), _y(), alpha, beta, -4.0).tolist() == pytest.approx(want, rel=1e-12)
    assert _sce(_z(), _y(), 0.1, 1.0, LN_1E4).tolist() == pytest.approx(OFFICIAL["sce(0.1, 1.0)"], rel=1e-7)


# -- NCE and NCE+RCE -----------------------------------------------------------------------------
def test_nce_by_hand_and_official():
    assert nce(_z(), _y()).tolist() == pytest.approx(_rows("nce"), rel=1e-12)
    assert nce(_z(), _y()).tolist() == pytest.approx(OFFICIAL["nce"], rel=1e-12)
    want = [a + b for a, b in zip(_rows("nce"), _rows("rce", A=LN_1E4))]
    assert _nce_rce(_z(), _y(), 1.0, 1.0, LN_1E4).tolist() == pytest.approx(want, rel=1e-12)
    assert _nce_rce(_z(), _y(), 1.0, 1.0, LN_1E4).tolist() == pytest.approx(OFFICIAL["nce+rce(1, 1)"], rel=1e-7)
    want = [1.0 * a + 10.0 * b for a, b in zip(_rows("nce"), _rows("rce", A=-4.0))]  # MNIST config values
    assert _nce_rce(_z(), _y(), 1.0, 10.0, -4.0).tolist() == pytest.approx(want, rel=1e-12)


def test_nce_lies_in_unit_interval_and_sums_to_one_over_labels():
    g = torch.Generator().manual_seed(0)
    z = 4 * torch.randn(64, 10, generator=g, dtype=torch.float64)
    per_label = torch.stack([nce(z, torch.full((64,), j)) for j in range(10)], 1)  # [64, C]
    assert per_label.min() >= 0 and per_label.max() <= 1
    assert torch.allclose(per_label.sum(1), torch.ones(64, dtype=torch.float64), atol=1e-12)
    fixed = torch.stack([nce(_z(), torch.full((3,), j)) for j in range(4)], 1)
    assert fixed.sum(1).tolist() == pytest.approx([1.0] * 3, abs=1e-12)


# -- GLS -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("r", [0.4, -0.6, -2.0])
def test_gls_by_hand_and_official(r):
    got = gls(_z(), _y(), r).tolist()
    assert got == pytest.approx(_rows("gls", r=r), rel=1e-12)
    assert got == pytest.approx(OFFICIAL[f"gls({r:+.1f})"], rel=1e-12)


def test_gls_at_rate_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(1)
    z, y = 3 * torch.randn(32, 10, generator=g), torch.randint(0, 10, (32,), generator=g)
    assert torch.equal(gls(z, y, 0.0), cross_entropy(z, y))
    assert gls(_z(), _y(), 0.0).tolist() == pytest.approx(_rows("ce"), rel=1e-12)


# -- bootstrapping -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant,beta", [("soft", 0.95), ("hard", 0.8), ("soft", 0.3), ("hard", 0.5)])
def test_bootstrap_by_hand(variant, beta):
    got = bootstrap(_z(), _y(), beta, variant).tolist()
    assert got == pytest.approx(_rows("boot", beta=beta, variant=variant), rel=1e-12)


def test_bootstrap_matches_the_keras_reference():
    # the reference clips q to [1e-7, 1 - 1e-7]: no effect on this input
    assert bootstrap(_z(), _y(), 0.95, "soft").tolist() == pytest.approx(OFFICIAL["boot_soft(0.95)"], rel=1e-9)
    assert bootstrap(_z(), _y(), 0.8, "hard").tolist() == pytest.approx(OFFICIAL["boot_hard(0.8)"], rel=1e-9)


@pytest.mark.parametrize("variant", ["soft", "hard"])
def test_bootstrap_at_beta_one_is_cross_entropy(variant):
    g = torch.Generator().manual_seed(2)
    z, y = 3 * torch.randn(32, 10, generator=g), torch.randint(0, 10, (32,), generator=g)
    assert torch.allclose(bootstrap(z, y, 1.0, variant), cross_entropy(z, y), rtol=0, atol=1e-6)


def test_soft_bootstrap_differentiates_through_its_target():
    # the target's q is NOT detached: the gradient is that of beta CE + (1 - beta) H(q), the
    # paper's entropy-regularisation reading, not that of CE against a constant mixed target
    z = _z().requires_grad_(True)
    (got,) = torch.autograd.grad(bootstrap(z, _y(), 0.7, "soft").sum(), z)
    zz = _z().requires_grad_(True)
    logq = torch.log_softmax(zz, 1)
    t = torch.nn.functional.one_hot(_y(), 4).double()
    (full,) = torch.autograd.grad(-((0.7 * t + 0.3 * logq.exp()) * logq).sum(), zz, retain_graph=True)
    (detached,) = torch.autograd.grad(-((0.7 * t + 0.3 * logq.exp().detach()) * logq).sum(), zz)
    assert torch.allclose(got, full, atol=1e-12)
    assert not torch.allclose(got, detached, atol=1e-3)


# -- runs on MNIST -------------------------------------------------------------------------------
RUNS = {  # method -> overrides of a 4-epoch run (GLS: warm-up 2, so the resume point is its boundary)
    "sce": {}, "nce_rce": {}, "bootstrap": {"variant": "hard", "beta": 0.8},
    "gls": {"warmup": 2, "smooth_rate": -0.6, "lr2": 5e-4},
}


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(tiny_cfg("ce", data_root))


@pytest.mark.parametrize("method", list(RUNS))
def test_resume_is_exact(method, data, data_root, tmp_path):
    cls = method_class(method)
    assert_exact_resume(lambda: cls(tiny_cfg(method, data_root, **RUNS[method]), data), tmp_path / "c.pt")


@pytest.mark.parametrize("method", list(RUNS))
def test_learns_above_chance(method, data, data_root):
    over = {**RUNS[method], "epochs": 3, "augment": False}
    if method == "gls":
        over["warmup"] = 1
    m = method_class(method)(tiny_cfg(method, data_root, **over), data)
    for _ in range(3):
        metrics = m.step()
    assert metrics["test_acc"] > 0.5  # chance is 0.1


def test_gls_phases_and_its_warmup_is_cross_entropy(data, data_root):
    m = GLS(tiny_cfg("gls", data_root, **RUNS["gls"]), data)
    ce = CE(tiny_cfg("ce", data_root), data)
    first, first_ce = m.step(), ce.step()
    assert first["train_loss"] == first_ce["train_loss"]  # warm-up epoch = the CE baseline, bit for bit
    for k, v in ce.net.state_dict().items():
        assert torch.equal(m.net.state_dict()[k], v), k
    for _ in range(3):
        m.step()
    assert [h["stage"] for h in m.history] == [1, 1, 2, 2]
    assert [h["smooth_rate"] for h in m.history] == [0.0, 0.0, -0.6, -0.6]
    assert [h["lr"] for h in m.history] == [1e-3, 1e-3, 5e-4, 5e-4]


def test_bootstrap_variant_is_part_of_the_checkpoint_identity(data, data_root):
    soft = Bootstrap(tiny_cfg("bootstrap", data_root), data)
    hard = Bootstrap(tiny_cfg("bootstrap", data_root, variant="hard", beta=0.8), data)
    assert soft.identity()["variant"] == "soft" and hard.identity()["variant"] == "hard"


def test_warmup_must_leave_gls_epochs():
    assert GLS.check_config(GLS.Hyper(warmup=5, epochs=5))
    assert not GLS.check_config(GLS.Hyper(warmup=0, epochs=5))
