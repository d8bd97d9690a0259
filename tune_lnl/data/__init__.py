"""Data: dataset classes (built-in and the user's), noise, splits, the device-resident batching.

Layer: imports only :mod:`tune_lnl.errors` and :mod:`tune_lnl.plugins` from the package.

The names below are loaded on first use (as in :mod:`tune_lnl`), so that a module needing only
a torch-free part (the proxy registry :mod:`tune_lnl.data.proxies`, e.g. for the fidelity
tables) does not import torch.
"""
from ..plugins import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "DataError": "tune_lnl.errors", "DataNotFoundError": "tune_lnl.errors",
    "PROXIES": "tune_lnl.data.proxies", "Proxy": "tune_lnl.data.proxies",
    "TrainingData": "tune_lnl.data.protocols", "HostData": "tune_lnl.data.protocols",
    **dict.fromkeys(("Dataset", "InMemoryDataset", "StreamedDataset", "resolve_data_root"), "tune_lnl.data.base"),
    **dict.fromkeys(("cached_noisy_data", "clear_data_cache", "data_key"), "tune_lnl.data.cache"),
    **dict.fromkeys(("DeviceData", "logits_accuracy", "predict", "predict_logits", "to_float"), "tune_lnl.data.device"),
    **dict.fromkeys(("NOISE_TYPES", "REAL_NOISE", "HUMAN_NOISE", "corrupt_labels", "realised_rate",
                     "transition_matrix"), "tune_lnl.data.noise"),
    **dict.fromkeys(("DATASETS", "check_data", "dataset_class", "dataset_of", "load_noisy_data", "open_dataset"),
                    "tune_lnl.data.registry"),
    **dict.fromkeys(("Arrays", "NoisyData", "make_noisy_data", "seeded_subset", "stratified_holdout"),
                    "tune_lnl.data.splits"),
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
