"""End to end: `python -m tune_lnl.search --smoke` on real MNIST through Ray Tune + Optuna + ASHA.

Checks the outputs, that ASHA-stopped trials are PRUNED in the study, that the paper's values
were the first trial, that every choice ("best" config, "best" epoch of the finals) follows the
proxy alone (recomputed here from the raw per-epoch results), and that TensorBoard lists every
trial with its hyperparameters and no experiment summary hides the union."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SETTINGS = ["sym-0.2", "pair-0.45"]


def _results(trial_dir: Path) -> list[dict]:
    rows = [json.loads(l) for l in (trial_dir / "result.json").read_text().splitlines() if l.strip()]
    by_epoch = {r["epoch"]: r for r in rows}  # a restored trial may repeat an epoch
    return [by_epoch[e] for e in sorted(by_epoch)]


def _trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "result.json").exists())


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, repo, data_root):
    storage = tmp_path_factory.mktemp("results")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "search_spaces/mlc_mnist.yaml", "--smoke",
           "--settings", *SETTINGS, "--data-root", str(data_root), "--storage-path", str(storage)]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return storage / "mlc_mnist-smoke", proc


def test_outputs_exist(smoke_run):
    exp, proc = smoke_run
    for f in ("best_configs.yaml", "finals.csv", "finals.md", "optuna.db", "experiment.yaml"):
        assert (exp / f).is_file() and (exp / f).stat().st_size > 0, f
    assert "tensorboard --logdir" in proc.stdout
    assert "oracle max (test-selected)" in (exp / "finals.md").read_text()


def test_study_states_and_paper_first(smoke_run, repo):
    import optuna
    from tune_lnl.config import load_space
    exp, _ = smoke_run
    space = load_space(repo / "search_spaces/mlc_mnist.yaml", smoke_mode=True)
    epochs = space.paper_config("sym-0.2", "/")["epochs"]
    for setting in SETTINGS:
        study = optuna.load_study(study_name=setting, storage=f"sqlite:///{exp / 'optuna.db'}")
        assert len(study.trials) == space.num_samples
        assert study.trials[0].params == pytest.approx(space.paper_point(setting))
        # epochs each trial really ran, from Ray's per-epoch results
        ran = sorted(len(_results(d)) for d in _trial_dirs(exp / "search" / setting))
        states = sorted(t.state.name for t in study.trials)
        assert states.count("COMPLETE") == sum(r == epochs for r in ran) >= 1
        assert states.count("PRUNED") == sum(r < epochs for r in ran)


def test_selection_uses_only_the_proxy(smoke_run):
    exp, _ = smoke_run
    best = yaml.safe_load((exp / "best_configs.yaml").read_text())
    finals = list(csv.DictReader((exp / "finals.csv").open()))
    for setting in SETTINGS:
        # search: the chosen config is the full-length trial with the highest proxy (any epoch)
        trials = [_results(d) for d in _trial_dirs(exp / "search" / setting)]
        full = [t for t in trials if len(t) == max(len(x) for x in trials)]
        winner = max(full, key=lambda t: max(r["proxy"] for r in t))
        chosen = best["settings"][setting]["config"]
        for k, v in winner[-1]["config"].items():
            assert chosen[k] == pytest.approx(v), k
        assert best["settings"][setting]["proxy_best"] == pytest.approx(max(r["proxy"] for r in winner))
        # finals: "best" is the test accuracy at the first epoch of maximal proxy
        runs = _trial_dirs(exp / "finals" / setting)
        assert len(runs) == 2
        rows = {int(r["seed"]): r for r in finals if r["setting"] == setting}
        for d in runs:
            hist = _results(d)
            seed = hist[-1]["config"]["seed"]
            i = max(range(len(hist)), key=lambda j: (hist[j]["proxy"], -j))
            assert float(rows[seed]["best"]) == pytest.approx(hist[i]["test_acc"])
            assert float(rows[seed]["oracle_max"]) == pytest.approx(max(h["test_acc"] for h in hist))
            assert [h["stage"] for h in hist] == [1, 1, 2, 2, 3, 3]  # every MLC stage ran


def test_best_config_runs_as_is(smoke_run, repo, data_root):
    exp, _ = smoke_run
    proc = subprocess.run([sys.executable, "-m", "tune_lnl.train", "--config", str(exp / "best_configs.yaml"),
                           "--setting", "pair-0.45", "--epochs", "1", "--data-root", str(data_root)],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "epoch    1" in proc.stdout and "proxy(noisy_val)" in proc.stdout


def test_tensorboard_lists_every_trial_with_hparams(smoke_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    exp, _ = smoke_run
    runs = [p for p in (exp / "tensorboard").rglob("*") if p.is_dir() and any(p.glob("events.out.tfevents.*"))]
    n_search = sum(len(_trial_dirs(exp / "search" / s)) for s in SETTINGS)
    assert len(runs) == n_search + 2 * len(SETTINGS)
    for run in runs:
        acc = EventAccumulator(str(run))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        assert "_hparams_/experiment" not in content  # would hide other trials' columns
        ssi = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hp = ssi.session_start_info.hparams
        assert {"lambda", "mu", "xi", "K", "forget_rate", "setting", "noise_rate", "seed"} <= set(hp)
        assert "proxy" in acc.Tags()["scalars"] and "test_acc" in acc.Tags()["scalars"]
