"""CIFAR-100, FashionMNIST, CIFAR-10N and CIFAR-100N on tiny files in their real formats (the
real files are not on this machine), through the loaders, the noisy data, a method and a
search."""
import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from realformat import write_cifar10, write_cifar100, write_cifar_n, write_idx

from tune_lnl.data import DataError, load_noisy_data, open_dataset
from tune_lnl.data.cifar100 import CIFAR100_FILES, load_cifar100
from tune_lnl.data.fashionmnist import FashionMNIST

BASE = {"proxy": "noisy_val", "val_fraction": 0.1, "noise_seed": 0, "train_subset": 0, "test_subset": 0,
        "clean_val_size": 0, "dataset_options": {}, "noise_options": {}}
CIFAR10N_KEYS = ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny files differ from the official md5s
        return fn(*a, **k)


# -- CIFAR-100 --------------------------------------------------------------------------------------

def test_cifar100_loads_exact_pixels_and_fine_labels(tmp_path):
    _, train_rows, train_fine, test_rows, test_fine = write_cifar100(tmp_path, 300, 100)
    with pytest.warns(UserWarning) as record:
        train_x, train_y, test_x, test_y = load_cifar100(tmp_path)
    assert train_x.shape == (300, 3, 32, 32) and test_x.shape == (100, 3, 32, 32) and train_x.dtype == torch.uint8
    assert train_y.tolist() == train_fine and test_y.tolist() == test_fine  # fine labels, not coarse
    assert int(train_y.max()) == 99
    # pixel (c, i, j) of image k is row k's value c * 1024 + i * 32 + j
    for k, c, i, j in ((0, 0, 0, 0), (17, 1, 5, 9), (299, 2, 31, 31)):
        assert train_x[k, c, i, j] == train_rows[k, c * 1024 + i * 32 + j]
    assert set(CIFAR100_FILES) == {"train", "test", "meta"}
    assert all(any(n in str(w.message) for w in record) for n in CIFAR100_FILES)


def test_cifar100_missing_folder_names_it(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataError) as info:
        load_cifar100(tmp_path / "none")
    msg = str(info.value)
    assert "none/cifar-100-python" in msg and "train, test, meta" in msg and "TUNE_LNL_DATA" in msg


