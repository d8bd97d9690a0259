"""The tables of docs/reproduction.md, from the experiment folders of its commands.

    python docs/reproduction_tables.py --table2 results/reproduce_mnist_table2 \
        --imae results/imae_compare_mnist --search results/mlc_search_sym-0.8
    python docs/reproduction_tables.py --full-budget docs/results/reproduce_mnist_mlc_320* \
        docs/results/reproduce_mnist_pencil_320*

``--full-budget`` reads only ``finals.csv`` and ``experiment.yaml``: the committed copies under
``docs/results/<experiment>/`` (issue 16) recompute its table without the runs. Likewise
``--imae-searched docs/results/imae_compare_mnist`` (CE / MAE / IMAE each searched, issue 16 part 4)
reads ``finals.csv``, ``best_configs.yaml`` and ``trials.csv``, the last written from an experiment
folder by ``--export-trials results/imae_compare_mnist docs/results/imae_compare_mnist/trials.csv``.
``--mlc-searched docs/results/mlc_search_mnist docs/results/mlc_search_mnist_paper
docs/results/mlc_search_mnist_clean_val`` (issue 16 part 5) adds ``final_epochs.csv`` (every epoch
of every final seed: both proxies and the test accuracy; ``--export-final-epochs EXP CSV``), so
that each config's finals are read at the epoch either proxy selects.

Prints Markdown: (1) the MLC paper's Table II next to our finals (the paper's "best" is the
highest test accuracy over epochs, i.e. test-selected: it is compared with our oracle column,
labelled as such; our honest "best" is at the proxy-best epoch); (2) CE / MAE / IMAE under
uniform noise; (3) MLC's searched config next to the paper's (Table I) config."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_lnl.results.result import Result  # noqa: E402
from tune_lnl.results.runs import first_best, mean_std, open_study, read_history, runs_under  # noqa: E402

SETTINGS = ["sym-0.2", "sym-0.4", "sym-0.8", "pair-0.2", "pair-0.45"]
#: MLC paper, Table II (MNIST): best, last per setting in SETTINGS order
PAPER_TABLE2 = {
    "ce": [97.29, 91.04, 96.45, 83.86, 86.69, 35.14, 96.28, 85.1, 73.13, 55.72],
    "coteaching": [97.56, 97.45, 96.5, 96.24, 80.43, 76.87, 96.7, 96.22, 90.29, 88.4],
    "coteaching_plus": [96.82, 96.64, 95.84, 95.7, 75.13, 74.49, 96.73, 96.44, 82.21, 81.61],
    "pencil": [97.31, 93.94, 96.44, 85.31, 86.58, 33.44, 96.07, 85.61, 74.52, 55.08],
    "jocor": [97.23, 97.2, 96.16, 96.11, 76.62, 74.35, 96.27, 96.15, 90.63, 90.18],
    "mlc": [97.92, 97.85, 97.52, 97.43, 89.86, 89.58, 97.95, 97.85, 91.56, 90.28],
}


def finals(folder: Path) -> dict[tuple[str, str], list[dict]]:
    rows = defaultdict(list)
    with open(Path(folder) / "finals.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows[(r["method"], r["setting"])].append(r)
    return rows


def cell(rows: list[dict], key: str) -> str:
    m, sd = mean_std([100 * float(r[key]) for r in rows])
    return f"{m:.2f}" if len(rows) == 1 else f"{m:.2f} ± {sd:.2f}"


def table2(folder: Path) -> str:
    rows = finals(folder)
    out = ["| method | setting | paper best (test-selected) | ours oracle max (TEST-SELECTED) | ours best (proxy-selected epoch) "
           "| paper last | ours last | ours proxy at best |", "|" + " --- |" * 8]
    for method, paper in PAPER_TABLE2.items():
        for j, s in enumerate(SETTINGS):
            r = rows.get((method, s))
            if not r:
                continue
            out.append(f"| {method} | {s} | {paper[2 * j]:.2f} | {cell(r, 'oracle_max')} | {cell(r, 'best')} | "
                       f"{paper[2 * j + 1]:.2f} | {cell(r, 'last')} | {cell(r, 'proxy')} |")
    return "\n".join(out)


def experiment_space(folder: Path) -> dict:
    """The space file's content as the experiment recorded it (``experiment.yaml``)."""
    return yaml.safe_load((Path(folder) / "experiment.yaml").read_text())["space"]


