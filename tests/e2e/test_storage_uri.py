"""``--storage-path`` as a URI (what Ray Tune stores runs at on a cluster): a ``file://`` URI
stands in for a bucket here. Ray Tune writes the trials (results, checkpoints) into the remote
folder; the search keeps a working copy (``$TUNE_LNL_CACHE``) and uploads what it writes itself;
the remote folder alone is the whole experiment, and ``--resume`` from an empty working copy (as
on another machine) continues from it."""
import csv
import os
import subprocess
import sys

import pytest

from tune_lnl.results.storage import join, local_copy, pull, push, remote_exists


def test_push_and_pull_keep_files_but_not_checkpoints_or_locks(tmp_path):
    local, remote_dir = tmp_path / "local", tmp_path / "remote"
    (local / "search" / "ce" / "s" / "t1" / "checkpoint_000003").mkdir(parents=True)
    (local / "search" / "ce" / "s" / "t1" / "result.json").write_text('{"epoch": 1}\n')
    (local / "search" / "ce" / "s" / "t1" / "checkpoint_000003" / "state.pt").write_bytes(b"\x00" * 10)
    (local / "experiment.yaml").write_text("a: 1\n")
    (local / ".lock").write_text("pid 1\n")
    uri = f"file://{remote_dir}"
    assert push(local, uri) == 3  # the lock stays local
    assert (remote_dir / "search/ce/s/t1/checkpoint_000003/state.pt").read_bytes() == b"\x00" * 10
    assert not (remote_dir / ".lock").exists()
    assert remote_exists(join(uri, "experiment.yaml")) and not remote_exists(join(uri, "nothing"))
    back = tmp_path / "back"
    assert pull(uri, back) == 2  # result.json and experiment.yaml; never a checkpoint
    assert (back / "search/ce/s/t1/result.json").read_text() == '{"epoch": 1}\n'
    assert not (back / "search/ce/s/t1/checkpoint_000003").exists()
    assert push(local, uri, only=["experiment.yaml", "missing.txt"]) == 1


def test_join_keeps_a_query_string():
    assert join("s3://b/r?endpoint_override=h:9000", "x", "y") == "s3://b/r/x/y?endpoint_override=h:9000"
    assert join("file:///a/b/", "c") == "file:///a/b/c"


def _search(repo, data_root, uri, cache, *extra):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "TUNE_LNL_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "search_spaces/compare_mnist.yaml", "--smoke",
           "--methods", "ce", "--settings", "sym-0.4", "--num-samples", "2", "--seeds", "1", "--backend", "ray",
           "--data-root", str(data_root), "--storage-path", uri, *extra]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)


def test_a_search_into_a_uri_is_whole_there_and_resumes_from_it_alone(tmp_path, repo, data_root, monkeypatch):
    bucket = tmp_path / "bucket"
    uri = f"file://{bucket}"
    proc = _search(repo, data_root, uri, tmp_path / "cache-a")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    remote = bucket / "compare_mnist-smoke"
    for f in ("experiment.yaml", "optuna.db", "best_configs.yaml", "finals.csv", "finals.md", "report/report.md",
              "search/ce/sym-0.4/search_stats.json", "search/ce/sym-0.4/.done"):
        assert (remote / f).is_file(), f
    trials = [d for d in (remote / "search/ce/sym-0.4").iterdir() if (d / "result.json").exists()]
    assert len(trials) == 2 and all(any(d.glob("checkpoint_*")) for d in trials)  # Tune wrote them there
    assert any((remote / "tensorboard").rglob("events.out.tfevents.*"))
    monkeypatch.setenv("TUNE_LNL_CACHE", str(tmp_path / "cache-a"))
    copy = local_copy(uri, "compare_mnist-smoke")
    assert len(list(copy.glob("search/ce/sym-0.4/*/result.json"))) == 2
    assert not list(copy.rglob("checkpoint_*"))  # the working copy never holds checkpoints
    rows = list(csv.DictReader((remote / "finals.csv").open()))

    # another machine: an empty working copy; a new search into the same URI is refused ...
    again = _search(repo, data_root, uri, tmp_path / "cache-b")
    assert again.returncode == 2 and "already holds an experiment" in again.stderr and "Traceback" not in again.stderr
    # ... --resume downloads the experiment and finds everything done: nothing is trained again
    resumed = _search(repo, data_root, uri, tmp_path / "cache-b", "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "--resume: downloading" in resumed.stdout
    assert "] search: " not in resumed.stdout and "resuming from" in resumed.stdout  # no search reran
    assert list(csv.DictReader((remote / "finals.csv").open())) == rows


@pytest.mark.parametrize("uri, backend, words", [
    ("file:///tmp/x", "optuna", ["--storage-path file:///tmp/x", "--backend ray"]),
    ("nosuchscheme://bucket/x", "ray", ["--storage-path nosuchscheme://bucket/x", "cannot open it"]),
])
def test_a_uri_the_search_cannot_use_is_refused(tmp_path, repo, data_root, uri, backend, words):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "search_spaces/mlc_mnist.yaml", "--smoke",
           "--backend", backend, "--data-root", str(data_root), "--storage-path", uri]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(w in proc.stderr for w in words), proc.stderr
