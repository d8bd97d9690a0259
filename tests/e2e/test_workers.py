"""Worker processes and failures reported as what they are (issue 26, items 11-13).

* ``--backend optuna``'s workers never import the caller's ``__main__``: a plain script calling
  ``tune_lnl.run`` without an ``if __name__ == "__main__":`` guard, and the same script read from
  stdin, run to the end (with ``multiprocessing``'s spawn every worker re-ran the script).
* Workers that die while starting stop the search after a bounded number of deaths, with the
  worker's own error in the message and in ``failures.jsonl``.
* A method whose ``build()`` raises fails its trial with that message (not "worker died 3
  times"), on both backends; a final seed that cannot run makes the command exit non-zero.
"""
import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from tiny_spaces import ENV, tiny_space

SPACE = tiny_space("sym-0.2", {"type": "symmetric", "rate": 0.2})

# a plain script as a user pastes it: no main guard
SCRIPT = """
import tune_lnl
space = {space!r}
result = tune_lnl.run(space, smoke=True, backend="optuna", workers=2, storage_path={storage!r},
                      data_root={data!r})
print("FINISHED", len(result.finals))
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_plain_script_without_a_main_guard_runs(tmp_path, data_root, how):
    code = SCRIPT.format(space=SPACE, storage=str(tmp_path / "results"), data=str(data_root))
    script = tmp_path / "search.py"
    script.write_text(code)
    cmd, stdin = ([sys.executable, str(script)], None) if how == "file" else ([sys.executable, "-"], code)
    # a guard against the old endless restarts, far above the run's ~15 s; not a timing check
    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, input=stdin, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "FINISHED 1" in proc.stdout  # one final seed in the table
    assert proc.stdout.count("FINISHED") == 1  # the script ran once, not once per worker
    assert "died" not in proc.stdout


def test_workers_dying_at_start_up_stop_the_search_with_their_error(tmp_path, data_root, monkeypatch):
    import tune_lnl
    from tune_lnl.search import optuna_backend
    (tmp_path / "broken_worker.py").write_text('raise RuntimeError("this install is broken (test)")\n')
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(optuna_backend, "WORKER_MODULE", "broken_worker")
    with pytest.raises(tune_lnl.SearchError) as err:
        tune_lnl.run(SPACE, smoke=True, backend="optuna", workers=2, storage_path=tmp_path / "results",
                     data_root=data_root)
    message = str(err.value)
    assert f"{optuna_backend.MAX_STARTUP_DEATHS} worker processes in a row died while starting" in message
    assert "Traceback" in message and "RuntimeError: this install is broken (test)" in message
    records = [json.loads(line) for line in
               (tmp_path / "results" / "tiny-smoke" / "failures.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["worker start-up"]
    assert "this install is broken (test)" in records[0]["error"]


# a method of the user's: its build() raises for one learning rate (the paper's value, so the
# first trial hits it for sure) and for final seed 2
FRAGILE = '''
import torch.nn.functional as F
import tune_lnl


class Fragile(tune_lnl.SingleNetwork):
    def build(self):
        if self.cfg["lr"] == 0.0123 or self.cfg["seed"] == 2:
            raise ValueError(f"cannot build this network (test; lr {self.cfg['lr']}, seed {self.cfg['seed']})")
        super().build()

    def loss(self, logits, labels):
        return F.cross_entropy(logits, labels, reduction="none")
'''


def test_a_failing_build_fails_its_trial_and_a_final_seed_that_cannot_run_fails_the_command(tmp_path, data_root,
                                                                                          repo):
    (tmp_path / "fragile.py").write_text(textwrap.dedent(FRAGILE))
    space = {**SPACE, "name": "fragile", "method": "fragile:Fragile", "paper": {"lr": 0.0123},
             "space": {"lr": {"low": 1.0e-4, "high": 2.0e-2, "log": True}},
             "search": {**SPACE["search"], "num_samples": 3},
             "smoke": {**SPACE["smoke"], "num_samples": 3, "seeds": 2}}
    (tmp_path / "fragile.yaml").write_text(yaml.safe_dump(space))
    proc = subprocess.run([sys.executable, "-m", "tune_lnl.search", "--space", "fragile.yaml", "--smoke",
                           "--backend", "optuna", "--workers", "2", "--data-root", str(data_root),
                           "--storage-path", "results"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    exp = tmp_path / "results" / "fragile-smoke"
    records = [json.loads(line) for line in (exp / "failures.jsonl").read_text().splitlines()]
    trial = [r for r in records if r["trial"] == 0]
    assert len(trial) == 1 and trial[0]["kind"] == "method"  # the paper's trial: failed once, not retried
    assert "ValueError: cannot build this network (test; lr 0.0123" in trial[0]["error"]
    seed2 = [r for r in records if r["trial"] == "seed 2"]
    assert len(seed2) == 1 and "seed 2)" in seed2[0]["error"]
    assert "died" not in out  # no worker died: the failures are the method's
    assert proc.returncode == 2, out[-3000:]
    assert "error: 1 of 2 final runs failed (fragile:Fragile/sym-0.2 seed 2)" in proc.stderr
    assert "Traceback" not in proc.stderr
    rows = (exp / "finals.csv").read_text().splitlines()
    assert len(rows) == 2  # the header and seed 1: the tables hold what completed


def test_the_ray_trainable_reports_a_failing_build_as_the_trials_failure(tmp_path, data_root, monkeypatch):
    """Ray would retry an exception in ``setup`` (``max_failures``) and then call the trial
    ERROR without the method's message; the adapter reports it as the trial's failure."""
    pytest.importorskip("ray.tune")
    from method_helpers import tiny_cfg

    from tune_lnl.methods.ray_adapter import MethodTrainable
    (tmp_path / "fragile.py").write_text(textwrap.dedent(FRAGILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    t = MethodTrainable(config={**tiny_cfg("ce", data_root), "method": "fragile:Fragile", "lr": 0.0123})
    try:
        r = t.train()
    finally:
        t.stop()
    assert r["failed"] == 1 and r["done"] is True
    assert r["error"].startswith("ValueError: cannot build this network (test; lr 0.0123")


def test_the_ray_trainable_fails_a_trial_whose_checkpoint_cannot_be_loaded(tmp_path, data_root):
    pytest.importorskip("ray.tune")
    from method_helpers import tiny_cfg

    from tune_lnl.methods.ray_adapter import CHECKPOINT_FILE, MethodTrainable
    ckpt = tmp_path / "checkpoint_000001"
    ckpt.mkdir()
    (ckpt / CHECKPOINT_FILE).write_bytes(b"\x80\x04garbage, not a checkpoint")
    t = MethodTrainable(config=tiny_cfg("ce", data_root))
    try:
        t.load_checkpoint(str(ckpt))
        r = t.train()
    finally:
        t.stop()
    assert r["failed"] == 1 and r["done"] is True
    assert "CheckpointError" in r["error"] and str(ckpt / CHECKPOINT_FILE) in r["error"]


def test_an_optuna_run_whose_checkpoint_cannot_be_loaded_fails_naming_it(tmp_path, data_root):
    """A planted pickle as a run's ``checkpoint.pt``: never unpickled (its code does not run); the
    run fails with the message naming the file, instead of its worker dying and being retried."""
    import pickle

    from method_helpers import tiny_cfg

    from tune_lnl.search.optuna_backend import CHECKPOINT, train_run
    marker = tmp_path / "code-ran"

    class Planted:
        def __reduce__(self):
            return (marker.touch, ())

    run_dir = tmp_path / "trial_0000"
    run_dir.mkdir()
    (run_dir / CHECKPOINT).write_bytes(pickle.dumps(Planted()))
    state, error, epoch = train_run(tiny_cfg("ce", data_root, epochs=1), run_dir, tmp_path / "tb")
    assert (state, epoch) == ("failed", 1)
    assert str(run_dir / CHECKPOINT) in error and "not a loadable tune_lnl checkpoint" in error
    assert not marker.exists()
    assert "CheckpointError" in (run_dir / "error.txt").read_text()