def describe(space: dict, setting: str) -> str:
    """What tells the experiments of one method apart: the ``variant`` the file fixes and the
    ``lambda`` of its first trial (the setting's, else the file's), where it has them."""
    lam = space["settings"][setting].get("paper", {}).get("lambda", space.get("paper", {}).get("lambda"))
    variant = space.get("fixed", {}).get("variant")
    return ", ".join(x for x in (f"variant {variant}" if variant else "", f"lambda {lam:g}" if lam else "") if x)


def by_rate(settings) -> list[str]:
    """Settings named ``<kind>-<rate>`` (``uniform-0.2``), by rate."""
    return sorted(settings, key=lambda s: float(s.split("-")[1]))


def params_text(params: dict, spec: str) -> str:
    """``k v, ...`` of a trial's parameters, sorted by name, each value in format ``spec``."""
    return ", ".join(f"{k} {v:{spec}}" for k, v in sorted(params.items()))


def full_budget(folders: list[Path]) -> str:
    """Issue 16: the finals of paper-only experiments at the paper's budget (several seeds), per
    space file (folders of one space file, e.g. its settings run in two parts, are pooled), beside
    the MLC paper's Table II row of the method."""
    rows: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    what: dict[tuple[str, str], str] = {}
    for folder in folders:
        space = experiment_space(folder)
        for (method, setting), r in finals(folder).items():
            rows[(space["name"], method, setting)] += r
            what[(space["name"], setting)] = describe(space, setting)
    out = ["| experiment | method | setting | config | seeds | paper best (test-selected) | ours oracle max (TEST-SELECTED) "
           "| ours best (proxy-selected epoch) | paper last | ours last | per seed: best / last |", "|" + " --- |" * 11]
    for (name, method, setting), r in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], SETTINGS.index(kv[0][2]))):
        r = sorted(r, key=lambda x: int(x["seed"]))
        j = SETTINGS.index(setting)
        paper = PAPER_TABLE2.get(method)
        pb, pl = (f"{paper[2 * j]:.2f}", f"{paper[2 * j + 1]:.2f}") if paper else ("-", "-")
        seeds = ", ".join(f"{100 * float(x['best']):.2f} / {100 * float(x['last']):.2f}" for x in r)
        out.append(f"| {name} | {method} | {setting} | {what[(name, setting)]} | {len(r)} | {pb} | {cell(r, 'oracle_max')} | "
                   f"{cell(r, 'best')} | {pl} | {cell(r, 'last')} | {seeds} |")
    return "\n".join(out)


def imae(folder: Path) -> str:
    rows = finals(folder)
    settings = by_rate({s for _, s in rows})
    out = ["| method | " + " | ".join(f"{s} best | {s} last | {s} oracle (TEST-SELECTED)" for s in settings) + " |",
           "| --- |" + " --- | --- | --- |" * len(settings)]
    for method in ("ce", "mae", "imae"):
        cells = [f"{cell(rows[(method, s)], 'best')} | {cell(rows[(method, s)], 'last')} | "
                 f"{cell(rows[(method, s)], 'oracle_max')}" if (method, s) in rows else "- | - | -" for s in settings]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


#: the validation sets a trial is also read at (each at its own best epoch), besides the experiment's proxy
OTHER_PROXIES = ("noisy_val", "clean_val")
TRIAL_FIELDS = ["method", "setting", "trial", "state", "params", "epochs_run", "proxy_best", "proxy_best_epoch",
                "test_acc_at_proxy_best"] + [f for p in OTHER_PROXIES
                                             for f in (f"{p}_best", f"{p}_best_epoch", f"test_acc_at_{p}_best")]
