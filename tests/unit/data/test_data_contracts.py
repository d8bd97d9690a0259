"""The data layer's declared contracts (issue 27, item 4): the device-data Protocol both
implementations provide, the one proxy registry every other module reads, and ``abc`` on the
dataset base classes (a user's class lacking a method is refused by name)."""
from __future__ import annotations

import ast
import copy
import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

import tune_lnl.data
from tune_lnl.config import load_space
from tune_lnl.data import Arrays, Dataset, InMemoryDataset, StreamedDataset, dataset_class, open_dataset
from tune_lnl.data.clothing1m import Clothing1MDeviceData, load_clothing1m
from tune_lnl.data.data_config import DataConfig
from tune_lnl.data.device import DeviceData
from tune_lnl.data.protocols import HostData, TrainingData
from tune_lnl.data.proxies import EVERY_EPOCH, PROXIES, WHEN_SELECTING, Proxy
from tune_lnl.data.splits import make_noisy_data
from tune_lnl.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


# -- 1. the device-data Protocol ---------------------------------------------------------------

def _protocol_members(proto) -> dict[str, object]:
    """``{name: declared object}`` of a Protocol class: its annotated attributes (value None),
    its methods and properties."""
    members = dict.fromkeys(proto.__annotations__)
    members |= {k: v for k, v in vars(proto).items()
                if not k.startswith("_") and (inspect.isfunction(v) or isinstance(v, property))}
    return members


