"""The noise models of the 2020s benchmarks (asymmetric, instance-dependent, user-given matrix),
checked against hand-written matrices, sampling error and the structure of Xia et al.'s draw."""
import hashlib
import math

import numpy as np
import pytest
import torch

from tune_lnl.data import open_dataset
from tune_lnl.data.noise import (
    asymmetric_matrix,
    block_successor_map,
    check_matrix,
    corrupt_labels,
    draw_labels,
    empirical_transition,
    expected_rate,
    instance_transition,
    realised_rate,
    transition_matrix,
)


def _sampling_bound(p: float, n: int) -> float:
    """Four standard errors of a proportion p estimated from n samples."""
    return 4 * math.sqrt(p * (1 - p) / n)


# -- the class mappings the datasets declare, written out by hand -----------------------------------

def test_cifar10_asymmetric_matrix_by_hand():
    r = 0.4
    T = transition_matrix("asymmetric", r, 10, open_dataset("cifar10").asymmetric_map).numpy()
    expected = np.eye(10)
    # truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog
    for s, t in ((9, 1), (2, 0), (4, 7), (3, 5), (5, 3)):
        expected[s, s], expected[s, t] = 1 - r, r
    np.testing.assert_allclose(T, expected, atol=1e-12)
    # rows of the classes that never flip: airplane, automobile, frog, horse, ship
    for c in (0, 1, 6, 7, 8):
        assert T[c, c] == 1.0


def test_mnist_asymmetric_matrix_by_hand():
    T = transition_matrix("asymmetric", 0.3, 10, open_dataset("mnist").asymmetric_map).numpy()
    want = {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}
    for c in range(10):
        row = np.zeros(10)
        if c in want:
            row[c], row[want[c]] = 0.7, 0.3
        else:
            row[c] = 1.0
        np.testing.assert_allclose(T[c], row, atol=1e-12, err_msg=f"class {c}")


