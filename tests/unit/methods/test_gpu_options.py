"""The speed switches of every run config (``amp``, ``channels_last``, ``compile``; all off by
default) and the per-process cache of device-resident data, on the CPU: bf16 autocast trains
every kind of method with finite losses and float32 label tables, NHWC gives the default
layout's losses, a compiled model's checkpoint loads into a plain object and back, and methods
of one process share one copy of the same data without writing into it."""
import math

import pytest
import torch
from method_helpers import tiny_cfg

from tune_lnl.data import NoisyData, cached_noisy_data, clear_data_cache, data_key
from tune_lnl.data.augment import cifar10_augment
from tune_lnl.methods import METHOD_NAMES, SPEED_DEFAULTS, defaults_of, method_class
from tune_lnl.methods.base import autocast_context


def _small(method, data_root, **kw):
    """A smaller tiny run: 512 training images, label learning (stage 2) from epoch 1 on."""
    return tiny_cfg(method, data_root, **{"train_subset": 512, "test_subset": 256, "epochs": 2, "stage1": 1,
                                          "stage2": 2, "num_gradual": 2, **kw})


def test_every_method_accepts_the_switches_off_by_default_and_outside_identity(data_root):
    assert SPEED_DEFAULTS == {"amp": "none", "channels_last": False, "compile": False}
    for name in METHOD_NAMES:
        assert {k: defaults_of(name)[k] for k in SPEED_DEFAULTS} == SPEED_DEFAULTS
    m = method_class("ce")(_small("ce", data_root))
    assert not set(SPEED_DEFAULTS) & set(m.identity())


def test_autocast_context_refuses_unknown_mode():
    with pytest.raises(ValueError, match="fp16"):
        autocast_context(torch.device("cpu"), "fp16")


# -- amp ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ce", "mlc", "pencil", "coteaching"])
def test_bf16_autocast_trains(data_root, method):
    m = method_class(method)(_small(method, data_root, amp="bf16"))
    seen = []
    for model in m.eval_models().values():  # the dtype of the logits the training loop gets
        model.register_forward_hook(lambda mod, args, out: seen.append((mod.training, out.dtype)))
    table0 = m.ytilde.clone() if m.tables else None
    for _ in range(2):
        r = m.step()
        assert math.isfinite(r["train_loss"])
        accs = {k: v for k, v in r.items() if k.endswith("_acc") or "_acc_" in k}
        assert accs and all(0.0 <= v <= 1.0 for v in accs.values()), accs
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}
    assert {dtype for training, dtype in seen if not training} == {torch.bfloat16}  # evaluation too
    if table0 is not None:
        assert m.ytilde.dtype == torch.float32
        assert not torch.equal(m.ytilde, table0)  # the label updates of stage 2 did run under autocast


def test_bf16_checkpoint_continues_without_amp(data_root, tmp_path):
    cfg = _small("pencil", data_root, amp="bf16")
    m = method_class("pencil")(cfg)
    m.step()
    m.save(tmp_path / "amp.pt")
    plain = method_class("pencil")({**cfg, "amp": "none"})
    plain.load(tmp_path / "amp.pt")
    assert plain.ytilde.dtype == torch.float32
    assert math.isfinite(plain.step()["train_loss"])


# -- channels_last ------------------------------------------------------------------------------

def _cifar_like(n: int = 32, n_test: int = 8) -> NoisyData:
    """Stand-in CIFAR-10: random uint8 ``[n, 3, 32, 32]`` images, CIFAR's crop + flip."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    test_x = torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    test_y = torch.randint(0, 10, (n_test,), generator=g)
    none = torch.empty(0, dtype=torch.long)
    return NoisyData(x, y, y.clone(), x[:0], none, none, test_x, test_y, 10, torch.eye(10),
                     augment=cifar10_augment)


def _cnn6_cfg(**kw) -> dict:
    return {**defaults_of("ce"), "method": "ce", "dataset": "cifar10", "data_root": "unused", "proxy": "clean_intact",
            "val_fraction": 0.1, "noise_seed": 0, "noise_type": "symmetric", "noise_rate": 0.2, "seed": 1,
            "device": "cpu", "train_subset": 0, "test_subset": 0, "model": "cnn6", "batch_size": 16, "epochs": 2,
            **kw}


def test_channels_last_gives_the_default_layouts_loss():
    data = _cifar_like()
    plain = method_class("ce")(_cnn6_cfg(), data)
    nhwc = method_class("ce")(_cnn6_cfg(channels_last=True), data)
    conv = nhwc.net.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.net.features[0].weight.is_contiguous()
    # the same weights (one seed): the same logits on the same NCHW batch, whichever layout
    x = data.train_x[:8].float() / 255
    with torch.no_grad():
        torch.testing.assert_close(nhwc.net(x), plain.net(x), rtol=1e-4, atol=1e-4)
    inputs = []
    nhwc.net.features[0].register_forward_pre_hook(lambda mod, args: inputs.append(args[0]))
    a, b = plain.step(), nhwc.step()  # one deterministic epoch each (same generator draws)
    assert inputs and all(t.is_contiguous(memory_format=torch.channels_last) for t in inputs)
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=5e-3)
    assert 0.0 <= b["test_acc"] <= 1.0


@pytest.mark.parametrize("saved_nhwc", [True, False])
def test_channels_last_checkpoint_loads_into_the_other_layout(tmp_path, saved_nhwc):
    """Adam's moments come back in the layout of the object's parameters (the fused step pairs
    elements by memory position): the continued run matches the saving run's own continuation."""
    data = _cifar_like()
    first = method_class("ce")(_cnn6_cfg(channels_last=saved_nhwc), data)
    first.step()
    first.save(tmp_path / "cl.pt")
    other = method_class("ce")(_cnn6_cfg(channels_last=not saved_nhwc), data)
    other.load(tmp_path / "cl.pt")
    for p, state in other.opt.state.items():
        for k in ("exp_avg", "exp_avg_sq"):
            assert state[k].stride() == p.stride(), k
    assert other.step()["train_loss"] == pytest.approx(first.step()["train_loss"], rel=1e-3)


