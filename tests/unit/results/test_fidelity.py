"""Proxy fidelity (tune_lnl/fidelity.py) against hand-computed Kendall tau, Spearman rho and
regrets on tiny tables; the ``clean_val`` subset of synthetic-noise data against its definition
(disjoint from training and the noisy hold-out, original labels, nested across sizes)."""
import math

import pytest
import torch

from tune_lnl.data import load_noisy_data
from tune_lnl.results import fidelity


def _run(proxy_values, tests, key="noisy_val"):
    return [{"epoch": i + 1, f"{key}_acc": p, "test_acc": t} for i, (p, t) in enumerate(zip(proxy_values, tests))]


def test_search_fidelity_by_hand():
    # four trials, each read at its proxy-best epoch (the FIRST epoch of the maximum)
    trials = [_run([0.05, 0.10, 0.10], [0.99, 0.50, 0.40]),  # best proxy 0.10 at epoch 2 -> test 0.50
              _run([0.20], [0.70]),
              _run([0.30, 0.25], [0.60, 0.95]),              # epoch 1 -> test 0.60 (not the 0.95 of epoch 2)
              _run([0.40], [0.80])]
    # P = [.1, .2, .3, .4], T = [.5, .7, .6, .8]: of the 6 pairs only (2, 3) is discordant
    # tau = (5 - 1) / 6; ranks of T = 1, 3, 2, 4: sum d^2 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8
    f = fidelity.search_fidelity(trials, "noisy_val")
    assert f["trials"] == 4
    assert f["search_tau"] == pytest.approx(4 / 6)
    assert f["search_rho"] == pytest.approx(0.8)
    assert f["search_regret"] == pytest.approx(0.0)  # the proxy's pick (0.8) is the test's pick


def test_search_regret_and_negative_correlation_by_hand():
    trials = [_run([0.3], [0.6]), _run([0.2], [0.9]), _run([0.1], [0.7])]
    # pairs (1,2), (1,3) discordant, (2,3) concordant: tau = (1 - 2) / 3
    # P ranks 3, 2, 1; T ranks 1, 3, 2: d = 2, -1, -1, sum d^2 = 6: rho = 1 - 36 / 24 = -0.5
    f = fidelity.search_fidelity(trials, "noisy_val")
    assert f["search_tau"] == pytest.approx(-1 / 3)
    assert f["search_rho"] == pytest.approx(-0.5)
    assert f["search_regret"] == pytest.approx(100 * (0.9 - 0.6))  # 30 percentage points (>= 0 by definition)
    assert (f["search_selected_test"], f["search_oracle_test"]) == pytest.approx((60.0, 90.0))


def test_proxy_ties_select_the_first_trial():
    trials = [_run([0.5], [0.6]), _run([0.5], [0.9])]
    assert fidelity.search_fidelity(trials, "noisy_val")["search_regret"] == pytest.approx(30.0)


def test_finals_fidelity_by_hand():
    seed1 = _run([0.2, 0.5, 0.4], [0.7, 0.8, 0.9])
    # proxy-best epoch 2 -> 0.8, oracle epoch 3 -> 0.9: regret 10 pp
    # tau: (1,2) conc, (1,3) conc, (2,3) disc -> 1/3; P ranks 1, 3, 2 vs 1, 2, 3 -> rho = 1 - 6*2/24 = 0.5
    seed2 = _run([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])  # perfect: tau = rho = 1, regret 0
    f = fidelity.finals_fidelity([seed1, seed2], "noisy_val")
    assert f["seeds"] == 2
    assert f["finals_tau"] == pytest.approx((1 / 3 + 1) / 2)
    assert f["finals_rho"] == pytest.approx((0.5 + 1) / 2)
    assert f["finals_regret"] == pytest.approx((10.0 + 0.0) / 2)


def test_undefined_correlations_are_nan_and_unlogged_proxies_absent():
    assert all(math.isnan(v) for v in fidelity.correlations([0.1], [0.2]))
    assert all(math.isnan(v) for v in fidelity.correlations([0.1, 0.1], [0.2, 0.3]))  # constant proxy
    assert fidelity.search_fidelity([_run([0.1], [0.2])], "clean_val") == {}  # never logged
    assert fidelity.finals_fidelity([_run([0.1], [0.2])], "clean_val") == {}


def _cfg(data_root, **kw):
    return {"dataset": "mnist", "data_root": str(data_root), "noise_type": "symmetric", "noise_rate": 0.4,
            "noise_seed": 3, "proxy": "noisy_val", "val_fraction": 0.1, "train_subset": 4000, **kw}


