"""Progress of a running experiment with an ETA, whichever backend runs it: one copy of the logic.

:class:`Progress` reads the experiment folder (every run folder's ``result.json`` lines and
``outcome.json``: what every backend writes through
:class:`~tune_lnl.results.recorder.RunRecorder`, from whichever process) and turns it into a
:class:`ProgressUpdate`: the percent of the expected trial-epochs done, per study its trials
finished and the epochs its running trials are at, queued studies, the finals, and the ETA. The
expected work left is re-estimated at each update: a finished or pruned trial leaves nothing, a
running one its expected remainder under the pruner
(:func:`~tune_lnl.search.estimate.expected_remaining`), an unstarted one the expectation of a
whole trial. The ETA divides it by the trial-epochs per second measured since the first epoch
ended here (before that: the plan's estimate). :class:`Reporter` prints a status line every
``every`` seconds, calls the user's callback, and drives a tqdm bar when asked.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..results.runs import OUTCOME, RESULTS
from .estimate import duration, expected_epochs, expected_remaining
from .studies import rungs

#: seconds between two reads of the folder, and between two printed status lines
POLL_S, EVERY_S = 5.0, 30.0


@dataclass(frozen=True)
class StudyProgress:
    """One study: ``state`` is ``queued`` (no trial started), ``searching``, ``searched`` or
    ``no search`` (``--paper-only``); ``running``: the epoch each running trial is at (of ``epochs``)."""
    key: str
    state: str
    finished: int
    total: int
    running: tuple[int, ...]
    epochs: int


@dataclass(frozen=True)
class ProgressUpdate:
    """What ``tune_lnl.run(..., progress=callback)`` gets at each update (and what a status line says)."""
    percent: float
    eta_s: float | None
    done_epochs: int
    expected_epochs: float
    elapsed_s: float
    studies: tuple[StudyProgress, ...]
    finals_finished: int
    finals_total: int
    finals_running: tuple[int, ...]

    @property
    def queued(self) -> int:
        return sum(s.state == "queued" for s in self.studies)

    def line(self) -> str:
        """``[status] 37% of ~2,133 trial-epochs, ETA 12 min | mlc/sym-0.2: 5/24 trials finished,
        2 running at epoch 14/320, 17/320 | ... | finals 0/10 finished | 3 studies queued``."""
        eta = "ETA unknown" if self.eta_s is None else f"ETA {duration(self.eta_s)}"
        parts = [f"[status] {self.percent:.0f}% of ~{self.expected_epochs:,.0f} trial-epochs, {eta}"]
        for s in self.studies:
            if s.state in ("searching", "searched"):
                running = (f", {len(s.running)} running at epoch " + ", ".join(f"{e}/{s.epochs}" for e in s.running)
                           if s.running else "")
                parts.append(f"{s.key}: {s.finished}/{s.total} trials finished{running}")
        running = (", running at epoch " + ", ".join(f"{e}/{self.studies[0].epochs}" for e in self.finals_running)
                   if self.finals_running and self.studies else "")
        parts.append(f"finals {self.finals_finished}/{self.finals_total} finished{running}")
        if self.queued:
            parts.append(f"{self.queued} {'study' if self.queued == 1 else 'studies'} queued")
        return " | ".join(parts)


@dataclass(frozen=True)
class Run:
    """A run folder as read: the epochs its ``result.json`` holds, and whether it has ended."""
    epochs: int
    ended: bool


class LineCounter:
    """Epoch lines of ``result.json`` files, read incrementally (only what was appended since the
    last read; a file rewritten shorter, e.g. on a resume, is counted afresh)."""

    def __init__(self):
        self.seen: dict[Path, tuple[int, int, int]] = {}  # path -> (inode, bytes read, lines)

    def __call__(self, path: Path) -> int:
        try:
            st = path.stat()
        except OSError:
            return 0
        ino, offset, lines = self.seen.get(path, (st.st_ino, 0, 0))
        if ino != st.st_ino or st.st_size < offset:
            offset, lines = 0, 0
        if st.st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(st.st_size - offset)
            complete = chunk.rfind(b"\n") + 1  # a line being written counts once it is whole
            lines += chunk[:complete].count(b"\n")
            offset += complete
        self.seen[path] = (st.st_ino, offset, lines)
        return lines


def read_runs(folder: Path, count: LineCounter) -> list[Run]:
    """The run folders under ``folder`` (those with a ``result.json``)."""
    if not folder.is_dir():
        return []
    return [Run(count(f), (f.parent / OUTCOME).exists()) for f in sorted(folder.glob(f"*/{RESULTS}"))]


class Progress:
    """The progress of ``jobs`` (:class:`~tune_lnl.search.studies.Job`) of the experiment in
    ``exp_dir`` with ``num_samples`` trials per search (0: no search) and ``seeds`` final runs
    each. ``epochs_per_s``: the rate the plan expects (used until an epoch ended here);
    ``clock``: a monotonic clock (tests give a fake one)."""

    def __init__(self, exp_dir: Path, jobs: list, num_samples: int, seeds: int, epochs_per_s: float | None = None,
                 clock=time.monotonic):
        self.exp_dir, self.num_samples, self.seeds = Path(exp_dir), num_samples, seeds
        self.jobs = [(job.key, job.method, job.setting, job.space.epochs(job.setting),
                      *rungs(job.space, job.space.epochs(job.setting))) for job in jobs]
        # (an unknown plan rate, NaN when a calibration failed, is no rate)
        self.epochs_per_s = epochs_per_s if epochs_per_s and math.isfinite(epochs_per_s) else None
        self.clock = clock
        self.count = LineCounter()
        self.t0 = clock()
        self.start: tuple[float, int] | None = None  # (when, epochs done) at the first epoch ended here
        self.base: int | None = None  # epochs done at the first update

    def update(self) -> ProgressUpdate:
        """Read the folder now (see :meth:`compute`)."""
        snapshot = {}
        for key, method, setting, *_ in self.jobs:
            search = self.exp_dir / "search" / method / setting
            snapshot[key] = (read_runs(search, self.count), (search / ".done").exists(),
                             read_runs(self.exp_dir / "finals" / method / setting, self.count))
        return self.compute(snapshot)

    def compute(self, snapshot: dict) -> ProgressUpdate:
        """The update from ``snapshot``: study key -> ``(trial runs, search ended, final runs)``
        (lists of :class:`Run`)."""
        studies, done, left = [], 0, 0.0
        finals_finished, finals_running = 0, []
        for key, _, _, epochs, grace, rf in self.jobs:
            trials, searched, finals = snapshot.get(key, ([], False, []))
            done += sum(r.epochs for r in trials) + sum(r.epochs for r in finals)
            running = [] if searched else [r.epochs for r in trials if not r.ended]
            if self.num_samples == 0:
                state = "no search"
            elif searched:
                state = "searched"
            else:
                state = "searching" if trials else "queued"
                left += sum(expected_remaining(e, grace, rf, epochs) for e in running)
                left += max(0, self.num_samples - len(trials)) * expected_epochs(grace, rf, epochs)
            finished = len(trials) if searched else sum(r.ended for r in trials)
            studies.append(StudyProgress(key, state, finished, self.num_samples, tuple(running), epochs))
            finals_finished += sum(r.ended for r in finals)
            finals_running += [r.epochs for r in finals if not r.ended]
            left += sum(epochs - r.epochs for r in finals if not r.ended)
            left += max(0, self.seeds - len(finals)) * epochs
        return ProgressUpdate(percent=100.0 * done / (done + left) if done + left else 100.0,
                              eta_s=self._eta(done, left), done_epochs=done, expected_epochs=done + left,
                              elapsed_s=self.clock() - self.t0, studies=tuple(studies),
                              finals_finished=finals_finished, finals_total=self.seeds * len(self.jobs),
                              finals_running=tuple(finals_running))

    def _eta(self, done: int, left: float) -> float | None:
        """Seconds for ``left`` trial-epochs at the rate measured since the first epoch that
        ended here (epochs done before, e.g. on a resume, do not count), else the plan's rate."""
        now = self.clock()
        if self.base is None:
            self.base = done
        if self.start is None and done > self.base:
            self.start = (now, done)
        if self.start is not None and done > self.start[1] and now > self.start[0]:
            return left * (now - self.start[0]) / (done - self.start[1])
        return left / self.epochs_per_s if self.epochs_per_s else None


