"""ELR+: one step (the other network's EMA -> targets, mixup of labels and targets, the loss) and one ramped EMA
update against the official code's numbers and a plain-Python hand computation from the formulas; the paper's
identity (no mixup, one-hot labels: ELR's loss); labels and targets mixed by one permutation; exact resume (both
networks, both EMAs, both target tables, Adam states) and learning."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.elr import elr_loss, elr_target_update
from trainables.elr_plus import ELRPlus, elr_plus_loss
from tune_lnl.data import load_noisy_data
from tune_lnl.methods import semi

BETA, LAM, EPS = 0.7, 3.0, 1e-4
# The official code's driver input (/work/scratch/elr_plus/driver.py): 6 samples, 3 classes, targets start at 0;
# per step: index, teacher logits (the other network's EMA, un-mixed batch), student logits (mixed batch),
# labels, mixup lam, mixup permutation, iteration, coef_step (lambda's ramp length in iterations)
STEPS = [
    ([4, 1, 3], [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-1.5, 3.0, 0.0]],
     [[1.0, 0.5, -0.5], [0.3, -0.2, 0.8], [-1.0, 2.0, 0.4]], [0, 2, 1], 0.7, [2, 0, 1], 1, 0),
    ([1, 0, 4], [[1.0, 0.0, -1.0], [0.0, 12.0, 0.0], [0.5, 0.5, 2.0]],
     [[0.2, 0.1, -0.3], [-0.5, 1.5, 0.0], [0.7, -0.4, 1.1]], [2, 1, 0], 0.6, [1, 2, 0], 4, 10),
]
# github shengliu66/ELR @ 934af53434a336b6db80d05d7649d23216e8ca6d, ELR_plus/model/loss.py elr_plus_loss
# (num_examp 6, num_classes 3, beta 0.7, lambda 3): update_hist then forward, float32 on CPU, as
# /work/scratch/elr_plus/driver.py printed them (output.txt there): loss, gradient w.r.t. the student logits,
# the target table (pred_hist) and the mixed targets q after each step
OFFICIAL_LOSS = [0.309442937374115, 0.9879444241523743]
OFFICIAL_GRAD = [
    [[-0.0757950097322464, 0.0232075322419405, 0.05258744955062866],
     [-0.008553322404623032, 0.06802475452423096, -0.059471435844898224],
     [0.021159114316105843, -0.004245702177286148, -0.01691340282559395]],
    [[0.13229650259017944, -0.01701810583472252, -0.11527838557958603],
     [-0.098362997174263, 0.041139811277389526, 0.057223208248615265],
     [-0.08487363159656525, 0.041742581874132156, 0.043131064623594284]],
]
OFFICIAL_TABLE = [
    [[0.0, 0.0, 0.0], [0.09018288552761078, 0.0996675118803978, 0.11014962941408157], [0.0, 0.0, 0.0],
     [0.00314140017144382, 0.28277984261512756, 0.014078778214752674],
     [0.23567911982536316, 0.011733772233128548, 0.0525871179997921], [0.0, 0.0, 0.0]],
    [[1.8432410797686316e-06, 0.2999963164329529, 1.8432410797686316e-06],  # unclamped: ELR's would be 3e-5
     [0.26270031929016113, 0.1431857943534851, 0.10411391407251358], [0.0, 0.0, 0.0],
     [0.00314140017144382, 0.28277984261512756, 0.014078778214752674],
     [0.2112596035003662, 0.05449787154793739, 0.24424251914024353], [0.0, 0.0, 0.0]],
]
OFFICIAL_Q = [
    [[0.1659177988767624, 0.093047596514225, 0.04103461652994156],
     [0.13383175432682037, 0.07328739017248154, 0.09288087487220764],
     [0.029253847897052765, 0.2278461456298828, 0.04290003329515457]],
    [[0.15762092173099518, 0.20591001212596893, 0.06246908754110336],
     [0.08450494706630707, 0.20179694890975952, 0.09769811481237411],
     [0.23183590173721313, 0.08997304737567902, 0.18819108605384827]],
]
# Trainer.update_ema_variables (ELR_plus/trainer/trainer.py, same commit) with ema_update true, ema_step 10,
# global_step 5, alpha_ 0.997 (alpha = sigmoid_rampup(6, 10) 0.997) on nn.Linear(2, 3) weights (same driver)
MODEL_W, MODEL_B = [[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]], [0.1, -0.2, 0.3]
EMA_W, EMA_B = [[0.0, 1.0], [-1.0, 0.5], [0.25, 0.0]], [1.0, 0.0, -1.0]
OFFICIAL_ALPHA = 0.4479809772248699
OFFICIAL_EMA_W = [[0.2760095000267029, -0.10403802990913391], [0.6560570001602173, 0.36199522018432617],
                  [-0.30201900005340576, 0.8280285000801086]]
OFFICIAL_EMA_B = [0.5031828880310059, -0.11040379852056503, -0.2823752760887146]


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


def ramp(t, length):
    return 1.0 if length == 0 else math.exp(-5 * (1 - min(t / length, 1.0)) ** 2)


def hand_steps():
    """The formulas in plain Python: t <- beta t + (1 - beta) softmax(teacher) (no clamp), q and y~ mixed by
    (lam, perm), loss = mean -sum y~ log softmax(z) + ramp lambda mean log(1 - <clamp(softmax(z)), q>)."""
    table = [[0.0] * 3 for _ in range(6)]
    out = []
    for idx, teacher, student, labels, lam, perm, it, coef in STEPS:
        for i, z in zip(idx, teacher):
            table[i] = [BETA * t + (1 - BETA) * p for t, p in zip(table[i], softmax(z))]
        rows = [table[i] for i in idx]
        ys = [[float(k == y) for k in range(3)] for y in labels]
        q = [[lam * a + (1 - lam) * b for a, b in zip(rows[j], rows[perm[j]])] for j in range(3)]
        ym = [[lam * a + (1 - lam) * b for a, b in zip(ys[j], ys[perm[j]])] for j in range(3)]
        ce = reg = 0.0
        for j, z in enumerate(student):
            p = softmax(z)
            ce -= sum(y * math.log(pk) for y, pk in zip(ym[j], p))
            reg += math.log(1 - sum(min(max(pk, EPS), 1 - EPS) * qk for pk, qk in zip(p, q[j])))
        out.append((ce / 3 + ramp(it, coef) * LAM * reg / 3, [list(r) for r in table], q))
    return out


def our_steps(dtype=torch.float32):
    """Our functions on the same input (the method's step with the mixup draw given)."""
    table = torch.zeros(6, 3, dtype=dtype)
    out = []
    for idx, teacher, student, labels, lam, perm, it, coef in STEPS:
        idx, perm = torch.tensor(idx), torch.tensor(perm)
        rows = elr_target_update(table.index_select(0, idx), torch.tensor(teacher, dtype=dtype), BETA, clamp=False)
        table.index_copy_(0, idx, rows)
        y = torch.nn.functional.one_hot(torch.tensor(labels), 3).to(dtype)
        q, ym = torch.lerp(rows[perm], rows, lam), torch.lerp(y[perm], y, lam)
        z = torch.tensor(student, dtype=dtype, requires_grad=True)
        loss = elr_plus_loss(z, ym, q, LAM * semi.sigmoid_rampup(it, coef))  # one iteration per "epoch"
        loss.backward()
        out.append((loss.item(), z.grad.tolist(), table.tolist(), q.tolist()))
    return out


def test_step_by_hand():
    for (loss, table, q), ours in zip(hand_steps(), our_steps(torch.float64)):
        assert ours[0] == pytest.approx(loss, rel=1e-12)
        for got, want in zip(ours[2], table):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
        for got, want in zip(ours[3], q):
            assert got == pytest.approx(want, rel=1e-12)


def test_step_matches_the_official_code():
    for k, (loss, grad, table, q) in enumerate(our_steps()):
        assert loss == pytest.approx(OFFICIAL_LOSS[k], abs=1e-6)
        for got, want in zip(grad, OFFICIAL_GRAD[k]):
            assert got == pytest.approx(want, abs=1e-6)
        for got, want in zip(table, OFFICIAL_TABLE[k]):
            assert got == pytest.approx(want, rel=1e-5, abs=1e-8)
        for got, want in zip(q, OFFICIAL_Q[k]):
            assert got == pytest.approx(want, abs=1e-7)


def test_ramped_ema_update_matches_the_official_code():
    def linear(w, b):
        m = torch.nn.Linear(2, 3)
        with torch.no_grad():
            m.weight.copy_(torch.tensor(w))
            m.bias.copy_(torch.tensor(b))
        return m

    ema = semi.ema_model(linear(EMA_W, EMA_B), 0.997)
    ema.update_parameters(linear(EMA_W, EMA_B))  # the first update copies: the EMA holds EMA_W, EMA_B
    # ELRPlus.fit_network's decay with one iteration per epoch: step 5 -> ema_alpha sigmoid_rampup(6, 10)
    decay = 0.997 * semi.sigmoid_rampup((5 + 1) / 1, 10.0)
    assert decay == pytest.approx(OFFICIAL_ALPHA, rel=1e-12)
    assert decay == pytest.approx(0.997 * math.exp(-5 * 0.4 ** 2), rel=1e-12)  # by hand
    semi.ema_update(ema, linear(MODEL_W, MODEL_B), decay)
    for got, want in zip(ema.module.weight.tolist(), OFFICIAL_EMA_W):
        assert got == pytest.approx(want, abs=1e-6)
    assert ema.module.bias.tolist() == pytest.approx(OFFICIAL_EMA_B, abs=1e-6)


def test_without_mixup_it_is_elr():
    """Identity: lam = 1 and one-hot labels: ELR+'s loss is ELR's (CE + lambda log(1 - <p, t>)), batch mean."""
    z = torch.tensor([[1.0, 0.5, -0.5], [0.3, -0.2, 0.8]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    t = torch.tensor([[0.2, 0.3, 0.1], [0.5, 0.1, 0.1]], dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(y, 3).double()
    assert elr_plus_loss(z, onehot, t, LAM).item() == pytest.approx(elr_loss(z, y, t, LAM).mean().item(), rel=1e-14)


def test_labels_and_targets_mixed_by_one_permutation():
    """The method mixes cat([y, t]) in one mixup call: both halves use the images' permutation."""
    x = torch.arange(5, dtype=torch.float64).reshape(5, 1) * 10
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).double()
    t = torch.rand(5, 3, dtype=torch.float64)
    xm, mixed = semi.mixup(x, torch.cat([y, t], 1), 0.7, torch.Generator().manual_seed(1))
    perm = ((xm[:, 0] - 0.7 * x[:, 0]) / 0.3 / 10).round().long()  # recovered from the images
    assert sorted(perm.tolist()) == list(range(5)) and perm.tolist() != list(range(5))
    assert torch.allclose(mixed[:, :3], 0.7 * y + 0.3 * y[perm])
    assert torch.allclose(mixed[:, 3:], 0.7 * t + 0.3 * t[perm])


def test_defaults_are_the_official_cifar10_config():
    h = ELRPlus.Hyper()
    assert (h.beta, h.lambda_, h.mixup_alpha, h.ema_alpha, h.lambda_rampup) == (0.7, 3.0, 1.0, 0.997, 0.0)
    assert h.ema_rampup == pytest.approx(40000 / math.ceil(45000 / 128), abs=0.05)  # ema_step in epochs
    assert (h.optimizer, h.momentum, h.lr, h.weight_decay, h.epochs, h.batch_size) == ("sgd", 0.9, 0.02, 5e-4, 200,
                                                                                       128)


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="symmetric", noise_rate=0.4, optimizer="adam", lr=1e-3, lr_schedule="constant",
                 ema_rampup=2.0, lambda_rampup=1.0), **kw}
    return tiny_cfg("elr_plus", data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


@pytest.fixture(scope="module")
def straight(data, data_root, tmp_path_factory):
    """4 epochs straight == 2 + save + load + 2 (both networks, EMAs, target tables and Adam states)."""
    return assert_exact_resume(lambda: ELRPlus(_cfg(data_root), data), tmp_path_factory.mktemp("elrp") / "e.pt")


def test_tables_emas_and_learning(straight):
    m = straight
    # every row of each table updated once per epoch from 0 with a distribution: its sum is 1 - beta^4
    for t in (m.target_a, m.target_b):
        assert t.sum(1).tolist() == pytest.approx([1 - BETA ** 4] * m.data.n_train, abs=1e-5)
    assert not torch.equal(m.target_a, m.target_b)
    assert int(m.ema_a.n_averaged) == 4 * m.steps_per_epoch  # one EMA update per step
    assert not torch.equal(next(m.ema_a.module.parameters()), next(m.net_a.parameters()))
    assert m.history[-1]["test_acc"] > 0.5  # the ensemble
