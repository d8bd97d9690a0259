"""PES(semi): the selection rule, the class weights and batch split, one MixMatch step against a NumPy
computation written from the equations and against the official code's numbers, the layer groups, the
stages (what is re-initialised and what is frozen when), exact resume across every stage boundary and
inside each multi-epoch stage, learning."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import TIMING, _tensors, tiny_cfg

from trainables.pes_semi import PESSemi, batch_sizes, class_weights, confident_mask, pes_mixmatch_loss
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.base import step_lr
from tune_lnl.methods.layer_groups import last_parts, layer_parts, parameters_of, reinitialise
from tune_lnl.methods.semi import cycled_batches, linear_rampup, mixmatch_loss
from tune_lnl.models import build_model

# ---- the official code's numbers ---------------------------------------------------------------------
# github tmllab/PES @ 54662382dca22f314911488d79711cffa7fbf1a0, PES_semi.py: splite_confident,
# update_trainloader (class weights, loader batch sizes), linear_rampup and one iteration of MixMatch_train,
# run by /work/scratch/pes_semi/driver.py (output.txt there) on these inputs, float32, CPU.
SOFT = [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.8, 0.1, 0.1], [0.4, 0.35, 0.25],
        [0.9, 0.05, 0.05], [0.55, 0.25, 0.2], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.3, 0.6, 0.1]]
NOISY = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2]
OFFICIAL_CONFIDENT = [0, 1, 2, 3, 4, 5, 6, 7]
OFFICIAL_CLASS_WEIGHTS = [0.5714285969734192, 3.0, 0.0]
OFFICIAL_BATCHES = (13, 3)  # labeled / unlabeled loader batch sizes for batch_size 16
# MixMatch_train: nn.Linear(4, 3) with W, b below, labeled x1/x2 (labels 0, 2), unlabeled u1/u2, T 0.5,
# mixup weight Beta draw 0.3 (-> 0.7), permutation PERM, class weights CW, lambda_u 150, T1 20, epoch 28
W = [[0.5, -0.2, 0.1, 0.3], [-0.4, 0.6, 0.2, -0.1], [0.1, 0.1, -0.5, 0.4]]
B = [0.05, -0.1, 0.2]
X1 = [[1.0, 0.5, -0.5, 0.2], [0.3, -1.0, 0.8, 0.1]]
X2 = [[0.9, 0.6, -0.4, 0.1], [0.2, -0.9, 0.7, 0.3]]
U1 = [[-0.5, 1.2, 0.3, -0.7], [0.6, 0.4, -1.1, 0.9]]
U2 = [[-0.4, 1.0, 0.2, -0.6], [0.7, 0.5, -1.0, 0.8]]
TX = [0, 2]
PERM = [7, 0, 3, 4, 1, 5, 2, 6]  # torch.randperm(8, generator=torch.Generator().manual_seed(7))
CW = [1.0, 3.0, 0.5]
LAM, T, LAMBDA_U = 0.7, 0.5, 150.0
OFFICIAL_LX, OFFICIAL_LU, OFFICIAL_LOSS = 0.9191394448280334, 0.018645627424120903, 2.317561388015747
OFFICIAL_GRAD_W = [[0.20762693881988525, 0.5661402344703674, -0.5276523232460022, 0.47047215700149536],
                   [0.2798120975494385, -0.7248942255973816, -0.44937410950660706, 0.6324666142463684],
                   [-0.48743900656700134, 0.15875402092933655, 0.9770264029502869, -1.1029386520385742]]
OFFICIAL_GRAD_B = [1.3907842636108398, -0.8994687795639038, -0.4913156032562256]


def test_selection_rule_class_weights_and_batch_split_match_the_official_code():
    mask = confident_mask(torch.tensor(SOFT).log(), torch.tensor(NOISY))
    assert mask.nonzero().squeeze(1).tolist() == OFFICIAL_CONFIDENT
    # by hand: labeled noisy labels 0 x7, 1 x1 -> counts (7, 1, 0), mean of the non-zero counts 4:
    # w = (4/7, 4 -> capped at 3, 0)
    w = class_weights(torch.tensor(NOISY)[mask], 3)
    assert w.tolist() == pytest.approx([4 / 7, 3.0, 0.0]) and w.tolist() == pytest.approx(OFFICIAL_CLASS_WEIGHTS)
    # n_l 8 >= n_u 2: b_u = int(2 / 10 * 16) = 3, b_x = 13; more unlabeled than labeled: half each
    assert batch_sizes(8, 2, 16) == OFFICIAL_BATCHES
    assert batch_sizes(3, 7, 16) == (8, 8) and batch_sizes(5, 0, 16) == (16, 0)


def test_cycled_batches_walk_through_permutations():
    pool = torch.tensor([10, 11, 12, 13, 14])
    batches = cycled_batches(pool, 2, 4, torch.Generator().manual_seed(0))
    flat = torch.cat(batches).tolist()
    assert [len(b) for b in batches] == [2, 2, 2, 2]
    assert sorted(flat[:5]) == pool.tolist()  # one whole permutation first, then a fresh one
    assert len(set(flat[5:])) == 3 and set(flat[5:]) <= set(pool.tolist())
    assert [b.numel() for b in cycled_batches(pool[:0], 3, 2, torch.Generator())] == [0, 0]
    assert cycled_batches(pool, 2, 0, torch.Generator()) == []


def _net():
    net = torch.nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(W))
        net.bias.copy_(torch.tensor(B))
    return net


def numpy_mixmatch():
    """MixMatch written out in NumPy (float64): guess, sharpen, mix, Lx (class-weighted), Lu, L."""
    w, b = np.array(W), np.array(B)

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    pu = (softmax(np.array(U1) @ w.T + b) + softmax(np.array(U2) @ w.T + b)) / 2
    q = pu ** (1 / T) / (pu ** (1 / T)).sum(1, keepdims=True)
    y = np.eye(3)[TX]
    inputs = np.concatenate([X1, X2, U1, U2])
    targets = np.concatenate([y, y, q, q])
    mx = LAM * inputs + (1 - LAM) * inputs[PERM]
    mt = LAM * targets + (1 - LAM) * targets[PERM]
    z = mx @ w.T + b
    logp = np.log(softmax(z))
    lx = float((-(logp[:4] * mt[:4]).mean(0) * np.array(CW)).sum())
    lu = float(((softmax(z[4:]) - mt[4:]) ** 2).mean())
    return lx, lu, lx + LAMBDA_U * 0.5 * lu  # ramp (28 - 20) / 16 = 0.5


def test_mixmatch_step_by_hand_and_against_the_official_code():
    gen = torch.Generator().manual_seed(7)
    assert torch.randperm(8, generator=torch.Generator().manual_seed(7)).tolist() == PERM  # what mixup draws
    net = _net()
    y = F.one_hot(torch.tensor(TX), 3)
    lx, lu = pes_mixmatch_loss(net, [torch.tensor(X1), torch.tensor(X2)], [torch.tensor(U1), torch.tensor(U2)], y,
                               T, LAM, torch.tensor(CW), gen)
    loss = lx + LAMBDA_U * linear_rampup(28.0, 20) * lu
    hand = numpy_mixmatch()
    got = (lx.item(), lu.item(), loss.item())
    assert got == pytest.approx(hand, rel=1e-5)
    assert got == pytest.approx((OFFICIAL_LX, OFFICIAL_LU, OFFICIAL_LOSS), rel=1e-6)
    loss.backward()
    assert np.allclose(net.weight.grad.numpy(), OFFICIAL_GRAD_W, rtol=1e-5, atol=1e-6)
    assert np.allclose(net.bias.grad.numpy(), OFFICIAL_GRAD_B, rtol=1e-5, atol=1e-6)


def test_class_weighted_lx_identities():
    """PES's class-balanced Lx (the shared mixmatch_loss with class_weights) by hand."""
    z = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    t = torch.tensor([[0.6, 0.3, 0.1], [0.0, 0.0, 1.0]])
    u = torch.tensor([[0.0, 1.0, 0.0]])
    # all weights 1: the plain Lx; by hand: mean_b -sum_c t_c log softmax(z)_c
    logp = F.log_softmax(z, dim=1)
    plain = float(-(t * logp).sum(1).mean())
    assert float(mixmatch_loss(z, t, u, u, torch.ones(3))[0]) == pytest.approx(plain)
    assert float(mixmatch_loss(z, t, u, u)[0]) == pytest.approx(plain)
    # one-hot targets: the class-weighted cross entropy sum_b w_yb CE_b / B
    y = torch.tensor([2, 0])
    w = torch.tensor([0.5, 2.0, 3.0])
    expect = float((w[y] * F.cross_entropy(z, y, reduction="none")).mean())
    assert float(mixmatch_loss(z, F.one_hot(y, 3).float(), u, u, w)[0]) == pytest.approx(expect)


