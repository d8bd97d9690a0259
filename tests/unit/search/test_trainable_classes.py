"""Every built-in method has the Ray Tune Trainable the Ray backend starts for it (``<Class>Trainable`` beside the
class its registry entry names), a thin adapter whose ``method_cls`` is that very class: what a Ray search of any
built-in needs besides the method itself (tests/e2e/test_new_methods_smoke.py runs some of them through Ray)."""
import pytest

from tune_lnl.methods import BUILTIN, method_class
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.search.ray_backend import trainable_class


@pytest.mark.parametrize("name", list(BUILTIN))
def test_each_builtin_has_its_trainable(name):
    cls = trainable_class(name)
    assert issubclass(cls, MethodTrainable) and cls is not MethodTrainable, name
    assert cls.method_cls is method_class(name), name
    assert cls.__module__ == BUILTIN[name].partition(":")[0], name  # in the method's own file


def test_a_users_method_gets_the_generic_adapter():
    assert trainable_class("my_losses:Focal") is MethodTrainable
