"""The plan's arithmetic (expected trial-epochs under ASHA, against hand computations), the
``estimated:`` line, and ``--plan`` / ``tune_lnl.plan``: they train nothing and write nothing."""
import re

import pytest

import tune_lnl
from tune_lnl.cli import search_main
from tune_lnl.search.estimate import Estimate, StudyEstimate, duration, expected_epochs, expected_remaining, milestones

SPACE = "search_spaces/mlc_mnist.yaml"


def test_rungs_are_where_asha_compares():
    assert milestones(40, 3, 320) == [40, 120, 320]  # 360 > 320: the last segment ends at max_t
    assert milestones(40, 3, 360) == [40, 120, 360]
    assert milestones(2, 2, 6) == [2, 4, 6]
    assert milestones(50, 3, 30) == [30]  # grace period past the epochs: every trial runs them all


def test_expected_trial_epochs_use_the_expected_survivors():
    # 24 trials x 40 epochs; 24/3 = 8 trials 40 -> 120; 24/9 trials 120 -> 320
    hand = 24 * 40 + 8 * 80 + 24 / 9 * 200
    assert 24 * expected_epochs(40, 3, 320) == pytest.approx(hand) == pytest.approx(2133.333, abs=1e-3)
    # the main job: 5 settings x 24 trials, plus 5 x 5 finals of 320 epochs
    assert 5 * 24 * expected_epochs(40, 3, 320) + 5 * 5 * 320 == pytest.approx(18666.667, abs=1e-3)
    assert expected_epochs(2, 2, 6) == pytest.approx(2 + 2 / 2 + 2 / 4)


def test_a_running_trial_is_expected_to_run_its_segment_and_the_survivors_share_of_the_rest():
    assert expected_remaining(0, 40, 3, 320) == pytest.approx(expected_epochs(40, 3, 320))
    assert expected_remaining(30, 40, 3, 320) == pytest.approx(10 + 80 / 3 + 200 / 9)
    assert expected_remaining(40, 40, 3, 320) == pytest.approx(80 / 3 + 200 / 9)  # the rung may still prune it
    assert expected_remaining(50, 40, 3, 320) == pytest.approx(70 + 200 / 3)  # it passed the rung at 40
    assert expected_remaining(320, 40, 3, 320) == 0


def _study(key="mlc/sym-0.2", epoch_s=2.0, trials=24, seeds=5):
    return StudyEstimate(key=key, trials=trials, epochs=320, rungs=(40, 120, 320), reduction_factor=3, seeds=seeds,
                         search_epochs=trials * expected_epochs(40, 3, 320), finals_epochs=seeds * 320,
                         epoch_s=epoch_s, source="test")


def test_the_estimate_divides_the_work_by_the_slots_and_warns_when_long():
    est = Estimate(name="x", backend="optuna", slots=2, threads=1, studies=[_study(), _study("mlc/sym-0.4", 4.0)])
    per_study = 24 * expected_epochs(40, 3, 320) + 5 * 320
    assert est.trial_epochs == pytest.approx(2 * per_study)
    assert est.seconds == pytest.approx((per_study * 2.0 + per_study * 4.0) / 2)
    assert est.line().startswith(f"estimated: {2 * per_study:,.0f} trial-epochs, {est.hours:.2g} h on 2 slots")
    assert est.long and "--smoke" in est.warning() and "GPU" in est.warning() and "cluster" in est.warning()
    short = Estimate(name="x", backend="optuna", slots=2, threads=1, studies=[_study(epoch_s=0.01)])
    assert not short.long and short.warning() is None and "estimated:" in short.text()


def test_durations_read_as_a_person_says_them():
    assert (duration(45), duration(600), duration(3 * 3600 + 20 * 60)) == ("45 s", "10 min", "3 h 20 min")


