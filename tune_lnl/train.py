"""``python -m tune_lnl.train --config FILE --setting NAME``: ONE training, without Ray (see
:func:`tune_lnl.cli.train_main`; from Python: :func:`tune_lnl.train`)."""
import sys
import types

from .api import train as _train
from .cli import train_main as main


class _CallableModule(types.ModuleType):
    """``import tune_lnl.train`` binds this module to the package attribute that names the API
    function :func:`tune_lnl.train`; calling it keeps calling the function."""

    def __call__(self, *args, **kwargs):
        return _train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    raise SystemExit(main())
