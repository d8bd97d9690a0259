"""``optuna-dashboard`` opens our storages: a real optuna-dashboard server (a subprocess on a free
localhost port, stopped by its pid) serves the studies of a hand-made ``optuna.journal`` (the Optuna
backend's storage) and ``optuna.db`` (the Ray backend's), started with the command
:func:`tune_lnl.results.runs.dashboard_command` gives; its HTTP API lists our ``<method>/<setting>``
studies with their trials."""
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tune_lnl.results.runs import dashboard_command, sqlite_url

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard", reason="pip install -e '.[test]' (optuna-dashboard)")

#: study -> (complete, pruned) trials written by hand
STUDIES = {"ce/sym-0.4": (3, 1), "mlc/pair-0.45": (1, 0)}


def _fill(storage) -> None:
    for name, (complete, pruned) in STUDIES.items():
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        for i in range(complete):
            study.add_trial(optuna.trial.create_trial(
                params={"lr": 0.01 * (i + 1)}, distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1)},
                value=0.5 + 0.1 * i, intermediate_values={1: 0.4, 2: 0.5 + 0.1 * i}))
        for _ in range(pruned):
            study.add_trial(optuna.trial.create_trial(
                params={"lr": 0.5}, distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1)},
                state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.1}))


def _journal(exp: Path) -> None:
    from tune_lnl.search.optuna_backend import storage
    _fill(storage(exp))


def _sqlite(exp: Path) -> None:
    _fill(optuna.storages.RDBStorage(sqlite_url(exp)))  # the URL the Ray backend's optuna.db is opened with


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait_for(proc: subprocess.Popen, url: str, deadline_s: float = 120):
    """The first answer of ``url``, polled while the server starts (fails if the server exits)."""
    end = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"optuna-dashboard exited {proc.returncode}:\n{proc.stdout.read()}")
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > end:
                pytest.fail(f"optuna-dashboard never answered {url}")
            time.sleep(0.2)


@pytest.mark.parametrize("make,file", [(_journal, "optuna.journal"), (_sqlite, "optuna.db")])
def test_optuna_dashboard_lists_our_studies_and_trials(tmp_path, make, file):
    exp = tmp_path / "exp"
    exp.mkdir()
    make(exp)
    cmd = dashboard_command(exp)
    assert cmd == ["optuna-dashboard", str(exp.resolve() / file) if file.endswith("journal")
                   else f"sqlite:///{exp.resolve() / file}"]
    exe = shutil.which(cmd[0], path=str(Path(sys.executable).parent)) or shutil.which(cmd[0])
    assert exe, "optuna-dashboard is not installed (pip install -e '.[test]')"
    port = _free_port()
    proc = subprocess.Popen([exe, *cmd[1:], "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        listed = {s["study_name"]: s["study_id"] for s in _wait_for(proc, base)["study_summaries"]}
        assert set(listed) == set(STUDIES)
        for name, (complete, pruned) in STUDIES.items():
            trials = _get(f"{base}/{listed[name]}")["trials"]
            states = [t["state"] for t in trials]
            assert len(trials) == complete + pruned
            assert states.count("Complete") == complete and states.count("Pruned") == pruned, states
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