# -- FashionMNIST -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    """Full-size FashionMNIST idx files (the loader refuses other sizes), random pixels, labels
    balanced in a seeded order."""
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    write_idx(root / "FashionMNIST" / "raw", rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
              rng.permutation(np.arange(60000) % 10), rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
              np.arange(10000) % 10)
    return root


def test_fashionmnist_loads_the_idx_files(fashion_root):
    a = FashionMNIST().checked_load(fashion_root)
    raw = fashion_root / "FashionMNIST" / "raw"
    labels = np.frombuffer((raw / "train-labels-idx1-ubyte").read_bytes()[8:], dtype=np.uint8)
    pixels = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8)
    assert a.train_x.shape == (60000, 1, 28, 28) and a.test_x.shape == (10000, 1, 28, 28)
    assert np.array_equal(a.train_y.numpy(), labels)
    assert a.test_x[123, 0, 4, 7] == pixels[123 * 784 + 4 * 28 + 7]


def test_fashionmnist_asymmetric_and_instance_noise_rates(fashion_root):
    """On 60k images: asymmetric 0.4 flips five of ten classes (about 0.2 overall), instance 0.4
    flips about 0.4; both within four standard errors."""
    cfg = {**BASE, "dataset": "fashionmnist", "data_root": str(fashion_root)}
    asym = load_noisy_data({**cfg, "noise_type": "asymmetric", "noise_rate": 0.4})
    inst = load_noisy_data({**cfg, "noise_type": "instance", "noise_rate": 0.4})
    bound = 4 * np.sqrt(0.25 / 60000)
    assert abs(asym.info["noise_rate_realised"] - 0.2) < bound
    assert abs(inst.info["noise_rate_realised"] - 0.4) < bound + 4 * 0.1 / np.sqrt(60000)
    # the realised transition of the asymmetric draw: only the declared flips are off the diagonal
    T = asym.transition.numpy()
    assert {(i, j) for i, j in zip(*np.nonzero(T)) if i != j} == {(0, 6), (6, 0), (2, 4), (5, 7), (9, 7)}


def test_fashionmnist_truncated_file_refused(tmp_path, fashion_root):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (fashion_root / "FashionMNIST" / "raw").iterdir():
        os.link(f, raw / f.name) if f.name != "t10k-labels-idx1-ubyte" else (raw / f.name).write_bytes(
            f.read_bytes()[:5000])
    with pytest.raises(DataError) as info:
        FashionMNIST().checked_load(tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(info.value) and "official FashionMNIST file" in str(info.value)
    assert "5000 bytes" in str(info.value)


# -- CIFAR-10N / CIFAR-100N -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar_n_root(tmp_path_factory):
    """CIFAR-10 (5 x 80 train images) and CIFAR-100 (400) with CIFAR-N label files whose noisy
    sets differ from the clean labels at known images."""
    root = tmp_path_factory.mktemp("cifar_n")
    _, _, labels10, _, _ = write_cifar10(root, per_batch=80, n_test=50)
    clean10 = np.array(labels10)
    rng = np.random.default_rng(1)
    sets = {"clean_label": clean10}
    for key, rate in (("aggre_label", 0.1), ("worse_label", 0.4), ("random_label1", 0.2), ("random_label2", 0.2),
                      ("random_label3", 0.2)):
        flip = rng.random(clean10.size) < rate
        sets[key] = np.where(flip, (clean10 + 1 + rng.integers(0, 9, clean10.size)) % 10, clean10)
    write_cifar_n(root / "CIFAR-10_human.pt", sets)
    fine = np.array(write_cifar100(root, 400, 100)[2])
    noisy = np.where(rng.random(fine.size) < 0.4, (fine + 7) % 100, fine)
    torch.save({"clean_label": torch.as_tensor(fine), "noisy_label": torch.as_tensor(noisy),  # tensors work too
                "clean_coarse_label": torch.as_tensor(fine // 5), "noisy_coarse_label": torch.as_tensor(noisy // 5)},
               root / "CIFAR-100_human.pt")
    return root, sets, fine, noisy


@pytest.mark.parametrize("labels,key", [("aggre", "aggre_label"), ("worse", "worse_label"),
                                        ("random1", "random_label1")])
def test_cifar10n_trains_on_the_chosen_human_labels(cifar_n_root, labels, key):
    root, sets, _, _ = cifar_n_root
    data = _quiet(load_noisy_data, {**BASE, "dataset": "cifar10n", "data_root": str(root), "noise_type": "human",
                                    "noise_rate": 0.0, "noise_options": {"labels": labels}})
    # the realised rate is the file's share of differing labels, counted here by hand
    assert data.info["noise_rate_realised"] == pytest.approx(float(np.mean(sets[key] != sets["clean_label"])))
    tr = data.split_index["train"].numpy()
    assert np.array_equal(data.train_noisy.numpy(), sets[key][tr])          # what the loss sees
    assert np.array_equal(data.train_clean.numpy(), sets["clean_label"][tr])  # analytics only


def test_cifar100n_noisy_fine_labels(cifar_n_root):
    root, _, fine, noisy = cifar_n_root
    data = _quiet(load_noisy_data, {**BASE, "dataset": "cifar100n", "data_root": str(root), "noise_type": "human",
                                    "noise_rate": 0.0, "noise_options": {"labels": "noisy"}})
    assert data.num_classes == 100
    assert data.info["noise_rate_realised"] == pytest.approx(float(np.mean(noisy != fine)))


def test_cifar_n_label_file_runs_no_code(tmp_path, cifar_n_root):
    """A label file that would run code when unpickled is refused (weights_only loading)."""
    root, sets, _, _ = cifar_n_root
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "cifar-10-batches-py").symlink_to(root / "cifar-10-batches-py")
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"clean_label": sets["clean_label"], "evil": Evil()}, bad / "CIFAR-10_human.pt")
    with pytest.raises(DataError, match="not a CIFAR-N label file"):
        _quiet(open_dataset("cifar10n").checked_load, bad)
    assert not marker.exists()
    (bad / "CIFAR-10_human.pt").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="CIFAR-10_human.pt"):
        _quiet(open_dataset("cifar10n").checked_load, bad)


def test_a_method_records_the_realised_rate(cifar_n_root):
    """The realised noise rate travels with every epoch's metrics (result.json, TensorBoard)."""
    from tune_lnl import train
    from tune_lnl.methods import defaults_of
    root, sets, _, _ = cifar_n_root
    cfg = {**defaults_of("ce"), **BASE, "method": "ce", "dataset": "cifar10n", "data_root": str(root),
           "noise_type": "human", "noise_rate": 0.0, "noise_options": {"labels": "worse"}, "seed": 0,
           "device": "cpu", "model": "cnn6", "epochs": 1, "batch_size": 64}
    history = _quiet(train, cfg)
    want = float(np.mean(sets["worse_label"] != sets["clean_label"]))
    assert history[-1]["noise_rate_realised"] == pytest.approx(want)
    assert {"test_acc", "noisy_val_acc", "clean_intact_acc"} <= set(history[-1])