def test_cifar100_asymmetric_mapping_within_blocks_of_five():
    m = open_dataset("cifar100").asymmetric_map
    assert m == block_successor_map(100, 5)
    assert [m[c] for c in range(10)] == [1, 2, 3, 4, 0, 6, 7, 8, 9, 5]
    assert m[99] == 95 and m[97] == 98
    T = transition_matrix("asymmetric", 0.4, 100, m).numpy()
    assert np.allclose(np.diag(T), 0.6) and np.allclose(T.sum(1), 1.0)
    for c in range(100):  # each class's only flip target lies in its own block
        assert np.flatnonzero(T[c] > 0).tolist() == sorted([c, 5 * (c // 5) + (c + 1) % 5])


def test_fashionmnist_mapping_declared():
    m = open_dataset("fashionmnist").asymmetric_map
    assert m == {0: 6, 6: 0, 2: 4, 5: 7, 9: 7}  # T-shirt <-> shirt, pullover -> coat, sandal/boot -> sneaker


def test_asymmetric_mapping_must_be_a_flip():
    with pytest.raises(ValueError):
        asymmetric_matrix({3: 3}, 0.2, 10)
    with pytest.raises(ValueError):
        asymmetric_matrix({3: 10}, 0.2, 10)
    with pytest.raises(ValueError, match="class mapping"):
        transition_matrix("asymmetric", 0.2, 10)


@pytest.mark.parametrize("dataset,rate,share", [("cifar10", 0.4, 0.5), ("mnist", 0.4, 0.5), ("cifar100", 0.4, 1.0)])
def test_asymmetric_realised_rate_within_sampling_error(dataset, rate, share):
    """Balanced labels: the overall rate is r times the share of mapped classes (r/2 on CIFAR-10
    and MNIST, r on CIFAR-100), and every flip goes to the mapped target."""
    ds = open_dataset(dataset)
    C, n = ds.num_classes, 50_000
    clean = torch.arange(n) % C
    noisy = corrupt_labels(clean, transition_matrix("asymmetric", rate, C, ds.asymmetric_map), noise_seed=5)
    want = rate * share
    assert abs(realised_rate(clean, noisy) - want) < _sampling_bound(want, n)
    flipped = noisy != clean
    targets = torch.tensor([ds.asymmetric_map.get(c, -1) for c in range(C)])
    assert torch.equal(noisy[flipped], targets[clean[flipped]])


# -- a user's matrix ---------------------------------------------------------------------------------

def test_check_matrix_names_the_problem():
    assert check_matrix([[0.7, 0.3], [0.0, 1.0]], 2) is None
    assert "row 1" in check_matrix([[0.7, 0.3], [0.5, 0.4]], 2) and "sums to 0.9" in check_matrix(
        [[0.7, 0.3], [0.5, 0.4]], 2)
    assert "[0, 1]" in check_matrix([[1.2, -0.2], [0.0, 1.0]], 2)
    assert "2 x 2" in check_matrix([[1.0, 0.0, 0.0]] * 3, 2)
    assert "numbers" in check_matrix([["a", 1], [0, 1]], 2)
    assert "true/false" in check_matrix([[True, False], [False, True]], 2)


def test_matrix_noise_realises_the_given_matrix():
    T = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.8, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    n = 60_000
    clean = torch.arange(n) % 3
    noisy = corrupt_labels(clean, T, noise_seed=2)
    emp = empirical_transition(clean, noisy, 3)
    for i in range(3):
        for j in range(3):
            assert abs(float(emp[i, j]) - float(T[i, j])) < _sampling_bound(float(T[i, j]), n // 3) + 1e-12
    assert expected_rate(T) == pytest.approx((0.5 + 0.2 + 0.2) / 3)


def test_empirical_transition_by_hand():
    clean = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    noisy = torch.tensor([0, 1, 1, 2, 1, 1, 0])
    np.testing.assert_allclose(empirical_transition(clean, noisy, 3).numpy(),
                               [[0.25, 0.5, 0.25], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


# -- instance-dependent noise (Xia et al. 2020) ----------------------------------------------------

def _images(n, seed=0, shape=(3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)


def test_instance_rows_are_distributions_keeping_the_label_with_one_minus_q():
    x, y = _images(3000), torch.arange(3000) % 10
    R = instance_transition(x, y, 10, 0.4, noise_seed=0)
    assert R.shape == (3000, 10) and R.dtype == torch.float64
    np.testing.assert_allclose(R.sum(1).numpy(), 1.0, atol=1e-9)
    assert (R >= 0).all()
    q = 1 - R[torch.arange(3000), y]
    assert (q >= 0).all() and (q <= 1).all()
    # q ~ N(0.4, 0.1^2) truncated to [0, 1]: the truncation is 4 std away, so mean 0.4, std 0.1
    assert abs(float(q.mean()) - 0.4) < 4 * 0.1 / math.sqrt(3000)
    assert 0.09 < float(q.std()) < 0.11


def test_instance_mean_realised_rate_near_r():
    """The mean flip rate is the truncated normal's mean: r, plus 0.1 phi(r/0.1) / Phi(r/0.1)
    (about 0.0055 at r = 0.2) where the truncation at 0 bites."""
    from scipy.stats import norm
    n = 20_000
    x, y = _images(n, seed=1), torch.arange(n) % 10
    for rate in (0.2, 0.4):
        a, b = -rate / 0.1, (1 - rate) / 0.1
        mean = rate + 0.1 * (norm.pdf(a) - norm.pdf(b)) / (norm.cdf(b) - norm.cdf(a))
        noisy = draw_labels(instance_transition(x, y, 10, rate, noise_seed=3), noise_seed=3)
        assert abs(realised_rate(y, noisy) - mean) < _sampling_bound(mean, n) + 4 * 0.1 / math.sqrt(n)
        assert abs(mean - rate) < 0.006


def test_instance_noise_depends_on_the_image():
    """Two different images of one class get different flip distributions; the same image gets
    the same one (the rows are a function of the pixels, the class and q_i only)."""
    x, y = _images(400, seed=2), torch.zeros(400, dtype=torch.long)
    x[1] = x[0]  # a duplicate of image 0
    R = instance_transition(x, y, 10, 0.4, noise_seed=0)
    off = R[:, 1:] / R[:, 1:].sum(1, keepdim=True)  # where a flipped label goes, per image
    assert torch.allclose(off[0], off[1])
    assert not torch.allclose(off[0], off[2], atol=1e-3)
    assert len({int(a) for a in off.argmax(1)}) > 1  # images of one class favour different classes


def test_instance_noise_is_a_softmax_of_a_linear_function_of_the_image():
    """Xia et al.'s p = x^T W[y]: log(R[j] / R[k]) over the off-diagonal classes is linear in the
    standardised image, so an image that is the pixel-wise mean of two others of its class has
    the mean of their log-ratios (standardisation is affine, hence exact on such a mean)."""
    x, y = _images(200, seed=3), torch.full((200,), 2, dtype=torch.long)
    x[0] = (x[0] // 2) * 2
    x[1] = (x[1] // 2) * 2
    x[2] = ((x[0].int() + x[1].int()) // 2).to(torch.uint8)  # exact: both are even
    R = instance_transition(x, y, 5, 0.4, noise_seed=1)
    others = [0, 1, 3, 4]
    L = torch.log(R[:, others]) - torch.log(R[:, others[:1]])
    torch.testing.assert_close(L[2], (L[0] + L[1]) / 2, atol=1e-3, rtol=1e-3)


def test_instance_noise_is_seeded():
    x, y = _images(500, seed=4), torch.arange(500) % 10
    a = instance_transition(x, y, 10, 0.4, noise_seed=7)
    assert torch.equal(a, instance_transition(x, y, 10, 0.4, noise_seed=7))
    assert not torch.allclose(a, instance_transition(x, y, 10, 0.4, noise_seed=8))
    state = torch.get_rng_state()
    instance_transition(x, y, 10, 0.4, noise_seed=7)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def test_instance_rate_zero_keeps_every_label():
    x, y = _images(300, seed=5), torch.arange(300) % 10
    noisy = draw_labels(instance_transition(x, y, 10, 0.0, noise_seed=0), noise_seed=0)
    assert torch.equal(noisy, y)


# -- from the space file to the run config and the data ---------------------------------------------

def _space_with_noise(tmp_path, noise: dict):
    import yaml
    repo = __import__("pathlib").Path(__file__).resolve().parents[3]
    raw = yaml.safe_load((repo / "search_spaces" / "ce_mnist.yaml").read_text())
    raw["settings"] = {"custom": {"noise": noise}}
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


@pytest.mark.parametrize("form", ["inline", "npy", "csv"])
def test_matrix_noise_from_the_space_file(tmp_path, form, data_root):
    """A matrix given inline or as a file (relative to the space file) reaches the run config as
    rows, its nominal rate is the mean off-diagonal mass, and the data is drawn from it."""
    from tune_lnl.config import run_config
    T = np.full((10, 10), 0.0)
    for c in range(10):
        T[c, c], T[c, (c + 3) % 10] = 0.7, 0.3
    T[4] = np.eye(10)[4]  # class 4 stays clean
    if form == "inline":
        noise = {"type": "matrix", "matrix": T.tolist()}
    elif form == "npy":
        np.save(tmp_path / "T.npy", T)
        noise = {"type": "matrix", "path": "T.npy"}
    else:
        np.savetxt(tmp_path / "T.csv", T, delimiter=",")
        noise = {"type": "matrix", "path": "T.csv"}
    cfg = run_config(_space_with_noise(tmp_path, noise), "custom", data_root)
    assert cfg["noise_type"] == "matrix"
    if form == "inline":
        assert np.allclose(cfg["noise_options"]["matrix"], T)
    else:  # the file, named with its content's hash (not the C x C rows in every result line)
        file = tmp_path / noise["path"]
        assert cfg["noise_options"] == {"path": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
    assert cfg["noise_rate"] == pytest.approx(0.3 * 9 / 10)
    from tune_lnl.data import DataError, load_noisy_data
    data = load_noisy_data(cfg)
    np.testing.assert_allclose(data.transition.numpy(), T)
    assert abs(data.info["noise_rate_realised"] - 0.27) < _sampling_bound(0.27, 60000)
    if form != "inline":  # a file edited after validation is refused, not silently used
        (np.save(file, np.eye(10)) if form == "npy" else np.savetxt(file, np.eye(10), delimiter=","))
        with pytest.raises(DataError, match="changed since the space file was validated"):
            load_noisy_data(cfg)


def test_a_matrix_file_is_part_of_the_experiment_identity(tmp_path):
    """The manifest --resume compares holds the file's hash: editing the file between a run and
    its --resume makes it another experiment."""
    from tune_lnl.config import load_experiment
    from tune_lnl.search.experiment import manifest
    np.save(tmp_path / "T.npy", np.eye(10))
    space = _space_with_noise(tmp_path, {"type": "matrix", "path": "T.npy"})

    def doc():
        e = load_experiment(space)
        return manifest(e, False, "optuna", False, list(e.methods), e.settings, 3, 2)

    before = doc()
    np.save(tmp_path / "T.npy", np.roll(np.eye(10), 1, axis=1))
    assert doc() != before and before["space"] == doc()["space"]  # same text, different matrix


def test_noise_options_are_part_of_the_data_and_checkpoint_identity(tmp_path, data_root):
    """Two matrices give two cached datasets and two checkpoint identities (a checkpoint of one
    never loads into a run of the other)."""
    from tune_lnl.config import run_config
    from tune_lnl.data import data_key
    a = run_config(_space_with_noise(tmp_path, {"type": "matrix", "matrix": np.eye(10).tolist()}), "custom", data_root)
    b = dict(a, noise_options={"matrix": np.roll(np.eye(10), 1, axis=1).tolist()})
    assert data_key(a, torch.device("cpu")) != data_key(b, torch.device("cpu"))
    from tune_lnl.methods import RunConfig, method_class
    ce = method_class("ce")
    assert ce.identity_of(RunConfig.of(a, ce.Hyper)) != ce.identity_of(RunConfig.of(b, ce.Hyper))


def test_a_python_dict_space_needs_the_matrix_as_lists(tmp_path):
    """Through the API a NumPy array would pass the numbers' checks but break the experiment's
    YAML record: it is refused with what to do."""
    import yaml

    from tune_lnl.config import ConfigError, load_experiment
    repo = __import__("pathlib").Path(__file__).resolve().parents[3]
    raw = yaml.safe_load((repo / "search_spaces" / "ce_mnist.yaml").read_text())
    raw["settings"] = {"custom": {"noise": {"type": "matrix", "matrix": np.eye(10)}}}
    with pytest.raises(ConfigError, match=r"settings.custom.noise.matrix: must be a list of rows .*tolist\(\)"):
        load_experiment(raw)
    raw["settings"]["custom"]["noise"]["matrix"] = np.eye(10).tolist()
    assert load_experiment(raw).first.settings["custom"].noise_options == {"matrix": np.eye(10).tolist()}
