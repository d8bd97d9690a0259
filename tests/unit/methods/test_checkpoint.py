"""Checkpoint / resume of MLC (tune_lnl.methods.base.Method.save/load): N epochs straight must equal
N/2 epochs + save + a FRESH object from the same config + load + N/2 epochs, bit for bit."""

from pathlib import Path

import pytest
import torch

from trainables.mlc import MLC
from tune_lnl.data import load_noisy_data
from tune_lnl.errors import CheckpointError
from tune_lnl.methods.base import CheckpointMismatch

torch.set_num_threads(1)


TIMING = {"epoch_time", "train_time"}


def cfg_for(root, variant, **over):
    """A tiny MLC run config; root: the real-MNIST data root (tests/conftest.py's data_root)."""
    cfg = dict(MLC.defaults)
    cfg.update(method="mlc", dataset="mnist", data_root=str(root), noise_type="symmetric",
               noise_rate=0.4, noise_seed=0, proxy="noisy_val", val_fraction=0.1, train_subset=400,
               test_subset=200, seed=3, device="cpu", epochs=4, stage1=1, stage2=3, num_gradual=2,
               batch_size=128, augment=True, variant=variant)
    cfg.update(over)
    return cfg


def assert_same_state(m1: MLC, m2: MLC):
    assert m1.epoch == m2.epoch
    for net in ("net_a", "net_b"):
        s1, s2 = getattr(m1, net).state_dict(), getattr(m2, net).state_dict()
        assert s1.keys() == s2.keys()
        for k in s1:
            assert torch.equal(s1[k], s2[k]), f"{net}.{k}"
    for opt in ("opt_a", "opt_b"):
        o1, o2 = getattr(m1, opt).state_dict(), getattr(m2, opt).state_dict()
        assert o1["param_groups"] == o2["param_groups"], opt
        assert o1["state"].keys() == o2["state"].keys()
        assert len(o1["state"]) > 0
        for pid in o1["state"]:
            for k, v in o1["state"][pid].items():
                assert torch.equal(v, o2["state"][pid][k]), f"{opt}[{pid}].{k}"
    assert torch.equal(m1.ytilde, m2.ytilde)
    assert torch.equal(m1.gen.get_state(), m2.gen.get_state())
    assert len(m1.history) == len(m2.history)
    for h1, h2 in zip(m1.history, m2.history):
        assert {k: v for k, v in h1.items() if k not in TIMING} == {k: v for k, v in h2.items() if k not in TIMING}


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_resume_is_exact_across_stage_boundaries(tmp_path, data_root, variant):
    N = 4
    cfg = cfg_for(data_root, variant)
    straight = MLC(cfg)
    for _ in range(N):
        straight.step()
    assert [h["stage"] for h in straight.history] == [1, 2, 2, 3]

    first = MLC(cfg)
    for _ in range(N // 2):
        first.step()
    path = tmp_path / "state.pt"
    first.save(path)
    assert path.is_file() and not Path(f"{path}.tmp").exists()
    table_at_save = first.ytilde.clone()
    del first

    # some unrelated use of the global RNG between the two halves must not matter
    torch.manual_seed(1234)
    torch.rand(1000)
    resumed = MLC(cfg)  # fresh object: freshly loaded data, freshly initialised nets
    assert resumed.epoch == 0
    resumed.load(path)
    assert resumed.epoch == N // 2
    assert torch.equal(resumed.ytilde, table_at_save)  # the corrected labels survive the resume
    for _ in range(N - N // 2):
        resumed.step()
    assert resumed.done
    assert_same_state(straight, resumed)


def test_resume_mid_stage2_keeps_label_table_changes(tmp_path, data_root):
    # after resume, stage 2 continues from the CORRECTED table, not from K * onehot
    cfg = cfg_for(data_root, "paper")
    m = MLC(cfg)
    m.step(), m.step()  # stage 1, then one stage-2 epoch
    init = cfg["K"] * torch.nn.functional.one_hot(m.data.train_noisy, 10).float()
    assert not torch.equal(m.ytilde, init)
    m.save(tmp_path / "c.pt")
    fresh = MLC(cfg)
    assert torch.equal(fresh.ytilde, init)
    fresh.load(tmp_path / "c.pt")
    assert torch.equal(fresh.ytilde, m.ytilde)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data_root):
    cfg = cfg_for(data_root, "paper", epochs=2, stage1=1, stage2=2)
    data = load_noisy_data(cfg)
    m = MLC(cfg, data)
    m.step()
    path = tmp_path_factory.mktemp("ckpt") / "state.pt"
    m.save(path)
    return cfg, data, path


@pytest.mark.parametrize("change", [
    {"noise_rate": 0.2},
    {"noise_type": "pairflip"},
    {"noise_seed": 1},
    {"train_subset": 300},
    {"proxy": "clean_intact"},
    {"val_fraction": 0.2},
    {"dataset": "other"},
])
def test_checkpoint_of_another_setting_is_refused(saved, change):
    cfg, data, path = saved
    other = MLC({**cfg, **change}, data)  # data passed in: only the identity differs
    before = other.ytilde.clone()
    with pytest.raises(CheckpointMismatch):
        other.load(path)
    assert other.epoch == 0 and other.history == []  # nothing half-loaded
    assert torch.equal(other.ytilde, before)


def test_checkpoint_of_another_method_is_refused(saved, tmp_path):
    cfg, data, path = saved
    state = torch.load(path, weights_only=False)
    state["method"] = "pencil"
    state["identity"] = {**state["identity"], "method": "pencil"}
    torch.save(state, tmp_path / "other_method.pt")
    with pytest.raises(CheckpointMismatch):
        MLC(cfg, data).load(tmp_path / "other_method.pt")


def test_checkpoint_without_format_is_refused(saved, tmp_path):
    cfg, data, path = saved
    state = torch.load(path, weights_only=False)
    del state["format"]
    torch.save(state, tmp_path / "noformat.pt")
    with pytest.raises(CheckpointMismatch):
        MLC(cfg, data).load(tmp_path / "noformat.pt")


def test_matching_checkpoint_loads(saved):
    cfg, data, path = saved
    m = MLC(cfg, data)
    m.load(path)
    assert m.epoch == 1 and len(m.history) == 1


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_file_raises(saved, tmp_path, kind):
    cfg, data, path = saved
    good = path.read_bytes()
    bad = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        bad.write_bytes(bytes(range(256)) * 40)
    elif kind == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    else:
        bad.write_bytes(b"")
    m = MLC(cfg, data)
    with pytest.raises(CheckpointError):
        m.load(bad)
    assert m.epoch == 0


def test_missing_checkpoint_file_raises(saved, tmp_path):
    cfg, data, _ = saved
    with pytest.raises(FileNotFoundError):
        MLC(cfg, data).load(tmp_path / "does_not_exist.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda(tmp_path, data_root):
    # torch.load(map_location=cuda) must not break restoring the CPU-side RNG / generator states
    cfg = cfg_for(data_root, "paper", device="cuda")
    straight = MLC(cfg)
    for _ in range(4):
        straight.step()
    first = MLC(cfg)
    first.step(), first.step()
    first.save(tmp_path / "cuda.pt")
    resumed = MLC(cfg)
    resumed.load(tmp_path / "cuda.pt")
    assert resumed.epoch == 2
    assert torch.equal(resumed.ytilde, first.ytilde)
    assert torch.equal(resumed.gen.get_state(), first.gen.get_state())
    resumed.step(), resumed.step()
    for p1, p2 in zip(straight.net_a.parameters(), resumed.net_a.parameters()):
        assert torch.allclose(p1, p2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(straight.ytilde, resumed.ytilde, rtol=1e-5, atol=1e-5)