#: the per-epoch columns of --export-final-epochs (blank where a run did not log one)
EPOCH_FIELDS = ["method", "setting", "seed", "epoch", "proxy", "noisy_val_acc", "clean_val_acc", "test_acc"]


def at_first_best(history: list[dict], key: str) -> dict:
    """The epoch line where ``key`` first reaches its maximum; {} if the run did not log ``key``."""
    return history[first_best(history, key)] if history and key in history[0] else {}


def export_trials(exp: Path, out: Path) -> Path:
    """Every search trial of an experiment (``--backend optuna`` run folders ``trial_NNNN``) as one
    small CSV: its Optuna state and parameters, the epochs it ran and, at its proxy-best epoch
    (the first maximum), the proxy and the test accuracy; likewise at its noisy_val-best and
    clean_val-best epochs where the runs logged them (other proxies, to re-select by). The test accuracy is
    recorded, never used to choose: the study chose by the proxy."""
    space = experiment_space(exp)
    rows = []
    for method in space.get("methods") or [space["method"]]:  # several methods, or one
        for setting in space["settings"]:
            folder = Path(exp) / "search" / method / setting
            if not folder.is_dir():
                continue
            for t in open_study(exp, f"{method}/{setting}").trials:
                h = read_history(folder / f"trial_{t.number:04d}")
                row = {"method": method, "setting": setting, "trial": t.number, "state": t.state.name,
                       "params": json.dumps(t.params, sort_keys=True), "epochs_run": len(h)}
                for name, key in (("proxy", "proxy"), *((p, f"{p}_acc") for p in OTHER_PROXIES)):
                    b = at_first_best(h, key)
                    row |= {f"{name}_best": b.get(key, ""), f"{name}_best_epoch": b.get("epoch", ""),
                            f"test_acc_at_{name}_best": b.get("test_acc", "")}
                rows.append(row)
    return write_csv(out, TRIAL_FIELDS, rows)