# -- compile ------------------------------------------------------------------------------------

def test_compiled_model_trains_and_checkpoints_round_trip(data_root, tmp_path):
    # batch 128 divides the 512 training images: no recompilation for a smaller last batch
    cfg = _small("ce", data_root, proxy="clean_intact", compile=True)
    compiled = method_class("ce")(cfg)
    net = compiled.net
    assert getattr(net, "_compiled_call_impl", None) is not None  # compiled in place
    r = compiled.step()
    assert math.isfinite(r["train_loss"]) and 0.0 <= r["test_acc"] <= 1.0
    assert compiled.net is net
    plain = method_class("ce")({**cfg, "compile": False})
    assert list(compiled.net.state_dict()) == list(plain.net.state_dict())  # no "_orig_mod." prefix
    compiled.save(tmp_path / "compiled.pt")
    plain.load(tmp_path / "compiled.pt")  # compiled -> plain
    for k, v in compiled.net.state_dict().items():
        assert torch.equal(v, plain.net.state_dict()[k]), k
    plain.save(tmp_path / "plain.pt")
    compiled.load(tmp_path / "plain.pt")  # plain -> compiled
    a, b = plain.step(), compiled.step()
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)


# -- data cache ---------------------------------------------------------------------------------

def _snapshot(data) -> dict:
    return {k: v.clone() for k, v in vars(data).items() if isinstance(v, torch.Tensor)}


def test_methods_of_one_process_share_one_copy_of_the_same_data(data_root):
    clear_data_cache()
    pencil = method_class("pencil")(_small("pencil", data_root, stage1=0, seed=5))
    ce = method_class("ce")(_small("ce", data_root, lr=0.01, amp="bf16"))  # training keys differ
    assert ce.data is pencil.data
    assert ce.data.train_x.data_ptr() == pencil.data.train_x.data_ptr()
    other_noise = method_class("ce")(_small("ce", data_root, noise_seed=1))
    assert other_noise.data.train_x.data_ptr() != ce.data.train_x.data_ptr()
    assert not torch.equal(other_noise.data.train_noisy, ce.data.train_noisy)
    # the cache keeps only the latest dataset: the first one is loaded afresh
    again = method_class("ce")(_small("ce", data_root))
    assert again.data is not ce.data and torch.equal(again.data.train_x, ce.data.train_x)
    # training a method (label table updates included) leaves the shared tensors untouched
    before = _snapshot(ce.data)
    table0 = pencil.ytilde.clone()
    pencil.step()
    ce.step()
    assert not torch.equal(pencil.ytilde, table0)
    after = _snapshot(ce.data)
    assert before.keys() == after.keys() and {"train_x", "train_noisy", "test_x"} <= set(before)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    clear_data_cache()


def test_cache_key_is_what_determines_the_data(data_root):
    base = _small("ce", data_root)
    key = data_key(base, torch.device("cpu"))
    # training keys do not matter
    for k, v in {"seed": 9, "lr": 0.5, "method": "mlc", "batch_size": 7, "amp": "bf16", "compile": True,
                 "channels_last": True, "epochs": 9, "augment": False}.items():
        assert data_key({**base, k: v}, torch.device("cpu")) == key, k
    # everything load_noisy_data reads does
    for k, v in {"noise_seed": 1, "noise_rate": 0.4, "noise_type": "pairflip", "proxy": "clean_intact",
                 "val_fraction": 0.2, "train_subset": 256, "test_subset": 128, "dataset": "cifar10",
                 "data_root": str(data_root / "elsewhere")}.items():
        assert data_key({**base, k: v}, torch.device("cpu")) != key, k
    assert data_key(base, torch.device("meta")) != key
    # val_fraction is read only for the noisy_val proxy
    ci = {**base, "proxy": "clean_intact"}
    assert data_key({**ci, "val_fraction": 0.3}, torch.device("cpu")) == data_key(ci, torch.device("cpu"))
    # streamed Clothing1M (DataLoader workers, closed by Method.close) is never cached
    assert data_key({**base, "dataset": "clothing1m", "noise_type": "real"}, torch.device("cpu")) is None


def test_given_data_bypasses_the_cache(data_root):
    clear_data_cache()
    cached = cached_noisy_data(_small("ce", data_root), torch.device("cpu"))
    data = _cifar_like()
    m = method_class("ce")(_cnn6_cfg(), data)
    assert m.data.train_x.data_ptr() == data.train_x.data_ptr() != cached.train_x.data_ptr()
    assert not any(isinstance(v, NoisyData) for v in vars(cached).values())  # no host copy kept alongside
    clear_data_cache()
