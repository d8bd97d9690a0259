"""Ctrl-C (SIGINT), and SIGTERM on the command line, during a search: the first one raises
:class:`~tune_lnl.errors.Interrupted` in the main thread, and the backends stop what runs (Ray:
each Tune run saves its state one last time; Optuna: the worker processes end). Later signals
never raise inside that shutdown (no second traceback): they only ask it to hurry
(:func:`hurry`: no more waiting for the Tune runs' last save; what ran is continued from its
last checkpoint by ``--resume`` all the same). Worker processes are started with SIGINT
blocked (:func:`sigint_blocked`), as Ray starts its own: the terminal sends Ctrl-C to the whole
process group, and only the main process decides."""
from __future__ import annotations

import contextlib
import signal
import threading

from ..errors import Interrupted

_state = {"installed": set(), "count": 0, "signum": None}


def _handler(signum, frame) -> None:
    _state["count"] += 1
    if _state["count"] == 1 or _state["count"] > 3:  # (a 4th: the user insists, whatever swallowed the first)
        _state["signum"] = signum
        raise Interrupted(signum=signum)


@contextlib.contextmanager
def stop_signals(*signums: int, ending: bool = False):
    """Within: the first of ``signums`` (default SIGINT) raises :class:`Interrupted`, the next
    ones set :func:`hurry`. Only in the main thread (elsewhere Python allows no handler);
    nested uses add the signals not handled yet and restore only those. ``ending`` (the command
    line, whose process ends after an interruption): once a signal came, they stay ignored
    instead (a second Ctrl-C just after the shutdown would kill it with a traceback)."""
    signums = signums or (signal.SIGINT,)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mine = {s: signal.getsignal(s) for s in signums if s not in _state["installed"]}
    outermost = not _state["installed"]
    for s in mine:
        signal.signal(s, _handler)
        _state["installed"].add(s)
    try:
        yield
    finally:
        for s, previous in mine.items():
            signal.signal(s, signal.SIG_IGN if ending and _state["count"] else previous)
            _state["installed"].discard(s)
        if outermost:
            _state.update(count=0, signum=None)


def interrupted() -> bool:
    """Has a stop signal arrived (the shutdown is under way)?"""
    return _state["count"] > 0


def hurry() -> bool:
    """Has a second stop signal arrived: stop what runs now, without waiting for a last save."""
    return _state["count"] > 1


@contextlib.contextmanager
def sigint_blocked():
    """SIGINT blocked in this thread while a worker process is started (the child inherits the
    mask and never sees the terminal's Ctrl-C); a SIGINT meanwhile waits, it is not lost."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