def _in_memory(device="cpu"):
    """A tiny in-memory run: 40 training images of 4 classes (a clean validation subset of 8)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.arange(40) % 4
    cfg = DataConfig(dataset="arrays", noise_type="symmetric", noise_rate=0.2, clean_val_size=8)
    host = make_noisy_data(Arrays(x, y, x[:10].clone(), y[:10].clone()), 4, cfg)
    return host, host.to_device(torch.device(device))


@pytest.fixture
def streamed(tmp_path):
    """A Clothing1M folder of empty image files (the device view opens no image until a batch
    is asked for; num_workers 0: no worker process), as host data and its device view."""
    folder = tmp_path / "clothing1m"
    keys = {"train": [f"img/t{i}.jpg" for i in range(6)], "val": ["img/v0.jpg", "img/v1.jpg"],
            "test": ["img/s0.jpg", "img/s1.jpg"]}
    for k in sum(keys.values(), []):
        (folder / k).parent.mkdir(parents=True, exist_ok=True)
        (folder / k).write_bytes(b"")
    lines = {"noisy_label_kv.txt": [f"{k} {i % 14}" for i, k in enumerate(keys["train"])],
             "clean_label_kv.txt": [f"{k} 1" for k in keys["train"][:3] + keys["val"] + keys["test"]],
             "noisy_train_key_list.txt": keys["train"], "clean_val_key_list.txt": keys["val"],
             "clean_test_key_list.txt": keys["test"]}
    for name, rows in lines.items():
        (folder / name).write_text("".join(f"{r}\n" for r in rows))
    host = load_clothing1m({"data_root": str(tmp_path), "proxy": "clean_intact", "num_workers": 0})
    dev = host.to_device("cpu")
    yield host, dev
    dev.close()


def test_both_device_data_implementations_provide_every_protocol_member(streamed):
    """DeviceData (in memory) and Clothing1M's device view (streamed) are TrainingData: every
    declared member is there, each method takes the Protocol's parameters by the same names, and
    what ``to_device`` is called on is HostData."""
    host_mem, mem = _in_memory()
    host_str, stream = streamed
    assert isinstance(mem, DeviceData) and isinstance(stream, Clothing1MDeviceData)
    members = _protocol_members(TrainingData)
    for name in ("batches", "view_batches", "splits", "labels", "logits", "augmentation", "train_noisy", "train_clean",
                 "num_classes", "image_shape", "in_memory", "info", "close"):  # what the methods use
        assert name in members, name
    for impl in (mem, stream):
        assert isinstance(impl, TrainingData), type(impl)
        for name, declared in members.items():
            assert hasattr(impl, name), (type(impl).__name__, name)
            if inspect.isfunction(declared):
                want = list(inspect.signature(declared).parameters)[1:]
                got = list(inspect.signature(getattr(impl, name)).parameters)
                assert got[:len(want)] == want, (type(impl).__name__, name, got, want)
    for host in (host_mem, host_str):
        assert isinstance(host, HostData)
    assert (mem.in_memory, stream.in_memory) == (True, False)
    assert mem.train_noisy.shape == mem.train_clean.shape == (mem.n_train,)
    assert tuple(mem.image_shape) == (1, 4, 4) and mem.num_classes == 4


def test_the_protocol_check_can_fail():
    """An object lacking a member (here ``close``) is not TrainingData: the check is not vacuous."""
    _, mem = _in_memory()
    partial = types.SimpleNamespace(**{k: getattr(mem, k) for k in _protocol_members(TrainingData) if k != "close"})
    assert not isinstance(partial, TrainingData)
    assert isinstance(types.SimpleNamespace(**{k: getattr(mem, k) for k in _protocol_members(TrainingData)}),
                      TrainingData)


def test_method_data_is_annotated_with_the_protocol():
    """``Method.data`` is declared as the Protocol (what a method may rely on)."""
    assert "self.data: TrainingData" in (REPO / "tune_lnl" / "methods" / "base.py").read_text()


# -- 2. the proxy registry ---------------------------------------------------------------------

def test_the_registry_declares_every_proxy_in_a_fixed_order():
    assert list(PROXIES) == ["noisy_val", "clean_val", "clean_intact"]
    assert tune_lnl.data.PROXIES is PROXIES
    for name, p in PROXIES.items():
        assert isinstance(p, Proxy) and p.name == name
        assert {p.in_memory_policy, p.streamed_policy} <= {EVERY_EPOCH, WHEN_SELECTING}
        assert p.split and p.description and "\n" not in p.split + p.description
    with pytest.raises(AttributeError):
        PROXIES["noisy_val"].held_out = False  # frozen
    assert [p for p in PROXIES if PROXIES[p].needs_clean_labels] == ["clean_intact"]
    assert [p for p in PROXIES if not PROXIES[p].held_out] == ["clean_intact"]


def test_which_proxies_a_run_scores():
    """In memory every proxy is scored every epoch; streamed, clean_intact (a pass over the
    training images read from disk) only when it selects."""
    for p in PROXIES.values():
        assert p.evaluated(in_memory=True, selecting=False)
        assert p.evaluated(in_memory=False, selecting=True)
    assert [p.name for p in PROXIES.values() if not p.evaluated(in_memory=False, selecting=False)] == ["clean_intact"]


def test_splits_follow_the_registry_order(streamed):
    _, mem = _in_memory()
    assert mem.splits() == ("test", "noisy_val", "clean_val", "clean_intact")
    assert streamed[1].splits() == ("test", "clean_val", "clean_intact")


def test_the_space_file_check_lists_the_registry(tmp_path):
    """An unknown ``proxy:`` is refused naming the file, the key, the value and the registry's
    proxies in its order."""
    raw = yaml.safe_load((REPO / "search_spaces" / "mlc_mnist.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["proxy"] = "test_acc"
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_space(path)
    msg = str(err.value)
    assert str(path) in msg and "proxy" in msg and "'test_acc'" in msg, msg
    assert "allowed: noisy_val, clean_val, clean_intact" in msg, msg


def test_a_dataset_declaring_an_unknown_default_proxy_is_refused(monkeypatch):
    mod = types.ModuleType("contracts_ds")

    class OddProxy(InMemoryDataset):
        num_classes, image_shape, default_proxy = 3, (1, 4, 4), "test_acc"

        def load(self, root):
            raise AssertionError("not loaded")

    mod.OddProxy = OddProxy
    monkeypatch.setitem(sys.modules, "contracts_ds", mod)
    with pytest.raises(ConfigError) as err:
        open_dataset("contracts_ds:OddProxy")
    msg = str(err.value)
    assert "'contracts_ds:OddProxy'" in msg and "default_proxy 'test_acc'" in msg, msg
    assert "allowed: noisy_val, clean_val, clean_intact" in msg, msg


def test_fidelity_reads_the_registry_without_importing_torch():
    """The fidelity tables list the registry's proxies; the data package loads its names on
    first use, so the registry (and the fidelity module) import without torch."""
    code = ("import sys, tune_lnl.results.fidelity as f, tune_lnl.data.proxies as p; "
            "assert f.PROXY_KEYS == tuple(p.PROXIES), f.PROXY_KEYS; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


# -- 3. abc on the dataset base classes --------------------------------------------------------

def test_the_dataset_bases_are_abstract():
    assert Dataset.__abstractmethods__ == {"noisy_data"}
    assert StreamedDataset.__abstractmethods__ == {"noisy_data"}
    assert InMemoryDataset.__abstractmethods__ == {"load"}
    with pytest.raises(TypeError, match="load"):
        InMemoryDataset()


@pytest.mark.parametrize("base, expected", [
    (InMemoryDataset, ["subclasses tune_lnl.InMemoryDataset", "does not implement load(root)", "tune_lnl.Arrays"]),
    (StreamedDataset, ["subclasses tune_lnl.StreamedDataset", "does not implement noisy_data(cfg)",
                       "or subclass tune_lnl.InMemoryDataset and implement load(root)"]),
    (Dataset, ["subclasses tune_lnl.Dataset", "does not implement noisy_data(cfg)"]),
])
def test_a_dataset_class_lacking_an_abstract_method_is_refused_by_name(monkeypatch, base, expected):
    mod = types.ModuleType("contracts_ds")
    mod.Incomplete = type("Incomplete", (base,), {"num_classes": 3, "image_shape": (1, 4, 4)})
    monkeypatch.setitem(sys.modules, "contracts_ds", mod)
    with pytest.raises(ConfigError) as err:
        dataset_class("contracts_ds:Incomplete", where="space.yaml: dataset")
    msg = str(err.value)
    for part in ["space.yaml: dataset", "'contracts_ds:Incomplete'", *expected]:
        assert part in msg, (part, msg)


def test_a_complete_user_dataset_class_is_accepted(monkeypatch):
    mod = types.ModuleType("contracts_ds")
    mod.Complete = type("Complete", (StreamedDataset,), {"num_classes": 3, "image_shape": (1, 4, 4),
                                                          "noisy_data": lambda self, cfg: None})
    monkeypatch.setitem(sys.modules, "contracts_ds", mod)
    assert dataset_class("contracts_ds:Complete") is mod.Complete


# -- 4. the registry stays the one place -------------------------------------------------------

def proxy_lists(source: str) -> list[int]:
    """Line numbers of the tuples, lists and sets in ``source`` spelling two or more proxy names
    as string literals."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Tuple, ast.List, ast.Set))
            and sum(isinstance(e, ast.Constant) and e.value in PROXIES for e in node.elts) >= 2]


