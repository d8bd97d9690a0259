"""tune_lnl: honest, fast hyperparameter search for learning-with-noisy-labels methods.

The public API::

    import tune_lnl
    result = tune_lnl.run("search_spaces/mlc_mnist.yaml", smoke=True)   # a whole experiment
    history = tune_lnl.train(result.best_config("mlc", "sym-0.2"))     # one training

    class MyLoss(tune_lnl.SingleNetwork): ...     # a method of your own ("my_module:MyLoss")
    class MyData(tune_lnl.InMemoryDataset): ...   # a dataset of your own ("my_module:MyData")

Layers (each imports only those before it; tests/test_layers.py): errors, plugins -> data,
models -> methods (and ``trainables/``) -> config -> results -> search -> api -> cli. The names
below are loaded on first use, so that ``tune-lnl --help`` or a worker importing one module does
not import them all.
"""
import importlib

#: public name -> module that defines it
_EXPORTS = {
    "run": "tune_lnl.api", "train": "tune_lnl.api",
    "Result": "tune_lnl.results.result",
    "Method": "tune_lnl.methods", "SingleNetwork": "tune_lnl.methods", "TwoNetworks": "tune_lnl.methods",
    "Dataset": "tune_lnl.data", "InMemoryDataset": "tune_lnl.data", "StreamedDataset": "tune_lnl.data",
    "Arrays": "tune_lnl.data",
    "ConfigError": "tune_lnl.errors", "DataError": "tune_lnl.errors", "SearchError": "tune_lnl.errors",
    "TuneLNLError": "tune_lnl.errors", "CheckpointError": "tune_lnl.errors", "CorruptFileError": "tune_lnl.errors",
    "RATE": "tune_lnl.methods.constraints", "POSITIVE": "tune_lnl.methods.constraints",
    "NON_NEGATIVE": "tune_lnl.methods.constraints", "NON_POSITIVE": "tune_lnl.methods.constraints",
    "OneOf": "tune_lnl.methods.constraints", "Range": "tune_lnl.methods.constraints",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tune_lnl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