@pytest.mark.slow  # a whole (smoke) search
def test_cifar10n_smoke_search(tmp_path, cifar_n_root, repo):
    """The shipped compare_cifar10n.yaml, --smoke, one method and setting, through the Optuna
    backend on the tiny files: the finals exist and every result line records the realised rate."""
    root, sets, _, _ = cifar_n_root
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "search_spaces/compare_cifar10n.yaml", "--smoke",
           "--methods", "ce", "--settings", "worse", "--num-samples", "2", "--seeds", "1", "--backend", "optuna",
           "--data-root", str(root), "--storage-path", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "compare_cifar10n-smoke"
    assert (exp / "finals.csv").is_file() and (exp / "best_configs.yaml").is_file()
    rows = [json.loads(line) for f in exp.rglob("result.json") for line in f.read_text().splitlines() if line.strip()]
    assert rows
    want = float(np.mean(sets["worse_label"] != sets["clean_label"]))
    assert {round(r["noise_rate_realised"], 9) for r in rows} == {round(want, 9)}
    assert "Realised noise rate (the share of training labels that differ from the clean ones" in (
        exp / "report" / "report.md").read_text()
    assert f"{want:.4f}" in (exp / "report" / "report.md").read_text()


def test_an_empty_label_file_is_refused(tmp_path, cifar_n_root):
    root, _, _, _ = cifar_n_root
    (tmp_path / "cifar-10-batches-py").symlink_to(root / "cifar-10-batches-py")
    (tmp_path / "CIFAR-10_human.pt").write_bytes(b"")
    with pytest.raises(DataError, match="not a CIFAR-N label file"):
        _quiet(open_dataset("cifar10n").checked_load, tmp_path)


# -- a dataset class of the user's with human label sets --------------------------------------------

class HumanArrays(__import__("tune_lnl").InMemoryDataset):
    """40 tiny images, clean labels 0..3, one human label set ``mine`` (every 4th label wrong);
    ``options: broken`` returns a set of the wrong length, ``missing`` none at all."""
    num_classes = 4
    image_shape = (1, 8, 8)
    label_sets = ("mine",)
    options = {"broken": "no"}

    def load(self, root):
        from tune_lnl import Arrays
        g = torch.Generator().manual_seed(0)
        y = torch.arange(40) % 4
        mine = torch.where(torch.arange(40) % 4 == 0, (y + 1) % 4, y)
        sets = {"no": {"mine": mine}, "short": {"mine": mine[:-1]}, "missing": {}}[self.opts["broken"]]
        return Arrays(torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g), y,
                      torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8, generator=g), torch.arange(8) % 4,
                      label_sets=sets)


def _human_space(broken="no") -> dict:
    return {"name": "h", "method": "ce", "dataset": {"type": "test_benchmark_datasets:HumanArrays", "broken": broken},
            "fixed": {"epochs": 1, "batch_size": 8}, "space": {"lr": {"low": 0.001, "high": 0.01}},
            "settings": {"mine": {"noise": {"type": "human", "labels": "mine"}}}}


def test_a_users_dataset_declaring_label_sets_takes_human_noise(tmp_path):
    from tune_lnl.config import run_config
    cfg = run_config(_human_space(), "mine", tmp_path)
    data = load_noisy_data(cfg)
    assert data.info["noise_rate_realised"] == pytest.approx(10 / 40)  # every 4th of 40 labels
    for broken, message in (("short", "label_sets['mine'] of dtype torch.int64, shape (39,)"),
                            ("missing", "returned no label set 'mine'")):
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            load_noisy_data(run_config(_human_space(broken), "mine", tmp_path))