def attached() -> bool:
    """Is a person watching (stdout a terminal, or a notebook's kernel)?"""
    import sys
    try:
        if sys.stdout.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return "ipykernel" in sys.modules


class Reporter:
    """Drives a :class:`Progress` in a background thread while the backend runs: reads the
    folder every ``poll`` seconds, calls ``callback(update)`` then, prints the status line every
    ``every`` seconds (and on :meth:`report`), and updates a tqdm bar when ``bar``. Use as a
    context manager around the search."""

    def __init__(self, progress: Progress, callback=None, bar: bool = False, poll: float = POLL_S,
                 every: float = EVERY_S):
        self.progress, self.callback, self.poll, self.every = progress, callback, poll, every
        self.bar = _tqdm() if bar else None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="tune_lnl-progress", daemon=True)
        self.last: ProgressUpdate | None = None

    def __enter__(self) -> Reporter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        if self.bar is not None:
            self.bar.close()

    def _loop(self) -> None:
        printed = time.monotonic()
        while not self.stop.wait(self.poll):
            try:
                self.tick(print_line=time.monotonic() - printed >= self.every)
            except Exception as exc:  # noqa: BLE001 -- progress never stops a search
                print(f"note: progress unavailable ({type(exc).__name__}: {exc})", flush=True)
                return
            if time.monotonic() - printed >= self.every:
                printed = time.monotonic()

    def tick(self, print_line: bool) -> ProgressUpdate:
        """One update: the callback, the bar, and the status line when ``print_line``."""
        with self.lock:
            update = self.progress.update()
            self.last = update
            if self.callback is not None:
                self.callback(update)
            if self.bar is not None:
                self.bar.total = round(update.expected_epochs)
                self.bar.n = update.done_epochs
                self.bar.set_postfix_str("ETA " + ("?" if update.eta_s is None else duration(update.eta_s)))
            if print_line:
                self._print(update.line())
        return update

    def report(self) -> ProgressUpdate:
        """Print the status line now (e.g. when a study ends)."""
        return self.tick(print_line=True)

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=1, unit="trial-epoch", dynamic_ncols=True)
