"""Kill and resume, for real: a `--smoke` search is SIGKILLed (its whole process group) while
trials run, and again after its finals started; the same command with `--resume` must keep the
finished trials, continue running ones from their last checkpoint (at most one epoch redone),
bring the Optuna study to the requested number of trials, and run the finals once."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPACE = "search_spaces/mlc_mnist.yaml"
SETTING = "sym-0.2"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


BACKENDS = ["ray", "optuna"]


def _cmd(storage, data_root, backend, *extra):
    return [sys.executable, "-m", "tune_lnl.search", "--space", SPACE, "--smoke", "--settings", SETTING,
            "--data-root", str(data_root), "--storage-path", str(storage), "--backend", backend, *extra]


def _last_line(trial_dir: Path) -> dict:
    lines = [l for l in (trial_dir / "result.json").read_text().splitlines() if l.strip()]
    return json.loads(lines[-1])


def _epochs(trial_dir: Path) -> list[int]:
    f = trial_dir / "result.json"
    if not f.exists():
        return []
    return [json.loads(l)["epoch"] for l in f.read_text().splitlines() if l.strip()]


def _trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/") if (p / "result.json").exists()) if folder.exists() else []


def _run_and_kill(cmd, repo, when, timeout=600):
    """Start ``cmd`` in its own session; SIGKILL the whole group as soon as ``when()`` holds."""
    log = open(Path(cmd[cmd.index("--storage-path") + 1]) / "search.log", "a")
    proc = subprocess.Popen(cmd, cwd=repo, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    t0 = time.monotonic()
    try:
        while not when():
            if proc.poll() is not None:
                pytest.fail("the search ended before it could be killed:\n" + Path(log.name).read_text()[-3000:])
            if time.monotonic() - t0 > timeout:
                pytest.fail("the kill condition never held")
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    time.sleep(1.0)  # let the kernel reap the group (and release the experiment lock)


def _resume(cmd, repo):
    proc = subprocess.run(cmd + ["--resume"], cwd=repo, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _check_complete(exp: Path, space, backend: str, method: str = "mlc"):
    """Exactly ``num_samples`` finished trials. On Ray a trial that Optuna handed out after Tune's
    last saved state is lost with the kill (the restored run asks another): it must be told FAIL
    and recorded as such, never left RUNNING; the Optuna backend continues every trial."""
    from tune_lnl.results.runs import open_study
    study = open_study(exp, f"{method}/{SETTING}")
    states = [t.state.name for t in study.trials]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == space.num_samples, states
    lost = [t.number for t in study.trials if t.state.name not in ("COMPLETE", "PRUNED")]
    failures = exp / "failures.jsonl"
    records = [json.loads(line) for line in failures.read_text().splitlines()] if failures.exists() else []
    assert sorted(r["trial"] for r in records if r["kind"] == "lost to the interruption") == lost, (states, records)
    assert all(states[n] == "FAIL" for n in lost) and (backend == "ray" or not lost), states
    epochs = space.paper_config(SETTING, "/")["epochs"]
    for d in _trial_dirs(exp / "search" / method / SETTING) + _trial_dirs(exp / "finals" / method / SETTING):
        seq = _epochs(d)
        assert seq[0] == 1, (d, seq)
        assert len(list(d.glob("checkpoint*"))) <= 2  # bounded: num_to_keep (Ray) or one file (optuna)
        steps = [b - a for a, b in zip(seq, seq[1:])]
        assert set(steps) <= {0, 1}, (d, seq)  # a restart redoes at most the one unsaved epoch
    finals = _trial_dirs(exp / "finals" / method / SETTING)
    assert len(finals) == space.final_seeds  # the finals ran once
    assert all(_epochs(d)[-1] == epochs for d in finals)
    rows = (exp / "finals.csv").read_text().splitlines()
    assert len(rows) == 1 + space.final_seeds


def _check_report(exp: Path, status: str):
    """The report of the experiment as it is now (killed, or resumed to its end) builds, its
    figures are valid PNGs, and it says what state the experiment is in."""
    from report_checks import assert_valid_report

    from tune_lnl.results.report import build
    build(exp, quiet=True)
    md = assert_valid_report(exp)
    assert f"status: {status}" in md
    names = {p.name for p in (exp / "report" / "figures").glob("*.png")}
    assert {f"top_mlc_{SETTING}.png", f"rungs_mlc_{SETTING}.png", f"analytics_{SETTING}.png"} <= names


@pytest.fixture(scope="module")
def space(repo):
    from tune_lnl.config import load_space
    return load_space(repo / SPACE, smoke_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_during_the_search_and_the_finals_then_resume(tmp_path, repo, data_root, space, backend):
    """Killed while a trial is between its first and last epoch; resumed and killed again once
    the finals run; resumed to the end. (One search serves both kills: the suite's time.)"""
    exp = tmp_path / "mlc_mnist-smoke"
    search = exp / "search" / "mlc" / SETTING
    finals = exp / "finals" / "mlc" / SETTING
    cmd = _cmd(tmp_path, data_root, backend)
    _run_and_kill(cmd, repo, lambda: any(1 <= len(_epochs(d)) < 4 for d in _trial_dirs(search)))
    assert not (exp / "finals.csv").exists()
    before = {d.name: _epochs(d) for d in _trial_dirs(search)}
    _check_report(exp, "interrupted during the search")
    # the resumed search, killed in its finals
    _run_and_kill(cmd + ["--resume"], repo, lambda: any(len(_epochs(d)) >= 2 for d in _trial_dirs(finals)))
    assert (search / ".done").exists()
    n_search = len(_trial_dirs(search))
    _check_report(exp, "interrupted during the finals")
    proc = _resume(cmd, repo)
    assert f"[mlc/{SETTING}] search" not in proc.stdout  # a finished search is not rerun
    assert len(_trial_dirs(search)) == n_search
    _check_complete(exp, space, backend)
    _check_report(exp, "finished")
    for name, seq in before.items():  # what had been reported before the first kill is kept
        assert _epochs(search / name)[:len(seq)] == seq


def _spawned_workers(driver: int) -> list[int]:
    """--backend optuna: the driver's worker processes (``python -m tune_lnl.search.optuna_worker``)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    procs = [line.strip().split(None, 2) for line in out.splitlines() if line.strip()]
    return [int(pid) for pid, ppid, args in procs if int(ppid) == driver and "tune_lnl.search.optuna_worker" in args]


# CE that stops before its 4th epoch (its checkpoint of epoch 3 written) and waits there until the
# test has seen it: the test then kills exactly that process (an event, not a race with the clock)
PAUSING = """
import os
import time
from pathlib import Path

import torch.nn.functional as F
import tune_lnl


class PausingCE(tune_lnl.SingleNetwork):
    defaults = {**tune_lnl.SingleNetwork.defaults, "pause_dir": ""}

    def loss(self, logits, labels):
        return F.cross_entropy(logits, labels, reduction="none")

    def step(self):
        here = Path(self.cfg["pause_dir"])
        if self.epoch == 3 and not (here / "killed").exists():
            (here / "pid.tmp").write_text(str(os.getpid()))
            os.replace(here / "pid.tmp", here / "pid")  # whole, or not there
            while not (here / "killed").exists():  # the test kills this process (or another paused one)
                time.sleep(0.05)
        return super().step()
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dying_trial_worker_is_retried_from_its_checkpoint(tmp_path, repo, data_root, backend, monkeypatch):
    """An infrastructure fault: a trial's worker process is SIGKILLed mid-trial. The trial is
    restarted from its last checkpoint (Ray: bounded retries; optuna: the driver releases the
    trial and a new worker process continues it); the search finishes and records no failure."""
    import yaml

    from tune_lnl.config import load_space
    (tmp_path / "pausing.py").write_text(PAUSING)
    pause = tmp_path / "pause"
    pause.mkdir()
    raw = yaml.safe_load((repo / "search_spaces" / "ce_mnist.yaml").read_text())
    raw.update(name="pausing", method="pausing:PausingCE")
    raw["fixed"] = {**raw.get("fixed", {}), "pause_dir": str(pause)}
    (tmp_path / "pausing.yaml").write_text(yaml.safe_dump(raw))
    method = "pausing:PausingCE"
    exp = tmp_path / "pausing-smoke"
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "pausing.yaml", "--smoke", "--settings", SETTING,
           "--data-root", str(data_root), "--storage-path", str(tmp_path), "--backend", backend]
    log = open(tmp_path / "search.log", "w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    killed = None
    try:
        while not (pause / "pid").exists():  # a trial has finished epoch 3 and waits
            assert proc.poll() is None, (tmp_path / "search.log").read_text()[-3000:]
            time.sleep(0.05)
        killed = int((pause / "pid").read_text())
        (pause / "killed").touch()  # its retry (and any other paused trial) goes on
        os.kill(killed, signal.SIGKILL)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    out = (tmp_path / "search.log").read_text()
    assert proc.returncode == 0, out[-3000:]
    assert not (exp / "failures.jsonl").exists()  # retried, not failed
    search = exp / "search" / method / SETTING
    if backend == "ray":
        assert any((d / "error.txt").exists() for d in _trial_dirs(search))  # the fault did happen
    else:
        assert f"worker {killed} died" in out and "released: a new worker continues it" in out
    monkeypatch.syspath_prepend(str(tmp_path))  # the method's module, for reading the space here
    _check_complete(exp, load_space(tmp_path / "pausing.yaml", smoke_mode=True), backend, method)


def test_workers_exit_when_their_driver_is_killed_alone(tmp_path, repo, data_root):
    """``kill <driver>`` (not its process group): the Optuna backend's workers notice after their
    current epoch and exit, instead of training on beside a later --resume that shares their
    study journal and run folders."""
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", "search_spaces/ce_mnist.yaml", "--smoke",
           "--settings", SETTING, "--data-root", str(data_root), "--storage-path", str(tmp_path), "--backend", "optuna"]
    search = tmp_path / "ce_mnist-smoke" / "search" / "ce" / SETTING
    log = open(tmp_path / "search.log", "w")
    proc = subprocess.Popen(cmd, cwd=repo, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        t0 = time.monotonic()
        while not any(_epochs(d) for d in _trial_dirs(search)):
            assert proc.poll() is None and time.monotonic() - t0 < 300, "no epoch was reported"
            time.sleep(0.1)
        workers = _spawned_workers(proc.pid)
        assert workers
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone
        proc.wait()
        t0 = time.monotonic()
        while any(_alive(pid) for pid in workers) and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "workers outlived their driver"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        log.close()
    assert "is gone; exiting" in (tmp_path / "search.log").read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


_EARLY_ORPHAN = """
import os
from tune_lnl.search.optuna_backend import _WorkerProcess

_WorkerProcess(slot=0, threads=1)
os._exit(0)  # the driver dies at once, while its worker is still starting
"""


def test_a_worker_whose_driver_died_before_it_started_still_exits(tmp_path, repo):
    """The driver's pid is on the worker's command line: a worker that starts (or finishes
    starting) after its driver died sees another parent and exits instead of waiting for work."""
    script = tmp_path / "driver.py"
    script.write_text(_EARLY_ORPHAN)
    # run() returns once the worker, which shares the driver's stdout, has closed it: exited
    proc = subprocess.run([sys.executable, str(script)], cwd=repo, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "is gone; exiting" in proc.stdout


# -- Ctrl-C: one line, exit 130, no traceback; the printed command resumes -----------------------
def _interrupt(cmd, repo, when, signals: int, timeout=600) -> subprocess.CompletedProcess:
    """Start ``cmd`` in its own session (as a terminal runs it: Ctrl-C reaches the whole process
    group) and send SIGINT to the group as soon as ``when()`` holds; with ``signals=2`` a second
    one follows while it shuts down (if it has ended already, there is no one to send it to)."""
    proc = subprocess.Popen(cmd, cwd=repo, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    t0 = time.monotonic()
    try:
        while not when():
            assert proc.poll() is None, "the search ended before it could be interrupted:\n" + proc.stderr.read()
            assert time.monotonic() - t0 < timeout, "the interrupt condition never held"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        if signals == 2:
            time.sleep(0.5)  # (not a synchronisation: the assertions hold wherever the second one lands)
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("signals", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_prints_one_line_exits_130_and_the_printed_command_resumes(tmp_path, repo, data_root, space,
                                                                            backend, signals):
    """Ctrl-C (once, or twice: the second while it shuts down) while trials run: exit code 130,
    the last line of stderr is ``interrupted: nothing lost; resume with: <the same command with
    --resume>``, no traceback and none of Ray's C++ dumps anywhere; the printed command (run as
    printed) finishes the experiment with every trial and final run."""
    import shlex
    exp = tmp_path / "mlc_mnist-smoke"
    search = exp / "search" / "mlc" / SETTING
    cmd = _cmd(tmp_path, data_root, backend)
    proc = _interrupt(cmd, repo, lambda: any(1 <= len(_epochs(d)) < 4 for d in _trial_dirs(search)), signals)
    both = proc.stdout + proc.stderr
    assert proc.returncode == 130, both[-3000:]
    expected = "python -m tune_lnl.search " + shlex.join(cmd[3:] + ["--resume"])
    assert proc.stderr.strip().splitlines()[-1] == f"interrupted: nothing lost; resume with: {expected}", both[-3000:]
    assert both.count("interrupted:") == 1
    for noise in ("Traceback", "KeyboardInterrupt", "*** SIGTERM received", "Tuner.restore", "Stop signal received"):
        assert noise not in both, both[-3000:]
    assert not (exp / "finals.csv").exists()
    resumed = shlex.split(expected)
    assert resumed[0] == "python"
    done = subprocess.run([sys.executable] + resumed[1:], cwd=repo, env=ENV, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    _check_complete(exp, space, backend)
