"""Shared check: N epochs straight == N/2 + save + load into a fresh object + N/2, exactly."""
import torch

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
    (models, optimizers, per-sample tables) and the metric histories (timings aside)."""
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
    a, b = _tensors(straight.method_state()), _tensors(second.method_state())
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k
    strip = lambda h: [{k: v for k, v in m.items() if k not in TIMING} for m in h]
    assert strip(straight.history) == strip(second.history)
    return straight