def write_csv(out: Path, fields: list[str], rows: list[dict]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return out


def export_final_epochs(exp: Path, out: Path) -> Path:
    """Every epoch of every final run of an experiment (``finals/<method>/<setting>/seed_N``) as one
    small CSV of accuracies: the proxy, both validation sets where logged, the test set. It lets a
    table select the finals' epoch by a second proxy (clean_val) without the run folders."""
    rows = []
    for method_dir in sorted((Path(exp) / "finals").iterdir()):
        for setting_dir in sorted(method_dir.iterdir()):
            for history in runs_under(setting_dir).values():
                rows += [{"method": method_dir.name, "setting": setting_dir.name, "seed": h["seed"],
                          **{k: h.get(k, "") for k in EPOCH_FIELDS[3:]}} for h in history]
    return write_csv(out, EPOCH_FIELDS, rows)


def trials(folder: Path) -> dict[tuple[str, str], list[dict]]:
    """``trials.csv`` (:func:`export_trials`) by (method, setting), params decoded."""
    out = defaultdict(list)
    with open(Path(folder) / "trials.csv", newline="") as f:
        for r in csv.DictReader(f):
            out[(r["method"], r["setting"])].append({**r, "params": json.loads(r["params"])})
    return out


def imae_searched(folder: Path) -> str:
    """Issue 16 part 4: CE / MAE / IMAE, each with its searched config (chosen by the proxy), from
    ``finals.csv``, ``best_configs.yaml`` and ``trials.csv`` alone; the ordering of the three by
    the proxy-selected best and by last, with the seeds' spread."""
    rows, tr = finals(folder), trials(folder)
    best = Result.read(folder).best_configs
    settings = by_rate({s for _, s in rows})
    out = ["| setting | method | searched config (by the proxy) | its proxy_best | trials (COMPLETE / PRUNED / FAIL) | "
           "best (proxy-selected epoch) | last | oracle max (TEST-SELECTED) | per seed: best / last |",
           "|" + " --- |" * 9]
    verdict = []
    for s in settings:
        means = {}
        for m in ("ce", "mae", "imae"):
            r = sorted(rows.get((m, s), []), key=lambda x: int(x["seed"]))
            if not r:
                continue
            chosen = best[m][s]
            params = {k: chosen["config"][k] for k in tr[(m, s)][0]["params"]}
            states = [t["state"] for t in tr[(m, s)]]
            counts = " / ".join(str(states.count(k)) for k in ("COMPLETE", "PRUNED", "FAIL"))
            seeds = ", ".join(f"{100 * float(x['best']):.2f} / {100 * float(x['last']):.2f}" for x in r)
            out.append(f"| {s} | {m} | {params_text(params, '.3g')} | {100 * chosen['proxy_best']:.2f} | {counts} | {cell(r, 'best')} | "
                       f"{cell(r, 'last')} | {cell(r, 'oracle_max')} | {seeds} |")
            means[m] = {k: mean_std([100 * float(x[k]) for x in r]) for k in ("best", "last")}
        if len(means) == 3:
            for k in ("best", "last"):
                order = sorted(means, key=lambda m: -means[m][k][0])
                verdict.append(f"{s} {k}: " + " > ".join(f"{m} {means[m][k][0]:.2f}" for m in order))
    return "\n".join(out + ["", "Order by the mean over seeds:", ""] + [f"* {v}" for v in verdict])


def final_epochs(folder: Path) -> dict[tuple[str, str, int], list[dict]]:
    """``final_epochs.csv`` (:func:`export_final_epochs`) by (method, setting, seed), epochs in order."""
    out = defaultdict(list)
    with open(Path(folder) / "final_epochs.csv", newline="") as f:
        for r in csv.DictReader(f):
            out[(r["method"], r["setting"], int(r["seed"]))].append(
                {k: (int(v) if k == "epoch" else float(v)) for k, v in r.items() if k in EPOCH_FIELDS[3:] and v != ""})
    return {k: sorted(v, key=lambda h: h["epoch"]) for k, v in out.items()}


def finals_by(folder: Path, method: str, setting: str, key: str) -> list[dict]:
    """Each final seed's test accuracy at the epoch where ``key`` (a proxy) first peaks, and that
    proxy value: the finals selected by ``key`` instead of the experiment's own proxy."""
    runs = {seed: h for (m, s, seed), h in final_epochs(folder).items() if (m, s) == (method, setting)}
    return [{"seed": seed, "test": h[first_best(h, key)]["test_acc"], "proxy": h[first_best(h, key)][key],
             "epoch": h[first_best(h, key)]["epoch"]} for seed, h in sorted(runs.items())]


def mlc_searched(search: Path, paper: Path, clean_search: Path | None = None) -> str:
    """Issue 16 part 5: MLC's searched configs against the paper's (Table I) config, from the
    committed files alone. ``search``: the search noisy_val selected (trials.csv, finals.csv,
    final_epochs.csv, best_configs.yaml); ``paper``: the same file run ``--paper-only`` (the Table I
    config's finals on the same data and seeds); ``clean_search``: the same search with clean_val
    selecting (its own TPE and ASHA). Rows: the paper config, the noisy_val pick, the config
    clean_val re-selects among the noisy_val search's complete trials (retrained only where it is
    another row's config), the clean_val search's pick. Both proxies were logged on every epoch,
    so every trial and final is read at its noisy_val-best and at its clean_val-best epoch.
    Nothing here looks at the test set to choose."""
    space = experiment_space(search)
    tr = trials(search)
    head = ("| setting | config | params | trial (seed 0): noisy_val best / clean_val best | trial: test at the "
            "noisy_val-best / clean_val-best epoch | finals (mean ± std over the seeds): noisy_val best / clean_val "
            "best | finals: test at the noisy_val-best epoch | at the clean_val-best epoch | last | oracle max "
            "(TEST-SELECTED) |")
    out, notes = [head, "|" + " --- |" * 10], []
    pct = lambda v: f"{100 * float(v):.2f}"  # noqa: E731

    def ms(values):
        m, sd = mean_std([100 * v for v in values])
        return f"{m:.2f} ± {sd:.2f}"

    def chosen(rows, folder, setting):  # the complete trial whose parameters the experiment selected
        config = Result.read(folder).best_configs["mlc"][setting]["config"]
        return next(t for t in rows if t["state"] == "COMPLETE" and all(t["params"][k] == config[k] for k in t["params"]))

    for s in by_rate(space["settings"]):
        rows = tr[("mlc", s)]
        pv = {**space.get("paper", {}), **space["settings"][s].get("paper", {})}
        paper_trial = next(t for t in rows if all(abs(t["params"][k] - pv[k]) <= 1e-9 * abs(pv[k]) for k in pv))
        noisy_pick = chosen(rows, search, s)
        clean = max((t for t in rows if t["state"] == "COMPLETE"), key=lambda t: (float(t["clean_val_best"]), -int(t["trial"])))
        picks = [("paper (Table I; trial 0)", paper_trial, paper), (f"noisy_val search: its pick (trial {noisy_pick['trial']})",
                 noisy_pick, search), (f"noisy_val search, re-selected by clean_val (trial {clean['trial']})", clean, None)]
        runs = [("noisy_val search", rows)]
        if clean_search is not None:
            crows = trials(clean_search)[("mlc", s)]
            cpick = chosen(crows, clean_search, s)
            picks.append((f"clean_val search: its pick (trial {cpick['trial']})", cpick, clean_search))
            runs.append(("clean_val search", crows))
        for name, rs in runs:
            counts = " / ".join(str(sum(t["state"] == k for t in rs)) for k in ("COMPLETE", "PRUNED", "FAIL"))
            notes.append(f"{s}, {name}: {len(rs)} trials (COMPLETE / PRUNED / FAIL: {counts})")
        shown = {}
        for label, t, folder in picks:
            same = next((lab for lab, params in shown.items() if params == t["params"]), None)
            if same:
                out.append(f"| {s} | {label} | the same config as: {same} | | | | | | | |")
                continue
            shown[label] = t["params"]
            cells = (f"| {s} | {label} | {params_text(t['params'], '.4g')} | {pct(t['noisy_val_best'])} / "
                     f"{pct(t['clean_val_best'])} | {pct(t['test_acc_at_noisy_val_best'])} / {pct(t['test_acc_at_clean_val_best'])} |")
            if folder is None:
                out.append(cells + " not retrained | | | | |")
                continue
            fr = finals(folder)[("mlc", s)]
            by_noisy, by_clean = (finals_by(folder, "mlc", s, k) for k in ("noisy_val_acc", "clean_val_acc"))
            out.append(cells + f" {ms([x['proxy'] for x in by_noisy])} / {ms([x['proxy'] for x in by_clean])} | "
                       f"{ms([x['test'] for x in by_noisy])} | {ms([x['test'] for x in by_clean])} | {cell(fr, 'last')} | "
                       f"{cell(fr, 'oracle_max')} |")
    return "\n".join(out + [""] + [f"* {n}" for n in notes])


def search_vs_paper(search: Path, table2_folder: Path, setting: str) -> str:
    study = open_study(search, f"mlc/{setting}")
    paper, best = study.trials[0], study.best_trial
    out = [f"Study `mlc/{setting}`: {len(study.trials)} trials "
           f"({', '.join(f'{s} {sum(t.state.name == s for t in study.trials)}' for s in ('COMPLETE', 'PRUNED', 'FAIL'))}).", "",
           "| config | params | search trial (seed 0): proxy_best | its test acc at the proxy-best epoch | "
           "final (seed 1): best (proxy-selected epoch) | final: last | final: oracle max (TEST-SELECTED) |",
           "|" + " --- |" * 7]
    final_search = finals(search)[("mlc", setting)]
    final_paper = finals(table2_folder)[("mlc", setting)]

    histories = {t.number: read_history(search / "search" / "mlc" / setting / f"trial_{t.number:04d}")
                 for t in study.trials}
    at_best = {n: h[first_best(h)] for n, h in histories.items()}  # each trial at its proxy-best epoch

    def trial_test(t):
        b = at_best[t.number]
        return f"{100 * b['test_acc']:.2f} (epoch {b['epoch']} of {len(histories[t.number])})"

    out.append(f"| paper (Table I; trial 0) | {params_text(paper.params, '.4g')} | {100 * paper.value:.2f} | {trial_test(paper)} | "
               f"{cell(final_paper, 'best')} | {cell(final_paper, 'last')} | {cell(final_paper, 'oracle_max')} |")
    if best.number != paper.number:
        out.append(f"| searched (trial {best.number}, best by the proxy) | {params_text(best.params, '.4g')} | {100 * best.value:.2f} | "
                   f"{trial_test(best)} | {cell(final_search, 'best')} | {cell(final_search, 'last')} | "
                   f"{cell(final_search, 'oracle_max')} |")
    else:
        out.append("| searched | the search's best by the proxy IS the paper's config | | | | | |")
    out += ["", "Every trial of the search (seed 0), at its proxy-best epoch:", "",
            "| trial | state | epochs run | params | proxy_best | test acc at that epoch |", "|" + " --- |" * 6]
    for t in study.trials:
        b = at_best[t.number]
        out.append(f"| {t.number} | {t.state.name} | {len(histories[t.number])} | {params_text(t.params, '.4g')} | "
                   f"{100 * b['proxy']:.2f} | {100 * b['test_acc']:.2f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table2", type=Path)
    p.add_argument("--full-budget", type=Path, nargs="+", help="experiment folders (finals.csv + experiment.yaml)")
    p.add_argument("--imae", type=Path)
    p.add_argument("--search", type=Path)
    p.add_argument("--search-setting", default="sym-0.8")
    p.add_argument("--export-trials", type=Path, nargs=2, metavar=("EXPERIMENT", "CSV"),
                   help="write every search trial of an experiment folder to a small CSV (docs/results/<name>/trials.csv)")
    p.add_argument("--imae-searched", type=Path, help="docs/results folder of the IMAE T search (issue 16 part 4)")
    p.add_argument("--export-final-epochs", type=Path, nargs=2, metavar=("EXPERIMENT", "CSV"),
                   help="write every epoch of every final run to a small CSV (docs/results/<name>/final_epochs.csv)")
    p.add_argument("--mlc-searched", type=Path, nargs="+", metavar="FOLDER",
                   help="docs/results folders: the MLC search (noisy_val), its --paper-only run[, the clean_val search] (issue 16 part 5)")
    a = p.parse_args()
    if a.export_trials:
        print(export_trials(*a.export_trials))
    if a.export_final_epochs:
        print(export_final_epochs(*a.export_final_epochs))
    if a.mlc_searched:
        print("\n## MLC searched against Table I\n\n" + mlc_searched(*a.mlc_searched))
    if a.imae_searched:
        print("\n## IMAE, CE and MAE, each searched\n\n" + imae_searched(a.imae_searched))
    if a.table2:
        print("## Table II\n\n" + table2(a.table2))
    if a.full_budget:
        print("\n## At the paper's budget\n\n" + full_budget(a.full_budget))
    if a.imae:
        print("\n## IMAE\n\n" + imae(a.imae))
    if a.search:
        print("\n## Search vs paper\n\n" + search_vs_paper(a.search, a.table2, a.search_setting))


if __name__ == "__main__":
    main()
