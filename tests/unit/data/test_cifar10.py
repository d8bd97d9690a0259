"""load_cifar10 on tiny files written in the official python-pickle format of CIFAR-10."""
import pickle

import numpy as np
import pytest
import torch
from realformat import write_cifar10

from tune_lnl.data import DataNotFoundError
from tune_lnl.data.cifar10 import CIFAR10_CLASSES, CIFAR10_FILES, load_cifar10

N_TRAIN_PER_BATCH, N_TEST = 4, 3


def _write_tiny_cifar(root):
    return write_cifar10(root, N_TRAIN_PER_BATCH, 3)


def _expected_chw(rows: np.ndarray) -> np.ndarray:
    """``[n, 3, 32, 32]`` with pixel (c, i, j) = row[c * 1024 + i * 32 + j], by explicit indices."""
    c, i, j = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return rows[:, c * 1024 + i * 32 + j]


def test_fixture_is_in_the_official_pickle_format(tmp_path):
    folder, *_ = _write_tiny_cifar(tmp_path)
    with open(folder / "data_batch_1", "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")  # the official unpickling recipe
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (4, 3072)
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"][9] == "truck"


def test_loads_exact_pixels_order_and_labels(tmp_path):
    _, train_rows, train_labels, test_rows, test_labels = _write_tiny_cifar(tmp_path)
    with pytest.warns(UserWarning) as record:
        train_x, train_y, test_x, test_y = load_cifar10(tmp_path)
    assert CIFAR10_CLASSES == 10

    assert train_x.dtype == torch.uint8 and test_x.dtype == torch.uint8
    assert train_y.dtype == torch.int64 and test_y.dtype == torch.int64
    assert train_x.shape == (20, 3, 32, 32) and test_x.shape == (3, 3, 32, 32)
    assert train_x.is_contiguous() and test_x.is_contiguous()
    # batches concatenated in the order data_batch_1 .. data_batch_5
    assert np.array_equal(train_x.numpy(), _expected_chw(train_rows))
    assert np.array_equal(test_x.numpy(), _expected_chw(test_rows))
    assert train_y.tolist() == train_labels and test_y.tolist() == test_labels
    # a few pixels spelled out: image 5 is the 2nd image of data_batch_2
    assert train_x[5, 0, 0, 0] == train_rows[5, 0]
    assert train_x[5, 1, 0, 0] == train_rows[5, 1024]          # first G value
    assert train_x[5, 2, 31, 31] == train_rows[5, 3071]        # last B value
    assert train_x[5, 1, 2, 3] == train_rows[5, 1024 + 2 * 32 + 3]

    # every file differs from the official md5: one warning naming each
    messages = [str(w.message) for w in record]
    for name in CIFAR10_FILES:
        assert any(name in m and "md5" in m for m in messages), name


def _no_network(monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    calls = []

    def fail(*a, **k):  # fail fast instead of touching the network
        calls.append(a)
        raise OSError("network disabled in test")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fail)
    return calls


def test_missing_folder_raises_data_not_found(tmp_path, monkeypatch):
    calls = _no_network(monkeypatch)
    root = tmp_path / "nothing_here"
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar10(root)
    msg = str(exc.value)
    assert str(root / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "test_batch" in msg and "batches.meta" in msg
    assert "--data-root" in msg and "TUNE_LNL_DATA" in msg
    assert calls, "the loader should have tried to download before giving up"


def test_one_missing_file_raises_data_not_found(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    folder, *_ = _write_tiny_cifar(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("method,model", [("coteaching", "resnet20"), ("gce", "cnn6")])
def test_a_method_trains_on_cifar10_files(tmp_path, method, model):
    """Through load_noisy_data and a method object: the tiny files become device-resident data
    augmented with CIFAR's crop + flip, and save/load continues identically."""
    from method_helpers import assert_exact_resume

    from tune_lnl.data import load_noisy_data
    from tune_lnl.data.augment import cifar10_augment
    from tune_lnl.methods import defaults_of, method_class

    _write_tiny_cifar(tmp_path)
    cfg = {**defaults_of(method), "method": method, "dataset": "cifar10", "data_root": str(tmp_path),
           "proxy": "noisy_val", "val_fraction": 0.2, "noise_seed": 0, "noise_type": "pairflip",
           "noise_rate": 0.2, "seed": 4, "device": "cpu", "train_subset": 0, "test_subset": 0,
           "model": model, "batch_size": 8, "epochs": 2, "num_gradual": 2}
    with pytest.warns(UserWarning, match="md5"):
        data = load_noisy_data(cfg)
    assert data.augment is cifar10_augment and data.train_x.shape[1:] == (3, 32, 32)
    assert data.info["n_train"] + data.info["n_val"] == 5 * N_TRAIN_PER_BATCH
    m = assert_exact_resume(lambda: method_class(method)(cfg, data), tmp_path / "c.pt", epochs=2)
    assert m.augment is cifar10_augment and {"test_acc", "noisy_val_acc"} <= set(m.history[-1])
