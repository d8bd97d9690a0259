"""DivideMix: the GMM co-divide and one semi-supervised step against the official code's numbers and a
hand (numpy) computation from the paper's equations, the warm-up's confidence penalty, the lr schedule,
exact resume across the warm-up -> semi-supervised boundary, learning."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import assert_exact_resume, tiny_cfg

import trainables.dividemix as dm
from trainables.dividemix import DivideMix, neg_entropy
from tune_lnl.methods.base import step_lr
from tune_lnl.methods.semi import gmm_clean_probability, linear_rampup

# /work/scratch/dividemix/driver.py runs github LiJunnan1992/DivideMix @ d9d3058fa69a952463b896f84730378cdee6ec39,
# Train_cifar.py (eval_train, train, SemiLoss, linear_rampup) on these inputs; its output.txt holds the numbers.
# (a) eval_train on 12 samples: logits [z_i, 0, 0], noisy label 0
Z = [2.0, 1.2, 1.6, 0.4, 2.4, -0.2, 1.0, 0.1, 1.8, 0.6, 2.2, -0.5]
OFFICIAL_LOSSES = [0.2395448386669159, 0.47149524092674255, 0.3391779363155365, 0.8504244089126587,
                   0.16673049330711365, 1.2362867593765259, 0.5514446496963501, 1.0330687761306763,
                   0.28562837839126587, 0.7408049702644348, 0.20016659796237946, 1.4580200910568237]
OFFICIAL_PROB = [0.9979748086689767, 0.9747728587391931, 0.9945664380028556, 0.0897835955275626, 0.998915517350426,
                 2.241770819195019e-05, 0.9296705675759481, 0.0024804747927868083, 0.9968628779403572,
                 0.41143669155438517, 0.9985699897944178, 6.295097899929624e-08]
# (b) train(epoch=12, warm_up=10), batch_idx 0 of num_iter 2: 4 labeled + 4 unlabeled samples, two views each,
# nets = Linear(5, 3) with these weights, Beta draw 0.3 (l = 0.7), permutation PERM, lambda_u 25, T 0.5, SGD lr 1
XL1 = [[0.5, -1.0, 0.2, 0.0, 1.0], [1.5, 0.3, -0.7, 0.4, 0.0], [-0.2, 0.8, 0.1, -1.2, 0.6], [0.9, 0.9, -0.3, 0.2, -0.5]]
XL2 = [[0.4, -0.8, 0.3, 0.1, 0.9], [1.2, 0.5, -0.5, 0.3, 0.2], [-0.4, 0.7, 0.0, -1.0, 0.5], [1.0, 0.6, -0.2, 0.1, -0.3]]
XU1 = [[0.0, 0.2, 1.1, -0.6, 0.3], [-1.0, -0.4, 0.5, 0.8, 0.0], [0.7, -0.3, -0.9, 0.0, 1.2], [0.2, 1.3, 0.4, 0.5, -0.8]]
XU2 = [[0.1, 0.0, 1.0, -0.4, 0.5], [-0.8, -0.6, 0.6, 0.7, 0.2], [0.5, -0.1, -1.0, 0.2, 1.0], [0.3, 1.1, 0.2, 0.6, -0.6]]
YL, WL = [0, 2, 1, 2], [0.9, 0.6, 0.75, 0.55]
W1, B1 = [[0.3, -0.2, 0.5, 0.1, 0.0], [-0.4, 0.6, 0.0, 0.2, -0.3], [0.1, 0.1, -0.5, 0.3, 0.4]], [0.05, -0.1, 0.0]
W2, B2 = [[0.2, 0.1, 0.3, -0.2, 0.1], [0.0, 0.4, -0.3, 0.1, -0.2], [-0.3, 0.2, 0.2, 0.4, 0.3]], [0.0, 0.1, -0.05]
PERM = [13, 2, 7, 0, 9, 15, 4, 11, 1, 6, 14, 3, 8, 12, 5, 10]
LAM = 0.7
OFFICIAL_LX, OFFICIAL_LU, OFFICIAL_LAMB, OFFICIAL_PENALTY = (1.0046000480651855, 0.009602217935025692, 3.125,
                                                              0.008497290313243866)
OFFICIAL_W_AFTER = [[0.20101326704025269, -0.36838299036026, 0.5593393445014954, 0.11644385755062103,
                     0.0442965105175972],
                    [-0.4270181655883789, 0.6540058851242065, -0.009396635927259922, 0.12837839126586914,
                     -0.2528107762336731],
                    [0.2260049283504486, 0.21437709033489227, -0.549942672252655, 0.35517776012420654,
                     0.3085142970085144]]
OFFICIAL_B_AFTER = [-0.06962285935878754, -0.022110924124717712, 0.04173382744193077]


def test_gmm_division_matches_official():
    logits = torch.tensor([[z, 0.0, 0.0] for z in Z])
    losses = F.cross_entropy(logits, torch.zeros(12, dtype=torch.long), reduction="none")
    assert losses.tolist() == pytest.approx(OFFICIAL_LOSSES, abs=1e-6)
    prob = gmm_clean_probability(losses, seed=0)
    assert prob.tolist() == pytest.approx(OFFICIAL_PROB, abs=1e-5)
    assert (prob > 0.5).tolist() == [p > 0.5 for p in OFFICIAL_PROB]


def _linear(w, b):
    m = torch.nn.Linear(5, 3)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(w))
        m.bias.copy_(torch.tensor(b))
    return m


def _bare(**hp):
    """A DivideMix object with only what step_loss reads (no data loaded)."""
    obj = DivideMix.__new__(DivideMix)
    obj.hp = DivideMix.Hyper(**hp)
    obj.data = type("D", (), {"num_classes": 3})()
    obj.gen = torch.Generator()
    return obj


def _fixed_mixing(monkeypatch):
    monkeypatch.setattr(dm, "beta_lambda", lambda alpha, gen: LAM)
    perm = torch.tensor(PERM)
    monkeypatch.setattr(dm, "mixup",
                        lambda x, t, lam, gen: (lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]))


def hand_step():
    """The paper's step in numpy: co-refinement (w y + (1 - w) p, p the mean of the two views), co-guessing
    (mean of both nets on both views), sharpening T = 0.5, mixup with LAM / PERM, L_X (soft CE), L_U (MSE, the
    code's mean over elements), L_reg (KL of the uniform prior to the mean prediction)."""
    def sm(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def net(w, b, x):
        return np.asarray(x) @ np.asarray(w).T + np.asarray(b)

    def sharpen(p):
        q = p ** 2.0
        return q / q.sum(1, keepdims=True)

    px = (sm(net(W1, B1, XL1)) + sm(net(W1, B1, XL2))) / 2
    y = np.eye(3)[YL]
    w = np.asarray(WL)[:, None]
    tx = sharpen(w * y + (1 - w) * px)
    tu = sharpen(sum(sm(net(wt, bs, x)) for wt, bs in ((W1, B1), (W2, B2)) for x in (XU1, XU2)) / 4)
    inputs = np.concatenate([XL1, XL2, XU1, XU2])
    targets = np.concatenate([tx, tx, tu, tu])
    mixed_x = LAM * inputs + (1 - LAM) * inputs[PERM]
    mixed_t = LAM * targets + (1 - LAM) * targets[PERM]
    z = net(W1, B1, mixed_x)
    logp = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    lx = -(mixed_t[:8] * logp[:8]).sum(1).mean()
    lu = ((np.exp(logp[8:]) - mixed_t[8:]) ** 2).mean()
    pbar = np.exp(logp).mean(0)
    reg = (1 / 3 * np.log((1 / 3) / pbar)).sum()
    return lx, lu, reg


def test_one_step_matches_official_and_hand(monkeypatch):
    _fixed_mixing(monkeypatch)
    lx, lu, reg = hand_step()
    assert (lx, lu, reg) == pytest.approx((OFFICIAL_LX, OFFICIAL_LU, OFFICIAL_PENALTY), rel=1e-5)
    ramp = linear_rampup(12 + 0 / 2, 10, 16.0)  # the official epoch + batch_idx / num_iter
    assert 25.0 * ramp == OFFICIAL_LAMB
    obj, net, other = _bare(lambda_u=25.0, T=0.5, alpha=4.0), _linear(W1, B1), _linear(W2, B2)
    views = [torch.tensor(XL1 + XU1), torch.tensor(XL2 + XU2)]
    loss = obj.step_loss(net, other, views, 4, torch.tensor(YL), torch.tensor(WL), ramp)
    assert loss.item() == pytest.approx(OFFICIAL_LX + OFFICIAL_LAMB * OFFICIAL_LU + OFFICIAL_PENALTY, rel=1e-6)
    loss.backward()
    with torch.no_grad():  # the official SGD(lr=1) step: w - grad
        net.weight -= net.weight.grad
        net.bias -= net.bias.grad
    assert torch.allclose(net.weight, torch.tensor(OFFICIAL_W_AFTER), atol=1e-6)
    assert torch.allclose(net.bias, torch.tensor(OFFICIAL_B_AFTER), atol=1e-6)
    assert other.weight.grad is None  # the other network is fixed


def test_lambda_u_zero_and_no_mixing_is_soft_ce_on_refined_labels(monkeypatch):
    """Paper identities: with lambda_u = lambda_r = 0, alpha = 0 (no mixing) and w = 1 (clean), T = 1, the loss is
    the cross-entropy on the noisy labels of both views."""
    monkeypatch.setattr(dm, "mixup", lambda x, t, lam, gen: (x, t))
    obj, net, other = _bare(lambda_u=0.0, lambda_r=0.0, alpha=0.0, T=1.0), _linear(W1, B1), _linear(W2, B2)
    views = [torch.tensor(XL1 + XU1), torch.tensor(XL2 + XU2)]
    loss = obj.step_loss(net, other, views, 4, torch.tensor(YL), torch.ones(4), 1.0)
    x = torch.tensor(XL1 + XL2)
    expected = F.cross_entropy(net(x), torch.tensor(YL + YL))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_confidence_penalty_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # p = (1/4, 3/4) and (1/2, 1/2)
    hand = ((0.25 * math.log(0.25) + 0.75 * math.log(0.75)) + 2 * 0.5 * math.log(0.5)) / 2
    assert neg_entropy(logits).item() == pytest.approx(hand, rel=1e-6)


def test_lr_schedules():
    hp = DivideMix.Hyper()
    assert hp.lr_schedule == "half" and hp.epochs == 300
    assert step_lr(149, hp) == 0.02 and step_lr(150, hp) == pytest.approx(0.002)
    cos = DivideMix.Hyper(lr_schedule="cosine", epochs=4, lr=1.0)
    hand = [0.01 + 0.99 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]  # lr / 100 + cosine half-wave
    assert [step_lr(e, cos) for e in range(4)] == pytest.approx(hand) and hand[2] == pytest.approx(0.505)


def test_paper_defaults_and_warmup_relation():
    hp = DivideMix.Hyper()
    assert (hp.warmup, hp.p_threshold, hp.T, hp.alpha, hp.lambda_u, hp.lambda_r, hp.lr, hp.batch_size,
            hp.weight_decay, hp.optimizer) == (10, 0.5, 0.5, 4.0, 25.0, 1.0, 0.02, 64, 5e-4, "sgd")
    assert DivideMix.check_config(DivideMix.Hyper(warmup=300, epochs=300))
    assert not DivideMix.check_config(hp)


def test_exact_resume_across_warmup_boundary_and_learns(tmp_path, data_root):
    cfg = tiny_cfg("dividemix", data_root, epochs=4, warmup=2, optimizer="adam", lr=1e-3, weight_decay=0.0,
                   train_subset=512, test_subset=256, augment=False)
    straight = assert_exact_resume(lambda: DivideMix(cfg), tmp_path / "ckpt.pt", epochs=4)
    phases = [m["phase"] for m in straight.history]
    assert phases == [1, 1, 2, 2]  # the checkpoint at epoch 2 sits on the warm-up -> semi-supervised boundary
    last = straight.history[-1]
    assert 0 < last["n_labeled"] < 512 * 0.9 and last["selection_precision"] > 0.85
    assert last["test_acc"] > 0.5
