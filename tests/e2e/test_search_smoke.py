"""End to end: `python -m tune_lnl.search --smoke` of the MLC paper's MNIST comparison (six
methods, one YAML) on real MNIST through Ray Tune + Optuna + ASHA.

Checks the outputs, the combined table (rows methods, columns settings, best/last), that
ASHA-stopped trials are PRUNED in the studies, that the paper's values were each search's first
trial, that every choice ("best" config, "best" epoch of the finals) follows the proxy alone
(recomputed here from the raw per-epoch results), and that TensorBoard lists every trial with
its hyperparameters and no experiment summary hides the union."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SETTINGS = ["sym-0.4", "pair-0.45"]
SPACE = "search_spaces/compare_mnist.yaml"
METHODS = ["ce", "coteaching", "coteaching_plus", "pencil", "jocor", "mlc"]


def _results(trial_dir: Path) -> list[dict]:
    rows = [json.loads(l) for l in (trial_dir / "result.json").read_text().splitlines() if l.strip()]
    by_epoch = {r["epoch"]: r for r in rows}  # a restored trial may repeat an epoch
    return [by_epoch[e] for e in sorted(by_epoch)]


def _trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "result.json").exists())


class SmokeRun(tuple):
    """``(experiment folder, completed process)`` with the ``methods`` and ``settings`` it ran."""
    methods: list
    settings: list


#: backend -> (methods, settings) of its run: the Optuna backend one method of each kind -- single
#: network, two networks, label table -- on two settings; Ray (the same shared study logic) the
#: table's other three methods on one setting. Together every method of the table runs end to end,
#: in the suite's time budget.
RUNS = {"ray": (["coteaching_plus", "pencil", "jocor"], SETTINGS[1:]),
        "optuna": (["ce", "coteaching", "mlc"], SETTINGS)}


@pytest.fixture(scope="module", params=list(RUNS))
def smoke_run(request, tmp_path_factory, repo, data_root):
    """The smoke search on both backends; ``--backend optuna`` runs where importing Ray fails (a
    stub ``ray`` package that raises is first on the path of the driver and its workers)."""
    methods, settings = RUNS[request.param]
    storage = tmp_path_factory.mktemp("results")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    if request.param == "optuna":
        stub = storage / "no_ray"
        (stub / "ray").mkdir(parents=True)
        (stub / "ray" / "__init__.py").write_text("raise ImportError('Ray is not installed here (test stub)')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(stub), str(repo), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", SPACE, "--smoke", "--num-samples", "3",
           "--settings", *settings, "--methods", *methods, "--data-root", str(data_root),
           "--storage-path", str(storage), "--backend", request.param]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = SmokeRun((storage / "compare_mnist-smoke", proc))
    run.methods, run.settings = methods, settings
    return run


def test_outputs_exist(smoke_run):
    exp, proc = smoke_run
    store = "optuna.db" if "backend: ray" in proc.stdout else "optuna.journal"
    for f in ("best_configs.yaml", "finals.csv", "finals.md", store, "experiment.yaml"):
        assert (exp / f).is_file() and (exp / f).stat().st_size > 0, f
    assert "tensorboard --logdir" in proc.stdout


def test_the_search_says_its_estimate_and_an_eta(smoke_run):
    """At its start the search prints the plan's ``estimated:`` line; at the end of each study a
    status line with the percent of the expected trial-epochs, the per-study counts and the ETA
    (tune_lnl.search.progress, the same on both backends)."""
    import re
    exp, proc = smoke_run
    assert re.search(r"^estimated: [\d,]+ trial-epochs, \S+ h on \d+ slots", proc.stdout, re.M), proc.stdout[:3000]
    status = [line for line in proc.stdout.splitlines() if line.startswith("[status] ")]
    assert len(status) >= len(smoke_run.methods) * len(smoke_run.settings), proc.stdout[-3000:]
    for line in status:
        assert re.match(r"\[status\] \d+% of ~[\d,]+ trial-epochs, ETA (\d+ s|\d+ min|\d+ h \d+ min)", line), line
        assert re.search(r"finals \d+/\d+ finished", line), line
    assert re.search(r"\d+/3 trials finished", " ".join(status))


def test_the_search_builds_its_report(smoke_run):
    """The search ends by writing report/ (and saying where): per setting the finals box plot,
    curves and analytics; per method and setting the top trials and rungs, and from the study
    the importance and parallel coordinates (drawn whenever two trials completed)."""
    from report_checks import assert_valid_report

    from tune_lnl.results.runs import open_study
    exp, proc = smoke_run
    assert f"report: {exp / 'report' / 'report.html'}" in proc.stdout
    md = assert_valid_report(exp)
    names = {p.name for p in (exp / "report" / "figures").glob("*.png")}
    for s in smoke_run.settings:
        assert {f"box_{s}.png", f"finals_{s}.png", f"analytics_{s}.png"} <= names
        for m in smoke_run.methods:
            assert {f"top_{m}_{s}.png", f"rungs_{m}_{s}.png"} <= names, (m, s)
            complete = [t for t in open_study(exp, f"{m}/{s}").trials if t.state.name == "COMPLETE"]
            if len(complete) >= 2:
                assert {f"importance_{m}_{s}.png", f"parallel_{m}_{s}.png"} <= names, (m, s)
    assert "status: finished" in md


def test_the_search_writes_proxy_fidelity(smoke_run):
    """fidelity.json: a row per method, setting and logged proxy (noisy_val selects; clean_intact is
    logged by every MNIST run), each with the search's trials and the finals' seeds counted."""
    exp, proc = smoke_run
    assert f"{exp / 'fidelity.md'}" in proc.stdout
    rows = json.loads((exp / "fidelity.json").read_text())
    assert {(r["method"], r["setting"], r["proxy"]) for r in rows} == {
        (m, s, p) for m in smoke_run.methods for s in smoke_run.settings for p in ("noisy_val", "clean_intact")}
    for r in rows:
        assert r["selects"] == (r["proxy"] == "noisy_val")
        assert r["trials"] == len(_trial_dirs(exp / "search" / r["method"] / r["setting"])) and r["seeds"] == 2
        assert r["search_regret"] >= 0 and r["finals_regret"] >= 0  # oracle minus selected


def test_combined_table_has_the_papers_shape(smoke_run):
    """finals.md: one row per method, a best and a last column per setting, each cell the mean ±
    std of finals.csv's per-seed values (recomputed here); the oracle figure sits apart, labelled."""
    exp, _ = smoke_run
    text = (exp / "finals.md").read_text()
    rows = [l for l in text.splitlines() if l.startswith("| ") and not l.startswith("| ---")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header == ["method"] + [f"{s} {k}" for s in smoke_run.settings for k in ("best", "last")]
    body = rows[1:1 + len(smoke_run.methods)]
    table = {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split("|")] for r in body)}
    assert list(table) == smoke_run.methods
    csv_rows = list(csv.DictReader((exp / "finals.csv").open()))
    for m in smoke_run.methods:
        for j, s in enumerate(smoke_run.settings):
            for k, key in enumerate(("best", "last")):
                vals = [100 * float(r[key]) for r in csv_rows if r["method"] == m and r["setting"] == s]
                assert len(vals) == 2
                mean = sum(vals) / 2
                sd = abs(vals[0] - vals[1]) / 2 ** 0.5
                assert table[m][2 * j + k] == f"{mean:.2f} ± {sd:.2f}"
    assert "Oracle max (test-selected" in text
    assert text.index("Oracle max") > text.index(f"| {smoke_run.methods[-1]} |")


