"""Analytics of noisy-label training (logged, never selecting): the two networks' divergence, the
label-correction shares, the precision of small-loss selections, against hand computations; the
methods' epoch metrics against independent recomputations on a tiny real-MNIST run; Co-teaching+'s
update by disagreement on a hand-made batch."""
import dataclasses
import math

import pytest
import torch
from method_helpers import tiny_cfg

from trainables.coteaching import CoTeaching
from trainables.coteaching_plus import CoTeachingPlus, disagreement_update
from trainables.jocor import JoCoR
from trainables.mlc import MLC
from trainables.pencil import PENCIL
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.analytics import SelectionMeter, divergence, label_correction
from tune_lnl.methods.selection import cross_update


def is_nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


# -- divergence: KL(p||q) + KL(q||p), mean over the rows ---------------------------------------------

def test_divergence_by_hand():
    p = [[0.5, 0.3, 0.2], [0.7, 0.2, 0.1]]
    q = [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]
    row1 = (0.5 * math.log(0.5 / 0.2) + 0.3 * math.log(0.3 / 0.3) + 0.2 * math.log(0.2 / 0.5)     # KL(p||q)
            + 0.2 * math.log(0.2 / 0.5) + 0.3 * math.log(0.3 / 0.3) + 0.5 * math.log(0.5 / 0.2))  # KL(q||p)
    row2 = (0.7 * math.log(0.7 / 0.1) + 0.2 * math.log(0.2 / 0.1) + 0.1 * math.log(0.1 / 0.8)
            + 0.1 * math.log(0.1 / 0.7) + 0.1 * math.log(0.1 / 0.2) + 0.8 * math.log(0.8 / 0.1))
    # logits = log p, shifted per row (softmax is shift-invariant: the function must normalise)
    logits_p = torch.tensor(p, dtype=torch.float64).log() + torch.tensor([[2.0], [-3.0]], dtype=torch.float64)
    logits_q = torch.tensor(q, dtype=torch.float64).log() + torch.tensor([[-1.0], [0.5]], dtype=torch.float64)
    assert divergence(logits_p, logits_q) == pytest.approx((row1 + row2) / 2, rel=1e-12)


def test_divergence_zero_for_identical_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 10, generator=g), torch.randn(7, 10, generator=g)
    assert divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    assert divergence(a, a + 4.0) == pytest.approx(0.0, abs=1e-12)  # same probabilities
    assert divergence(a, b) > 0
    assert divergence(a, b) == pytest.approx(divergence(b, a), rel=1e-12)


def test_divergence_of_no_rows_is_nan():
    assert is_nan(divergence(torch.empty(0, 10), torch.empty(0, 10)))


# -- label correction: share of corrected labels equal to the clean label -----------------------------

def test_label_correction_by_hand():
    #                  0  1  2  3  4  5  6  7   8   9
    clean = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, -1, -1])  # 8, 9: clean label unknown
    noisy = torch.tensor([0, 1, 2, 3, 9, 9, 9, 9, 2, 5])    # 0-3 were clean, 4-7 were noisy
    corrected = torch.tensor([0, 1, 2, 9, 4, 9, 9, 7, 2, 5])
    # right (corrected == clean) among the known 0-7: 0, 1, 2, 4, 7 -> 5 / 8
    # originally clean 0-3: 0, 1, 2 kept -> 3 / 4;  originally noisy 4-7: 4, 7 corrected -> 2 / 4
    # (were 8, 9 counted: 5 / 10 overall and 2 / 6 among the noisy)
    got = label_correction(corrected, noisy, clean)
    assert got == {"label_acc": pytest.approx(5 / 8), "label_acc_clean": pytest.approx(3 / 4),
                   "label_acc_noisy": pytest.approx(2 / 4)}


def test_label_correction_empty_groups_are_nan():
    clean = torch.tensor([0, 1, 2])
    got = label_correction(torch.tensor([0, 2, 2]), clean.clone(), clean)  # no noisy sample
    assert got["label_acc"] == pytest.approx(2 / 3) and got["label_acc_clean"] == pytest.approx(2 / 3)
    assert is_nan(got["label_acc_noisy"])
    unknown = torch.full((3,), -1)
    got = label_correction(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), unknown)  # nothing known
    assert all(is_nan(v) for v in got.values())


