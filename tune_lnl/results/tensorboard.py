"""TensorBoard logging of trials, with every trial listed in the HParams tab.

Each trial (search or final) is one TensorBoard run: its per-epoch scalars plus a
``session_start_info`` holding its hyperparameters and noise setting. No run writes an
experiment-level summary (``_hparams_/experiment``): when one exists TensorBoard shows only that
run's hyperparameter columns (Ray's default TBX logger writes one per trial, so the first trial's
keys win); without it TensorBoard builds the columns from the UNION of all sessions.

:class:`RunWriter` needs no Ray (the Optuna backend's workers use it directly);
:class:`tune_lnl.search.ray_backend.TensorBoardCallback` drives one per trial from the Ray driver.
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

SKIP_HPARAMS = {"data_root", "device"}
NOT_SCALARS = {"epoch", "done", "training_iteration", "timesteps_total", "episodes_total",
               "timestamp", "time_this_iter_s", "time_total_s", "time_since_restore",
               "iterations_since_restore", "pid", "node_ip", "hostname", "date", "trial_id",
               "experiment_tag", "timesteps_since_restore", "config", "checkpoint_dir_name",
               "should_checkpoint", "seed", "noise_seed", "failed", "trial"}


def hparam_values(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if k in SKIP_HPARAMS or v is None:
            continue
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class RunWriter:
    """One TensorBoard run: the hyperparameters (session start), then per-epoch scalars."""

    def __init__(self, logdir: str | Path, config: dict):
        self.writer = SummaryWriter(log_dir=str(logdir))
        _, ssi, self._sei = hparams_summary(hparam_values(config), {})
        self.writer.file_writer.add_summary(ssi)

    def add(self, result: dict) -> None:
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        for k, v in result.items():
            if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.file_writer.add_summary(self._sei)  # session end; failures are listed in the study
        self.writer.close()
