"""Every exception tune_lnl defines is a :class:`tune_lnl.errors.TuneLNLError`, so that one
``except TuneLNLError`` (what the command line does: ``error: <message>``, exit 2) catches every
error tune_lnl raises on purpose, and the bad-input checks of the low layers (noise, augment,
models, Clothing1M) raise the project's errors while staying the built-in types callers caught."""
import importlib
import inspect
import pkgutil
from functools import partial

import pytest

import trainables
import tune_lnl
from tune_lnl.data.augment import resolve_augment
from tune_lnl.data.noise import asymmetric_matrix, transition_matrix
from tune_lnl.errors import ConfigError, DataError, TuneLNLError
from tune_lnl.models import build_model


def _modules():
    """Every module of the packages tune_lnl and trainables (``__main__`` modules excluded:
    importing one runs the command line)."""
    for package in (tune_lnl, trainables):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                yield info.name


def _exception_classes(module):
    """The exception classes ``module`` defines (not those it imports), nested ones included."""
    todo = [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__]
    while todo:
        cls = todo.pop()
        if issubclass(cls, BaseException):
            yield cls
        todo += [c for c in vars(cls).values() if inspect.isclass(c) and c.__module__ == module.__name__
                 and c is not cls]


def test_every_exception_defined_in_the_packages_is_a_tune_lnl_error():
    names = list(_modules())
    assert "tune_lnl.data.clothing1m" in names and "trainables.mlc" in names  # the walk reaches both packages
    found, outside = [], []
    for name in names:
        for cls in _exception_classes(importlib.import_module(name)):
            found.append(f"{name}.{cls.__qualname__}")
            # an interruption is a KeyboardInterrupt, never an error: ``except Exception`` must not catch it
            if not issubclass(cls, TuneLNLError) and not issubclass(cls, KeyboardInterrupt):
                outside.append(f"{name}.{cls.__qualname__} (bases: {', '.join(b.__name__ for b in cls.__mro__[1:])})")
    assert "tune_lnl.data.clothing1m.Clothing1MError" in found  # the walk sees the exceptions it must check
    assert "tune_lnl.errors.Interrupted" in found
    assert not outside, "exceptions outside TuneLNLError: " + "; ".join(outside)


def test_clothing1m_error_is_a_data_error_and_still_a_value_error():
    from tune_lnl.data.clothing1m import Clothing1MError
    assert issubclass(Clothing1MError, DataError) and issubclass(Clothing1MError, ValueError)


@pytest.mark.parametrize("call, message", [
    (partial(transition_matrix, "sideways", 0.2, 10), "unknown class-conditional noise type 'sideways'"),
    (partial(transition_matrix, "symmetric", 1.5, 10), "noise rate must lie in [0, 1), got 1.5"),
    (partial(asymmetric_matrix, {3: 3}, 0.2, 10), "asymmetric mapping 3 -> 3 is not a flip"),
    (partial(resolve_augment, "rotate", None), "unknown augment 'rotate'; allowed: true, false, none, crop_flip"),
    (partial(build_model, "vgg", 10, (1, 28, 28)), "unknown model 'vgg'; allowed: mlp"),
    (partial(build_model, "mlp", 10, (1, 28, 28), pretrained=True),
     "pretrained weights exist only for resnet18, not 'mlp'"),
    (partial(build_model, "resnet18", 10, (1, 28, 28)),
     "resnet18 takes 3-channel images (ImageNet); this dataset has 1"),
])
def test_bad_input_to_the_low_layers_is_a_config_error_and_still_a_value_error(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert isinstance(err.value, ValueError)
    assert message in str(err.value)


def test_missing_pretrained_weights_are_a_data_error_and_still_a_runtime_error(tmp_path, monkeypatch):
    from tune_lnl import models
    monkeypatch.setattr(models, "resnet18_weights_path", lambda: tmp_path / "absent.pth")
    with pytest.raises(DataError) as err:
        models.resnet18_imagenet(14, pretrained=True)
    assert isinstance(err.value, RuntimeError)
    assert f"at {tmp_path / 'absent.pth'}" in str(err.value) and "pretrained: false" in str(err.value)
