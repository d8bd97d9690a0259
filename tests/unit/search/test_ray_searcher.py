"""The Ray backend's Optuna searcher across an interruption, without a cluster: Tune saves the
searcher with its run state now and then, so a trial Optuna handed out after the last save is
unknown to the restored run. It must not stay RUNNING in the study (the search would never look
finished and hold one trial more than asked); it is told FAIL and recorded, and the report still
tells its run folder from the trial that took its place, even when both carry the same values."""
import json

import optuna
import pytest

pytest.importorskip("ray.tune")

from optuna.trial import TrialState  # noqa: E402

from tune_lnl.results.report import run_states  # noqa: E402
from tune_lnl.search.ray_backend import PruningOptunaSearch  # noqa: E402


def _searcher(tmp_path, failures):
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    return PruningOptunaSearch(space=space, metric="proxy_best", mode="max", study_name="m/s",
                               storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"),
                               seed=0, failures=failures, label="m/s")


def test_a_trial_handed_out_after_the_last_save_is_told_fail_on_restore(tmp_path):
    failures = tmp_path / "failures.jsonl"
    before = _searcher(tmp_path, failures)
    assert isinstance(before.suggest("aaaa0001"), dict)
    saved = tmp_path / "searcher.pkl"
    before.save(str(saved))  # Tune's last saved state: one trial handed out
    assert isinstance(before.suggest("aaaa0002"), dict)  # then killed before the next save

    after = _searcher(tmp_path, failures)
    after.restore(str(saved))
    study = optuna.load_study(study_name="m/s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL]
    assert [t.user_attrs["ray_trial_id"] for t in study.trials] == ["aaaa0001", "aaaa0002"]
    (record,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert record["trial"] == 1 and record["kind"] == "lost to the interruption" and "aaaa0002" in record["error"]

    # the restored run asks a trial in its place and finishes both; nothing stays RUNNING
    assert isinstance(after.suggest("aaaa0003"), dict)
    after.on_trial_complete("aaaa0001", {"proxy_best": 0.5, "training_iteration": 3})
    after.on_trial_complete("aaaa0003", {"proxy_best": 0.6, "training_iteration": 3})
    study = optuna.load_study(study_name="m/s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]

    # a second restore from the same state finds nothing more to fail
    again = _searcher(tmp_path, failures)
    again.restore(str(saved))
    assert len(failures.read_text().splitlines()) == 1

    # run folders are matched to trials by their Ray trial id, not by values: the lost trial and
    # the one in its place with the same lr each get their own state
    lr = study.trials[1].params["lr"]
    runs = {"lost": [{"trial_id": "aaaa0002", "config": {"lr": lr}}],
            "rerun": [{"trial_id": "aaaa0003", "config": {"lr": lr}}]}
    assert run_states(runs, study) == {"lost": "FAIL", "rerun": "COMPLETE"}


def test_a_trial_that_had_ended_before_the_kill_keeps_its_verdict_on_restore(tmp_path):
    """Tune saved its state while a trial ran; the study then told the trial PRUNED; killed. The
    restored Tune run continues that trial from its checkpoint and reports its epochs: they must
    not reach the study (Optuna refuses to update a finished trial, which stopped the search)."""
    before = _searcher(tmp_path, None)
    assert isinstance(before.suggest("bbbb0001"), dict)
    saved = tmp_path / "searcher.pkl"
    before.save(str(saved))  # Tune's last saved state: the trial runs
    before.early_stopped.add("bbbb0001")
    before.on_trial_complete("bbbb0001", {"proxy_best": 0.3, "training_iteration": 2})  # pruned at a rung

    after = _searcher(tmp_path, None)
    after.restore(str(saved))
    after.on_trial_result("bbbb0001", {"proxy_best": 0.4, "training_iteration": 3})  # continued
    after.on_trial_complete("bbbb0001", {"proxy_best": 0.5, "training_iteration": 6})
    study = optuna.load_study(study_name="m/s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED and trial.intermediate_values == {2: 0.3}
