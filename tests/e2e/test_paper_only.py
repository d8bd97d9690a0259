"""`--paper-only`: no search; the finals retrain each method's paper values (MLC Table I and
Sec. V-A.3, typed here from the paper), the epoch alone chosen by the proxy; the outputs say
so, and the finals of several methods and settings share one pool of worker processes."""
import json
import os
import subprocess
import sys

import yaml

ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
# MLC paper: Table I lambda per setting, forget rate = noise rate, mu -1, xi 0.01, K 10, lr 1e-3 -> 1e-4
PAPER = {"sym-0.2": {"lambda": 1000.0, "forget_rate": 0.2}, "pair-0.45": {"lambda": 2500.0, "forget_rate": 0.45}}


def test_paper_only_retrains_the_papers_values_without_a_search(tmp_path, repo, data_root):
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "search_spaces/mlc_mnist.yaml", "--smoke",
           "--paper-only", "--seeds", "1", "--settings", *PAPER, "--backend", "optuna", "--workers", "2",
           "--data-root", str(data_root), "--storage-path", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=repo, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "mlc_mnist-smoke"
    assert not (exp / "search").exists() and not (exp / "optuna.journal").exists()  # nothing searched
    assert "0 searches, 2 x 1 final runs (0 already done); 2 worker processes" in proc.stdout
    best = yaml.safe_load((exp / "best_configs.yaml").read_text())
    assert best["selected_by"].startswith("none: the space file's paper values")
    # the experiment is its folder (--smoke adds '-smoke'; --name likewise), the space's name kept beside it
    assert (best["experiment"], best["space_name"]) == ("mlc_mnist-smoke", "mlc_mnist")
    assert (exp / "finals.md").read_text().startswith("# Finals: mlc_mnist-smoke (mnist")
    for setting, values in PAPER.items():
        cfg = best["methods"]["mlc"][setting]["config"]
        assert {k: cfg[k] for k in values} == values
        assert (cfg["mu"], cfg["xi"], cfg["K"], cfg["lr"], cfg["lr2"]) == (-1.0, 0.01, 10.0, 1e-3, 1e-4)
        ran = json.loads((exp / "finals" / "mlc" / setting / "seed_1" / "result.json").read_text().splitlines()[0])
        assert {k: ran["config"][k] for k in values} == values and ran["config"]["seed"] == 1
    assert "the space file's paper hyperparameters (--paper-only, no search)" in (exp / "finals.md").read_text()
    assert (exp / "report" / "report.html").exists()