# -- selection precision: selected samples whose noisy label is clean / selected samples -------------

#                              0  1  2  3  4  5  6  7   8   9   (dataset index)
TRAIN_CLEAN = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, -1, -1])
TRAIN_NOISY = torch.tensor([0, 1, 5, 3, 0, 5, 6, 1, 4, 4])
# noisy == clean ("good"): 0, 1, 3, 5, 6;  wrong: 2, 4, 7;  unknown: 8, 9


def test_selection_meter_by_hand():
    meter = SelectionMeter(TRAIN_NOISY, TRAIN_CLEAN)
    idx = torch.tensor([7, 2, 9, 0, 5])            # batch positions 0..4
    by_position = torch.tensor([0, 3, 2])          # datasets 7 (wrong), 0 (good), 9 (unknown)
    by_mask = torch.tensor([False, True, False, True, True])  # 2 (wrong), 0 (good), 5 (good)
    assert by_position.dtype == torch.int64
    meter.add(idx, by_position, by_mask)
    assert meter.precision == pytest.approx((1 + 2) / (2 + 3))
    # a second batch accumulates: datasets 3 (good) and 8 (unknown) selected
    meter.add(torch.tensor([3, 8, 4, 6]), torch.tensor([0, 1]))
    assert meter.precision == pytest.approx((1 + 2 + 1) / (2 + 3 + 1))


def test_selection_meter_without_selection_is_nan():
    assert is_nan(SelectionMeter(TRAIN_NOISY, TRAIN_CLEAN).precision)  # nothing added
    meter = SelectionMeter(TRAIN_NOISY, TRAIN_CLEAN)
    idx = torch.tensor([8, 9, 0])
    meter.add(idx, torch.tensor([0, 1]), torch.tensor([True, True, False]))  # only unknown ones
    meter.add(idx, torch.empty(0, dtype=torch.int64), torch.zeros(3, dtype=torch.bool))
    assert is_nan(meter.precision)


def test_cross_update_returns_each_networks_selection():
    loss_a = torch.tensor([0.1, 0.9, 0.5, 0.3, 2.0])
    loss_b = torch.tensor([0.8, 0.2, 0.4, 1.5, 0.1])
    # forget 0.4 of 5 -> keep int(0.6 * 5) = 3 smallest of each network's own losses
    _, _, keep_by_a, keep_by_b = cross_update(loss_a, loss_b, 0.4)
    assert sorted(keep_by_a.tolist()) == [0, 2, 3]
    assert sorted(keep_by_b.tolist()) == [1, 2, 4]


# -- Co-teaching+: update by disagreement ------------------------------------------------------------

def _ce_by_hand(row, label):
    return math.log(sum(math.exp(v) for v in row)) - row[label]


