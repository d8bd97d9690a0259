"""``--tracker mlflow`` / ``--tracker wandb`` on both backends (issue 28, item 5): a tiny smoke
search, then the tracker must hold one run per run folder (every trial and final seed) named
``<method>/<setting>/<run folder>`` in a project / experiment named as the experiment folder, with
the run's config and, per epoch, the same proxy and test accuracy as its ``result.json``. MLflow is
read through its own client (``MlflowClient``); W&B runs offline (no network, no login) and is read
from the files it writes (tests/tracker_checks.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_spaces import ENV, tiny_space
from tracker_checks import wandb_runs

SETTING = "sym-0.2"
BACKENDS = ["optuna", "ray"]


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "result.json").read_text().splitlines() if line.strip()]


def _search(tmp_path: Path, data_root: Path, backend: str, tracker: str) -> tuple[Path, list[Path]]:
    """The tiny smoke search with ``--tracker``: its folder and its run folders (2 trials, 1 seed)."""
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(tiny_space(SETTING, {"type": "symmetric", "rate": 0.2})))
    env = {k: v for k, v in ENV.items() if k not in ("MLFLOW_TRACKING_URI", "TUNE_LNL_TRACKER", "WANDB_MODE")}
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--smoke", "--backend", backend,
           "--tracker", tracker, "--storage-path", str(tmp_path / "results"), "--data-root", str(data_root)]
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, "WANDB_SILENT": "true"}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"tracker {tracker} failed" not in proc.stdout + proc.stderr
    exp = tmp_path / "results" / "tiny-smoke"
    run_dirs = [d for part in ("search", "finals") for d in sorted((exp / part / "ce" / SETTING).iterdir())
                if (d / "result.json").exists()]
    assert len(run_dirs) == 3  # 2 trials, 1 final seed
    return exp, run_dirs


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_run_of_a_search_is_in_mlflow(tmp_path, data_root, backend):
    mlflow = pytest.importorskip("mlflow", reason="pip install -e '.[test]' (mlflow-skinny)")
    exp, run_dirs = _search(tmp_path, data_root, backend, "mlflow")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{exp / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-smoke")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"ce/{SETTING}/{d.name}" for d in run_dirs}
    for d in run_dirs:
        run = runs[f"ce/{SETTING}/{d.name}"]
        params = json.loads((d / "params.json").read_text())
        assert run.data.params["method"] == "ce" and float(run.data.params["lr"]) == pytest.approx(params["lr"])
        lines = _history(d)
        for key in ("proxy", "test_acc"):
            logged = client.get_metric_history(run.info.run_id, key)
            assert sorted((m.step, m.value) for m in logged) == [(h["epoch"], pytest.approx(h[key])) for h in lines]
        assert run.info.status == "FINISHED"
        assert run.data.tags["stage"] == d.parts[-4]
        assert run.data.tags["state"] == json.loads((d / "outcome.json").read_text())["state"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_run_of_a_search_is_in_wandb_offline(tmp_path, data_root, backend):
    pytest.importorskip("wandb", reason="pip install -e '.[test]' (wandb)")
    exp, run_dirs = _search(tmp_path, data_root, backend, "wandb")
    runs = wandb_runs(exp / "wandb")
    assert set(runs) == {f"ce/{SETTING}/{d.name}" for d in run_dirs}
    for d in run_dirs:
        run = runs[f"ce/{SETTING}/{d.name}"]
        assert (run["run"].project, run["run"].run_group, run["run"].job_type) == ("tiny-smoke", f"ce/{SETTING}",
                                                                                   d.parts[-4])
        assert run["config"]["lr"] == pytest.approx(json.loads((d / "params.json").read_text())["lr"])
        assert [(h["_step"], h["proxy"], h["test_acc"]) for h in run["history"]] == \
            [(h["epoch"], pytest.approx(h["proxy"]), pytest.approx(h["test_acc"])) for h in _history(d)]
        assert run["summary"]["state"] == json.loads((d / "outcome.json").read_text())["state"]
        assert run["exit_code"] == 0
