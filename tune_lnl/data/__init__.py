"""Data: dataset classes (built-in and the user's), noise, splits, the device-resident batching.

Layer: imports only :mod:`tune_lnl.errors` and :mod:`tune_lnl.plugins` from the package.
"""
from ..errors import DataError, DataNotFoundError
from .base import PROXIES, Dataset, InMemoryDataset, StreamedDataset, resolve_data_root
from .cache import cached_noisy_data, clear_data_cache, data_key
from .device import DeviceData, logits_accuracy, predict, predict_logits, to_float
from .noise import HUMAN_NOISE, NOISE_TYPES, REAL_NOISE, corrupt_labels, realised_rate, transition_matrix
from .registry import DATASETS, check_data, dataset_class, dataset_of, load_noisy_data, open_dataset
from .splits import Arrays, NoisyData, make_noisy_data, seeded_subset, stratified_holdout

__all__ = ["DataError", "DataNotFoundError", "PROXIES", "Dataset", "InMemoryDataset", "StreamedDataset",
           "resolve_data_root", "cached_noisy_data", "clear_data_cache", "data_key", "DeviceData",
           "logits_accuracy", "predict", "predict_logits", "to_float", "NOISE_TYPES", "REAL_NOISE", "HUMAN_NOISE",
           "corrupt_labels", "realised_rate", "transition_matrix", "DATASETS", "check_data", "dataset_class",
           "dataset_of", "load_noisy_data", "open_dataset", "Arrays", "NoisyData", "make_noisy_data",
           "seeded_subset", "stratified_holdout"]
