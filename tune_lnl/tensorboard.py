"""TensorBoard logging of trials, with every trial listed in the HParams tab.

Each trial (search or final) is one TensorBoard run: its per-epoch scalars plus a
``session_start_info`` holding its hyperparameters and noise setting. No run writes an
experiment-level summary (``_hparams_/experiment``): when one exists TensorBoard shows only that
run's hyperparameter columns (Ray's default TBX logger writes one per trial, so the first trial's
keys win); without it TensorBoard builds the columns from the UNION of all sessions.
"""
from __future__ import annotations

import re
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from ray.tune import Callback

SKIP_HPARAMS = {"data_root", "device"}
NOT_SCALARS = {"epoch", "done", "training_iteration", "timesteps_total", "episodes_total",
               "timestamp", "time_this_iter_s", "time_total_s", "time_since_restore",
               "iterations_since_restore", "pid", "node_ip", "hostname", "date", "trial_id",
               "experiment_tag", "timesteps_since_restore", "config", "checkpoint_dir_name",
               "should_checkpoint", "seed", "noise_seed", "failed"}


def hparam_values(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if k in SKIP_HPARAMS or v is None:
            continue
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def run_name(trial) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(trial))


class TensorBoardCallback(Callback):
    """Writes ``<logdir>/<trial name>`` runs from the driver (trials need no TensorBoard)."""

    def __init__(self, logdir: str | Path, base_config: dict):
        self.logdir = Path(logdir)
        self.base = base_config
        self.writers: dict[str, SummaryWriter] = {}

    def _writer(self, trial) -> SummaryWriter:
        if trial.trial_id not in self.writers:
            w = SummaryWriter(log_dir=str(self.logdir / run_name(trial)))
            _, ssi, sei = hparams_summary(hparam_values({**self.base, **trial.config}), {})
            w.file_writer.add_summary(ssi)
            self.writers[trial.trial_id] = (w, sei)
        return self.writers[trial.trial_id][0]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        w = self._writer(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        for k, v in result.items():
            if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool):
                w.add_scalar(k, v, step)
        w.flush()

    def _close(self, trial):
        entry = self.writers.pop(trial.trial_id, None)
        if entry is not None:
            w, sei = entry
            w.file_writer.add_summary(sei)  # session end; failures are listed in the study
            w.close()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial)
