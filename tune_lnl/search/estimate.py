"""How much an experiment will train, and how long that takes here: the expected trial-epochs
under ASHA / successive halving, seconds per epoch (from earlier runs in the same storage, else
a short calibration on this machine's device), and the wall time on the trial slots the run
would get. What ``--plan`` prints (:func:`tune_lnl.plan`) and the ``estimated:`` line a search
prints at its start; :mod:`tune_lnl.search.progress` uses the same expectations for its ETA.

The pruner keeps ``1 / reduction_factor`` of the trials at each rung, so a study of ``n`` trials
is expected to run ``n / rf^k`` trials past its ``k``-th rung (the expected survivors, not the
maximum a study could run). With Hyperband the same figure is an approximation.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import milestones
from ..results.runs import PARAMS, RESULTS, read_lines
from .studies import rungs

#: the run-config keys that decide what an epoch costs: earlier runs count when these match
COST_KEYS = ("method", "dataset", "model", "batch_size", "train_subset", "test_subset", "augment", "val_fraction")
#: at most this many earlier runs are read per (method, dataset) (the median of their epochs)
MAX_EARLIER_RUNS = 12
#: training batches timed by a calibration (after one warm-up batch)
CALIBRATION_BATCHES = 5
#: an estimate above this many hours gets a warning with ways to make it shorter
LONG_HOURS = 2.0


# -- trial-epochs under the pruner --------------------------------------------------------------

def expected_epochs(grace: int, rf: int, epochs: int) -> float:
    """Expected epochs of one trial: a share ``rf^-k`` of the trials trains the ``k``-th segment."""
    ends = milestones(grace, rf, epochs)
    return sum((end - start) / rf ** k for k, (start, end) in enumerate(zip([0] + ends, ends)))


def expected_remaining(epoch: int, grace: int, rf: int, epochs: int) -> float:
    """Expected epochs still to train of a running trial at ``epoch`` (it has passed every rung
    below ``epoch``; the rung at ``epoch`` itself may still prune it)."""
    ends = milestones(grace, rf, epochs)
    j = sum(end < epoch for end in ends)  # the segment it is in
    if j >= len(ends):
        return 0.0
    rest = sum((end - start) / rf ** (k - j) for k, (start, end) in enumerate(zip([0] + ends, ends)) if k > j)
    return (ends[j] - epoch) + rest


# -- seconds per epoch --------------------------------------------------------------------------

def cost_key(config: dict) -> tuple:
    """What an epoch of ``config`` costs depends on (:data:`COST_KEYS`)."""
    return tuple(str(config.get(k)) for k in COST_KEYS)


def earlier_epoch_seconds(storage: Path, config: dict) -> tuple[float, int] | None:
    """``(median epoch_time, runs read)`` of earlier runs with the same cost (:func:`cost_key`)
    in the experiments under ``storage`` (their ``result.json`` lines), or None."""
    want, times, runs = cost_key(config), [], 0
    pattern = f"*/*/{config['method']}/*/*/{PARAMS}"  # <experiment>/{search,finals}/<method>/<setting>/<run>
    for params in itertools.islice(Path(storage).glob(pattern), 2000):
        try:
            if cost_key(json.loads(params.read_text())) != want:
                continue
            lines = read_lines(params.parent / RESULTS)
        except Exception:  # noqa: BLE001 -- an unreadable earlier run is simply not used
            continue
        got = [float(h["epoch_time"]) for h in lines if isinstance(h.get("epoch_time"), (int, float))]
        if got:
            times.extend(got)
            runs += 1
            if runs >= MAX_EARLIER_RUNS:
                break
    return (statistics.median(times), runs) if times else None


def calibrate(run, threads: int) -> float:
    """Seconds one epoch of ``run`` (a :class:`~tune_lnl.methods.RunConfig`) takes here, on
    ``threads`` CPU threads (a trial's share): the method is built as a trial builds it, a
    warm-up batch, then :data:`CALIBRATION_BATCHES` timed training batches (of ``train_batches``
    or ``view_batches``, the semi-supervised methods' views) scaled to the epoch's batches, plus
    one timed evaluation. The first epoch's cost: a method whose later phases cost more (a
    semi-supervised stage after a warm-up) is estimated low, and the progress ETA then follows the
    epochs as they are timed."""
    import torch

    from ..methods import method_class
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    m = method_class(run.method)(run)
    try:
        full, full_views = m.train_batches, m.view_batches

        def limit(k: int) -> None:  # an epoch of k batches, whichever way the method draws them
            m.train_batches = lambda: itertools.islice(full(), k)
            m.view_batches = lambda plan, augments: itertools.islice(full_views(plan, augments), k)

        limit(1)
        with m.autocast():
            m.train_epoch()  # warm-up
        limit(CALIBRATION_BATCHES)
        t0 = time.perf_counter()
        with m.autocast():
            m.train_epoch()
        per_batch = (time.perf_counter() - t0) / CALIBRATION_BATCHES
        t0 = time.perf_counter()
        with m.autocast():
            m.evaluate()
        evaluation = time.perf_counter() - t0
        n_batches = math.ceil(int(m.data.info["n_train"]) / int(m.hp.batch_size))
        return per_batch * n_batches + evaluation
    finally:
        m.close()
        torch.set_num_threads(before)


# -- the estimate -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyEstimate:
    """One study (method, noise setting): its search (``trials`` 0 with ``--paper-only``) and
    finals, their expected trial-epochs, and the seconds an epoch takes here (``source``: where
    that figure comes from)."""
    key: str
    trials: int
    epochs: int
    rungs: tuple[int, ...]
    reduction_factor: int
    seeds: int
    search_epochs: float
    finals_epochs: int
    epoch_s: float
    source: str

    @property
    def trial_epochs(self) -> float:
        return self.search_epochs + self.finals_epochs


@dataclass(frozen=True)
class Estimate:
    """What :func:`tune_lnl.plan` returns (and ``--plan`` prints): every study, the expected
    trial-epochs in all, the trial slots the run would get and the wall time on them (an
    estimate that assumes every slot busy all the time)."""
    name: str
    backend: str
    slots: int
    threads: int
    studies: list[StudyEstimate] = field(default_factory=list)

    @property
    def trial_epochs(self) -> float:
        return sum(s.trial_epochs for s in self.studies)

    @property
    def seconds(self) -> float:
        """Wall seconds on :attr:`slots` slots: every trial-epoch's seconds, shared by the slots."""
        return sum(s.trial_epochs * s.epoch_s for s in self.studies) / max(1, self.slots)

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def long(self) -> bool:
        return self.hours > LONG_HOURS  # (False when unknown: NaN)

    def line(self) -> str:
        """``estimated: N trial-epochs, H h on S slots (...)``; the time unknown when a study's
        epoch could not be timed (its calibration failed: the method's own error, said there)."""
        if math.isnan(self.seconds):
            return (f"estimated: {self.trial_epochs:,.0f} trial-epochs on {self.slots} slots (time unknown: "
                    f"{next(s.source for s in self.studies if math.isnan(s.epoch_s))})")
        return (f"estimated: {self.trial_epochs:,.0f} trial-epochs, {self.hours:.2g} h on {self.slots} slots "
                f"(about {duration(self.seconds)}; an estimate that assumes every slot busy)")

    def warning(self) -> str | None:
        if not self.long:
            return None
        return (f"warning: this is long (over {LONG_HOURS:g} h). To see results sooner: --smoke (minutes), fewer "
                f"settings (--settings {self.studies[0].key.split('/', 1)[1]}) or methods, --num-samples, a GPU, "
                f"or a Ray cluster (--backend ray --address ...)")

    def text(self) -> str:
        """The plan as printed by ``--plan``: a table of the studies, the totals, the warning."""
        rows = [f"plan: {self.name}; backend {self.backend}; {self.slots} trial slots ({self.threads} thread(s) "
                f"each)", f"  {'study':<22} {'trials':>6} {'rungs (epochs)':<18} {'finals':<14} "
                f"{'trial-epochs':>12} {'s/epoch':>8}  s/epoch from"]
        for s in self.studies:
            rungs_text = ", ".join(map(str, s.rungs)) if s.trials else "-"
            finals = f"{s.seeds} x {s.epochs}"
            rows.append(f"  {s.key:<22} {s.trials:>6} {rungs_text:<18} {finals:<14} {s.trial_epochs:>12,.0f} "
                        f"{s.epoch_s:>8.3g}  {s.source}")
        search = sum(s.search_epochs for s in self.studies)
        finals = sum(s.finals_epochs for s in self.studies)
        rows.append(f"  searches {search:,.0f} trial-epochs (expected under the pruner: 1/rf of the trials past "
                    f"each rung) + finals {finals:,} trial-epochs")
        rows.append(self.line())
        if self.warning():
            rows.append(self.warning())
        return "\n".join(rows)


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def study_estimate(space, setting: str, trials: int, seeds: int, epoch_s: float, source: str) -> StudyEstimate:
    """One study's expected trial-epochs (``trials`` 0: no search, as with ``--paper-only``)."""
    epochs = space.epochs(setting)
    grace, rf = rungs(space, epochs)
    return StudyEstimate(key=f"{space.method}/{setting}", trials=trials, epochs=epochs,
                         rungs=tuple(milestones(grace, rf, epochs)), reduction_factor=rf, seeds=seeds,
                         search_epochs=trials * expected_epochs(grace, rf, epochs),
                         finals_epochs=seeds * epochs, epoch_s=epoch_s, source=source)


def epoch_seconds(space, setting: str, data_root, storage, threads: int, cache: dict) -> tuple[float, str]:
    """``(seconds per epoch, where it comes from)`` of ``space``'s ``setting``: earlier runs of
    the same cost under ``storage`` (a local folder), else a calibration (:func:`calibrate`);
    one figure per cost (:func:`cost_key`), kept in ``cache``."""
    config = space.paper_config(setting, str(data_root))
    key = cost_key(config)
    if key not in cache:
        earlier = earlier_epoch_seconds(Path(storage), config) if storage is not None else None
        if earlier is not None:
            cache[key] = (earlier[0], f"earlier runs here ({earlier[1]} runs)")
        else:
            run = space.paper_run(setting, str(data_root))
            try:
                cache[key] = (calibrate(run, threads), f"calibration ({CALIBRATION_BATCHES} batches + 1 "
                                                       f"evaluation, {os.cpu_count()} CPUs here)")
            except Exception as exc:  # noqa: BLE001 -- the method's own failure is its trials' to report
                cache[key] = (math.nan, f"the calibration of {space.method} failed ({type(exc).__name__}: "
                                        f"{str(exc)[:200]}); its trials will say why")
    return cache[key]


def estimate(exp, methods: list[str], settings: list[str], trials: int, seeds: int, *, slots: int, threads: int,
             data_root, storage, backend: str, name: str) -> Estimate:
    """The :class:`Estimate` of ``methods`` x ``settings`` with ``trials`` per study (0: no
    search) and ``seeds`` final runs each, on ``slots`` slots of ``threads`` threads."""
    cache: dict = {}
    studies = []
    for method in methods:
        space = exp.methods[method]
        for setting in settings:
            epoch_s, source = epoch_seconds(space, setting, data_root, storage, threads, cache)
            studies.append(study_estimate(space, setting, trials, seeds, epoch_s, source))
    return Estimate(name=name, backend=backend, slots=slots, threads=threads, studies=studies)


def plan_for(request, storage_path, paper_only: bool) -> Estimate:
    """The :class:`Estimate` of a checked run request (:func:`~tune_lnl.search.experiment.checked_request`):
    the slots its backend would get here, earlier runs read from ``storage_path`` (a local folder;
    none at a URI)."""
    from ..results.storage import is_uri
    slots, threads = request.backend_cls.trial_slots(request.exp.first, request.options)
    storage = None if is_uri(storage_path) else Path(storage_path).expanduser().resolve()
    return estimate(request.exp, request.methods, request.settings, 0 if paper_only else request.trials,
                    request.seeds, slots=slots, threads=threads, data_root=request.data_root, storage=storage,
                    backend=request.backend, name=request.name)