def test_disagreement_update_by_hand():
    labels = [0] * 5
    # A's rows [a, 1, 0]: predicts 0 if a > 1 else 1, its CE decreases with a;
    # B's rows [b, 0, 1]: predicts 0 if b > 1 else 2, its CE decreases with b
    a = [3.0, 4.0, 0.5, 2.0, -1.0]   # A predicts 0, 0, 1, 0, 1
    b = [0.0, 5.0, 2.5, -2.0, 0.9]   # B predicts 2, 0, 0, 2, 2  -> disagree on 0, 2, 3, 4 (n = 4)
    rows_a, rows_b = [[v, 1.0, 0.0] for v in a], [[v, 0.0, 1.0] for v in b]
    # forget 0.5: keep int(0.5 * 4) = 2 among the disagreeing samples (sample 1, the smallest loss
    # of both, agrees and is never picked). A's 2 smallest: a = 3.0, 2.0 -> {0, 3};
    # B's 2 smallest: b = 2.5, 0.9 -> {2, 4}. A trains on B's selection, B on A's.
    train_a, train_b, n_disagree, on_a, on_b = disagreement_update(
        torch.tensor(rows_a, dtype=torch.float64), torch.tensor(rows_b, dtype=torch.float64),
        torch.tensor(labels), 0.5)
    assert int(n_disagree) == 4
    assert on_a.dtype == torch.bool and on_b.dtype == torch.bool
    assert on_a.tolist() == [False, False, True, False, True]
    assert on_b.tolist() == [True, False, False, True, False]
    assert float(train_a) == pytest.approx((_ce_by_hand(rows_a[2], 0) + _ce_by_hand(rows_a[4], 0)) / 2, rel=1e-12)
    assert float(train_b) == pytest.approx((_ce_by_hand(rows_b[0], 0) + _ce_by_hand(rows_b[3], 0)) / 2, rel=1e-12)

    # forget 0.9: int(0.1 * 4) = 0 -> at least one sample is kept: A's {0}, B's {2}
    *_, on_a, on_b = disagreement_update(torch.tensor(rows_a), torch.tensor(rows_b), torch.tensor(labels), 0.9)
    assert on_a.tolist() == [False, False, True, False, False]
    assert on_b.tolist() == [True, False, False, False, False]


