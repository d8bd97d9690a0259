"""The exceptions of tune_lnl's public API (the bottom layer: every other module may raise them).

The command-line tools turn :class:`ConfigError` and :class:`DataError` into a one-line
``error: ...`` message and exit code 2; the Python API (:func:`tune_lnl.run`,
:func:`tune_lnl.train`) raises them with the same message.
"""
from __future__ import annotations


class TuneLNLError(Exception):
    """Base of every error tune_lnl raises on purpose (bad input, missing data, failed search)."""


class ConfigError(TuneLNLError, ValueError):
    """Invalid input: a search-space file or dict, an option, or a plugin spec. The message
    names the file, the key (a dotted path) and the value."""


class DataError(TuneLNLError, RuntimeError):
    """Dataset files absent (and no way to download them), of the wrong size or format, or
    inconsistent. The message names the file (or folder) and, where it applies, the key."""


#: the name this error had before the public API existed (kept: the tests and users catch it)
DataNotFoundError = DataError


class SearchError(TuneLNLError, RuntimeError):
    """A search or its finals could not produce a result (no trial completed, every final seed
    failed, workers kept dying)."""