def test_the_proxy_list_finder_can_fail():
    assert proxy_lists('A = ("noisy_val", "clean_val")\nB = ["clean_intact", "x", "noisy_val"]\n') == [1, 2]
    assert proxy_lists('A = ("test", *PROXIES)\nB = ("noisy_val",)\nif p == "clean_intact": pass\n') == []


def test_no_module_outside_the_registry_lists_proxy_names():
    registry = REPO / "tune_lnl" / "data" / "proxies.py"
    found = [f"{path.relative_to(REPO)}:{line}"
             for root in ("tune_lnl", "trainables") for path in sorted((REPO / root).rglob("*.py"))
             if path != registry for line in proxy_lists(path.read_text())]
    assert not found, f"proxy names listed outside tune_lnl/data/proxies.py (read PROXIES instead): {found}"


def test_the_training_split_is_scored_in_index_order_unaugmented():
    """``logits(model, "train")`` (what methods that estimate a transition matrix or a label prior
    read): one row per training image in index order, computed from the un-augmented pixels as
    ``x / 255``; ``labels("train")`` are the noisy training labels; ``splits()`` never lists it
    (it is never scored as a proxy)."""
    _, mem = _in_memory()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    expected = model(mem.train_x.float() / 255.0)
    got = mem.logits(model, "train")
    assert got.shape == (mem.n_train, 4)
    assert torch.allclose(got, expected.detach(), atol=1e-6)
    assert torch.equal(mem.labels("train"), mem.train_noisy)
    assert "train" not in mem.splits()


def test_the_streamed_training_split_names_its_labels_and_refuses_unknown_splits(streamed):
    """Clothing1M's device view: ``labels("train")`` are its noisy training labels; an unknown
    split is refused by name, listing ``train`` among the available ones."""
    _, stream = streamed
    assert torch.equal(stream.labels("train"), stream.train_noisy)
    with pytest.raises(ConfigError, match=r"no split 'nosuch'.*available: train, "):
        stream.logits(torch.nn.Identity(), "nosuch")
