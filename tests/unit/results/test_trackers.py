"""Opt-in trackers (tune_lnl/results/trackers.py) as RunRecorder drives them, checked through
MLflow's own client on a hand-made experiment folder: one MLflow experiment named as the folder,
one run per run folder named ``<method>/<setting>/<run>``, its config as parameters, its numeric
metrics per epoch, its outcome; a resumed run continues its MLflow run; a broken tracker never
fails the run; unknown or uninstalled trackers are refused as bad input. W&B: the same, offline,
read back from the files it writes (tests/tracker_checks.py)."""
import logging

import pytest
from tracker_checks import wandb_runs

from tune_lnl.errors import ConfigError
from tune_lnl.results import trackers
from tune_lnl.results.recorder import RunRecorder

mlflow = pytest.importorskip("mlflow", reason="pip install -e '.[test]' (mlflow-skinny)")


@pytest.fixture
def mlflow_on(monkeypatch):
    monkeypatch.setenv(trackers.ENV, "mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(trackers.SafeTracker, "failed", False)
    monkeypatch.setattr(trackers.MLflowTracker, "_runs", {})


def _record(run_dir, epochs, state="complete", config=None):
    rec = RunRecorder(run_dir)
    rec.start([])
    rec.params(config or {"method": "ce", "lr": 0.01, "epochs": len(epochs), "dataset_options": {"a": 1}})
    for e, proxy in epochs:
        rec.epoch({"epoch": e, "proxy": proxy, "test_acc": proxy + 0.1, "config": {"lr": 0.01}, "pid": 1,
                   "note": "text", "nan": float("nan")})
    rec.finish(state, None, epochs[-1][0])


def _client(exp):
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{exp / 'mlflow.db'}")


def test_mlflow_gets_every_runs_params_metrics_and_outcome(tmp_path, mlflow_on):
    exp = tmp_path / "mlc_mnist-smoke"
    _record(exp / "search" / "ce" / "sym-0.4" / "trial_0003", [(1, 0.5), (2, 0.6)], "pruned")
    _record(exp / "finals" / "ce" / "sym-0.4" / "seed_1", [(1, 0.4), (2, 0.7), (3, 0.8)])
    client = _client(exp)
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    assert experiment.name == "mlc_mnist-smoke"
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"ce/sym-0.4/trial_0003", "ce/sym-0.4/seed_1"}
    trial, final = runs["ce/sym-0.4/trial_0003"], runs["ce/sym-0.4/seed_1"]
    assert trial.data.params == {"method": "ce", "lr": "0.01", "epochs": "2", "dataset_options": '{"a": 1}'}
    assert [(m.step, m.value) for m in client.get_metric_history(trial.info.run_id, "proxy")] == [(1, 0.5), (2, 0.6)]
    history = client.get_metric_history(final.info.run_id, "test_acc")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([0.5, 0.8, 0.9])
    assert set(trial.data.metrics) == {"proxy", "test_acc"}  # no bookkeeping, text or NaN
    assert (trial.data.tags["state"], trial.data.tags["stage"], final.data.tags["stage"]) == \
        ("pruned", "search", "finals")
    assert trial.info.status == final.info.status == "FINISHED"


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, mlflow_on, monkeypatch):
    run_dir = tmp_path / "exp" / "search" / "ce" / "sym-0.4" / "trial_0000"
    rec = RunRecorder(run_dir)
    rec.params({"method": "ce", "lr": 0.01})
    rec.epoch({"epoch": 1, "proxy": 0.5})
    monkeypatch.setattr(trackers.MLflowTracker, "_runs", {})  # a new process after a kill
    rec = RunRecorder(run_dir)
    rec.params({"method": "ce", "lr": 0.01})
    rec.epoch({"epoch": 2, "proxy": 0.6})
    rec.finish("failed", "ValueError: boom", 2)
    client = _client(tmp_path / "exp")
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "proxy")] == [1, 2]
    assert run.info.status == "FAILED" and run.data.tags["error"] == "ValueError: boom"


def test_a_broken_tracker_warns_once_and_never_fails_the_run(tmp_path, mlflow_on, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://x")
    with caplog.at_level(logging.WARNING, logger="tune_lnl"):
        _record(tmp_path / "exp" / "search" / "ce" / "sym-0.4" / "trial_0000", [(1, 0.5), (2, 0.6)])
    assert (tmp_path / "exp" / "search" / "ce" / "sym-0.4" / "trial_0000" / "outcome.json").exists()
    warned = [r.getMessage() for r in caplog.records if "tracker mlflow failed" in r.getMessage()]
    assert len(warned) == 1 and "the run goes on" in warned[0]


def test_no_tracker_without_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(trackers.ENV, raising=False)
    _record(tmp_path / "exp" / "search" / "ce" / "sym-0.4" / "trial_0000", [(1, 0.5)])
    assert not (tmp_path / "exp" / "mlflow.db").exists()


def test_tracking_sets_the_variable_only_within_the_block(monkeypatch):
    import os
    monkeypatch.delenv(trackers.ENV, raising=False)
    monkeypatch.setattr(trackers.SafeTracker, "failed", True)  # an earlier search's store was down
    with trackers.tracking("mlflow"):
        assert os.environ[trackers.ENV] == "mlflow"
        assert not trackers.SafeTracker.failed  # a new search tries again
    assert trackers.ENV not in os.environ


def test_unknown_or_uninstalled_trackers_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match=r"^tracker: unknown tracker 'comet'; known: mlflow, wandb$"):
        trackers.check_tracker("comet")
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs the mlflow package, which is not installed: pip install -e"):
        trackers.check_tracker("mlflow")
    assert trackers.check_tracker(None) is None


def test_the_cli_refuses_an_unknown_tracker_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from tune_lnl.cli import search_main
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        search_main(["--space", "nosuch.yaml", "--tracker", "comet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: tracker: unknown tracker 'comet'; known: mlflow, wandb"
    assert not (tmp_path / "results").exists()


# -- W&B, offline ---------------------------------------------------------------------------------

def test_wandb_offline_gets_every_runs_config_metrics_and_outcome(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install -e '.[wandb]'")
    monkeypatch.setenv(trackers.ENV, "wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline by default: never a login prompt
    monkeypatch.setattr(trackers.SafeTracker, "failed", False)
    exp = tmp_path / "tiny-smoke"
    _record(exp / "search" / "ce" / "sym-0.4" / "trial_0001", [(1, 0.5), (2, 0.6)], "pruned")
    _record(exp / "finals" / "ce" / "sym-0.4" / "seed_1", [(1, 0.4)])
    assert not trackers.SafeTracker.failed
    import wandb
    wandb.teardown()  # (W&B's service process writes the files: stopped, it has flushed them all)
    runs = wandb_runs(exp / "wandb")
    assert set(runs) == {"ce/sym-0.4/trial_0001", "ce/sym-0.4/seed_1"}
    trial = runs["ce/sym-0.4/trial_0001"]
    assert (trial["run"].project, trial["run"].run_group, trial["run"].job_type) == ("tiny-smoke", "ce/sym-0.4",
                                                                                     "search")
    assert [(h["_step"], h["proxy"]) for h in trial["history"]] == [(1, 0.5), (2, 0.6)]
    assert "pid" not in trial["history"][0] and "note" not in trial["history"][0]
    assert trial["config"] == {"method": "ce", "lr": 0.01, "epochs": 2, "dataset_options": {"a": 1}}
    assert trial["summary"]["state"] == "pruned" and trial["exit_code"] == 0
    assert runs["ce/sym-0.4/seed_1"]["run"].job_type == "finals"
