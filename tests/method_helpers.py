"""Shared by the method tests: a tiny MNIST run config, and the exact-resume check (N epochs
straight == N/2 + save + load into a fresh object + N/2, exactly)."""
import torch

from tune_lnl.methods import defaults_of


def tiny_cfg(method: str, data_root, **overrides) -> dict:
    """A run config of ``method`` on 1024 MNIST training images (4 epochs, CPU)."""
    cfg = defaults_of(method)
    cfg.update(method=method, dataset="mnist", data_root=str(data_root), proxy="noisy_val", val_fraction=0.1,
               noise_seed=0, noise_type="symmetric", noise_rate=0.2, seed=3, device="cpu",
               train_subset=1024, test_subset=512, epochs=4)
    cfg.update(overrides)
    return cfg

TIMING = {"epoch_time", "train_time"}


def _tensors(state, prefix=""):
    """Flatten nested dicts/lists of a method_state() into {path: tensor-or-value}."""
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
        return out
    if isinstance(state, (list, tuple)):
        out = {}
        for i, v in enumerate(state):
            out.update(_tensors(v, f"{prefix}/{i}"))
        return out
    return {prefix: state}


def assert_exact_resume(make, path, epochs: int = 4):
    """``make()`` builds a fresh method object. Compares every tensor of the methods' states
    (models, optimizers, per-sample ``tables``) and the metric histories (timings aside)."""
    straight = make()
    for _ in range(epochs):
        straight.step()
    first = make()
    for _ in range(epochs // 2):
        first.step()
    first.save(path)
    second = make()
    second.load(path)
    for _ in range(epochs - epochs // 2):
        second.step()
    a, b = (_tensors({**m.method_state(), **{t: getattr(m, t) for t in m.tables}}) for m in (straight, second))
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k
    strip = lambda h: [{k: v for k, v in m.items() if k not in TIMING} for m in h]
    assert strip(straight.history) == strip(second.history)
    return straight