def test_study_states_and_paper_first(smoke_run, repo):
    from tune_lnl.config import load_experiment
    from tune_lnl.results.runs import open_study
    exp, _ = smoke_run
    spaces = load_experiment(repo / SPACE, smoke_mode=True).methods
    for m in smoke_run.methods:
        for setting in smoke_run.settings:
            epochs = spaces[m].paper_config(setting, "/")["epochs"]
            study = open_study(exp, f"{m}/{setting}")
            assert len(study.trials) == 3
            assert study.trials[0].params == pytest.approx(spaces[m].paper_point(setting))
            # epochs each trial really ran, from the per-epoch results
            ran = sorted(len(_results(d)) for d in _trial_dirs(exp / "search" / m / setting))
            states = sorted(t.state.name for t in study.trials)
            assert states.count("COMPLETE") == sum(r == epochs for r in ran) >= 1
            assert states.count("PRUNED") == sum(r < epochs for r in ran)


def test_selection_uses_only_the_proxy(smoke_run):
    exp, _ = smoke_run
    best = yaml.safe_load((exp / "best_configs.yaml").read_text())
    finals = list(csv.DictReader((exp / "finals.csv").open()))
    for m in smoke_run.methods:
        for setting in smoke_run.settings:
            # search: the chosen config is the full-length trial with the highest proxy (any epoch)
            trials = [_results(d) for d in _trial_dirs(exp / "search" / m / setting)]
            full = [t for t in trials if len(t) == max(len(x) for x in trials)]
            top = max(max(r["proxy"] for r in t) for t in full)
            winners = [t[-1]["config"] for t in full if max(r["proxy"] for r in t) == top]  # ties possible
            chosen = best["methods"][m][setting]["config"]
            assert any(all(chosen[k] == pytest.approx(v) for k, v in w.items()) for w in winners), (m, setting)
            assert best["methods"][m][setting]["proxy_best"] == pytest.approx(top)
            # finals: "best" is the test accuracy at the first epoch of maximal proxy
            runs = _trial_dirs(exp / "finals" / m / setting)
            assert len(runs) == 2
            rows = {int(r["seed"]): r for r in finals if r["setting"] == setting and r["method"] == m}
            for d in runs:
                hist = _results(d)
                seed = hist[-1]["config"]["seed"]
                i = max(range(len(hist)), key=lambda j: (hist[j]["proxy"], -j))
                assert float(rows[seed]["best"]) == pytest.approx(hist[i]["test_acc"])
                assert float(rows[seed]["oracle_max"]) == pytest.approx(max(h["test_acc"] for h in hist))
                if m in ("mlc", "pencil"):
                    assert [h["stage"] for h in hist] == [1, 1, 2, 2, 3, 3]  # every stage ran


