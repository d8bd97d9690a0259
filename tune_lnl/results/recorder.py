"""One run folder (a trial or a final seed), written the same way by every search backend:
:class:`RunRecorder`. The backends call it; :mod:`tune_lnl.results` reads the files back
(:func:`~tune_lnl.results.runs.runs_under`, :func:`~tune_lnl.results.runs.read_outcome`) without
knowing which backend wrote them.

A run folder holds::

    params.json     the run config the run trains (how to rerun it)
    result.json     one JSON line per epoch (the epoch's metrics; Ray's lines carry more keys)
    checkpoint.pt   the resumable state after the last epoch (Ray keeps its own checkpoint folders)
    outcome.json    how the run ended: {"state": "complete" | "pruned" | "failed", "error", "epoch", ...}

and, when a tracker is on (``tune_lnl.run(tracker="mlflow")``: :mod:`tune_lnl.results.trackers`),
sends the same config, epochs and outcome to it.
"""
from __future__ import annotations

import json
from pathlib import Path

from .runs import OUTCOME, PARAMS, RESULTS, atomic_write, read_history, read_outcome
from .trackers import SafeTracker

#: the resumable state of a run that its backend trains itself (written by ``Method.save``)
CHECKPOINT = "checkpoint.pt"
#: ``outcome.json``'s ``kind`` when the run's worker process kept dying (not the method's fault:
#: ``--resume`` gives such a run another chance)
WORKER = "worker"


class RunRecorder:
    """The files of one run folder ``run_dir`` (see the module docstring). Every write of a whole
    file is atomic (a kill never leaves half a file); epoch lines are appended."""

    def __init__(self, run_dir, tracked_as=None):
        self.dir = Path(run_dir)
        # the active tracker, if any (never fails the run); ``tracked_as``: the run's folder in the
        # experiment when ``run_dir`` is elsewhere (Ray writes into a staging folder, then syncs it)
        self.track = SafeTracker(Path(tracked_as or run_dir))

    @property
    def checkpoint(self) -> Path:
        """Where the run's resumable state goes (``checkpoint.pt``)."""
        return self.dir / CHECKPOINT

    def params(self, config: dict) -> None:
        """Record the run config (``params.json``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / PARAMS, json.dumps(config, indent=1, sort_keys=True, default=str) + "\n")
        self.track("on_start", config)

    def start(self, history: list[dict]) -> None:
        """``result.json`` holds exactly ``history`` (the epochs a checkpoint restored: lines of
        epochs after it, redone now, are dropped)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / RESULTS, "".join(json.dumps(h, default=float) + "\n" for h in history))

    def epoch(self, metrics: dict) -> None:
        """Append one epoch's line to ``result.json`` (one short write: a kill tears at most it)."""
        with open(self.dir / RESULTS, "a") as f:
            f.write(json.dumps(metrics, default=float) + "\n")
        self.track("on_epoch", metrics)

    def history(self) -> list[dict]:
        """The epoch lines written so far."""
        return read_history(self.dir)

    def finish(self, state: str, error: str | None = None, epoch: int | None = None, **extra) -> None:
        """Record how the run ended (``outcome.json``): it is not trained again (see :meth:`ended`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / OUTCOME, json.dumps({"state": state, "error": error, "epoch": epoch, **extra}))
        self.track("on_end", {"state": state, "error": error, "epoch": epoch})

    def tracked_epoch(self, metrics: dict) -> None:
        """Send an epoch the backend wrote into ``result.json`` itself (Ray's logger) to the tracker."""
        self.track("on_epoch", metrics)

    def outcome(self) -> dict | None:
        """``outcome.json`` (:func:`~tune_lnl.results.runs.read_outcome`), or None while the run
        has not ended."""
        return read_outcome(self.dir) if (self.dir / OUTCOME).exists() else None

    def ended(self, resume: bool = False) -> bool:
        """Has the run ended? With ``resume``, a run whose worker kept dying (killed, out of
        memory: not the method's fault) is given another chance from its checkpoint: its outcome
        is removed (like Ray's ``resume_errored``)."""
        f = self.dir / OUTCOME
        if not f.exists():
            return False
        if resume and read_outcome(self.dir).get("kind") == WORKER:
            f.unlink()
            return False
        return True
