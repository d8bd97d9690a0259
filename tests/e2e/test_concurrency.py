"""Every study of an experiment at once (the default) against the old order (one study after
another, then the finals: ``--one-study-at-a-time``). The default's overlap is checked on the
suite's smoke searches (tests/e2e/test_search_smoke.py); here the old order on both backends, read
from the runs' own start and stop times, and the per-study limit's rule by hand."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tune_lnl.search.studies import study_cap


@pytest.mark.parametrize("n, slots, studies, cap, expected", [
    (50, 64, 30, "auto", 8),    # ceil(sqrt(50)) = 8 > ceil(64 / 30) = 3
    (50, 64, 1, "auto", 64),    # a lone study fills the machine
    (50, 64, 4, "auto", 16),    # ceil(64 / 4) = 16 > 8
    (4, 2, 6, "auto", 2),       # ceil(sqrt(4)) = 2
    (20, 2, 6, "auto", 2),      # never more than the slots
    (50, 64, 30, 3, 3),         # the file's number
    (50, 2, 30, 5, 2),          # ... but never more than the slots
])
def test_study_cap_by_hand(n, slots, studies, cap, expected):
    assert study_cap(cap, n, slots, studies) == expected


def _runs(folder: Path) -> list[tuple[float, float]]:
    spans = []
    for f in sorted(folder.glob("*/result.json")):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        spans.append((rows[0]["end_time"] - rows[0]["epoch_time"], rows[-1]["end_time"]))
    return spans


#: two small CE studies (sym-0.2, pair-0.2): 2 trials of 2 epochs on 1,000 images, 1 final seed
TWO_STUDIES = {
    "name": "two", "method": "ce", "dataset": "mnist",
    "search": {"num_samples": 2, "seed": 0, "grace_period": 1, "reduction_factor": 2},
    "finals": {"seeds": 1, "last_k": 1},
    "fixed": {"epochs": 2},
    "space": {"lr": {"choices": [1.0e-3, 2.0e-3]}},
    "paper": {"lr": 1.0e-3},
    "settings": {"sym-0.2": {"noise": {"type": "symmetric", "rate": 0.2}},
                 "pair-0.2": {"noise": {"type": "pairflip", "rate": 0.2}}},
    "smoke": {"train_subset": 1000, "test_subset": 500, "num_samples": 2, "seeds": 1, "grace_period": 1,
              "reduction_factor": 2},
}


def _search(tmp_path, repo, data_root, space: dict, backend: str, *flags: str):
    import yaml
    path = tmp_path / f"{space['name']}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))  # the studies in this order
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "tune_lnl.search", "--space", str(path), "--smoke", "--backend",
                           backend, "--data-root", str(data_root), "--storage-path", str(tmp_path), *flags],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("backend", ["optuna", "ray"])
def test_one_study_at_a_time_keeps_the_old_order(tmp_path, repo, data_root, backend):
    proc = _search(tmp_path, repo, data_root, TWO_STUDIES, backend, "--one-study-at-a-time")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "two-smoke"
    settings = list(TWO_STUDIES["settings"])
    first, second = (_runs(exp / "search" / "ce" / s) for s in settings)
    finals = [span for s in settings for span in _runs(exp / "finals" / "ce" / s)]
    assert len(first) == len(second) == 2 and len(finals) == 2
    assert max(e for _, e in first) <= min(s for s, _ in second)  # the second study waited for the first
    assert max(e for _, e in first + second) <= min(s for s, _ in finals)  # the finals for every search
    assert (exp / "finals.csv").read_text().count("\nce,") == 2


@pytest.mark.parametrize("backend", ["optuna", "ray"])
def test_a_study_without_a_result_does_not_stop_the_others(tmp_path, repo, data_root, backend):
    """Every trial of one study diverges: the experiment ends with an error naming that study
    (exit 2), after the other study has searched and run its finals."""
    # Adam with lr 1e30: NaN in the first epoch, every trial of the sym-0.2 study FAILs
    diverge = {"space": {"lr": {"choices": [1.0e+30]}}, "paper": {"lr": 1.0e+30}}
    space = {**TWO_STUDIES, "name": "half",
             "settings": {**TWO_STUDIES["settings"], "sym-0.2": {**TWO_STUDIES["settings"]["sym-0.2"], **diverge}}}
    proc = _search(tmp_path, repo, data_root, space, backend)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "[ce/sym-0.2] no trial completed" in error and "pair-0.2" not in error
    exp = tmp_path / "half-smoke"
    assert (exp / "search" / "ce" / "pair-0.2" / ".done").exists()
    assert len(_runs(exp / "finals" / "ce" / "pair-0.2")) == 1  # its final seed ran to the end
    assert not (exp / "finals" / "ce" / "sym-0.2").exists()
    lines = (exp / "finals" / "ce" / "pair-0.2").glob("*/result.json")
    assert [len(f.read_text().splitlines()) for f in lines] == [2]


def test_resume_retries_final_runs_whose_worker_kept_dying_but_not_failed_methods(tmp_path):
    """A final run whose worker died past its retries (killed, out of memory) ran out of chances
    in that search; ``--resume`` gives it another (from its checkpoint), as Ray's
    ``resume_errored`` does. A run the method itself failed (divergence) stays failed."""
    from tune_lnl.search.optuna_backend import OUTCOME, _ended
    worker, method = tmp_path / "seed_1", tmp_path / "seed_2"
    for d, outcome in ((worker, {"state": "failed", "error": "its worker process died 3 times", "kind": "worker"}),
                       (method, {"state": "failed", "error": "training loss is nan", "epoch": 1})):
        d.mkdir()
        (d / OUTCOME).write_text(json.dumps(outcome))
    assert _ended({"run_dir": str(worker)}) and _ended({"run_dir": str(method)})  # within the search
    assert not _ended({"run_dir": str(worker)}, resume=True) and not (worker / OUTCOME).exists()
    assert _ended({"run_dir": str(method)}, resume=True)
    assert not _ended({"run_dir": str(tmp_path / "seed_3")}, resume=True)  # never started