def test_clean_val_is_disjoint_clean_and_nested(data_root):
    d = load_noisy_data(_cfg(data_root, clean_val_size=500))
    idx = d.split_index
    tr, va, cv = (set(idx[k].tolist()) for k in ("train", "noisy_val", "clean_val"))
    assert len(cv) == 500 and len(tr) == idx["train"].numel() and len(va) == idx["noisy_val"].numel()
    assert not (cv & tr) and not (cv & va) and not (tr & va)
    assert tr | va | cv == set(range(4000))  # every image in exactly one split
    # the clean subset carries the ORIGINAL labels: those of the same images without any noise
    clean = load_noisy_data(_cfg(data_root, noise_type="none", noise_rate=0.0, proxy="clean_intact"))
    assert torch.equal(d.cval_x, clean.train_x[idx["clean_val"]])
    assert torch.equal(d.cval_y, clean.train_clean[idx["clean_val"]])
    assert torch.equal(d.train_x, clean.train_x[idx["train"]])  # training never sees a held-out image
    # a larger trusted set contains the smaller one (the same seeded draw), and the split does not
    # depend on which proxy selects
    small = load_noisy_data(_cfg(data_root, clean_val_size=100))
    assert set(small.split_index["clean_val"].tolist()) < cv
    same = load_noisy_data(_cfg(data_root, clean_val_size=500, proxy="clean_val"))
    for k in ("train", "noisy_val", "clean_val"):
        assert torch.equal(same.split_index[k], idx[k])


def test_every_proxy_is_logged_each_epoch(data_root):
    from trainables.ce import CE
    cfg = {**_cfg(data_root, clean_val_size=200, proxy="clean_val", test_subset=500), "method": "ce", "seed": 1,
           "epochs": 1, "batch_size": 128, "lr": 1e-3, "model": "mlp", "augment": False, "device": "cpu"}
    m = CE({**CE.defaults, **cfg})
    metrics = m.step()
    for p in ("noisy_val", "clean_val", "clean_intact"):
        assert 0.0 <= metrics[f"{p}_acc"] <= 1.0
    assert metrics["proxy"] == metrics["clean_val_acc"]  # the configured one selects


def test_clean_intact_scores_a_fixed_sample_unless_it_selects(data_root):
    """On full MNIST (54,000 training images after the hold-out) the logged-only clean_intact
    scores a seeded sample of CLEAN_INTACT_SAMPLE training images with their clean labels, the
    same at every load; selecting, it scores every training image; a small training set is
    scored whole."""
    from tune_lnl.data.splits import CLEAN_INTACT_SAMPLE
    full = {**_cfg(data_root), "train_subset": 0}
    d = load_noisy_data(full)
    dev = d.to_device(torch.device("cpu"))
    x, y = dev._split("clean_intact")
    assert CLEAN_INTACT_SAMPLE == 10_000 and x.shape[0] == 10_000 == d.info["n_clean_intact"]
    idx = d.intact_index
    assert torch.unique(idx).numel() == 10_000 and int(idx.max()) < d.train_x.shape[0]
    assert torch.equal(x, d.train_x[idx]) and torch.equal(y, d.train_clean[idx])  # clean labels, training images
    assert torch.equal(load_noisy_data(full).intact_index, idx)  # one sample for every trial and seed
    selecting = load_noisy_data({**full, "proxy": "clean_intact"})
    assert selecting.intact_index is None and selecting.info["n_clean_intact"] == selecting.train_x.shape[0] == 60000
    small = load_noisy_data(_cfg(data_root))  # 4,000 images: all of them
    assert small.intact_index is None and small.info["n_clean_intact"] == small.train_x.shape[0]


def test_pivot_table_puts_tau_and_regret_per_proxy_and_setting():
    rows = [{"method": "ce", "setting": "sym-0.2", "proxy": "noisy_val", "selects": True, "search_tau": 0.5,
             "search_regret": -1.25},
            {"method": "ce", "setting": "sym-0.2", "proxy": "clean_val", "selects": False, "search_tau": 1.0,
             "search_regret": 0.0},
            {"method": "ce", "setting": "pair-0.45", "proxy": "noisy_val", "selects": True,
             "search_tau": float("nan"), "search_regret": -3.0}]
    md = fidelity.pivot_markdown(rows, "search")
    assert "| proxy | sym-0.2 | pair-0.45 |" in md
    assert "| noisy_val * | 0.50 / -1.25 | - / -3.00 |" in md
    assert "| clean_val | 1.00 / 0.00 | - |" in md
