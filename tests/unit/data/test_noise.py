"""Label noise (tune_lnl.data.noise) and the noisy dataset (tune_lnl.data), checked against
hand-written transition matrices, sampling statistics and the raw MNIST idx files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tune_lnl.data import DataNotFoundError, load_noisy_data, stratified_holdout
from tune_lnl.data.noise import corrupt_labels, realised_rate, transition_matrix

# -- transition matrices: hand-written expectations -----------------------------------------------

def test_symmetric_matrix_4x4_by_hand():
    r = 0.3
    o = 0.1  # r / (C - 1) = 0.3 / 3
    expected = [[0.7, o, o, o],
                [o, 0.7, o, o],
                [o, o, 0.7, o],
                [o, o, o, 0.7]]
    T = transition_matrix("symmetric", r, 4)
    assert T.shape == (4, 4)
    assert T.dtype == torch.float64
    np.testing.assert_allclose(T.numpy(), np.array(expected), rtol=0, atol=1e-12)


def test_pairflip_matrix_4x4_by_hand():
    # c -> (c + 1) mod C with probability r
    expected = [[0.6, 0.4, 0.0, 0.0],
                [0.0, 0.6, 0.4, 0.0],
                [0.0, 0.0, 0.6, 0.4],
                [0.4, 0.0, 0.0, 0.6]]
    T = transition_matrix("pairflip", 0.4, 4)
    np.testing.assert_allclose(T.numpy(), np.array(expected), rtol=0, atol=1e-12)


def test_uniform_matrix_3x3_by_hand():
    # (1 - r) I + r / C: r = 0.6, C = 3 -> diagonal 0.4 + 0.2 = 0.6, off-diagonal 0.2
    expected = [[0.6, 0.2, 0.2],
                [0.2, 0.6, 0.2],
                [0.2, 0.2, 0.6]]
    T = transition_matrix("uniform", 0.6, 3)
    np.testing.assert_allclose(T.numpy(), np.array(expected), rtol=0, atol=1e-12)


def test_pairflip_matrix_3x3_by_hand():
    expected = [[0.55, 0.45, 0.0],
                [0.0, 0.55, 0.45],
                [0.45, 0.0, 0.55]]
    np.testing.assert_allclose(transition_matrix("pairflip", 0.45, 3).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("kind", ["symmetric", "pairflip", "uniform", "none"])
def test_zero_rate_and_none_is_identity(kind):
    np.testing.assert_array_equal(transition_matrix(kind, 0.0, 5).numpy(), np.eye(5))
    if kind == "none":
        np.testing.assert_array_equal(transition_matrix("none", 0.5, 5).numpy(), np.eye(5))


@pytest.mark.parametrize("kind", ["symmetric", "pairflip", "uniform"])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.45, 0.8, 0.95])
@pytest.mark.parametrize("C", [2, 3, 10])
def test_rows_sum_to_one_and_family_formula(kind, rate, C):
    T = transition_matrix(kind, rate, C).numpy()
    assert (T >= 0).all()
    np.testing.assert_allclose(T.sum(1), np.ones(C), atol=1e-12)
    for i in range(C):
        for j in range(C):
            if kind == "symmetric":
                want = 1 - rate if i == j else rate / (C - 1)
            elif kind == "pairflip":
                want = (1 - rate if i == j else 0.0) + (rate if j == (i + 1) % C else 0.0)
            else:
                want = (1 - rate if i == j else 0.0) + rate / C
            assert T[i, j] == pytest.approx(want, abs=1e-12), (i, j)


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1, -1e-9])
@pytest.mark.parametrize("kind", ["symmetric", "pairflip", "uniform"])
def test_rate_outside_unit_interval_raises(kind, rate):
    with pytest.raises(ValueError):
        transition_matrix(kind, rate, 10)


@pytest.mark.parametrize("kind", ["sym", "asymmetric", "", "Symmetric"])
def test_unknown_noise_type_raises(kind):
    with pytest.raises(ValueError):
        transition_matrix(kind, 0.2, 10)


# -- sampling -------------------------------------------------------------------------------------

C10 = 10
N = 60_000


def _balanced_labels(n=N, c=C10, seed=123):
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g) % c  # exactly n / c samples per class, shuffled


@pytest.mark.parametrize("kind,rate", [("symmetric", 0.2), ("symmetric", 0.8), ("pairflip", 0.2),
                                       ("pairflip", 0.45), ("uniform", 0.2), ("uniform", 0.8)])
def test_realised_rate_and_per_class_frequencies(kind, rate):
    clean = _balanced_labels()
    noisy = corrupt_labels(clean, transition_matrix(kind, rate, C10), noise_seed=0)
    assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
    assert int(noisy.min()) >= 0 and int(noisy.max()) < C10
    expected_rate = rate * (C10 - 1) / C10 if kind == "uniform" else rate
    flipped = (noisy != clean).double().mean().item()  # computed here, independent of realised_rate
    assert flipped == pytest.approx(expected_rate, abs=0.01)
    assert realised_rate(clean, noisy) == pytest.approx(flipped, abs=1e-6)  # float32 mean
    # per-class empirical transition frequencies against the hand formula
    counts = np.zeros((C10, C10))
    np.add.at(counts, (clean.numpy(), noisy.numpy()), 1)
    freq = counts / counts.sum(1, keepdims=True)
    for i in range(C10):
        for j in range(C10):
            if kind == "symmetric":
                want = 1 - rate if i == j else rate / (C10 - 1)
            elif kind == "pairflip":
                want = 1 - rate if i == j else (rate if j == (i + 1) % C10 else 0.0)
            else:
                want = (1 - rate if i == j else 0.0) + rate / C10
            assert abs(freq[i, j] - want) < 0.02, (kind, rate, i, j, freq[i, j], want)
            if want == 0.0:
                assert counts[i, j] == 0, (i, j)  # impossible transitions never happen


def test_pairflip_only_produces_c_or_next():
    clean = _balanced_labels()
    noisy = corrupt_labels(clean, transition_matrix("pairflip", 0.45, C10), noise_seed=3)
    ok = (noisy == clean) | (noisy == (clean + 1) % C10)
    assert bool(ok.all())
    assert bool((noisy == (clean + 1) % C10).any())  # it does flip


def test_symmetric_flips_land_on_every_other_class_never_back():
    # symmetric (Co-teaching / MLC): a flipped label is one of the OTHER classes, uniformly, so the
    # number of kept labels is (1 - r) N, not (1 - r + r / C) N as for uniform noise
    clean = _balanced_labels()
    r = 0.5
    noisy = corrupt_labels(clean, transition_matrix("symmetric", r, C10), noise_seed=1)
    kept = (noisy == clean).double().mean().item()
    assert kept == pytest.approx(1 - r, abs=0.01)
    assert kept < 1 - r + r / C10 - 0.03  # distinguishable from the uniform family
    flipped = noisy[noisy != clean]
    offsets = ((flipped - clean[noisy != clean]) % C10).numpy()
    hist = np.bincount(offsets, minlength=C10) / offsets.size
    assert hist[0] == 0
    np.testing.assert_allclose(hist[1:], np.full(C10 - 1, 1 / (C10 - 1)), atol=0.01)


def test_same_noise_seed_same_labels_different_seed_different():
    clean = _balanced_labels()
    T = transition_matrix("symmetric", 0.4, C10)
    a = corrupt_labels(clean, T, noise_seed=7)
    torch.manual_seed(999)  # the global RNG must not matter
    torch.rand(10)
    b = corrupt_labels(clean, T, noise_seed=7)
    c = corrupt_labels(clean, T, noise_seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # and corrupt_labels leaves the global RNG alone
    torch.manual_seed(5)
    before = torch.get_rng_state()
    corrupt_labels(clean, T, noise_seed=7)
    assert torch.equal(before, torch.get_rng_state())


def test_zero_rate_keeps_every_label():
    clean = _balanced_labels(1000)
    for kind in ("symmetric", "pairflip", "uniform", "none"):
        assert torch.equal(corrupt_labels(clean, transition_matrix(kind, 0.0, C10), 0), clean)


# -- stratified hold-out --------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.33])
def test_stratified_holdout_counts_disjoint_cover(fraction):
    # unequal class sizes: 0: 37, 1: 100, 2: 5, 3: 1, 4: 58
    sizes = {0: 37, 1: 100, 2: 5, 3: 1, 4: 58}
    labels = torch.cat([torch.full((n,), c) for c, n in sizes.items()])
    labels = labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))]
    tr, ho = stratified_holdout(labels, fraction, seed=11)
    tr_set, ho_set = set(tr.tolist()), set(ho.tolist())
    assert len(tr_set) == tr.numel() and len(ho_set) == ho.numel()  # no repeats
    assert not tr_set & ho_set
    assert tr_set | ho_set == set(range(labels.numel()))
    for c, n in sizes.items():
        held_c = int((labels[ho] == c).sum())
        assert held_c == int(round(fraction * n)), (c, n, held_c)
    # seeded: same seed -> same split, other seed -> other split
    tr2, ho2 = stratified_holdout(labels, fraction, seed=11)
    assert torch.equal(ho, ho2) and torch.equal(tr, tr2)
    _, ho3 = stratified_holdout(labels, fraction, seed=12)
    assert not torch.equal(ho, ho3)


def test_stratified_holdout_hand_counts_10_percent():
    labels = torch.tensor([0] * 20 + [1] * 15 + [2] * 4)
    # round(2.0) = 2, round(1.5) = 2 (banker's), round(0.4) = 0
    tr, ho = stratified_holdout(labels, 0.1, seed=0)
    per_class = [int((labels[ho] == c).sum()) for c in range(3)]
    assert per_class == [2, 2, 0]
    assert tr.numel() == 39 - 4


# -- the real MNIST dataset -----------------------------------------------------------------------

def _read_idx_labels(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic, n = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    assert magic == 2049
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    assert labels.size == n
    return labels.astype(np.int64)


def _read_idx_images(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic = int.from_bytes(raw[0:4], "big")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    assert magic == 2051
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h * w)


def _data_cfg(root, **over):
    cfg = dict(dataset="mnist", data_root=str(root), noise_type="symmetric", noise_rate=0.2,
               noise_seed=0, proxy="noisy_val", val_fraction=0.1, train_subset=0, test_subset=0)
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def raw_dir(data_root):  # data_root: tests/conftest.py (real MNIST, $TUNE_LNL_DATA or ../shared/data)
    return Path(data_root) / "MNIST" / "raw"


@pytest.fixture(scope="module")
def idx_train(raw_dir):
    return (_read_idx_images(raw_dir / "train-images-idx3-ubyte"),
            _read_idx_labels(raw_dir / "train-labels-idx1-ubyte"))


@pytest.fixture(scope="module")
def full_clean_intact(data_root):
    """All 60k training images, no hold-out: the noisy label of every original index."""
    return load_noisy_data(_data_cfg(data_root, proxy="clean_intact"))


def _index_of(images_idx: np.ndarray):
    lookup = {row.tobytes(): i for i, row in enumerate(images_idx)}
    assert len(lookup) == images_idx.shape[0]  # MNIST training images are all distinct
    return lambda x: np.array([lookup[r.tobytes()] for r in x.reshape(x.shape[0], -1).numpy()])


def test_full_mnist_clean_labels_are_the_idx_labels(full_clean_intact, idx_train, raw_dir):
    images, labels = idx_train
    d = full_clean_intact
    assert d.train_x.shape == (60000, 1, 28, 28) and d.train_x.dtype == torch.uint8
    np.testing.assert_array_equal(d.train_x.reshape(60000, -1).numpy(), images)
    np.testing.assert_array_equal(d.train_clean.numpy(), labels)
    assert d.val_x.shape[0] == 0
    test_labels = _read_idx_labels(raw_dir / "t10k-labels-idx1-ubyte")
    np.testing.assert_array_equal(d.test_y.numpy(), test_labels)
    # symmetric 0.2 over all 60k labels
    flipped = float((d.train_noisy.numpy() != labels).mean())
    assert flipped == pytest.approx(0.2, abs=0.01)
    assert d.info["noise_rate_realised"] == pytest.approx(flipped, abs=1e-6)
    np.testing.assert_allclose(d.transition.numpy(), transition_matrix("symmetric", 0.2, 10).numpy())


def test_noisy_val_split_is_disjoint_and_keeps_labels(full_clean_intact, idx_train, data_root):
    images, labels = idx_train
    d = load_noisy_data(_data_cfg(data_root))
    index_of = _index_of(images)
    tr, va = index_of(d.train_x), index_of(d.val_x)
    assert len(set(tr)) == tr.size and len(set(va)) == va.size
    assert not set(tr) & set(va)
    assert set(tr) | set(va) == set(range(60000))
    # clean labels are the idx labels of the same images; noisy labels are the full-set noisy ones
    np.testing.assert_array_equal(d.train_clean.numpy(), labels[tr])
    np.testing.assert_array_equal(d.val_clean.numpy(), labels[va])
    full_noisy = full_clean_intact.train_noisy.numpy()
    np.testing.assert_array_equal(d.train_noisy.numpy(), full_noisy[tr])
    np.testing.assert_array_equal(d.val_noisy.numpy(), full_noisy[va])
    # stratified by the NOISY label: round(0.1 * n_c) per noisy class held out
    for c in range(10):
        n_c = int((full_noisy == c).sum())
        assert int((d.val_noisy == c).sum()) == int(round(0.1 * n_c))
    assert d.info["n_train"] == tr.size and d.info["n_val"] == va.size


def test_noisy_labels_independent_of_training_settings(full_clean_intact, idx_train, data_root):
    images, _ = idx_train
    base = _data_cfg(data_root, train_subset=700, test_subset=300)
    torch.manual_seed(0)
    a = load_noisy_data(base)
    # anything training-related (and the global RNG) must not change the data
    training_stuff = dict(seed=12345, lr=0.5, epochs=3, batch_size=7, variant="official", K=3.0,
                          device="cpu", method="mlc", model="mlp", augment=False)
    torch.manual_seed(4242)
    torch.rand(100)
    b = load_noisy_data({**base, **training_stuff})
    for f in ("train_x", "train_noisy", "train_clean", "val_x", "val_noisy", "val_clean", "test_x", "test_y"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    # the subset's noisy labels are the noisy labels those images have in the full 60k draw
    index_of = _index_of(images)
    full_noisy = full_clean_intact.train_noisy.numpy()
    np.testing.assert_array_equal(a.train_noisy.numpy(), full_noisy[index_of(a.train_x)])
    np.testing.assert_array_equal(a.val_noisy.numpy(), full_noisy[index_of(a.val_x)])
    assert a.train_x.shape[0] + a.val_x.shape[0] == 700
    assert a.test_x.shape[0] == 300
    # another noise seed gives other noisy labels
    c = load_noisy_data({**base, "noise_seed": 1})
    differ = (c.train_noisy.numpy() != full_noisy[index_of(c.train_x)]).mean()
    assert differ > 0.2  # two independent 20%-symmetric draws disagree on ~36% of the labels


def test_pairflip_on_mnist_only_c_or_next(data_root):
    d = load_noisy_data(_data_cfg(data_root, noise_type="pairflip", noise_rate=0.45, proxy="clean_intact"))
    clean, noisy = d.train_clean, d.train_noisy
    assert bool(((noisy == clean) | (noisy == (clean + 1) % 10)).all())
    assert (noisy != clean).double().mean().item() == pytest.approx(0.45, abs=0.01)


def test_missing_data_root_raises_data_not_found(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    def no_network(self, *a, **k):  # fail fast instead of touching the network
        calls.append(1)
        raise RuntimeError("network disabled in test")

    monkeypatch.setattr(tvd.MNIST, "download", no_network)
    root = tmp_path / "nothing_here"
    with pytest.raises(DataNotFoundError) as exc:
        load_noisy_data(_data_cfg(root))
    assert str(root / "MNIST" / "raw") in str(exc.value)
    assert calls, "the loader should have tried to download before giving up"


def test_unknown_dataset_raises(tmp_path):
    with pytest.raises(ValueError):
        load_noisy_data(_data_cfg(tmp_path, dataset="svhn"))
