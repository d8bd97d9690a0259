"""The progress shared by every backend (tune_lnl.search.progress): percent of the expected
trial-epochs, per-study counts, queued studies, the ETA from measured rates (a fake clock, no
sleeps), re-estimated as trials are pruned; the status line; the reader of run folders."""
import json

import pytest

from tune_lnl.config import load_experiment
from tune_lnl.search.estimate import expected_epochs
from tune_lnl.search.progress import LineCounter, Progress, Reporter, Run, read_runs
from tune_lnl.search.studies import Job

SPACE = "search_spaces/mlc_mnist.yaml"  # --smoke: 6 epochs, rungs 2/4/6, reduction factor 2


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def jobs(repo):
    exp = load_experiment(str(repo / SPACE), smoke_mode=True)
    return [Job(exp.methods["mlc"], s) for s in ("sym-0.2", "sym-0.4")]


def _progress(tmp_path, jobs, clock, rate=None):
    return Progress(tmp_path, jobs, num_samples=4, seeds=2, epochs_per_s=rate, clock=clock)


def test_nothing_started_is_the_plan_and_queued(tmp_path, jobs):
    clock = Clock()
    u = _progress(tmp_path, jobs, clock, rate=2.0).compute({})
    per_study = 4 * expected_epochs(2, 2, 6) + 2 * 6  # 4 x 3.5 + 12 = 26
    assert u.expected_epochs == pytest.approx(2 * per_study) and u.done_epochs == 0 and u.percent == 0
    assert u.eta_s == pytest.approx(52 / 2.0)  # the plan's rate until an epoch ends here
    assert u.queued == 2 and [s.state for s in u.studies] == ["queued", "queued"]
    assert u.line().startswith("[status] 0% of ~52 trial-epochs, ETA 26 s | finals 0/4 finished | 2 studies queued")


def test_the_eta_comes_from_the_measured_rate_and_the_remaining_work_follows_pruning(tmp_path, jobs):
    clock = Clock()
    p = _progress(tmp_path, jobs, clock, rate=100.0)
    p.compute({})  # the start: nothing done
    clock.now += 10
    first = {"mlc/sym-0.2": ([Run(1, False), Run(1, False)], False, [])}
    u = p.compute(first)  # the first epochs ended: the rate is measured from here
    assert u.eta_s == pytest.approx((u.expected_epochs - 2) / 100.0)  # one measurement: still the plan's rate
    clock.now += 20
    # 20 s later: trial 0 pruned at its rung (2 epochs), trial 1 at epoch 3 (passed the rung at 2), 2 more started
    snap = {"mlc/sym-0.2": ([Run(2, True), Run(3, False), Run(1, False), Run(1, False)], False, [])}
    u = p.compute(snap)
    done = 2 + 3 + 1 + 1
    left_search = (1 + 2 / 2) + 2 * (1 + 2 / 2 + 2 / 4) + 0  # trial 1: to 4, then half of 4->6; two at epoch 1
    left = left_search + 2 * 6 + (4 * 3.5 + 12)  # finals of sym-0.2, all of sym-0.4
    assert u.done_epochs == done and u.expected_epochs == pytest.approx(done + left)
    assert u.percent == pytest.approx(100 * done / (done + left))
    assert u.eta_s == pytest.approx(left * 20 / (done - 2))  # 5 epochs in the 20 s since the first ones
    study = u.studies[0]
    assert (study.state, study.finished, study.total, study.running) == ("searching", 1, 4, (3, 1, 1))
    line = u.line()
    assert "mlc/sym-0.2: 1/4 trials finished, 3 running at epoch 3/6, 1/6, 1/6" in line
    assert "1 study queued" in line and "ETA " in line


def test_ended_searches_and_finals(tmp_path, jobs):
    p = _progress(tmp_path, jobs, Clock())
    trials = [Run(6, True), Run(2, True), Run(4, True), Run(6, True)]
    snap = {"mlc/sym-0.2": (trials, True, [Run(6, True), Run(3, False)]),
            "mlc/sym-0.4": (trials, True, [Run(6, True), Run(6, True)])}
    u = p.compute(snap)
    assert u.finals_finished == 3 and u.finals_total == 4 and u.finals_running == (3,)
    assert u.expected_epochs == pytest.approx(u.done_epochs + 3) and u.queued == 0
    assert "finals 3/4 finished, running at epoch 3/6" in u.line()
    assert [s.state for s in u.studies] == ["searched", "searched"]
    assert u.eta_s is None  # no rate measured here and none planned


def test_the_folder_is_read_as_the_backends_write_it(tmp_path, jobs):
    """Epoch lines counted incrementally (a torn last line not yet), outcome.json = ended, .done = searched."""
    trial = tmp_path / "search" / "mlc" / "sym-0.2" / "trial_0000"
    trial.mkdir(parents=True)
    (trial / "result.json").write_text(json.dumps({"epoch": 1}) + "\n" + json.dumps({"epoch": 2}) + "\n{\"ep")
    p = _progress(tmp_path, jobs, Clock())
    u = p.update()
    assert u.done_epochs == 2 and u.studies[0].running == (2,)
    with open(trial / "result.json", "a") as f:
        f.write("och\": 3}\n")
    (trial / "outcome.json").write_text(json.dumps({"state": "pruned"}))
    u = p.update()
    assert u.done_epochs == 3 and u.studies[0].finished == 1 and u.studies[0].running == ()
    (trial / "result.json").write_text(json.dumps({"epoch": 1}) + "\n")  # rewritten shorter (a resume)
    assert read_runs(trial.parent, LineCounter()) == [Run(1, True)] and p.update().done_epochs == 1


def test_the_reporter_calls_back_and_prints_the_line(tmp_path, jobs, capsys):
    got = []
    reporter = Reporter(_progress(tmp_path, jobs, Clock(), rate=1.0), got.append)
    update = reporter.report()
    assert got == [update] and capsys.readouterr().out.strip() == update.line()
    reporter.tick(print_line=False)
    assert len(got) == 2 and capsys.readouterr().out == ""


def test_an_unknown_plan_rate_gives_an_unknown_eta_until_epochs_end(tmp_path, jobs):
    u = _progress(tmp_path, jobs, Clock(), rate=float("nan")).compute({})
    assert u.eta_s is None and "ETA unknown" in u.line()