def test_cosine_lr_is_torchs_cosine_annealing():
    """The shared ``cosine`` schedule (tune_lnl.methods.base.step_lr) over PES's main epochs = torch's
    CosineAnnealingLR with eta_min = lr / 100 (PES's default lr_final 0.01; ProMix's 0.001 likewise)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.02)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10, 0.02 / 100)
    hp_ = PESSemi.Hyper(lr=0.02)
    assert (hp_.lr_schedule, hp_.lr_final) == ("cosine", 0.01)
    for m in range(10):
        assert step_lr(m, hp_, 0, 10) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


def test_layer_parts_of_the_backbones():
    mlp = build_model("mlp", 10, (1, 28, 28))
    assert [type(p).__name__ for p in layer_parts(mlp)] == ["Linear", "Linear"]
    r34 = build_model("resnet34", 10, (3, 32, 32))
    assert last_parts(r34, 2) == [r34.layer4, r34.fc]  # the paper's parts 2 and 3
    assert last_parts(r34, 1) == [r34.fc]
    r18 = build_model("resnet18", 14, (3, 224, 224))  # behind its Normalize wrapper
    assert last_parts(r18, 2) == [r18.backbone.layer4, r18.backbone.fc]
    r20 = build_model("resnet20", 10, (3, 32, 32))
    assert layer_parts(r20) == [r20.conv, r20.bn, r20.blocks, r20.fc]
    cnn = build_model("cnn6", 10, (3, 32, 32))
    assert layer_parts(cnn) == [cnn.features, cnn.classifier]


def test_reinitialise_keeps_the_parameters_and_the_global_rng():
    torch.manual_seed(0)
    net = build_model("mlp", 10, (1, 28, 28))
    fc = last_parts(net, 1)
    before, objects = [p.detach().clone() for p in parameters_of(fc)], parameters_of(fc)
    first = net.net[1].weight.detach().clone()
    rng = torch.get_rng_state()
    reinitialise(fc, 5)
    assert torch.equal(torch.get_rng_state(), rng)
    assert parameters_of(last_parts(net, 1)) == objects and torch.equal(net.net[1].weight, first)
    assert not any(torch.equal(a, p) for a, p in zip(before, objects))
    again = [p.detach().clone() for p in objects]
    reinitialise(fc, 5)
    assert all(torch.equal(a, p) for a, p in zip(again, objects))  # seeded


def test_check_config_and_defaults():
    h = PESSemi.Hyper()
    assert (h.T1, h.T2, h.T3, h.lr2, h.lr3, h.rampup_length) == (20, 0, 5, 1e-4, 1e-4, 16.0)
    assert (h.lambda_u, h.T, h.alpha, h.alpha2, h.epochs, h.lr, h.weight_decay) == (150.0, 0.5, 4.0, 0.75, 300,
                                                                                   0.02, 5e-4)
    assert PESSemi.check_config(h) == []
    assert PESSemi.check_config(PESSemi.Hyper(T1=3, T2=1, T3=1, epochs=5))


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="symmetric", noise_rate=0.4, optimizer="adam", lr=1e-3, weight_decay=0.0, augment=False,
                 train_subset=512, lambda_u=5.0, epochs=6, T1=1, T2=1, T3=2), **kw}
    return tiny_cfg("pes_semi", data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


def _params(m):
    return [p.detach().clone() for p in m.net.parameters()]


@pytest.mark.parametrize("variant, stages, resume_at", [
    ("official", (1, 2, 3, 3, 4, 4), (1, 2, 3, 4, 5)),  # T1 1, T2 1, T3 2
    ("paper", (1, 3, 4), (2,)),                        # T1 1, T2 0, T3 1
])
def test_stages_freeze_and_reinitialise_and_resume_exactly(variant, stages, resume_at, data, data_root, tmp_path):
    """What each epoch changes, and a checkpoint after every epoch from which one resumed epoch equals the
    uninterrupted run's (official: at every stage boundary, inside stage 3 (its Adam restored) and inside
    stage 4; paper: at the boundary where the variants part)."""
    kw = dict(variant=variant, epochs=len(stages), T2=stages.count(2), T3=stages.count(3))
    make = lambda: PESSemi(_cfg(data_root, **kw), data)  # noqa: E731
    m, snaps = make(), []
    for e in range(len(stages)):
        before = _params(m)
        metrics = m.step()
        changed = [not torch.equal(a, b) for a, b in zip(before, _params(m))]  # the MLP's two Linear layers
        assert metrics["stage"] == stages[e]
        if metrics["stage"] in (2, 3):  # the MLP's stage 2 is its output layer too (never the first part)
            assert changed == [False, False, True, True]
        elif metrics["stage"] == 4:
            assert changed == ([True, True, False, False] if variant == "official" else [True] * 4)
            assert 0 < metrics["n_labeled"] <= m.data.n_train
        m.save(tmp_path / f"{e + 1}.pt")
        snaps.append(copy.deepcopy(m.state_dict()))  # (a state_dict refers to the live tensors)
    strip = lambda h: [{k: v for k, v in x.items() if k not in TIMING} for x in h]  # noqa: E731
    for s in resume_at:
        r = make()
        r.load(tmp_path / f"{s}.pt")
        r.step()
        got, want = r.state_dict(), snaps[s]
        a, b = (_tensors({"m": x["method_state"], "g": x["generator"]}) for x in (got, want))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k], (s, k)
        assert strip(got["history"]) == strip(want["history"]), s


def test_learns_and_selects_mostly_clean_labels(data, data_root):
    """512 images, 40% symmetric noise: 3 epochs of CE, the output layer refined, 2 MixMatch epochs."""
    m = PESSemi(_cfg(data_root, epochs=6, T1=3, T2=0, T3=1, lr3=1e-2, lr_schedule="constant", variant="paper"), data)
    for _ in range(6):
        metrics = m.step()
    assert metrics["stage"] == 4 and metrics["test_acc"] > 0.55
    assert metrics["selection_precision"] > 0.8  # the labeled set is far cleaner than the 60% of all labels
