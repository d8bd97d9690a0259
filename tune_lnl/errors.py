"""The exceptions of tune_lnl's public API (the bottom layer: every other module may raise them).

The command-line tools turn :class:`ConfigError` and :class:`DataError` into a one-line
``error: ...`` message and exit code 2; the Python API (:func:`tune_lnl.run`,
:func:`tune_lnl.train`) raises them with the same message.
"""
from __future__ import annotations


class TuneLNLError(Exception):
    """Base of every error tune_lnl raises on purpose (bad input, missing data, failed search)."""


#: the most characters of one value an error message shows (a pasted array, a long string)
SHOWN_MAX = 200


def shown(value, as_text: bool = False) -> str:
    """``repr(value)`` (``as_text``: ``str(value)``, e.g. a key path) as an error message shows
    it: cut after :data:`SHOWN_MAX` characters, saying how long it was (a message stays one
    readable line, whatever the user gave)."""
    text = str(value) if as_text else repr(value)
    return text if len(text) <= SHOWN_MAX else f"{text[:SHOWN_MAX]}... ({len(text)} characters)"


def argument_error(key: str, what: str, value) -> "ConfigError":
    """The error of a Python API argument of the wrong type (``tune_lnl.run(workers="2")``):
    names the argument, what it must be and what it got."""
    return ConfigError(f"{key}: must be {what} (got {shown(value)})")


def whole_number(key: str, value) -> int:
    """``value`` as an ``int`` when it is a whole number (an ``int``, a NumPy integer; never a
    bool, which Python counts as one), else :func:`argument_error`."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise argument_error(key, "a whole number", value)
    return int(value)


class ConfigError(TuneLNLError, ValueError):
    """Invalid input: a search-space file or dict, an option, or a plugin spec. The message
    names the file, the key (a dotted path) and the value."""


class DataError(TuneLNLError, RuntimeError):
    """Dataset files absent (and no way to download them), of the wrong size or format, or
    inconsistent. The message names the file (or folder) and, where it applies, the key."""


#: the name this error had before the public API existed (kept: the tests and users catch it)
DataNotFoundError = DataError


class CheckpointError(TuneLNLError, RuntimeError):
    """A checkpoint file that cannot be loaded: not written by tune_lnl, corrupt or truncated,
    or another run's. It is never unpickled; the message names the file and what to do."""


class SearchError(TuneLNLError, RuntimeError):
    """A search or its finals could not produce a result (no trial completed, every final seed
    failed, workers kept dying)."""


class Interrupted(KeyboardInterrupt):
    """A search stopped by Ctrl-C (SIGINT) or, on the command line, SIGTERM (``signum``). A
    ``KeyboardInterrupt`` (never caught by ``except Exception``), raised once everything running
    has been stopped: nothing finished is lost and the same call with ``--resume``
    (``resume=True``) continues. ``started``: whether the experiment folder was written yet (if
    not, there is nothing to resume: run the same command again). Its message is the one line
    the command line prints."""

    def __init__(self, message: str = "interrupted", signum: int = 2, started: bool = False):
        super().__init__(message)
        self.signum, self.started = signum, started

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "interrupted"


class CorruptFileError(TuneLNLError, ValueError):
    """A file of an experiment folder that cannot be read as what tune_lnl wrote there (cut off,
    emptied, overwritten with garbage). The message: ``FILE is corrupt: what was expected; how
    to recover``."""

    def __init__(self, path, expected: str, recover: str):
        self.path, self.expected, self.recover = path, expected, recover
        super().__init__(f"{path} is corrupt: {expected}; {recover}")

    def __reduce__(self):  # picklable (a worker process may raise it)
        return type(self), (self.path, self.expected, self.recover)


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The ``OSError`` ENOSPC / EDQUOT that ``exc`` is or was caused by (its ``__cause__`` /
    ``__context__`` chain: a library may re-raise a failed write as another error)."""
    import errno
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full(exc: BaseException) -> bool:
    """Did a write fail for lack of space (ENOSPC, or a quota: EDQUOT), ``exc`` itself or what
    caused it?"""
    return disk_full_cause(exc) is not None


def disk_full_message(exc: BaseException, folder, resume: bool = True) -> str:
    """The one message a write that failed for lack of space stops a search with (``exc``: one
    that :func:`disk_full` accepts; ``resume``: False before the experiment was recorded, when
    the same command is rerun as it was)."""
    import errno
    cause = disk_full_cause(exc) or exc
    what = "disk quota exceeded" if getattr(cause, "errno", None) == errno.EDQUOT else "no space left on device"
    where = f" while writing {cause.filename}" if getattr(cause, "filename", None) else ""
    return (f"{what}{where}: free space under {folder} (nothing finished is lost), then rerun "
            f"the same command" + (" with --resume" if resume else ""))
