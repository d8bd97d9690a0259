"""A real two-node Ray cluster on this machine: a head node and a worker node, each its own
``ray start --block`` process tree with its own CPU, sharing one storage folder. A search joins
it with ``--address``; the test checks from the trials' own result lines (every line names its
Ray node) that trials ran on both nodes, then kills every process of the worker node in the
middle of the search. The search must end on the head node with every study, final run and
table complete: the interrupted trial continued from its last checkpoint, nothing lost or
duplicated. Every process the test started is killed by its id at the end."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

SETTINGS = ["pair-0.45"]  # one study: its two concurrent trials take one CPU of each node
TRIALS, SEEDS, EPOCHS = 4, 2, 30
SPACE = {
    "name": "multinode", "dataset": "mnist", "proxy": "noisy_val", "train_subset": 4000,
    "search": {"num_samples": TRIALS, "seed": 0, "grace_period": 10, "reduction_factor": 2, "cpus_per_trial": 1,
               "gpus_per_trial": 0},
    "finals": {"seeds": SEEDS, "last_k": 2},
    "fixed": {"model": "mlp", "epochs": EPOCHS, "batch_size": 128, "augment": False},
    "settings": {"pair-0.45": {"noise": {"type": "pairflip", "rate": 0.45}}},
    "methods": {"ce": {"space": {"lr": {"low": 0.0005, "high": 0.005, "log": True}}, "paper": {"lr": 0.001}}},
}
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
#: the ``ray`` command of this Python's environment (also when its bin folder is not on PATH)
RAY = str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").exists() else "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc: Ray's workers are the raylet's children
    but in process groups of their own, so a process-group kill would miss them)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _kill_tree(pid: int) -> int:
    pids = _tree(pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def _lines(run_dir: Path) -> list[dict]:
    f = run_dir / "result.json"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []


def _node_ids(address: str) -> dict[str, float]:
    """node id -> CPUs of the alive nodes, asked from a separate driver process."""
    code = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
            "print(json.dumps({n['NodeID']: n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive']}))"
            % address)
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def cluster(tmp_path):
    """``(address, head pid, worker pid, worker node id, head node id)``; both trees killed after."""
    port = _free_port()
    started = []
    # the cluster's own temp folder (short: Ray's socket paths must fit 107 bytes): its
    # ray_current_cluster file must not make a later ray.init() elsewhere join this cluster
    temp = tempfile.mkdtemp(prefix="tlnl-ray-", dir="/tmp")

    def start(args, log):
        p = subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
                              f"--temp-dir={temp}", *args],
                             env=ENV, stdout=open(tmp_path / log, "w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
        started.append(p.pid)
        return p

    try:
        head = start(["--head", "--port", str(port), "--include-dashboard=false"], "head.log")
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        nodes = {}
        while time.monotonic() < deadline and len(nodes) < 1:
            time.sleep(2)
            try:
                nodes = _node_ids(address)
            except AssertionError:
                nodes = {}
        assert len(nodes) == 1, (tmp_path / "head.log").read_text()[-2000:]
        (head_id,) = nodes
        worker = start(["--address", address], "worker.log")
        while time.monotonic() < deadline and len(nodes) < 2:
            time.sleep(2)
            nodes = _node_ids(address)
        assert len(nodes) == 2 and all(cpu == 1 for cpu in nodes.values()), nodes
        (worker_id,) = set(nodes) - {head_id}
        yield address, head.pid, worker.pid, worker_id, head_id
    finally:
        for pid in reversed(started):
            _kill_tree(pid)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_search_on_two_nodes_survives_losing_one(tmp_path, repo, data_root, cluster):
    address, _, worker_pid, worker_id, head_id = cluster
    space = tmp_path / "multinode.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "shared"
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--backend", "ray", "--address", address,
           "--data-root", str(data_root), "--storage-path", str(storage)]
    log = open(tmp_path / "search.log", "w")
    search = subprocess.Popen(cmd, cwd=repo, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    exp = storage / "multinode"
    try:
        # wait until the worker node is training a search trial (some epochs in, before the first
        # rung at epoch 10, so that it certainly goes on), then kill that node
        killed_at = None
        deadline = time.monotonic() + 600
        while killed_at is None and search.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            for d in exp.glob("search/ce/*/*/"):
                lines = _lines(d)
                if lines and lines[-1].get("node_id") == worker_id and 3 <= lines[-1]["epoch"] <= 8:
                    killed_at = (d, lines[-1]["epoch"])
                    print(f"killing the worker node ({_kill_tree(worker_pid)} processes) while {d.name} is at epoch "
                          f"{killed_at[1]}")
                    break
        output = (tmp_path / "search.log").read_text()
        assert killed_at is not None, "no trial ran on the worker node: " + output[-3000:]
        assert search.wait(timeout=900) == 0, (tmp_path / "search.log").read_text()[-4000:]
    finally:
        if search.poll() is None:
            _kill_tree(search.pid)
        log.close()

    # every study and table complete, nothing failed
    from tune_lnl.results.runs import open_study
    for s in SETTINGS:
        study = open_study(exp, f"ce/{s}")
        assert len(study.trials) == TRIALS
        assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
        assert len([d for d in (exp / "search" / "ce" / s).iterdir() if (d / "result.json").exists()]) == TRIALS
    rows = (exp / "finals.csv").read_text().strip().splitlines()[1:]
    assert sorted((r.split(",")[1], r.split(",")[2]) for r in rows) == sorted(
        (s, str(seed)) for s in SETTINGS for seed in range(1, SEEDS + 1))
    assert not (exp / "failures.jsonl").exists() or not (exp / "failures.jsonl").read_text().strip()
    assert (exp / "report" / "report.md").exists()

    # trials ran on both nodes (each line names its node), and no other node ever appeared
    runs = [d for d in exp.glob("*/ce/*/*/") if (d / "result.json").exists()]
    nodes = {line["node_id"] for d in runs for line in _lines(d)}
    assert nodes == {worker_id, head_id}

    # the interrupted trial went on on the head node from its last checkpoint: its epochs are
    # 1..n once each after the redone ones, never restarted from epoch 1
    d, at = killed_at
    lines = _lines(d)
    switch = next(i for i, line in enumerate(lines) if line["node_id"] == head_id and i > 0
                  and lines[i - 1]["node_id"] == worker_id)
    resumed_from, last_there = lines[switch]["epoch"], lines[switch - 1]["epoch"]  # (>= at: it went on meanwhile)
    assert at <= last_there and 1 < resumed_from <= last_there + 1
    assert [line["epoch"] for line in lines[switch:]] == list(range(resumed_from, lines[-1]["epoch"] + 1))
    print(f"nodes: head {head_id}, worker {worker_id}; the worker node's last epoch of {d.name}: {last_there}; "
          f"continued on the head from epoch {resumed_from} ({last_there + 1 - resumed_from} epoch(s) redone)")
    for d in exp.glob("finals/ce/*/*/"):
        if (d / "result.json").exists():
            assert sorted({line["epoch"] for line in _lines(d)}) == list(range(1, EPOCHS + 1))