def test_best_config_runs_as_is(smoke_run, repo, data_root):
    exp, _ = smoke_run
    proc = subprocess.run([sys.executable, "-m", "tune_lnl.train", "--config", str(exp / "best_configs.yaml"),
                           "--method", smoke_run.methods[-1], "--setting", smoke_run.settings[-1], "--epochs", "1",
                           "--data-root", str(data_root)],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "epoch    1" in proc.stdout and "proxy(noisy_val)" in proc.stdout


def test_tensorboard_lists_every_trial_with_hparams(smoke_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    exp, _ = smoke_run
    runs = [p for p in (exp / "tensorboard").rglob("*") if p.is_dir() and any(p.glob("events.out.tfevents.*"))]
    n_search = sum(len(_trial_dirs(exp / "search" / m / s))
                   for m in smoke_run.methods for s in smoke_run.settings)
    assert len(runs) == n_search + 2 * len(smoke_run.settings) * len(smoke_run.methods)
    for run in runs:
        acc = EventAccumulator(str(run))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        assert "_hparams_/experiment" not in content  # would hide other trials' columns
        ssi = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hp = ssi.session_start_info.hparams
        assert {"method", "setting", "noise_rate", "seed", "lr"} <= set(hp)
        if "/mlc/" in str(run):
            assert {"lambda", "mu", "xi", "K", "forget_rate"} <= set(hp)
        scalars = set(acc.Tags()["scalars"])
        assert {"proxy", "test_acc"} <= scalars
        # the analytics of issue 6, per method family (tune_lnl/methods/analytics.py)
        method = next(m for m in smoke_run.methods if f"/{m}/" in str(run))
        two_networks = method in ("coteaching", "coteaching_plus", "jocor", "mlc")
        assert two_networks == ({"divergence_test", "divergence_noisy_val", "select_precision"} <= scalars), run
        assert (method in ("mlc", "pencil")) == ({"label_acc", "label_acc_clean", "label_acc_noisy"} <= scalars), run


def _spans(folder: Path) -> list[tuple[float, float]]:
    """(start, end) wall-clock seconds of every run under ``folder``, from its own result lines:
    the first epoch's end minus its duration, and the last epoch's end."""
    out = []
    for d in _trial_dirs(folder):
        rows = _results(d)
        out.append((rows[0]["end_time"] - rows[0]["epoch_time"], rows[-1]["end_time"]))
    return out


def test_every_study_ran_at_once(smoke_run):
    """The default schedule: runs of different studies trained at the same moment, and a
    setting's finals started while another study was still searching (the one-at-a-time order
    allows neither; tests/e2e/test_concurrency.py checks that order). On the Optuna backend a free
    worker takes a trial of the study with the fewest running; on Ray a study's cap is at most
    an even share of the slots among the drivers (here 2 slots, 2 drivers: 1 each), so no driver
    holds both slots while the other's study waits. Either way two searches overlap."""
    exp, proc = smoke_run
    keys = [(m, s) for m in smoke_run.methods for s in smoke_run.settings]
    search = {k: _spans(exp / "search" / k[0] / k[1]) for k in keys}
    runs = {k: search[k] + _spans(exp / "finals" / k[0] / k[1]) for k in keys}

    def overlap(spans, other):
        return any(a[0] < b[1] and b[0] < a[1] for a in spans for b in other)

    assert any(overlap(runs[k], runs[j]) for i, k in enumerate(keys) for j in keys[i + 1:])
    first_final = min(span[0] for k in keys for span in runs[k][len(search[k]):])
    assert first_final < max(t[1] for spans in search.values() for t in spans)
    assert any(overlap(search[k], search[j]) for i, k in enumerate(keys) for j in keys[i + 1:])


def test_the_two_runs_cover_every_method_of_the_table(repo):
    """The backends split the comparison's methods between them: together, every one runs."""
    space = yaml.safe_load((repo / SPACE).read_text())
    assert sorted(space["methods"]) == sorted(METHODS)
    assert sorted(m for methods, _ in RUNS.values() for m in methods) == sorted(METHODS)
