"""`python -m tune_lnl.report`: built from hand-made experiment folders (no training), so that
what each figure and table shows can be checked against numbers written here. The reports of
real smoke experiments (finished, interrupted, Ray-free, Ray) are checked in
tests/e2e/test_search_smoke.py and tests/e2e/test_interrupt.py with :func:`assert_valid_report`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from report_checks import assert_valid_png, assert_valid_report  # noqa: F401 (shared with e2e)

from tune_lnl.results import report


def _history(proxies, tests, **extra):
    return [{"epoch": i + 1, "proxy": p, "proxy_best": max(proxies[:i + 1]), "test_acc": t,
             **{k: v[i] for k, v in extra.items()}} for i, (p, t) in enumerate(zip(proxies, tests))]


def _write_run(folder: Path, history, config=None, torn=False):
    folder.mkdir(parents=True)
    lines = [json.dumps({**h, "config": config or {}}) for h in history]
    (folder / "result.json").write_text("\n".join(lines) + "\n" + ('{"epoch": 9, "pro' if torn else ""))


def _experiment(tmp_path: Path, methods, settings, **manifest) -> Path:
    exp = tmp_path / "exp"
    exp.mkdir()
    space = {"name": "hand", "dataset": "mnist", "proxy": "noisy_val", "finals": {"seeds": 2, "last_k": 2},
             "search": {"grace_period": 2, "reduction_factor": 2}}
    (exp / "experiment.yaml").write_text(yaml.safe_dump(
        {"space": space, "methods": methods, "settings": settings, "backend": "optuna", **manifest}))
    return exp


def test_top_trials_are_ranked_by_the_proxy_never_the_test_set():
    runs = {"a": _history([0.5, 0.6], [0.99, 0.99]),   # best test, worst proxy
            "b": _history([0.7, 0.65], [0.10, 0.10]),
            "c": _history([0.6, 0.7], [0.50, 0.50])}   # ties b's 0.7, one epoch later
    assert report.rank_trials(runs) == ["b", "c", "a"]


def test_box_values_are_the_last_k_epochs_of_every_seed():
    seeds = [_history([0.1] * 4, [0.1, 0.2, 0.3, 0.4]), _history([0.1] * 4, [0.5, 0.6, 0.7, 0.8])]
    assert report.final_tail_values(seeds, 2) == pytest.approx([30.0, 40.0, 70.0, 80.0])


def test_report_of_paper_only_finals_without_any_study(tmp_path):
    """Finals only (``--paper-only``, no Optuna storage): the box plots and analytics exist, the
    finals table is the mean ± std of finals.csv, and no search section is made up."""
    exp = _experiment(tmp_path, ["coteaching", "pencil"], ["sym-0.4"], paper_only=True, num_samples=0)
    n = 4
    analytics = {"coteaching": {"divergence_test": [0.3, 0.2, 0.1, 0.05], "select_precision": [0.6, 0.7, 0.8, 0.9]},
                 "pencil": {"label_acc": [0.6, 0.6, 0.8, 0.9], "label_acc_clean": [1, 1, 0.95, 0.97],
                            "label_acc_noisy": [0, 0, 0.5, 0.8]}}
    rows = ["method,setting,seed,best,best_epoch,proxy,last,oracle_max,epochs"]
    for m in ("coteaching", "pencil"):
        for seed, shift in ((1, 0.0), (2, 0.02)):
            tests = [0.5 + shift, 0.6 + shift, 0.7 + shift, 0.8 + shift]
            _write_run(exp / "finals" / m / "sym-0.4" / f"seed_{seed}",
                       _history([0.4, 0.5, 0.45, 0.44], tests, seed=[seed] * n, **analytics[m]), torn=seed == 2)
            rows.append(f"{m},sym-0.4,{seed},{tests[1]},2,0.5,{(tests[2] + tests[3]) / 2},{tests[3]},4")
    (exp / "finals.csv").write_text("\n".join(rows) + "\n")
    (exp / "finals.md").write_text("# Finals\n")
    report.build(exp, quiet=True)
    md = assert_valid_report(exp)
    names = sorted(p.name for p in (exp / "report" / "figures").glob("*.png"))
    assert names == ["analytics_sym-0.4.png", "box_sym-0.4.png", "finals_sym-0.4.png"]
    # best: seeds 0.6 and 0.62 -> 61.00 ± 0.01414*100; last: 0.75, 0.77 -> 76.00 ± 1.41
    assert "| coteaching | 2 | 61.00 ± 1.41 | 76.00 ± 1.41 | 81.00 ± 1.41 | 50.00 ± 0.00 |" in md
    assert "status: finished" in md and "--paper-only" in md
    assert ": search" not in md


def test_report_of_an_interrupted_search_with_a_journal_study(tmp_path):
    """An Optuna journal (the Ray-free backend's storage) with COMPLETE, PRUNED and RUNNING
    trials and no finals: the report shows the search figures, the analytics of the top trial,
    and says the experiment was interrupted; trial states come from the study (matched by
    folder name or, for Ray's folder names, by the config's parameter values)."""
    import optuna

    from tune_lnl.search.optuna_backend import storage
    exp = _experiment(tmp_path, ["mlc"], ["pair-0.45"])
    study = optuna.create_study(study_name="mlc/pair-0.45", storage=storage(exp), direction="maximize")
    search = exp / "search" / "mlc" / "pair-0.45"
    specs = [  # (folder, params, proxies, state)
        ("trial_0000", {"xi": 0.01, "K": 10.0}, [0.30, 0.40, 0.45, 0.46], "COMPLETE"),
        ("MLCTrainable_abc_00001", {"xi": 0.1, "K": 3.0}, [0.20, 0.25], "PRUNED"),
        ("trial_0002", {"xi": 0.001, "K": 20.0}, [0.35, 0.42, 0.41, 0.44], "COMPLETE"),
        ("trial_0003", {"xi": 0.05, "K": 5.0}, [0.33], "RUNNING"),
    ]
    dists = {"xi": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
             "K": optuna.distributions.FloatDistribution(2.0, 30.0)}
    for folder, params, proxies, state in specs:
        t = study.ask({k: dists[k] for k in params})
        for k, v in params.items():  # the values the hand-made runs used
            study._storage.set_trial_param(t._trial_id, k, dists[k].to_internal_repr(v), dists[k])
        for e in range(1, len(proxies) + 1):
            t.report(max(proxies[:e]), e)
        if state == "COMPLETE":
            study.tell(t, max(proxies))
        elif state == "PRUNED":
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        _write_run(search / folder, _history(proxies, [0.9] * len(proxies), dist=[1.0] * len(proxies),
                                              divergence_test=[0.1] * len(proxies)), config={"method": "mlc", **params})
    states = report.run_states(report.runs_under(search), optuna.load_study(study_name="mlc/pair-0.45",
                                                                            storage=storage(exp)))
    assert states == {"trial_0000": "COMPLETE", "MLCTrainable_abc_00001": "PRUNED", "trial_0002": "COMPLETE",
                      "trial_0003": "RUNNING"}
    report.build(exp, quiet=True)
    md = assert_valid_report(exp)
    names = sorted(p.name for p in (exp / "report" / "figures").glob("*.png"))
    assert names == ["analytics_pair-0.45.png", "importance_mlc_pair-0.45.png", "parallel_mlc_pair-0.45.png",
                     "rungs_mlc_pair-0.45.png", "top_mlc_pair-0.45.png"]
    assert "interrupted during the search" in md
    assert "best by the proxy: trial 0, proxy_best 0.4600" in md
    assert "COMPLETE 2, PRUNED 1, RUNNING 1" in md


def test_cli_refuses_a_folder_that_is_no_experiment(tmp_path, repo):
    proc = subprocess.run([sys.executable, "-m", "tune_lnl.report", str(tmp_path)], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"{tmp_path.resolve()}: not an experiment folder (no experiment.yaml)" in proc.stderr
