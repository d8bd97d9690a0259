"""tune_lnl: honest, fast hyperparameter search for learning-with-noisy-labels methods.

The public API::

    import tune_lnl
    result = tune_lnl.run("search_spaces/mlc_mnist.yaml", smoke=True)   # a whole experiment
    history = tune_lnl.train(result.best_config("mlc", "sym-0.2"))     # one training

    class MyLoss(tune_lnl.SingleNetwork): ...     # a method of your own ("my_module:MyLoss")
    class MyData(tune_lnl.InMemoryDataset): ...   # a dataset of your own ("my_module:MyData")

A plugin needs nothing but the names below (``__all__``, by topic): the base classes, the
hyperparameter declarations (``hp``, ``like``, the shared ``Hyper`` parts and the value rules),
the small-loss selection and the loss functions the built-in methods use, and the errors.

Layers (each imports only those before it; tests/unit/test_layers.py): errors, plugins -> data,
models -> methods (and ``trainables/``) -> config -> results -> search -> api -> cli. The names
below are loaded on first use, so that ``tune-lnl --help`` or a worker importing one module does
not import them all.
"""
from .plugins import lazy_exports

#: public name -> module that defines it, by topic. Everything a plugin (a method or dataset of
#: your own, outside the package) needs is here: write it against ``tune_lnl.<name>`` only.
_EXPORTS = {
    # -- run an experiment, train once, read the results
    "run": "tune_lnl.api", "train": "tune_lnl.api", "plan": "tune_lnl.api",
    "Result": "tune_lnl.results.result",
    # -- a method of your own: the base classes (docs/extending.md "Write your own method"), the typed run
    #    config a method is built from (self.run), a loss meter for train_epoch()
    "Method": "tune_lnl.methods", "SingleNetwork": "tune_lnl.methods", "TwoNetworks": "tune_lnl.methods",
    "RunConfig": "tune_lnl.methods", "LossMeter": "tune_lnl.methods",
    # -- its declared hyperparameters: hp() fields of a frozen dataclass Hyper, like() to change an
    #    inherited default, and the shared declarations to derive Hyper from
    "hp": "tune_lnl.methods.hparams", "like": "tune_lnl.methods.hparams",
    "Common": "tune_lnl.methods.hparams", "Optimizer": "tune_lnl.methods.hparams",
    "LrSchedule": "tune_lnl.methods.hparams", "SmallLoss": "tune_lnl.methods.two_networks",
    "SmallLossHyper": "tune_lnl.methods.two_networks", "LabelTable": "tune_lnl.methods.label_table",
    # -- value rules of a hyperparameter (hp(default, meaning, *rules))
    "Range": "tune_lnl.methods.constraints", "OneOf": "tune_lnl.methods.constraints",
    "RATE": "tune_lnl.methods.constraints", "POSITIVE": "tune_lnl.methods.constraints",
    "NON_NEGATIVE": "tune_lnl.methods.constraints", "NON_POSITIVE": "tune_lnl.methods.constraints",
    # -- a method's own build(): the backbone of a run config's model, its optimizer (Adam or SGD)
    "build_model": "tune_lnl.models", "make_optimizer": "tune_lnl.methods",
    # -- small-loss selection of the two-network methods (Co-teaching's exchange and ramp)
    "small_loss_selection": "tune_lnl.methods.selection", "cross_update": "tune_lnl.methods.selection",
    "forget_rate_at": "tune_lnl.methods.selection",
    # -- per-sample losses ([B] tensors; reduce outside)
    "cross_entropy": "tune_lnl.methods.losses", "mae": "tune_lnl.methods.losses", "gce": "tune_lnl.methods.losses",
    "imae": "tune_lnl.methods.losses", "symmetric_kl": "tune_lnl.methods.losses",
    "symmetric_kl_log": "tune_lnl.methods.losses", "pencil_lc": "tune_lnl.methods.losses",
    "pencil_lo": "tune_lnl.methods.losses", "pencil_le": "tune_lnl.methods.losses",
    "pencil_lc_le": "tune_lnl.methods.losses",
    # -- a dataset of your own (docs/extending.md "Your own data")
    "Dataset": "tune_lnl.data", "InMemoryDataset": "tune_lnl.data", "StreamedDataset": "tune_lnl.data",
    "Arrays": "tune_lnl.data",
    # -- errors (every one a TuneLNLError; the CLI prints "error: <message>" and exits 2)
    "TuneLNLError": "tune_lnl.errors", "ConfigError": "tune_lnl.errors", "DataError": "tune_lnl.errors",
    "SearchError": "tune_lnl.errors", "CheckpointError": "tune_lnl.errors", "CorruptFileError": "tune_lnl.errors",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