def test_disagreement_update_without_disagreement_trains_on_whole_batch():
    rows_a = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 3.0]]
    rows_b = [[1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [-1.0, 0.0, 0.5]]  # same arg-max: 0, 1, 2
    labels = [0, 2, 1]
    train_a, train_b, n_disagree, on_a, on_b = disagreement_update(
        torch.tensor(rows_a, dtype=torch.float64), torch.tensor(rows_b, dtype=torch.float64),
        torch.tensor(labels), 0.5)
    assert int(n_disagree) == 0
    assert on_a.tolist() == [True] * 3 and on_b.tolist() == [True] * 3
    assert float(train_a) == pytest.approx(sum(_ce_by_hand(r, y) for r, y in zip(rows_a, labels)) / 3, rel=1e-12)
    assert float(train_b) == pytest.approx(sum(_ce_by_hand(r, y) for r, y in zip(rows_b, labels)) / 3, rel=1e-12)


# -- the methods' epoch metrics on a tiny MNIST run ---------------------------------------------------

TWO_NETWORKS = {"coteaching": CoTeaching, "coteaching_plus": CoTeachingPlus, "jocor": JoCoR, "mlc": MLC}
#: MLC / PENCIL: epoch 1 is stage 1 (label table untouched), epoch 2 stage 2 (it is corrected)
STAGES = {"stage1": 1, "stage2": 3}
#: per-method overrides of the 2-epoch runs; Co-teaching+: epoch 1 plain Co-teaching, epoch 2
#: by disagreement (its selections reach the meter as boolean masks)
OVERRIDES = {"mlc": STAGES, "coteaching_plus": {"init_epoch": 1}}


def _cfg(method, data_root, **kw):
    """300 MNIST images (269 train, 31 noisy_val), 40% symmetric noise, no augmentation; the
    forget rate ramps 0 -> forget_rate over 2 epochs (epoch 1 selects every sample)."""
    return tiny_cfg(method, data_root, noise_rate=0.4, train_subset=300, test_subset=128, augment=False,
                    num_gradual=2, **kw)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The runs are tiny: one intra-op thread (several cost ~1 s a step on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg("coteaching", data_root))


@pytest.fixture(scope="module")
def trained(data, data_root):
    """``trained(name)``: the method after 2 epochs (built once per module)."""
    runs = {}

    def get(name):
        if name not in runs:
            m = TWO_NETWORKS[name](_cfg(name, data_root, **OVERRIDES.get(name, {})), data)
            m.step()
            m.step()
            runs[name] = m
        return runs[name]
    return get


def clean_share(noisy, clean):
    """Share of the training samples whose noisy label is the clean one."""
    return (noisy == clean).sum().item() / noisy.numel()


@torch.no_grad()
def kl_by_hand(net_a, net_b, x_uint8):
    """Mean over the images of KL(p_a||p_b) + KL(p_b||p_a), p = softmax of each network (eval)."""
    x = x_uint8.float() / 255.0
    modes = net_a.training, net_b.training
    net_a.eval(), net_b.eval()
    log_pa = torch.log_softmax(net_a(x).double(), dim=1)
    log_pb = torch.log_softmax(net_b(x).double(), dim=1)
    net_a.train(modes[0]), net_b.train(modes[1])
    pa, pb = log_pa.exp(), log_pb.exp()
    kl_ab = (pa * (log_pa - log_pb)).sum(1)
    kl_ba = (pb * (log_pb - log_pa)).sum(1)
    return (kl_ab + kl_ba).mean().item()


@pytest.mark.parametrize("name", sorted(TWO_NETWORKS))
def test_select_precision_of_first_epoch_is_the_clean_share(trained, data, name):
    m = trained(name)
    assert data.train_x.shape[0] % m.cfg["batch_size"] != 1  # no training sample left out
    first, second = m.history
    assert first["forget_rate"] == 0.0 and second["forget_rate"] > 0.0
    # forget rate 0: every training sample is selected (by both networks)
    assert first["select_precision"] == pytest.approx(clean_share(data.train_noisy, data.train_clean), rel=1e-12)
    assert 0.0 <= second["select_precision"] <= 1.0


@pytest.mark.parametrize("name", sorted(TWO_NETWORKS))
def test_divergence_metrics_match_kl_by_hand(trained, data, name):
    m = trained(name)
    last = m.history[-1]
    assert {k for k in last if k.startswith("divergence")} == {"divergence_test", "divergence_noisy_val"}
    assert last["divergence_test"] == pytest.approx(kl_by_hand(m.net_a, m.net_b, data.test_x), rel=1e-6)
    assert last["divergence_noisy_val"] == pytest.approx(kl_by_hand(m.net_a, m.net_b, data.val_x), rel=1e-6)
    assert last["divergence_test"] > 0  # two differently initialised networks


def test_no_divergence_without_held_out_split(data, data_root):
    no_val = dataclasses.replace(data, val_x=data.val_x[:0], val_noisy=data.val_noisy[:0],
                                 val_clean=data.val_clean[:0])
    metrics = CoTeaching(_cfg("coteaching", data_root, proxy="clean_intact", epochs=1), no_val).step()
    assert {k for k in metrics if k.startswith("divergence")} == {"divergence_test"}  # not on clean_intact


def label_shares_by_hand(table, noisy, clean):
    right = table.argmax(1) == clean
    was_clean = noisy == clean
    share = lambda hits: hits.sum().item() / hits.numel()
    return {"label_acc": share(right), "label_acc_clean": share(right[was_clean]),
            "label_acc_noisy": share(right[~was_clean])}


def _check_label_analytics(history, table, data):
    after_stage1, after_stage2 = history
    assert (after_stage1["stage"], after_stage2["stage"]) == (1, 2)
    # stage 1 corrects nothing: the table's arg-max is the noisy label
    assert after_stage1["label_acc_clean"] == 1.0 and after_stage1["label_acc_noisy"] == 0.0
    assert after_stage1["label_acc"] == pytest.approx(clean_share(data.train_noisy, data.train_clean), rel=1e-12)
    # after a stage-2 epoch: the shares of the corrected table, recounted
    want = label_shares_by_hand(table, data.train_noisy, data.train_clean)
    assert {k: after_stage2[k] for k in want} == pytest.approx(want, rel=1e-12)


def test_mlc_label_analytics(trained, data):
    m = trained("mlc")
    _check_label_analytics(m.history, m.ytilde, data)


def test_pencil_label_analytics(data, data_root):
    m = PENCIL(_cfg("pencil", data_root, **STAGES), data)
    m.step()
    assert torch.equal(m.ytilde.argmax(1), data.train_noisy)  # stage 1: the table is still K * onehot(noisy)
    m.step()
    _check_label_analytics(m.history, m.ytilde, data)
    assert not any(k.startswith("divergence") or k == "select_precision" for k in m.history[-1])  # one network
