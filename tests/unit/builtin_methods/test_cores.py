"""CORES^2 (phase 1): the confidence regulariser by hand on a 3-class example, the sieve's keep /
drop decision by hand, the beta and lr schedules by hand, the official code's loss and gradients
on a fixed input, the sieve's analytics (kept share, precision, recall), exact resume across the
epoch the sieve starts (the sieved prior restored), learning."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.cores import CORES, CR_EPS, beta_at, beta_of, cores_loss, lr_of, sieve_keep
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.analytics import SelectionMeter

# 4 samples x 3 classes; the official driver's input (/work/scratch/cores/driver.py)
LOGITS = [[2.0, 0.5, -1.0], [0.1, 1.2, 0.3], [-0.5, 0.0, 1.5], [1.0, 1.0, -2.0]]
LABELS = [0, 2, 2, 1]
PRIOR = [0.5, 0.3, 0.2]


def softmax(v):
    e = [math.exp(x - max(v)) for x in v]
    return [x / sum(e) for x in e]


def hand_cores(z, y, prior, beta):
    """CE(f(x), y) - beta * sum_k prior_k * (-log(p_k + 1e-8)), by hand."""
    p = softmax(z)
    return -math.log(p[y]) - beta * sum(pk * -math.log(q + 1e-8) for pk, q in zip(prior, p))


def hand_sieve_stat(z, y):
    """CE(f(x), y) - 1/K sum_k -log(p_k + 1e-8): the regularised loss minus alpha_{n,t}."""
    p = softmax(z)
    return -math.log(p[y]) - sum(-math.log(q + 1e-8) for q in p) / len(p)


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("beta", [0.0, 0.7, 2.0])
def test_regulariser_by_hand(beta):
    got = cores_loss(_t(LOGITS), torch.tensor(LABELS), _t(PRIOR), beta)
    assert got.tolist() == pytest.approx([hand_cores(z, y, PRIOR, beta) for z, y in zip(LOGITS, LABELS)], rel=1e-12)
    # one sample written out: z = (2, 0.5, -1), y = 0, beta 0.7, prior (0.5, 0.3, 0.2)
    e = [math.exp(2.0), math.exp(0.5), math.exp(-1.0)]
    p = [v / sum(e) for v in e]
    one = -math.log(p[0]) - beta * (0.5 * -math.log(p[0] + CR_EPS) + 0.3 * -math.log(p[1] + CR_EPS)
                                    + 0.2 * -math.log(p[2] + CR_EPS))
    assert got[0].item() == pytest.approx(one, rel=1e-12)


def test_sieve_keeps_and_drops_by_hand():
    stats = [hand_sieve_stat(z, y) for z, y in zip(LOGITS, LABELS)]
    # sample 1: label 2 has p = 0.22 < the mean: CE 1.454 > mean CE 1.220 -> dropped; the others kept
    assert [s <= 0 for s in stats] == [True, False, True, True]
    assert sieve_keep(_t(LOGITS), torch.tensor(LABELS)).tolist() == [True, False, True, True]
    # a sample whose label is the confident class is kept, the same logits with another label dropped
    z = _t([[3.0, 0.0, 0.0]] * 3)
    assert sieve_keep(z, torch.tensor([0, 1, 2])).tolist() == [True, False, False]


def test_beta_and_lr_schedules_by_hand():
    # official f_beta: np.concatenate((zeros(10), linspace(0, 2, 30), full(60, 2)))
    hp = CORES.Hyper()
    want = [0.0] * 10 + [2.0 * k / 29 for k in range(30)] + [2.0] * 60
    assert [beta_of(e, hp) for e in range(100)] == pytest.approx(want, rel=1e-14, abs=1e-15)
    assert beta_of(20, hp) == pytest.approx(0.6896551724137931, rel=1e-14)  # the official f_beta(20)
    assert [beta_at(e, 1.0, 1, 3) for e in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert [beta_at(e, 1.0, 0, 1) for e in range(2)] == [0.0, 1.0]      # linspace(0, 1, 1) = [0]
    # official adjust_learning_rate: ([0.1] * 50 + [0.01] * 50)[e] / (1 + f_beta(e))
    for e in (0, 9, 10, 25, 39, 49, 50, 99):
        assert lr_of(e, hp) == pytest.approx((0.1 if e < 50 else 0.01) / (1 + want[e]), rel=1e-14)
    assert lr_of(25, CORES.Hyper(lr_over_beta=False)) == 0.1


# The official code's numbers: UCSC-REAL/cores @ cf0945e2d5eb4f38962913d51d6dff679099ad86, loss.py loss_cores (with
# f_beta; its .cuda() made a no-op), run in float64 by /work/scratch/cores/driver.py on LOGITS / LABELS / PRIOR above
# (output: driver_output.txt there). Epochs <= 30 keep every sample; from 31 on the sieve drops sample 1.
OFFICIAL = {
    5: (0.6797416443246859, [1, 1, 1, 1],
        [[-0.05360074135268103, 0.04382259803500917, 0.009778143317671862],
         [0.04784168201097079, 0.1437243556258077, -0.19156603763677849],
         [0.024905912015579575, 0.041062906906271956, -0.06596881892185152],
         [0.1219638877900921, -0.1280361122099079, 0.006072224419815802]]),
    20: (-0.2942180613428177, [1, 1, 1, 1],
         [[-0.10284160037642795, 0.06532425386682522, 0.037517346509602714],
          [0.1010543119186171, 0.09632825135313222, -0.19738256327174936],
          [0.0939363100912799, 0.064467797561465, -0.15840410765274493],
          [0.12405776481798067, -0.16042499309588587, 0.036367228277905235]]),
    30: (-1.2681777670103211, [1, 1, 1, 1],
         [[-0.15208245940017487, 0.08682590969864126, 0.06525654970153356],
          [0.15426694182626344, 0.04893214708045675, -0.20319908890672023],
          [0.1629667081669802, 0.08787268821665806, -0.2508393963836384],
          [0.12615164184586924, -0.19281387398186384, 0.06666223213599468]]),
    31: (-1.685634802162813, [1, 0, 1, 1],
         [[-0.2093420604033993, 0.11863476704243048, 0.09070729336096885], [0.0, 0.0, 0.0],
          [0.22649299729940028, 0.12028423637623649, -0.34677723367563684],
          [0.16848137273154407, -0.26140368276061554, 0.09292231002907148]]),
    60: (-2.488467479501409, [1, 0, 1, 1],
         [[-0.26186564336206264, 0.14156986659636758, 0.12029577676569508], [0.0, 0.0, 0.0],
          [0.3001254219134807, 0.14524945307510911, -0.44537487498858974],
          [0.17071484156129188, -0.2959518223723254, 0.12523698081103354]]),
}


@pytest.mark.parametrize("epoch", list(OFFICIAL))
def test_official_loss_sieve_and_gradients(epoch):
    want_loss, want_keep, want_grad = OFFICIAL[epoch]
    hp = CORES.Hyper()
    logits = _t(LOGITS).requires_grad_(True)
    labels = torch.tensor(LABELS)
    keep = sieve_keep(logits, labels) if epoch >= hp.sieve_start else torch.ones(4, dtype=torch.bool)
    v = keep.double()
    loss = (cores_loss(logits, labels, _t(PRIOR), beta_of(epoch, hp)) * v).sum() / v.sum()
    loss.backward()
    assert keep.int().tolist() == want_keep
    assert loss.item() == pytest.approx(want_loss, rel=1e-12)
    for got_row, want_row in zip(logits.grad.tolist(), want_grad):
        assert got_row == pytest.approx(want_row, rel=1e-10, abs=1e-14)


def test_selection_meter_recall_and_kept_share_by_hand():
    clean = torch.tensor([0, 1, 2, 0, 1, -1])
    noisy = torch.tensor([0, 2, 2, 1, 1, 0])  # clean-labelled: samples 0, 2, 4 (sample 5 unknown)
    m = SelectionMeter(noisy, clean)
    m.add(torch.tensor([0, 1, 2]), torch.tensor([True, True, False]))      # kept 0 (clean), 1 (noisy)
    m.add(torch.tensor([3, 4, 5]), torch.tensor([False, True, True]))      # kept 4 (clean), 5 (unknown)
    assert m.precision == pytest.approx(2 / 3)        # kept with known clean label: 0, 1, 4
    assert m.recall == pytest.approx(2 / 3)           # clean-labelled 0, 2, 4; kept 0, 4
    assert m.kept_fraction == pytest.approx(3 / 5)    # of the 5 samples with a known clean label


def _cfg(data_root, **kw):
    kw = {**dict(optimizer="adam", lr=1e-3, batch_size=128, beta=0.5, beta_warmup=1, beta_ramp=2, sieve_start=2,
                 noise_rate=0.4), **kw}
    return tiny_cfg("cores", data_root, **kw)


class _Recording(CORES):
    def build(self):
        super().build()
        self.priors = []

    def step(self):
        out = super().step()
        self.priors.append(self.prior.clone())
        return out


@pytest.fixture(scope="module")
def straight(data_root, tmp_path_factory):
    """4 epochs straight vs 2 + save + load + 2: the sieve starts at epoch 2, the first one after
    the resume; epoch 2 leaves a sieved prior that epoch 3 uses."""
    data = load_noisy_data(_cfg(data_root))
    path = tmp_path_factory.mktemp("cores") / "c.pt"
    return assert_exact_resume(lambda: _Recording(_cfg(data_root), data), path)


@pytest.fixture(scope="module")
def resumed_after_the_sieve(data_root, tmp_path_factory):
    """The same with the sieve from epoch 1: the checkpoint after epoch 2 holds a sieved prior."""
    data = load_noisy_data(_cfg(data_root))
    path = tmp_path_factory.mktemp("cores") / "c1.pt"
    return assert_exact_resume(lambda: _Recording(_cfg(data_root, sieve_start=1), data), path)


def test_sieve_starts_on_time_and_moves_the_prior(straight, resumed_after_the_sieve):
    h = straight.history
    assert [x["beta"] for x in h] == [0.0, 0.0, 0.5, 0.5]
    assert [x["sieve_kept"] for x in h[:2]] == [1.0, 1.0] and h[2]["sieve_kept"] < 1.0
    clean_rate = float((straight.data.train_noisy == straight.data.train_clean).float().mean())
    assert h[0]["sieve_precision"] == pytest.approx(clean_rate) and h[0]["sieve_recall"] == 1.0
    assert h[3]["sieve_precision"] > clean_rate  # the sieve keeps mostly clean labels
    counts = torch.bincount(straight.data.train_noisy, minlength=10).float()
    assert torch.equal(straight.priors[1], counts / counts.sum())  # untouched before the sieve
    assert not torch.equal(straight.priors[2], straight.priors[1])
    assert straight.priors[3].sum().item() == pytest.approx(1.0)
    r = resumed_after_the_sieve
    assert not torch.equal(r.priors[1], counts / counts.sum())  # the checkpointed prior was a sieved one


def test_fixed_prior_never_moves(data_root):
    m = CORES(_cfg(data_root, prior="fixed", epochs=3, sieve_start=1))
    first = m.prior.clone()
    for _ in range(3):
        m.step()
    assert torch.equal(m.prior, first)


def test_it_learns(straight):
    assert straight.history[-1]["test_acc"] > 0.5
