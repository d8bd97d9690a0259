"""A checkpoint never runs code (issue 26): ``Method.load`` reads ``torch.load(weights_only=True)``,
so a planted pickle is refused with :class:`tune_lnl.errors.CheckpointError` naming the file, and
every built-in method's checkpoint holds only weights-only-loadable values. (Exact resume of each
method is checked by its own tests: test_checkpoint.py (MLC, both variants),
test_single_network.py (CE, MAE, GCE, IMAE), test_pencil.py, test_coteaching.py,
test_coteaching_plus.py, test_jocor.py.)"""
import pathlib
import pickle

import numpy as np
import pytest
import torch
from method_helpers import TIMING, _tensors, tiny_cfg

from tune_lnl import CheckpointError, TuneLNLError
from tune_lnl.data import load_noisy_data
from tune_lnl.methods import method_class
from tune_lnl.methods.base import CheckpointMismatch

torch.set_num_threads(1)

#: every built-in method (MLC in both variants): (method, run-config overrides)
METHODS = [("ce", {}), ("mae", {}), ("gce", {}), ("imae", {}), ("pencil", {}), ("coteaching", {}),
           ("coteaching_plus", {}), ("jocor", {}), ("mlc", {"variant": "paper"}), ("mlc", {"variant": "official"})]


def _cfg(data_root, method, **over):
    cfg = tiny_cfg(method, data_root, train_subset=256, test_subset=128, epochs=2, **over)
    if method == "mlc":
        cfg.update(stage1=1, stage2=2)
    return cfg


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root, "ce"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data_root, data):
    """A real CE checkpoint after one epoch: ``(config, path)``."""
    cfg = _cfg(data_root, "ce")
    m = method_class("ce")(cfg, data)
    m.step()
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    m.save(path)
    return cfg, path


