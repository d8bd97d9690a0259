"""Files tune_lnl writes on its own, never through a symbolic link planted where it writes (a
lock, a temporary file, a checkpoint's temporary copy, the report's folders). The bottom layer:
the methods' checkpoints and the results folder both use it."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import ConfigError


def link_refused(path: Path) -> ConfigError:
    """The error for a symbolic link where tune_lnl writes or deletes on its own (a lock, a
    temporary file, the report's folders): a link planted there is never followed."""
    return ConfigError(f"{path} is a symbolic link: tune_lnl writes and deletes there itself, never through a "
                       f"link; remove the link (tune_lnl makes the file or folder anew)")


def open_no_follow(path: Path, mode: str):
    """``open(path, mode)`` for a file tune_lnl writes on its own, never through a symbolic link
    at ``path`` (``O_NOFOLLOW``: :func:`link_refused` instead), so that no file elsewhere is
    truncated or written."""
    try:
        return open(path, mode, opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW, 0o666))
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise link_refused(path) from None
        raise
