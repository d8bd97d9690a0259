"""Ctrl-C without a search: the resume command (CLI) and call (Python) the interrupted line
prints, the signal handlers (the first signal raises, later ones only hurry the shutdown), the
blocked SIGINT that worker processes inherit, and what the CLI and ``tune_lnl.run`` make of an
interruption. (The real searches interrupted on both backends: tests/e2e/test_interrupt.py.)"""
import os
import shlex
import signal
import subprocess
import sys

import pytest

import tune_lnl
from tune_lnl import api, cli
from tune_lnl.errors import Interrupted
from tune_lnl.search.interrupt import hurry, interrupted, sigint_blocked, stop_signals

PROG = "python -m tune_lnl.search"


def test_the_resume_command_is_the_same_argv_quoted_with_resume_added_once():
    argv = ["--space", "my spaces/x.yaml", "--name", "it's", "--settings", "sym-0.2", "asym-0.4", "--smoke"]
    line = cli.resume_command(PROG, argv)
    assert line == ("python -m tune_lnl.search --space 'my spaces/x.yaml' --name 'it'\"'\"'s' --settings sym-0.2 "
                    "asym-0.4 --smoke --resume")
    assert shlex.split(line)[3:] == argv + ["--resume"]  # a shell gives back exactly these arguments
    for given in (["--space", "x.yaml", "--resume"], ["--resume", "--space", "x.yaml"], ["--space", "x.yaml", "--res"]):
        assert cli.resume_command(PROG, given) == f"{PROG} {shlex.join(given)}"  # not duplicated
    assert cli.resume_command("tune-lnl search", ["--space", "x.yaml"]) == "tune-lnl search --space x.yaml --resume"


def test_the_resume_call_names_the_arguments_given_and_resume_true():
    call = api.resume_call({"space": "search_spaces/x.yaml", "smoke": True, "settings": ["sym-0.2"], "workers": None,
                            "resume": False, "backend": "auto"})
    assert call == "tune_lnl.run('search_spaces/x.yaml', settings=['sym-0.2'], smoke=True, resume=True)"
    assert api.resume_call({"space": {"method": "ce"}, "resume": True}) == "tune_lnl.run(space, resume=True)"


def test_the_first_signal_raises_the_next_ones_only_hurry_and_the_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught:
        with stop_signals(signal.SIGINT, signal.SIGTERM):
            with stop_signals():  # nested (tune_lnl.run inside the CLI): nothing installed twice
                assert not interrupted()
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    pytest.fail("the first signal did not raise")
                finally:  # the shutdown: a second signal does not raise in it
                    os.kill(os.getpid(), signal.SIGINT)
                    assert interrupted() and hurry()
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not interrupted() and not hurry()


def test_a_process_started_with_sigint_blocked_never_sees_the_terminals_ctrl_c():
    show = "print([l for l in open('/proc/self/status') if l.startswith('SigBlk')][0].split()[1])"
    with sigint_blocked():
        blocked = int(subprocess.run([sys.executable, "-c", show], capture_output=True, text=True).stdout, 16)
    after = int(subprocess.run([sys.executable, "-c", show], capture_output=True, text=True).stdout, 16)
    bit = 1 << (signal.SIGINT - 1)
    assert blocked & bit and not after & bit  # (and this thread's mask is back as it was)


def test_the_cli_prints_one_line_and_exits_130_or_143(monkeypatch, capsys):
    def interrupted_run(*args, **kwargs):
        raise Interrupted("(the API's line)", signum=signal.SIGTERM, started=True)

    monkeypatch.setattr(api, "run", interrupted_run)
    argv = ["--space", "search_spaces/ce_mnist.yaml", "--smoke"]
    assert cli.search_main(argv) == 143
    err = capsys.readouterr().err
    assert err == f"interrupted: nothing lost; resume with: {PROG} {shlex.join(argv)} --resume\n"

    def early(*args, **kwargs):  # e.g. while importing, before anything was written
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", early)
    assert cli.search_main(argv) == 130
    assert capsys.readouterr().err == ("interrupted before the experiment started: nothing to resume; run the same "
                                       "command again\n")


def test_tune_lnl_run_raises_a_keyboard_interrupt_naming_the_call_to_resume(monkeypatch):
    def stopped(space, **kwargs):
        raise Interrupted(signum=signal.SIGINT, started=True)

    monkeypatch.setattr(api, "run_experiment", stopped)
    with pytest.raises(KeyboardInterrupt) as caught:
        tune_lnl.run("search_spaces/ce_mnist.yaml", smoke=True, backend="optuna")
    assert isinstance(caught.value, Interrupted)
    assert str(caught.value) == ("interrupted: nothing lost; resume with: tune_lnl.run('search_spaces/ce_mnist.yaml', "
                                 "backend='optuna', smoke=True, resume=True)")
    assert caught.value.__suppress_context__  # raised from None: no internal traceback chained to it


def test_ray_s_harmless_missing_checkpoint_error_on_resume_is_dropped_and_nothing_else():
    """The record Tune logs when a restored run fails to delete a checkpoint the trial had
    already deleted (issue 28: a frightening ERROR with a traceback on every --resume)."""
    import logging
    pytest.importorskip("ray.tune")
    from tune_lnl.search.ray_backend import quiet_missing_checkpoints
    quiet_missing_checkpoints()
    quiet_missing_checkpoints()  # (once)
    log = logging.getLogger("ray.tune.execution.tune_controller")
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    log.addHandler(handler)
    try:
        for error in (FileNotFoundError("Path not found: (fs, /x/checkpoint_000025)"), OSError("disk full")):
            try:
                raise error
            except OSError:
                log.exception("Trial %s: Error handling checkpoint %s", "t1", "/x/checkpoint_000026")
        log.error("Trial task failed for trial t2")
    finally:
        log.removeHandler(handler)
    assert [str(r.exc_info[1]) if r.exc_info else r.getMessage() for r in seen] == [
        "disk full", "Trial task failed for trial t2"]
    assert sum(f.__name__ == "_missing_checkpoint" for f in log.filters) == 1


def test_on_the_command_line_the_signals_stay_ignored_after_an_interruption():
    """A second Ctrl-C just after the shutdown (the line printed) must not kill the ending
    process with a traceback and exit code -2."""
    code = ("import os, signal\nfrom tune_lnl.search.interrupt import stop_signals\n"
            "try:\n    with stop_signals(signal.SIGINT, ending=True):\n        os.kill(os.getpid(), signal.SIGINT)\n"
            "except KeyboardInterrupt:\n    pass\nos.kill(os.getpid(), signal.SIGINT)\nprint('still here')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, "Traceback" in proc.stderr) == (0, "still here\n", False), proc.stderr
