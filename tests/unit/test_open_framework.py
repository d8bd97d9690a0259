"""The open framework: a user's own data (``dataset: {type: arrays, path: FILE.npz}`` and a
dataset class named by import path), a user's own method (import path, entry point), the bad
inputs of both (each refused before any training, naming file, key and value), the ``tune-lnl``
console script and the typed errors of the Python API.

Every expectation is computed here by hand from the arrays the test writes (split sizes per
class, pixel positions, binomial tolerances, label agreement counts), never read back from the
code under test. Fast: no search; the trainings are single epochs over a few dozen images."""
import importlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tune_lnl
from tune_lnl import plugins
from tune_lnl.cli import search_main
from tune_lnl.config import load_experiment, load_space
from tune_lnl.data import check_data, load_noisy_data
from tune_lnl.data import registry as data_registry
from tune_lnl.errors import ConfigError, DataError, TuneLNLError
from tune_lnl.methods import method_class
from tune_lnl.methods import registry as method_registry

REPO = Path(__file__).resolve().parents[2]
TAYLOR_FILE = REPO / "examples" / "taylor_ce" / "taylor_ce.py"
LR_SPACE = {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_registries(monkeypatch):
    """Whatever a test resolves (methods, datasets, plugin folders) is forgotten afterwards."""
    monkeypatch.setattr(method_registry, "_resolved", dict(method_registry._resolved))
    monkeypatch.setattr(data_registry, "_instances", dict(data_registry._instances))
    monkeypatch.setattr(plugins, "_roots", set(plugins._roots))


def _module(tmp_path, monkeypatch, name: str, source: str) -> Path:
    """Write ``<tmp_path>/<name>.py``, put tmp_path first on sys.path; the module is dropped
    from sys.modules after the test (monkeypatch restores the entry's absence)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
    return path


def _npz(path: Path, **arrays) -> Path:
    """``numpy.savez`` of the arrays whose value is not None."""
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _grey(n: int, h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


def _ok_arrays(n: int = 100, n_test: int = 20, classes: int = 5, **over) -> dict:
    a = {"train_images": _grey(n), "train_labels": np.arange(n) % classes,
         "test_images": _grey(n_test, seed=1), "test_labels": np.arange(n_test) % classes}
    a.update(over)
    return a


def _space(folder: Path, *, method="ce", dataset=None, fixed=None, settings=None, name="space.yaml",
           **top) -> Path:
    """A one-method space file; the dataset defaults to ``{type: arrays, path: data.npz}``."""
    raw = {"name": "open", "method": method,
           "dataset": dataset if dataset is not None else {"type": "arrays", "path": "data.npz"},
           **top,
           "fixed": {"epochs": 1, "batch_size": 16, "augment": False, "model": "mlp", **(fixed or {})},
           "space": LR_SPACE, "paper": {"lr": 1.0e-3},
           "settings": settings or {"sym-0.2": {"noise": {"type": "symmetric", "rate": 0.2}}}}
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _data(space_path: Path, setting: str, tmp_path: Path):
    return load_noisy_data(load_space(space_path).paper_config(setting, str(tmp_path)))


NONE = {"clean": {"noise": {"type": "none", "rate": 0.0}}}
REAL = {"real": {"noise": {"type": "real", "rate": 0.0}}}


# -- 1. dataset: {type: arrays} -------------------------------------------------------------------
# per-class counts chosen so that no 0.1 * n_c is a tie: held out round(0.1 * n_c) each
COUNTS = (80, 63, 47, 100, 114)
HELD = (8, 6, 5, 10, 11)  # 8.0, 6.3, 4.7, 10.0, 11.4 rounded


def _counted_labels(seed=0) -> np.ndarray:
    y = np.concatenate([np.full(c, k) for k, c in enumerate(COUNTS)])
    return np.random.default_rng(seed).permutation(y)


def test_grey_archive_splits_and_labels_without_noise(tmp_path):
    y = _counted_labels()
    n = len(y)  # 404
    x = _grey(n, 6, 7)
    _npz(tmp_path / "data.npz", train_images=x, train_labels=y, test_images=_grey(30, 6, 7, seed=3),
         test_labels=np.arange(30) % 5)
    data = _data(_space(tmp_path, settings=NONE), "clean", tmp_path)
    assert data.num_classes == 5
    assert tuple(data.train_x.shape) == (n - sum(HELD), 1, 6, 7) and data.train_x.dtype == torch.uint8
    assert tuple(data.val_x.shape) == (sum(HELD), 1, 6, 7)
    assert tuple(data.test_x.shape) == (30, 1, 6, 7)
    # the stratified hold-out: round(0.1 * n_c) of each class
    assert torch.bincount(data.val_noisy, minlength=5).tolist() == list(HELD)
    tr, va = data.split_index["train"].numpy(), data.split_index["noisy_val"].numpy()
    assert len(set(tr) | set(va)) == n and not set(tr) & set(va)
    # no noise: the labels training sees are the archive's, image for image
    assert data.train_noisy.tolist() == y[tr].tolist()
    assert data.val_noisy.tolist() == y[va].tolist()
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(x[tr]))
    assert data.info["noise_rate_realised"] == 0.0


def test_colour_archive_becomes_channels_first_with_pixels_kept(tmp_path):
    n = 60
    x = np.zeros((n, 5, 4, 3), dtype=np.uint8)  # N x H x W x C
    x[0, 0, 0] = (10, 20, 30)       # image 0, row 0, column 0: R, G, B
    x[0, 4, 3] = (200, 201, 202)    # image 0, last row, last column
    x[7, 2, 1] = (1, 2, 255)
    x[59, 3, 2, 1] = 77             # image 59, row 3, column 2, channel G
    _npz(tmp_path / "data.npz", train_images=x, train_labels=np.arange(n) % 3,
         test_images=x[:9].copy(), test_labels=np.arange(9) % 3)
    space = _space(tmp_path, settings=NONE, proxy="clean_intact")  # no hold-out: every image trains
    data = _data(space, "clean", tmp_path)
    assert data.num_classes == 3  # 1 + the largest label
    assert tuple(data.train_x.shape) == (n, 3, 5, 4)
    assert data.split_index["train"].tolist() == list(range(n))
    t = data.train_x
    assert t[0, :, 0, 0].tolist() == [10, 20, 30]
    assert t[0, :, 4, 3].tolist() == [200, 201, 202]
    assert t[7, :, 2, 1].tolist() == [1, 2, 255]
    assert t[59, :, 3, 2].tolist() == [0, 77, 0]
    assert int(t.sum()) == 10 + 20 + 30 + 200 + 201 + 202 + 1 + 2 + 255 + 77  # nothing else moved in
    assert tuple(data.test_x.shape) == (9, 3, 5, 4) and data.test_x[0, :, 0, 0].tolist() == [10, 20, 30]


def test_num_classes_option_overrides_the_largest_label(tmp_path):
    _npz(tmp_path / "data.npz", **_ok_arrays(classes=4))  # labels 0..3
    assert _data(_space(tmp_path, settings=NONE), "clean", tmp_path).num_classes == 4
    sp = _space(tmp_path, settings=NONE, dataset={"type": "arrays", "path": "data.npz", "num_classes": 7},
                name="seven.yaml")
    assert _data(sp, "clean", tmp_path).num_classes == 7


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_symmetric_noise_on_five_classes_has_the_asked_rate(tmp_path, rate):
    n = 4000
    y = np.arange(n) % 5
    _npz(tmp_path / "data.npz", train_images=_grey(n, 2, 2), train_labels=y,
         test_images=_grey(10, 2, 2), test_labels=np.arange(10) % 5)
    sp = _space(tmp_path, settings={"s": {"noise": {"type": "symmetric", "rate": rate}}})
    data = _data(sp, "s", tmp_path)
    idx = torch.cat([data.split_index["train"], data.split_index["noisy_val"]])
    noisy = torch.cat([data.train_noisy, data.val_noisy])
    clean = torch.from_numpy(y)[idx]
    assert idx.numel() == n
    assert int(noisy.min()) >= 0 and int(noisy.max()) < 5
    flipped = noisy != clean
    sd = (rate * (1 - rate) / n) ** 0.5
    assert abs(float(flipped.float().mean()) - rate) < 4 * sd
    # a flip goes to each of the 4 other classes alike: rate / 4 of the images each
    offset = ((noisy - clean) % 5)[flipped]
    share = torch.bincount(offset, minlength=5)[1:].double() / n
    assert torch.all((share - rate / 4).abs() < 4 * ((rate / 4) * (1 - rate / 4) / n) ** 0.5), share


def _real_archive(tmp_path, n=200, wrong=30, clean=True, clean_val_index=None):
    """train_clean_labels = i % 4; train_labels differ on the first ``wrong`` images (+1 mod 4)."""
    y_clean = np.arange(n) % 4
    y = y_clean.copy()
    y[:wrong] = (y[:wrong] + 1) % 4
    _npz(tmp_path / "data.npz", train_images=_grey(n), train_labels=y,
         train_clean_labels=y_clean if clean else None, test_images=_grey(12, seed=5),
         test_labels=np.arange(12) % 4, clean_val_index=clean_val_index)
    return y, y_clean


def test_real_noise_uses_the_labels_as_given_and_the_clean_ones_for_analytics(tmp_path):
    n, wrong = 200, 30
    y, y_clean = _real_archive(tmp_path, n, wrong)
    sp = _space(tmp_path, settings=REAL, proxy="clean_intact")  # allowed: the clean labels are known
    data = _data(sp, "real", tmp_path)
    assert data.split_index["train"].tolist() == list(range(n))
    assert data.train_noisy.tolist() == y.tolist()
    assert data.train_clean.tolist() == y_clean.tolist()
    assert data.info["noise_rate_realised"] == pytest.approx(wrong / n)
    # the method's analytics read those clean labels: a label table equal to the given labels is
    # right on the (n - wrong) clean ones, one equal to the clean labels on all of them
    cfg = load_space(sp).paper_config("real", str(tmp_path))
    m = method_class("ce")({**cfg, "device": "cpu"})
    assert "clean_intact" in m.data.splits()
    given = m.label_correction(torch.nn.functional.one_hot(torch.from_numpy(y), 4).float())
    assert given["label_acc"] == pytest.approx((n - wrong) / n)
    assert given["label_acc_clean"] == 1.0 and given["label_acc_noisy"] == 0.0
    fixed = m.label_correction(torch.nn.functional.one_hot(torch.from_numpy(y_clean), 4).float())
    assert fixed["label_acc"] == 1.0 and fixed["label_acc_noisy"] == 1.0


def test_synthetic_noise_is_refused_on_labels_that_are_already_noisy(tmp_path):
    _real_archive(tmp_path)
    sp = _space(tmp_path, settings={"sym-0.2": {"noise": {"type": "symmetric", "rate": 0.2}}})
    with pytest.raises(ConfigError) as info:
        load_experiment(sp)
    msg = str(info.value)
    assert str(sp) in msg and "settings.sym-0.2.noise.type" in msg and "'symmetric'" in msg and "real" in msg, msg


def test_synthetic_noise_is_allowed_when_the_clean_labels_equal_the_given_ones(tmp_path):
    y = np.arange(100) % 5
    _npz(tmp_path / "data.npz", **_ok_arrays(train_labels=y, train_clean_labels=y.copy()))
    data = _data(_space(tmp_path), "sym-0.2", tmp_path)
    assert data.train_clean.tolist() == y[data.split_index["train"].numpy()].tolist()


def test_without_clean_labels_real_noise_refuses_clean_intact(tmp_path):
    _real_archive(tmp_path, clean=False)
    sp = _space(tmp_path, settings=REAL, proxy="clean_intact")
    with pytest.raises(ConfigError) as info:
        load_experiment(sp)
    msg = str(info.value)
    assert str(sp) in msg and "proxy" in msg and "'clean_intact'" in msg, msg
    # the noisy hold-out still works, and no clean label is claimed
    data = _data(_space(tmp_path, settings=REAL, name="ok.yaml"), "real", tmp_path)
    assert data.info["noise_rate_realised"] is None
    assert bool((data.train_clean == -1).all())


@pytest.mark.parametrize("setting", ["real", "sym-0.4"])
def test_clean_val_index_is_a_held_out_trusted_split(tmp_path, setting):
    n = 200
    cv = np.array([3, 17, 18, 50, 99, 150, 199])
    y, _ = _real_archive(tmp_path, n, wrong=0, clean=False, clean_val_index=cv)
    x = np.load(tmp_path / "data.npz")["train_images"]
    sp = _space(tmp_path, proxy="clean_val",
                settings={**REAL, "sym-0.4": {"noise": {"type": "symmetric", "rate": 0.4}}})
    cfg = load_space(sp).paper_config(setting, str(tmp_path))  # no clean_val_size needed
    assert cfg["proxy"] == "clean_val" and cfg["clean_val_size"] == 0
    data = load_noisy_data(cfg)
    assert sorted(data.split_index["clean_val"].tolist()) == cv.tolist()
    order = data.split_index["clean_val"].numpy()
    assert torch.equal(data.cval_x[:, 0], torch.from_numpy(x[order]))
    assert data.cval_y.tolist() == y[order].tolist()  # their labels as given, never corrupted
    kept = set(data.split_index["train"].tolist()) | set(data.split_index["noisy_val"].tolist())
    assert not kept & set(cv.tolist()) and len(kept) == n - len(cv)
    assert data.info["n_clean_val"] == len(cv)


def test_clean_val_index_refuses_clean_val_size(tmp_path):
    _real_archive(tmp_path, wrong=0, clean=False, clean_val_index=np.array([1, 2, 3]))
    sp = _space(tmp_path, proxy="clean_val", clean_val_size=20)
    with pytest.raises(ConfigError) as info:
        load_experiment(sp)
    msg = str(info.value)
    assert str(sp) in msg and "clean_val_size" in msg and "20" in msg, msg


@pytest.mark.parametrize("model,first_layer_inputs", [("cnn6", 3), ("mlp", 3 * 64 * 64)])
def test_models_follow_the_data(tmp_path, model, first_layer_inputs):
    """5 classes of 3-channel 64 x 64 images: one epoch trains, and the network it trained
    takes such images and has 5 outputs."""
    rng = np.random.default_rng(2)
    _npz(tmp_path / "data.npz", train_images=rng.integers(0, 256, (15, 64, 64, 3), dtype=np.uint8),
         train_labels=np.arange(15) % 5, test_images=rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8),
         test_labels=np.arange(5) % 5)
    sp = _space(tmp_path, fixed={"model": model, "batch_size": 8}, settings=NONE, proxy="clean_intact",
                device="cpu")
    built = {}
    history = tune_lnl.train(sp, "clean", epochs=1, on_start=lambda m: built.update(method=m))
    assert len(history) == 1 and 0.0 <= history[0]["test_acc"] <= 1.0
    net = built["method"].net
    first = next(mod for mod in net.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)))
    assert (first.in_channels if isinstance(first, torch.nn.Conv2d) else first.in_features) == first_layer_inputs
    with torch.no_grad():
        assert tuple(net.eval()(torch.rand(4, 3, 64, 64)).shape) == (4, 5)


# -- 2. bad inputs ---------------------------------------------------------------------------------
PLUGIN_SOURCE = """
import torch.nn.functional as F
import tune_lnl

class NotAMethod:
    pass

class NoDefaults(tune_lnl.Method):
    pass

class NoLoss(tune_lnl.SingleNetwork):
    pass

class Alpha(tune_lnl.SingleNetwork):
    defaults = {**tune_lnl.SingleNetwork.defaults, "alpha": 0.5}
    constraints = {"alpha": tune_lnl.RATE}

    def loss(self, logits, labels):
        return self.cfg["alpha"] * F.cross_entropy(logits, labels, reduction="none")

class NotADataset:
    num_classes = 3
"""


def _method_case(method, fixed=None):
    def make(t):
        _npz(t / "data.npz", **_ok_arrays())
        return _space(t, method=method, fixed=fixed)
    return make


def _dataset_case(dataset=None, num_classes=None, **arrays):
    def make(t):
        _npz(t / "data.npz", **_ok_arrays(**arrays))
        ds = dataset or {"type": "arrays", "path": "data.npz", **({"num_classes": num_classes} if num_classes else {})}
        return _space(t, dataset=ds)
    return make


SPACE = "{space}"  # the space file's path, filled in per test
NPZ = "{npz}"      # the archive's path

# (id, make(tmp_path) -> space file, substrings the message must contain, the error class)
BAD = [
    ("method-module-missing", _method_case("no_such_module_xyz:Foo"),
     [SPACE, "method", "'no_such_module_xyz:Foo'", "no module named 'no_such_module_xyz'"], ConfigError),
    ("method-class-missing", _method_case("openplug:NoSuchClass"),
     [SPACE, "method", "'openplug:NoSuchClass'", "has no 'NoSuchClass'"], ConfigError),
    ("method-not-a-method", _method_case("openplug:NotAMethod"),
     [SPACE, "method", "'openplug:NotAMethod'", "tune_lnl.Method"], ConfigError),
    ("method-not-implemented", _method_case("openplug:NoDefaults"),  # (hyperparameters: Method's own)
     [SPACE, "method", "'openplug:NoDefaults'", "does not implement build, eval_models, load_method_state"],
     ConfigError),
    ("single-network-without-loss", _method_case("openplug:NoLoss"),
     [SPACE, "method", "'openplug:NoLoss'", "loss"], ConfigError),
    ("plugin-constraint-violated", _method_case("openplug:Alpha", {"alpha": 1.5}),
     [SPACE, "fixed.alpha", "1.5", "[0, 1)"], ConfigError),
    ("builtin-constraint-coteaching", _method_case("coteaching", {"forget_rate": 1.2}),
     [SPACE, "fixed.forget_rate", "1.2", "[0, 1)"], ConfigError),
    ("builtin-constraint-mlc", _method_case("mlc", {"mu": 0.5}),
     [SPACE, "fixed.mu", "0.5", "must be <= 0"], ConfigError),
    ("npz-missing-test-labels", _dataset_case(test_labels=None),
     [NPZ, "test_labels", "missing"], DataError),
    ("npz-label-out-of-range", _dataset_case(num_classes=5, train_labels=np.r_[np.arange(99) % 5, 7]),
     [NPZ, "train_labels", "7", "[0, 5)"], DataError),
    ("npz-float-images", _dataset_case(train_images=np.zeros((100, 8, 8), dtype=np.float32)),
     [NPZ, "train_images", "float32", "uint8"], DataError),
    ("npz-image-shapes-differ", _dataset_case(test_images=np.zeros((20, 9, 9), dtype=np.uint8)),
     [NPZ, "test_images", "(1, 9, 9)", "(1, 8, 8)"], DataError),
    ("npz-negative-label", _dataset_case(train_labels=np.r_[np.arange(99) % 5, -3]),
     [NPZ, "train_labels", "-3", "negative"], DataError),
    ("npz-clean-val-index-out-of-range", _dataset_case(clean_val_index=np.array([0, 5, 104])),
     [NPZ, "clean_val_index", "104", "[0, 100)"], DataError),
    ("npz-does-not-exist", _dataset_case(dataset={"type": "arrays", "path": "absent.npz"}),
     ["absent.npz", "path", "no such file"], DataError),
    ("dataset-unknown-option", _dataset_case(dataset={"type": "arrays", "path": "data.npz", "colour": "red"}),
     [SPACE, "dataset.colour", "'red'", "allowed: augment, num_classes, path"], ConfigError),
    ("dataset-not-a-dataset", _dataset_case(dataset="openplug:NotADataset"),
     [SPACE, "dataset", "'openplug:NotADataset'", "tune_lnl.InMemoryDataset"], ConfigError),
]


def _expected(parts, space: Path):
    return [p.replace(SPACE, str(space)).replace(NPZ, str((space.parent / "data.npz").resolve())) for p in parts]


@pytest.mark.parametrize("case,make,parts,error", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_refused_by_load_experiment(tmp_path, monkeypatch, case, make, parts, error):
    _module(tmp_path, monkeypatch, "openplug", PLUGIN_SOURCE)
    space = make(tmp_path)
    with pytest.raises(error) as info:
        load_experiment(space)
    msg = str(info.value)
    for part in _expected(parts, space):
        assert part in msg, (part, msg)


@pytest.mark.parametrize("case,make,parts,error", BAD, ids=[c[0] for c in BAD])
def test_bad_input_stops_the_cli_before_any_training(tmp_path, monkeypatch, capsys, case, make, parts, error):
    _module(tmp_path, monkeypatch, "openplug", PLUGIN_SOURCE)
    monkeypatch.chdir(tmp_path)
    space = make(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        search_main(["--space", str(space), "--storage-path", str(tmp_path / "results"),
                     "--data-root", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for part in _expected(parts, space):
        assert part in err, (part, err)
    assert not list(tmp_path.rglob("experiment.yaml")) and not (tmp_path / "results").exists()


def test_a_plugin_method_within_its_constraints_loads_under_its_import_path(tmp_path, monkeypatch):
    """The counterpart of the plugin-constraint row: alpha 0.5 lies in [0, 1)."""
    _module(tmp_path, monkeypatch, "openplug", PLUGIN_SOURCE)
    _npz(tmp_path / "data.npz", **_ok_arrays())
    exp = load_experiment(_space(tmp_path, method="openplug:Alpha", fixed={"alpha": 0.5}))
    assert list(exp.methods) == ["openplug:Alpha"]
    cfg = exp.methods["openplug:Alpha"].paper_config("sym-0.2", str(tmp_path))
    assert cfg["method"] == "openplug:Alpha" and cfg["alpha"] == 0.5


# -- 3. a user's dataset class --------------------------------------------------------------------
TINY_SOURCE = """
import torch
import tune_lnl

class Tiny(tune_lnl.InMemoryDataset):
    num_classes = 3
    image_shape = (1, 8, 8)

    def load(self, root):
        g = torch.Generator().manual_seed(0)
        train_x = torch.randint(0, 256, (90, 1, 8, 8), dtype=torch.uint8, generator=g)
        test_x = torch.randint(0, 256, (15, 1, 8, 8), dtype=torch.uint8, generator=g)
        train_y = torch.arange(90, dtype=torch.int64) % 3
        test_y = torch.arange(15, dtype=torch.int64) % 3
        return tune_lnl.Arrays(train_x, train_y, test_x, test_y)
"""


def test_a_dataset_class_of_the_user_loads_and_trains(tmp_path, monkeypatch):
    _module(tmp_path, monkeypatch, "tinymod", TINY_SOURCE)
    sp = _space(tmp_path, dataset="tinymod:Tiny", settings=NONE, device="cpu")
    exp = load_experiment(sp)
    assert exp.dataset == "tinymod:Tiny"
    cfg = load_space(sp).paper_config("clean", str(tmp_path))
    assert cfg["dataset"] == "tinymod:Tiny" and cfg["dataset_options"] == {}
    data = load_noisy_data(cfg)
    assert data.num_classes == 3 and tuple(data.train_x.shape[1:]) == (1, 8, 8)
    assert data.info["n_val"] == 9 and data.info["n_train"] == 81 and data.info["n_test"] == 15  # 3 x round(3.0)
    assert data.train_noisy.tolist() == (data.split_index["train"] % 3).tolist()
    history = tune_lnl.train(sp, "clean", epochs=1)
    assert len(history) == 1 and 0.0 <= history[0]["test_acc"] <= 1.0


# -- 4. a method registered by an installed package ---------------------------------------------
def test_an_entry_point_method_resolves_by_its_name(tmp_path, monkeypatch):
    dist = tmp_path / "fakeplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tune_lnl.methods]\nmytaylor = taylor_ce:TaylorCE\n")
    shutil.copy(TAYLOR_FILE, tmp_path / "taylor_ce.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "taylor_ce", raising=False)
    importlib.invalidate_caches()
    _npz(tmp_path / "data.npz", **_ok_arrays())
    sp = _space(tmp_path, method="mytaylor", fixed={"t": 3})
    exp = load_experiment(sp)
    assert list(exp.methods) == ["mytaylor"]
    cls = method_class("mytaylor")
    assert cls.__name__ == "TaylorCE" and issubclass(cls, tune_lnl.SingleNetwork)
    assert Path(sys.modules[cls.__module__].__file__).resolve() == (tmp_path / "taylor_ce.py").resolve()
    cfg = exp.methods["mytaylor"].paper_config("sym-0.2", str(tmp_path))
    assert cfg["method"] == "mytaylor" and cfg["t"] == 3 and cfg["lr"] == 1e-3
    # and its own constraints apply under that name
    bad = _space(tmp_path, method="mytaylor", fixed={"t": 0}, name="bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_experiment(bad)
    assert "fixed.t" in str(info.value) and "must be >= 1" in str(info.value)


# -- 5. the tune-lnl console script ----------------------------------------------------------------
CLI_TESTS = "test_console_script_"


@pytest.fixture(scope="module", autouse=True)
def _cli_processes(request, tmp_path_factory):
    """The four command lines, started together with this module's first test (each subprocess
    pays the torch import; meanwhile the in-process tests run) when a console-script test is
    selected; killed at the end if one still runs."""
    if not any(item.name.startswith(CLI_TESTS) for item in request.session.items):
        yield None
        return
    tmp = tmp_path_factory.mktemp("cli")
    _npz(tmp / "data.npz", **_ok_arrays(test_labels=None))  # an unusable archive
    bad = _space(tmp, name="bad.yaml")
    tune_lnl_bin = Path(sys.executable).parent / "tune-lnl"
    common = ["--space", str(bad), "--storage-path", str(tmp / "results"), "--data-root", str(tmp)]
    commands = {"help": [str(tune_lnl_bin), "--help"],
                "search": [str(tune_lnl_bin), "search", *common],
                "module": [sys.executable, "-m", "tune_lnl.search", *common],
                "unknown": [str(tune_lnl_bin), "nosuchcommand"]}
    procs = {}
    if tune_lnl_bin.is_file():
        procs = {k: subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k, cmd in commands.items()}
    yield {"tmp": tmp, "bin": tune_lnl_bin, "procs": procs, "done": {}}
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture
def cli_runs(_cli_processes):
    """``{command: (exit code, stdout, stderr)}`` of the four command lines."""
    assert _cli_processes["bin"].is_file(), \
        f"{_cli_processes['bin']} missing: pip install -e . installs the tune-lnl console script"
    done = _cli_processes["done"]
    for k, proc in _cli_processes["procs"].items():
        if k not in done:
            stdout, stderr = proc.communicate(timeout=180)
            done[k] = (proc.returncode, stdout, stderr)
    return {**done, "tmp": _cli_processes["tmp"]}


def test_console_script_help_lists_the_commands(cli_runs):
    rc, stdout, stderr = cli_runs["help"]
    assert rc == 0, stderr
    for command in ("search", "train", "report", "fidelity"):
        assert f"  {command} " in stdout, stdout


def test_console_script_search_fails_like_the_module(cli_runs):
    rc, _, stderr = cli_runs["search"]
    rc_module, _, stderr_module = cli_runs["module"]
    assert rc == 2 and rc_module == 2, (stderr, stderr_module)
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    lines_module = [line for line in stderr_module.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines == lines_module, (stderr, stderr_module)
    assert "test_labels" in lines[0] and "data.npz" in lines[0]
    assert "Traceback" not in stderr and "Traceback" not in stderr_module
    assert not (cli_runs["tmp"] / "results").exists()


def test_console_script_unknown_command(cli_runs):
    rc, _, stderr = cli_runs["unknown"]
    assert rc == 2
    assert "'nosuchcommand'" in stderr and "Traceback" not in stderr


# -- 6. the Python API's typed errors ---------------------------------------------------------------
def test_run_with_a_dict_names_the_dict_and_the_key(tmp_path):
    _npz(tmp_path / "data.npz", **_ok_arrays())
    space = yaml.safe_load(_space(tmp_path).read_text())
    space["dataset"]["path"] = str(tmp_path / "data.npz")
    space["method"] = "no_such_method"
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(space, storage_path=str(tmp_path / "results"), data_root=str(tmp_path))
    assert str(info.value).startswith("<space dict>: method"), str(info.value)
    assert "'no_such_method'" in str(info.value)
    assert not (tmp_path / "results").exists()


def test_run_refuses_zero_samples(tmp_path):
    _npz(tmp_path / "data.npz", **_ok_arrays())
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(_space(tmp_path), num_samples=0, storage_path=str(tmp_path / "results"),
                     data_root=str(tmp_path))
    assert "--num-samples" in str(info.value) and "0" in str(info.value)
    assert not (tmp_path / "results").exists()


def test_train_takes_a_run_config_dict(tmp_path):
    _npz(tmp_path / "data.npz", **_ok_arrays())
    cfg = load_space(_space(tmp_path, device="cpu")).paper_config("sym-0.2", str(tmp_path))
    assert cfg["epochs"] == 1
    history = tune_lnl.train({**cfg, "epochs": 3}, epochs=1)
    assert len(history) == 1 and history[0]["epoch"] == 1 and 0.0 <= history[0]["test_acc"] <= 1.0


# -- 7. bad inputs refused before any training: dataset options, user dataset classes ----------------
def _refusal(call) -> str:
    """The message of the ConfigError / DataError ``call()`` raises; a plain test failure when it
    accepts the input or raises anything else (a traceback for the user)."""
    try:
        call()
        other = None
    except TuneLNLError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 -- what the user would get instead of 'error: ...'
        other = exc
    if other is not None:
        pytest.fail(f"raised a bare {type(other).__name__} ({other}) instead of a ConfigError/DataError naming the "
                    f"file, key and value: the CLI prints a traceback", pytrace=False)
    pytest.fail("the bad input was accepted: it is not refused before training", pytrace=False)


def test_non_integer_num_classes_option_is_a_clear_error(tmp_path):
    _npz(tmp_path / "data.npz", **_ok_arrays())
    sp = _space(tmp_path, dataset={"type": "arrays", "path": "data.npz", "num_classes": "five"})
    msg = _refusal(lambda: load_experiment(sp))
    for part in (str(sp), "num_classes", "'five'"):
        assert part in msg, (part, msg)


def test_unknown_augment_option_is_refused_when_the_space_is_loaded(tmp_path):
    """``augment`` of ``{type: arrays}`` names the dataset's default augmentation: a name that
    is not one of none / crop_flip / perspective_jitter is refused at load time (not by every
    trial's worker dying, which the search would retry as an infrastructure fault)."""
    _npz(tmp_path / "data.npz", **_ok_arrays())
    sp = _space(tmp_path, dataset={"type": "arrays", "path": "data.npz", "augment": "bogus"})
    msg = _refusal(lambda: load_experiment(sp))
    for part in (str(sp), "augment", "'bogus'"):
        assert part in msg, (part, msg)


BAD_USER_DATASETS = """
import torch
import tune_lnl

class LabelsOutOfRange(tune_lnl.InMemoryDataset):
    num_classes = 3
    image_shape = (1, 8, 8)

    def load(self, root):
        x = torch.zeros(30, 1, 8, 8, dtype=torch.uint8)
        return tune_lnl.Arrays(x, torch.arange(30) % 5, x[:6].clone(), torch.arange(6) % 3)

class NoLoad(tune_lnl.InMemoryDataset):
    num_classes = 3
    image_shape = (1, 8, 8)
"""


def test_user_dataset_labels_outside_its_classes_are_refused_before_training(tmp_path, monkeypatch):
    """A dataset class declaring 3 classes whose load() returns label 4 is refused by the
    search's check before any trial (check_data), as the arrays dataset's archive is; not by
    every trial's worker dying in the noise draw."""
    _module(tmp_path, monkeypatch, "baddsmod", BAD_USER_DATASETS)
    msg = _refusal(lambda: check_data("baddsmod:LabelsOutOfRange", tmp_path))
    assert "4" in msg and "[0, 3)" in msg, msg


def test_user_dataset_without_load_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """An InMemoryDataset subclass that does not implement load() is refused by name (exit 2,
    'error: ...'), as a SingleNetwork without loss() is; no NotImplementedError traceback."""
    _module(tmp_path, monkeypatch, "baddsmod", BAD_USER_DATASETS)
    sp = _space(tmp_path, dataset="baddsmod:NoLoad")
    argv = ["--space", str(sp), "--storage-path", str(tmp_path / "results"), "--data-root", str(tmp_path)]
    code = other = None
    try:
        search_main(argv)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # noqa: BLE001
        other = exc
    if other is not None:
        pytest.fail(f"search_main raised a bare {type(other).__name__} ({other!r}) instead of exiting with "
                    f"'error: ...' naming the dataset and load()", pytrace=False)
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.startswith("error: ") and "baddsmod:NoLoad" in err and "load" in err, err


def test_arrays_without_path_names_the_space_file(tmp_path):
    """Every error names the file (tune_lnl.config's contract), also ``dataset: {type: arrays}``
    without ``path``."""
    sp = _space(tmp_path, dataset={"type": "arrays"})
    msg = _refusal(lambda: load_experiment(sp))
    assert str(sp) in msg and "path" in msg, msg


def test_the_examples_space_file_loads_its_plugin(monkeypatch):
    """examples/taylor_ce/: run from its folder (``python -m`` puts the folder on the path), the
    space file resolves ``"taylor_ce:TaylorCE"`` and its paper values lie inside the searched ranges (smoke too)."""
    folder = REPO / "examples" / "taylor_ce"
    monkeypatch.syspath_prepend(str(folder))
    for smoke in (False, True):
        exp = load_experiment(folder / "taylor_ce_mnist.yaml", smoke_mode=smoke)
        assert list(exp.methods) == ["taylor_ce:TaylorCE"]
        cfg = exp.first.paper_config("sym-0.2", "/data")
        assert (cfg["t"], cfg["lr"]) == (2, 1.0e-3)
        assert cfg["epochs"] == (3 if smoke else 100)
    monkeypatch.delitem(sys.modules, "taylor_ce", raising=False)
