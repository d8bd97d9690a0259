"""Opening the Optuna journal of ``--backend optuna`` (``<experiment>/optuna.journal``: Optuna's
``JournalFileBackend``, one JSON record per line, appended by every process of the search).

A write cut off (a full disk, a kill) leaves a partial last line. Optuna skips it when reading,
but the next append lands after it, gluing both into one line that is not JSON: from then on
every load fails. So :func:`open_journal` repairs such a file first: it keeps a copy of it
(``optuna.journal.corrupt-<time>``), cuts it after its last complete record and says so. A
file that is damaged anywhere else (a line in the middle that is not a record, garbage) is
never cut: :class:`~tune_lnl.errors.CorruptFileError` names it and says how to recover.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..errors import CorruptFileError

#: what a journal must hold, and what to do when it does not (the CorruptFileError's two halves)
EXPECTED = "expected Optuna's journal, one JSON record per line"
RECOVER = ("restore it from a backup; without one, move it away (python -m tune_lnl.report then builds the "
           "report from the run folders alone) and search anew under another --name")
#: how much of the file's end :func:`_tail_ok` reads (a record is far shorter)
TAIL_BYTES = 1 << 16


def open_journal(path: Path):
    """The ``JournalStorage`` of the journal file ``path`` (made when absent), a cut-off last
    record repaired first (:func:`repair`); :class:`~tune_lnl.errors.CorruptFileError` when
    Optuna cannot replay it."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    path = Path(path)
    if path.exists() and not _tail_ok(path):
        repair(path)
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except (ValueError, LookupError, TypeError, AttributeError) as exc:  # a line or a record it cannot replay
        data = path.read_bytes()
        records, end = _complete_records(data)
        what = (f"line {records + 1} is not one" if end < len(data) else
                f"Optuna cannot replay it ({type(exc).__name__}: {exc})")
        raise CorruptFileError(path, f"{EXPECTED}; {what}", RECOVER) from None


def repair(path: Path) -> None:
    """Cut a partial last record off the journal ``path`` (a copy of the file kept beside it),
    under the journal's own lock: a writer of another process is never cut short. A damaged
    line before the last one: :class:`~tune_lnl.errors.CorruptFileError`, the file untouched."""
    from optuna.storages.journal import JournalFileSymlinkLock
    lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's appends take
    lock.acquire()
    try:
        if _tail_ok(path):  # it was another process's append, complete now
            return
        data = path.read_bytes()
        records, end = _complete_records(data)
        rest = data[end:]  # a cut-off record: one last line, the start of a record (or zeros)
        if b"\n" in rest[:-1] or not (rest.startswith(b"{") or not rest.strip(b"\0")):
            raise CorruptFileError(path, f"{EXPECTED}; line {records + 1} is not one", RECOVER)
        copy = _free_name(path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
        shutil.copyfile(path, copy)
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
    finally:
        lock.release()
    print(f"note: {path} ended in a partial record (a write was cut off, e.g. a full disk); repaired: kept "
          f"{records} complete records; the file as it was is in {copy}", flush=True)


def _record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # (UnicodeDecodeError too)
        return False


def _tail_ok(path: Path) -> bool:
    """Does the file end with a complete record (or is it empty)? Reads only its end."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - TAIL_BYTES))
        tail = f.read()
    if not tail:
        return True
    if not tail.endswith(b"\n"):
        return False
    body = tail[:-1]
    if b"\n" not in body and len(tail) < size:  # a last line longer than what was read
        return _record(Path(path).read_bytes()[:-1].rsplit(b"\n", 1)[-1])
    return _record(body.rsplit(b"\n", 1)[-1])


def _complete_records(data: bytes) -> tuple[int, int]:
    """``(n, end)``: the first ``n`` lines of ``data`` are complete records, ending at byte ``end``."""
    n = end = 0
    while end < len(data):
        nl = data.find(b"\n", end)
        if nl < 0 or not _record(data[end:nl]):
            break
        n, end = n + 1, nl + 1
    return n, end


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ... the first that does not exist."""
    out, i = path, 1
    while out.exists():
        i += 1
        out = path.with_name(f"{path.name}-{i}")
    return out
