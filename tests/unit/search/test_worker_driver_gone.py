"""A ``--backend optuna`` worker whose driver disappears while it works on a task (Ctrl-C, a kill) ends quietly:
no traceback after the driver's one-line interruption message (a race CI once hit in
tests/e2e/test_interrupt.py: the worker's "claimed" message met a closed socket, BrokenPipeError)."""
import multiprocessing.connection
import os
import socket
import threading

import pytest

from tune_lnl.search import optuna_backend


def _worker_with_one_task(monkeypatch, run_trial) -> dict:
    """``worker_main`` in a thread, its driver this test over a socket pair: the driver's path list, "ready", one
    trial task run by ``run_trial``; what ``worker_main`` did (``returned`` or ``raised``)."""
    monkeypatch.setattr(optuna_backend, "_run_trial", run_trial)
    driver_end, worker_end = socket.socketpair()
    driver = multiprocessing.connection.Connection(driver_end.detach())
    outcome = {}

    def worker():
        try:  # the driver's pid: this process's parent, as a worker's parent is its driver
            optuna_backend.worker_main(worker_end.detach(), 0, 1, os.getppid())
            outcome["returned"] = True
        except BaseException as exc:  # noqa: BLE001 -- what the tests look at
            outcome["raised"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    driver.send([])                       # the driver's sys.path additions
    assert driver.recv()[0] == "ready"
    driver.send({"kind": "trial"})
    thread.join(timeout=60)
    driver.close()
    return outcome


@pytest.mark.parametrize("gone", [BrokenPipeError, ConnectionResetError, EOFError])
def test_a_worker_ends_quietly_when_the_driver_is_gone_mid_task(monkeypatch, gone):
    def task_meets_a_closed_socket(task, slot, conn, studies):
        raise gone("the driver closed its end")

    assert _worker_with_one_task(monkeypatch, task_meets_a_closed_socket) == {"returned": True}


def test_other_errors_of_a_task_still_surface(monkeypatch):
    def task_fails(task, slot, conn, studies):
        raise ValueError("a bug in a trial")

    outcome = _worker_with_one_task(monkeypatch, task_fails)
    assert isinstance(outcome.get("raised"), ValueError) and str(outcome["raised"]) == "a bug in a trial"
