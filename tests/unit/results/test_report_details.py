"""Issue 28's report details, on hand-made experiment folders (no training): ``report.md`` and
``fidelity.md`` are titled with the experiment's folder name (as ``finals.md`` is), "last" says how
many epochs it really averaged when the runs are shorter than ``last_k``, and regret is >= 0 (the
test-selected choice minus the proxy's choice) wherever it is printed under "0 is perfect"."""
import json
import re
from pathlib import Path

import pytest
import yaml
from test_report import _history, _write_run

from tune_lnl.results import fidelity, report
from tune_lnl.results.export import finals_markdown
from tune_lnl.results.runs import last_epochs_words, summarize_run

SETTING = "sym-0.4"


def _experiment(tmp_path: Path, folder: str, last_k: int) -> Path:
    """A finished experiment folder named ``folder`` whose space file is named ``mlc_mnist``: one
    method, two final seeds of 6 epochs (fewer than ``last_k``), two search trials where the
    proxy picks the trial with the lower test accuracy."""
    exp = tmp_path / folder
    exp.mkdir()
    space = {"name": "mlc_mnist", "dataset": "mnist", "proxy": "noisy_val", "finals": {"seeds": 2, "last_k": last_k},
             "search": {"grace_period": 2, "reduction_factor": 2}}
    (exp / "experiment.yaml").write_text(yaml.safe_dump(
        {"space": space, "methods": ["ce"], "settings": [SETTING], "backend": "optuna", "smoke": True}))
    # search: trial 0 has the higher proxy (0.5) but test 0.6; trial 1 proxy 0.4, test 0.9 -> regret 30 pp
    for name, proxy, test in (("trial_0000", 0.5, 0.6), ("trial_0001", 0.4, 0.9)):
        _write_run(exp / "search" / "ce" / SETTING / name,
                   _history([proxy], [test], noisy_val_acc=[proxy]))
    rows = ["method,setting,seed,best,best_epoch,proxy,last,oracle_max,epochs"]
    # finals: proxy best at epoch 2 (test 0.7), oracle epoch 6 (test 0.8): epoch regret 10 pp per seed
    proxies, tests = [0.1, 0.5, 0.2, 0.2, 0.2, 0.2], [0.6, 0.7, 0.7, 0.75, 0.75, 0.8]
    for seed in (1, 2):
        hist = _history(proxies, tests, noisy_val_acc=proxies)
        _write_run(exp / "finals" / "ce" / SETTING / f"seed_{seed}", hist)
        s = summarize_run(hist, last_k)
        rows.append(f"ce,{SETTING},{seed},{s['best']},{s['best_epoch']},{s['proxy']},{s['last']},"
                    f"{s['oracle_max']},{s['epochs']}")
    (exp / "finals.csv").write_text("\n".join(rows) + "\n")
    (exp / "finals.md").write_text("# Finals: mlc_mnist-smoke\n")
    return exp


def test_last_words_give_the_real_number_of_epochs():
    assert last_epochs_words(10, [20, 30]) == "mean of the last 10 epochs"
    assert last_epochs_words(10, [6, 6]) == "mean of the last 6 epochs"
    assert last_epochs_words(10, [4, 6, 12]) == "mean of the last 4-10 epochs"
    assert last_epochs_words(10, [1]) == "mean of the last 1 epoch"
    assert last_epochs_words(5, []) == "mean of the last 5 epochs"  # nothing known: the configured k


def test_finals_md_says_how_many_epochs_last_averaged():
    class Exp:  # what finals_markdown reads of a SpaceConfig
        name, dataset, proxy = "mlc_mnist", "mnist", "noisy_val"

        class finals:
            last_k = 10
    runs = {"ce": {SETTING: {1: summarize_run(_history([0.1] * 6, [0.5] * 6), 10),
                             2: summarize_run(_history([0.1] * 6, [0.5] * 6), 10)}}}
    md = finals_markdown(Exp, runs, name="mlc_mnist-smoke")
    assert "**last**: mean of the last 6 epochs." in md
    assert "last 10" not in md


def test_report_and_fidelity_titles_last_and_regret(tmp_path):
    exp = _experiment(tmp_path, "mlc_mnist-smoke", last_k=10)
    report.build(exp, quiet=True)
    md = (exp / "report" / "report.md").read_text()
    html = (exp / "report" / "report.html").read_text()
    # the folder's name, as finals.md says; the space file's name beside it
    assert md.startswith("# Report: mlc_mnist-smoke (space mlc_mnist)\n")
    assert "<title>Report: mlc_mnist-smoke (space mlc_mnist)</title>" in html
    # "last" over the 6 epochs the runs have, never "last 10"
    assert "'last' the mean of the last 6 epochs" in md
    assert "| method | seeds | best (proxy-selected epoch) | last (mean of the last 6 epochs) |" in md
    assert "over the last 6 epochs of every seed (box plot)" in md
    assert "last 10" not in md
    # last = mean of the 6 test accuracies: (0.6 + 0.7 + 0.7 + 0.75 + 0.75 + 0.8) / 6 = 0.71667
    assert "| ce | 2 | 70.00 ± 0.00 | 71.67 ± 0.00 | 80.00 ± 0.00 | 50.00 ± 0.00 |" in md
    # regret: oracle minus selected: search 90 - 60 = 30 pp, finals epoch 80 - 70 = 10 pp
    assert "| ce | noisy_val * | 2 | -1.00 | -1.00 | 30.00 | 2 |" in md
    assert re.search(r"\| 10\.00 \|$", md, re.M)

    rows = fidelity.write(exp)
    assert (exp / "fidelity.md").read_text().startswith("# Proxy fidelity: mlc_mnist-smoke (space mlc_mnist)\n")
    (row,) = rows
    assert row["search_regret"] == pytest.approx(30.0) and row["finals_regret"] == pytest.approx(10.0)
    assert json.loads((exp / "fidelity.json").read_text())[0]["search_regret"] == pytest.approx(30.0)
    assert "(>= 0; 0 is perfect)" in (exp / "fidelity.md").read_text()


def test_a_folder_named_as_its_space_has_a_plain_title(tmp_path):
    exp = _experiment(tmp_path, "mlc_mnist", last_k=3)
    report.build(exp, quiet=True)
    md = (exp / "report" / "report.md").read_text()
    assert md.startswith("# Report: mlc_mnist\n")
    assert "last (mean of the last 3 epochs)" in md  # runs longer than last_k: k itself


def test_regret_is_never_negative(tmp_path):
    """Whatever the proxy picks, the oracle's pick is a maximum over the same candidates."""
    import random
    rng = random.Random(0)
    for _ in range(50):
        trials = [[{"epoch": e + 1, "noisy_val_acc": rng.random(), "test_acc": rng.random()} for e in range(4)]
                  for _ in range(5)]
        assert fidelity.search_fidelity(trials, "noisy_val")["search_regret"] >= 0
        assert fidelity.finals_fidelity(trials, "noisy_val")["finals_regret"] >= 0