class _Touch:
    """Unpickling this creates ``marker`` (``pathlib.Path.touch``): a stand-in for any code."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _assert_refused(m, path, excinfo):
    message = str(excinfo.value)
    assert str(path) in message and "not a loadable tune_lnl checkpoint" in message
    assert "Delete it" in message
    assert "weights_only=False" not in message and "add_safe_globals" not in message  # no unsafe advice
    assert len(message) < 200 + 2 * len(str(path)) + 300  # the reason is capped
    assert m.epoch == 0 and m.history == []  # nothing half-loaded


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_planted_pickle_is_refused_without_running_it(saved, data, tmp_path, writer):
    cfg, _ = saved
    marker = tmp_path / "MARKER"
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    evil = {"format": "tune_lnl.checkpoint/1", "epoch": 1, "payload": _Touch(marker)}
    if writer == "torch.save":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil, protocol=2))  # torch's own legacy format: the unpickler reaches the global
    m = method_class("ce")(cfg, data)
    with pytest.raises(CheckpointError) as excinfo:
        m.load(path)
    assert not marker.exists(), "loading the checkpoint ran code from it"
    _assert_refused(m, path, excinfo)
    assert "Unsupported global" in str(excinfo.value)  # the short reason


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated"])
def test_a_corrupt_file_is_refused_naming_it(saved, data, tmp_path, kind):
    cfg, good = saved
    path = tmp_path / f"{kind}.pt"
    raw = good.read_bytes()
    path.write_bytes({"garbage": bytes(range(256)) * 40, "empty": b"", "truncated": raw[: len(raw) // 2]}[kind])
    m = method_class("ce")(cfg, data)
    with pytest.raises(CheckpointError) as excinfo:
        m.load(path)
    _assert_refused(m, path, excinfo)


def test_a_weights_only_payload_that_is_no_checkpoint_is_a_mismatch(saved, data, tmp_path):
    """A file that loads safely but is no tune_lnl checkpoint (a list, another run's state) is a
    CheckpointMismatch: a CheckpointError, hence a TuneLNLError, naming the file."""
    cfg, _ = saved
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointMismatch, match="list.pt"):
        method_class("ce")(cfg, data).load(path)
    assert issubclass(CheckpointMismatch, CheckpointError) and issubclass(CheckpointError, TuneLNLError)


def test_the_saved_bytes_load_weights_only(saved):
    """Independent of Method.load: the bytes Method.save wrote load under torch.load(weights_only=True)."""
    _, path = saved
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["format"] == "tune_lnl.checkpoint/1" and state["method"] == "ce" and state["epoch"] == 1


@pytest.mark.parametrize("method,over", METHODS, ids=[m + "-" + o.get("variant", "") for m, o in METHODS])
def test_every_builtin_checkpoint_loads_weights_only(method, over, data_root, data, tmp_path):
    """Each built-in method's checkpoint (after one epoch) loads with weights_only=True, holds
    exactly its state_dict() and restores it into a fresh object."""
    cfg = _cfg(data_root, method, **over)
    m = method_class(method)(cfg, data)
    m.step()
    m.save(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", map_location="cpu", weights_only=True)
    expected, got = _tensors(m.state_dict()), _tensors(state)
    assert expected.keys() == got.keys()
    for k, v in expected.items():
        assert torch.equal(v, got[k]) if isinstance(v, torch.Tensor) else v == got[k], k
    fresh = method_class(method)(cfg, data)
    fresh.load(tmp_path / "c.pt")
    assert fresh.epoch == 1
    a, b = (_tensors({**x.method_state(), **{t: getattr(x, t) for t in x.tables}}) for x in (m, fresh))
    assert all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_numpy_and_path_values_are_stored_as_plain_values(saved, data, data_root, tmp_path):
    """NumPy scalars (a searcher's sample, a method's statistic) and paths in the config or the
    history are written as Python numbers and strings: the file loads weights-only, the resumed
    history equals the original, and the identity still matches."""
    cfg = {**_cfg(data_root, "ce"), "lr": np.float64(1e-3), "batch_size": np.int64(128),
           "noise_rate": np.float64(0.2), "data_root": pathlib.Path(data_root)}
    m = method_class("ce")(cfg, data)
    m.step()
    m.history[-1].update(extra=np.float32(0.5), count=np.int64(7), flag=np.bool_(True))
    m.save(tmp_path / "np.pt")
    state = torch.load(tmp_path / "np.pt", map_location="cpu", weights_only=True)
    assert type(state["config"]["lr"]) is float and type(state["config"]["batch_size"]) is int
    assert state["config"]["data_root"] == str(data_root)
    assert type(state["history"][-1]["count"]) is int and state["history"][-1]["flag"] is True
    fresh = method_class("ce")(cfg, data)
    fresh.load(tmp_path / "np.pt")
    strip = lambda h: [{k: v for k, v in e.items() if k not in TIMING} for e in h]
    assert strip(fresh.history) == strip(m.history)


def test_a_value_no_checkpoint_can_hold_is_refused_on_save(saved, data, tmp_path):
    """A method state holding an arbitrary object fails at save (naming where it is), not at
    the resume that could never load it."""
    cfg, _ = saved
    m = method_class("ce")(cfg, data)
    m.history.append({"epoch": 0, "odd": object()})
    with pytest.raises(TypeError, match=r"history.*odd"):
        m.save(tmp_path / "odd.pt")
    assert not (tmp_path / "odd.pt").exists()


def test_a_link_planted_at_the_temporary_checkpoint_is_never_written_through(saved, data, tmp_path):
    """``checkpoint.pt.tmp`` that is a symbolic link to a user's file: the save is refused naming
    it, and the user's file keeps its content."""
    cfg, _ = saved
    m = method_class("ce")(cfg, data)
    victim = tmp_path / "users_file.txt"
    victim.write_text("mine")
    (tmp_path / "checkpoint.pt.tmp").symlink_to(victim)
    with pytest.raises(TuneLNLError, match="checkpoint.pt.tmp is a symbolic link"):
        m.save(tmp_path / "checkpoint.pt")
    assert victim.read_text() == "mine" and not (tmp_path / "checkpoint.pt").exists()