def test_plan_prints_the_estimate_and_writes_nothing(tmp_path, data_root, repo, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "results"
    assert search_main(["--space", str(repo / SPACE), "--smoke", "--plan", "--backend", "optuna", "--data-root",
                        str(data_root), "--storage-path", str(storage)]) == 0
    out = capsys.readouterr().out
    # smoke budget: 5 settings x (4 trials, rungs 2/4/6, rf 2) + 5 x 2 finals of 6 epochs
    assert re.search(r"^estimated: 130 trial-epochs, [0-9.e-]+ h on \d+ slots", out, re.M), out
    assert "mlc/pair-0.45" in out and "2, 4, 6" in out and "2 x 6" in out
    assert not storage.exists() and list(tmp_path.iterdir()) == []  # no experiment folder, nothing at all


def test_the_python_plan_returns_the_numbers(tmp_path, data_root, repo):
    est = tune_lnl.plan(str(repo / SPACE), smoke=True, backend="optuna", settings=["sym-0.2"], workers=3,
                        data_root=data_root, storage_path=tmp_path / "results")
    assert [s.key for s in est.studies] == ["mlc/sym-0.2"] and est.slots == 3
    assert est.trial_epochs == pytest.approx(4 * (2 + 1 + 0.5) + 2 * 6)
    assert est.studies[0].epoch_s > 0 and est.seconds == pytest.approx(est.trial_epochs * est.studies[0].epoch_s / 3)
    assert not (tmp_path / "results").exists()


def test_earlier_runs_in_the_storage_replace_the_calibration(tmp_path, data_root, repo):
    """Epoch times of an earlier run of the same cost (method, data size, model, batch) are used."""
    import json
    est = tune_lnl.plan(str(repo / SPACE), smoke=True, backend="optuna", settings=["sym-0.2"],
                        data_root=data_root, storage_path=tmp_path)
    from tune_lnl.config import load_experiment
    cfg = load_experiment(str(repo / SPACE), smoke_mode=True).first.paper_config("sym-0.2", str(data_root))
    run = tmp_path / "old" / "search" / "mlc" / "sym-0.2" / "trial_0000"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps(cfg))
    (run / "result.json").write_text("".join(json.dumps({"epoch": e, "proxy": 0.5, "epoch_time": t}) + "\n"
                                             for e, t in ((1, 7.0), (2, 9.0), (3, 8.0))))
    again = tune_lnl.plan(str(repo / SPACE), smoke=True, backend="optuna", settings=["sym-0.2"],
                          data_root=data_root, storage_path=tmp_path)
    assert again.studies[0].epoch_s == 8.0 and "earlier runs" in again.studies[0].source
    assert est.studies[0].source.startswith("calibration")


def test_a_study_that_cannot_be_timed_leaves_the_time_unknown_not_the_search():
    """A method whose build fails (its trials will fail and say why) has no calibration: the
    estimate keeps the trial-epochs and says the time is unknown, naming the failure."""
    import math
    failed = _study("x:Broken/sym-0.2", epoch_s=math.nan)
    failed = StudyEstimate(**{**failed.__dict__, "source": "the calibration of x:Broken failed (ValueError: no)"})
    est = Estimate(name="x", backend="optuna", slots=2, threads=1, studies=[_study(), failed])
    assert est.line().startswith(f"estimated: {2 * (24 * expected_epochs(40, 3, 320) + 5 * 320):,.0f} trial-epochs "
                                 f"on 2 slots (time unknown: the calibration of x:Broken failed (ValueError: no)")
    assert est.warning() is None


def test_the_calibration_of_a_method_that_cannot_build_is_reported_not_raised(tmp_path, data_root, repo):
    from tune_lnl.config import load_experiment
    from tune_lnl.search.estimate import epoch_seconds
    (tmp_path / "broken.py").write_text(
        "import tune_lnl\n\nclass Broken(tune_lnl.SingleNetwork):\n"
        "    def build(self):\n        raise ValueError('cannot build (test)')\n\n"
        "    def loss(self, logits, labels):\n        return logits.sum(1)\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        exp = load_experiment({"name": "b", "method": "broken:Broken", "dataset": "mnist",
                               "space": {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
                               "settings": {"sym-0.2": {"noise": {"type": "symmetric", "rate": 0.2}}},
                               "smoke": {"train_subset": 500, "test_subset": 100}}, smoke_mode=True)
        seconds, source = epoch_seconds(exp.first, "sym-0.2", data_root, None, 1, {})
    finally:
        sys.path.remove(str(tmp_path))
    import math
    assert math.isnan(seconds) and "ValueError: cannot build (test)" in source
