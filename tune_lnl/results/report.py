"""``python -m tune_lnl.report <experiment-folder>`` (:func:`build`): a self-contained report of an experiment.

Writes ``<experiment>/report/report.html`` and ``report.md`` with PNG figures beside them in
``report/figures/`` (matplotlib). Per noise setting: the finals table, the finals as box plots
over the last ``last_k`` epochs of every seed (the MLC paper's Figs. 6-7), the finals' test
accuracy per epoch, and the analytics curves (the two networks' divergence, MLC Eq. 1; label
correction of the originally clean and noisy samples; precision of the small-loss selections);
per method and setting: the learning curves of the top trials (by the proxy), every trial's
``proxy_best`` per epoch with the rungs where the pruner stopped trials, and from the Optuna
study the hyperparameter importance and a parallel-coordinates view.

Everything is read from the folder (``experiment.yaml``, the runs' ``result.json`` files, the
Optuna storage, ``finals.csv``): it works on a finished, an interrupted (whatever exists is
shown, what is missing is said) and a Ray-free (``optuna.journal``) experiment, and needs
neither Ray nor the space file. Nothing here selects anything: "top" trials are ranked by the
proxy; test accuracy is only drawn.
"""
from __future__ import annotations

import argparse
import csv
import html
import math
import sys
import warnings
from collections import defaultdict
from pathlib import Path

from ..config import milestones
from ..errors import ConfigError, CorruptFileError, TuneLNLError
from .runs import (
    atomic_write,
    experiment_title,
    first_best,
    last_epochs_span,
    last_epochs_words,
    link_refused,
    mean_std,
    open_study,
    read_manifest,
    runs_under,
    study_name,
)

TOP_TRIALS = 5
#: analytics keys drawn per setting (see tune_lnl.methods.analytics)
DIVERGENCE = ("divergence_test", "divergence_noisy_val", "divergence_clean_val")
LABELS = (("label_acc_noisy", "originally noisy: corrected"), ("label_acc_clean", "originally clean: kept"),
          ("label_acc", "all"))


# -- reading the folder -----------------------------------------------------------------------

class ExperimentFolder:
    """What the report needs from an experiment folder."""

    def __init__(self, folder: Path):
        self.dir = Path(folder).resolve()
        man = self.dir / "experiment.yaml"
        if not man.exists():
            raise ConfigError(f"{self.dir}: not an experiment folder (no experiment.yaml)")
        self.manifest = read_manifest(self.dir)  # (a damaged one: CorruptFileError)
        raw = self.manifest.get("space") or {}
        self.name = experiment_title(self.dir, self.manifest)  # the folder's name (--name), as finals.md says
        dataset = raw.get("dataset", "?")  # a name, an import path, or {type: ..., <option>: ...}
        self.dataset = dataset if not isinstance(dataset, dict) else \
            f"{dataset.get('type')} ({', '.join(f'{k}: {v}' for k, v in dataset.items() if k != 'type')})"
        self.proxy = raw.get("proxy", "noisy_val")
        self.last_k = int((raw.get("finals") or {}).get("last_k", 10))
        self.methods = list(self.manifest.get("methods") or [])
        self.settings = list(self.manifest.get("settings") or [])
        search = dict(raw.get("search") or {})
        if self.manifest.get("smoke"):
            smoke = raw.get("smoke") or {}
            search.update({k: v for k, v in smoke.items() if k in ("grace_period", "reduction_factor")})
        self.grace, self.rf = int(search.get("grace_period", 1)), int(search.get("reduction_factor", 3))
        self.paper_only = bool(self.manifest.get("paper_only"))
        self.finals_rows = self._finals_csv()

    def _finals_csv(self) -> list[dict]:
        f = self.dir / "finals.csv"
        if not f.exists():
            return []
        with open(f, newline="") as fh:
            return list(csv.DictReader(fh))

    def search_runs(self, method: str, setting: str) -> dict[str, list[dict]]:
        return runs_under(self.dir / "search" / method / setting)

    def final_runs(self, method: str, setting: str) -> dict[str, list[dict]]:
        return runs_under(self.dir / "finals" / method / setting)

    def study(self, method: str, setting: str):
        """The Optuna study of a method and setting, or None (no storage, no such study). A
        damaged storage stops the report (:class:`~tune_lnl.errors.CorruptFileError`: named, and
        how to recover), never shown as a search without trials."""
        try:
            return open_study(self.dir, study_name(method, setting))
        except CorruptFileError:
            raise
        except Exception:  # noqa: BLE001 -- absent or unreadable: the report says so
            return None

    def last_words(self, finals_rows: list[dict]) -> str:
        """What the finals' "last" column averaged (the real number of epochs when the runs of
        ``finals_rows`` are shorter than ``last_k``): :func:`~tune_lnl.results.runs.last_epochs_words`."""
        return last_epochs_words(self.last_k, [r["epochs"] for r in finals_rows if r.get("epochs")])

    @property
    def status(self) -> str:
        if self.finals_rows:
            return "finished (finals table written)"
        if (self.dir / "finals").exists():
            return "interrupted during the finals (no finals table yet)"
        return "interrupted during the search" if (self.dir / "search").exists() else "not started"


# -- figures ----------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


def _series(history: list[dict], key: str):
    pts = [(h["epoch"], h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    pct = key in ("proxy", "proxy_best", "select_precision") or "_acc" in key  # shares drawn in %
    return [p[0] for p in pts], [100 * p[1] if pct else p[1] for p in pts]


def _mean_curve(histories: list[list[dict]], key: str):
    """Mean over runs of ``key`` per epoch (epochs where every run has it)."""
    per_epoch = defaultdict(list)
    for h in histories:
        xs, ys = _series(h, key)
        for x, y in zip(xs, ys):
            per_epoch[x].append(y)
    n = len(histories)
    xs = sorted(e for e, v in per_epoch.items() if len(v) == n)
    return xs, [sum(per_epoch[e]) / n for e in xs]


def rank_trials(runs: dict[str, list[dict]]) -> list[str]:
    """Trial names by their best proxy (descending; ties: the earlier epoch, then the name)."""
    def key(name):
        best = runs[name][first_best(runs[name])]
        return (-best["proxy"], best["epoch"], name)
    return sorted(runs, key=key)


def run_states(runs: dict[str, list[dict]], study) -> dict[str, str]:
    """Run folder -> the Optuna state of its trial: by folder name (``trial_0007``, --backend
    optuna), else by the Ray trial id its result lines carry (the trial's ``ray_trial_id``), else
    (experiments from before that attribute) by the run config's values of the trial's parameters."""
    out = {}
    by_number = {f"trial_{t.number:04d}": t for t in study.trials}
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials if "ray_trial_id" in t.user_attrs}
    for name, h in runs.items():
        t = by_number.get(name) or by_ray_id.get(h[-1].get("trial_id"))
        if t is None:
            cfg = h[-1].get("config") or {}
            t = next((t for t in study.trials if t.params and all(
                k in cfg and _same(cfg[k], v) for k, v in t.params.items())), None)
        if t is not None:
            out[name] = t.state.name
    return out


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _proxy_and_test(lines: list[tuple], titles: tuple[str, str], legend_on: int, title: str, path: Path) -> Path:
    """Two panels, proxy and test accuracy per epoch: ``lines`` of ``(label, proxy xy, test xy)``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (label, proxy_xy, test_xy) in enumerate(lines):
        axes[0].plot(*proxy_xy, label=label, color=f"C{i}")
        axes[1].plot(*test_xy, label=label, color=f"C{i}")
    for ax, t in zip(axes, titles):
        ax.set(title=t, xlabel="epoch", ylabel="accuracy %")
    axes[legend_on].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def fig_top_curves(runs: dict[str, list[dict]], top: int, title: str, path: Path) -> Path:
    lines = [(f"#{i + 1} {name[-12:]}", _series(runs[name], "proxy"), _series(runs[name], "test_acc"))
             for i, name in enumerate(rank_trials(runs)[:top])]
    return _proxy_and_test(lines, ("proxy (selects)", "test accuracy (logged only)"), 0, title, path)


def fig_rungs(runs: dict[str, list[dict]], states: dict[str, str], grace: int, rf: int, title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    last_epoch = max(h[-1]["epoch"] for h in runs.values())
    for rung in milestones(grace, rf, last_epoch)[:-1]:  # the rungs the trials reached
        ax.axvline(rung, color="0.7", ls="--", lw=0.8)
    for name, h in runs.items():
        xs, ys = _series(h, "proxy_best")
        state = states.get(name, "?")
        color = {"PRUNED": "0.6", "COMPLETE": "C0", "FAIL": "C3"}.get(state, "C1")
        ax.plot(xs, ys, color=color, lw=0.9, alpha=0.9)
        if state == "PRUNED" and xs:
            ax.plot(xs[-1], ys[-1], "x", color="C3", ms=5)
    ax.set(title="every trial's proxy_best; x: stopped by the pruner; dashed: rungs", xlabel="epoch",
           ylabel="proxy_best %")
    ax.title.set_fontsize(8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _drawable(study) -> bool:
    """Importance and parallel coordinates need two complete trials with parameters."""
    import optuna
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return len(complete) >= 2 and bool(complete[0].params)


def fig_importance(study, title: str, path: Path) -> Path | None:
    import optuna
    if not _drawable(study):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study)
    except Exception:  # noqa: BLE001 -- e.g. every trial with the same value
        return None
    if not imp:
        return None
    plt = _plt()
    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.4 * len(names) + 1.2))
    ax.barh(names, [imp[n] for n in names], color="C0")
    ax.set(xlabel="importance for the proxy (fANOVA, Optuna)", xlim=(0, 1))
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def fig_parallel(study, title: str, path: Path) -> Path | None:
    if not _drawable(study):
        return None
    from optuna.visualization.matplotlib import plot_parallel_coordinate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warnings
        ax = plot_parallel_coordinate(study, target_name="proxy_best")
    fig = ax.figure
    fig.set_size_inches(8, 3.8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def final_tail_values(histories: list[list[dict]], last_k: int) -> list[float]:
    """Test accuracy (%) of the last ``last_k`` epochs of every run, pooled (Figs. 6-7)."""
    return [100 * h["test_acc"] for hist in histories for h in hist[-last_k:]]


def fig_box(per_method: dict[str, list[list[dict]]], last_k: int, title: str, path: Path) -> Path:
    plt = _plt()
    names = list(per_method)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 3.8))
    ax.boxplot([final_tail_values(per_method[m], last_k) for m in names], tick_labels=names)
    span = last_epochs_span(last_k, [len(h) for hs in per_method.values() for h in hs])
    ax.set(ylabel="test accuracy %", title=f"last {span} epochs of every seed")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def fig_final_curves(per_method: dict[str, list[list[dict]]], title: str, path: Path) -> Path:
    lines = [(m, _mean_curve(hs, "proxy"), _mean_curve(hs, "test_acc")) for m, hs in per_method.items()]
    return _proxy_and_test(lines, ("proxy (mean over seeds)", "test accuracy (mean over seeds)"), 1, title, path)


def fig_analytics(per_method: dict[str, list[list[dict]]], title: str, path: Path) -> Path | None:
    """Divergence (two-network methods), label correction (MLC, PENCIL), selection precision
    (small-loss methods): one panel each, for the methods that log them."""
    panels = _analytics_panels(per_method)
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    color = {m: f"C{i}" for i, m in enumerate(per_method)}
    for ax, (draw, logged) in zip(axes[0], panels):
        draw(ax, per_method, logged, color)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _analytics_panels(per_method: dict[str, list[list[dict]]]) -> list[tuple]:
    """The panels of :func:`fig_analytics` that have something to draw, in order: ``(drawer,
    what the methods logged for it)``."""
    def has(hs, key):
        return any(key in h for hist in hs for h in hist)
    first_div = {m: next((k for k in DIVERGENCE if has(hs, k)), None) for m, hs in per_method.items()}
    logged = [(_divergence_panel, {m: k for m, k in first_div.items() if k is not None}),
              (_labels_panel, [m for m, hs in per_method.items() if has(hs, "label_acc_noisy")]),
              (_precision_panel, [m for m, hs in per_method.items() if has(hs, "select_precision")])]
    return [(draw, which) for draw, which in logged if which]


def _divergence_panel(ax, per_method, div: dict[str, str], color: dict[str, str]) -> None:
    """The two networks' divergence (MLC Eq. 1), per method from its first logged held-out set."""
    for m, key in div.items():
        ax.plot(*_mean_curve(per_method[m], key), label=f"{m} ({key.removeprefix('divergence_')})", color=color[m])
    ax.set(title="divergence KL(p1||p2)+KL(p2||p1) (MLC Eq. 1)", xlabel="epoch", yscale="log")


def _labels_panel(ax, per_method, methods: list[str], color: dict[str, str]) -> None:
    """Label correction: the corrected label equals the clean one, for the originally noisy,
    the originally clean and all training samples."""
    styles = ("-", "--", ":")
    for m in methods:
        for (key, what), ls in zip(LABELS, styles):
            ax.plot(*_mean_curve(per_method[m], key), ls=ls, color=color[m], label=f"{m}: {what}")
    ax.set(title="corrected label = clean label (%)", xlabel="epoch", ylim=(-2, 102))


def _precision_panel(ax, per_method, methods: list[str], color: dict[str, str]) -> None:
    """Precision of the small-loss selections (the share of selected samples with a clean label)."""
    for m in methods:
        ax.plot(*_mean_curve(per_method[m], "select_precision"), label=m, color=color[m])
    ax.set(title="selected samples with a clean label (%)", xlabel="epoch")


# -- the document -----------------------------------------------------------------------------

class Doc:
    """Blocks rendered both as Markdown and as HTML (figures referenced relative to the report)."""

    def __init__(self, root: Path):
        self.root = root
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def table(self, head: list[str], rows: list[list[str]]):
        self.blocks.append(("table", head, rows))

    def img(self, path: Path | None, caption: str):
        if path is not None:
            self.blocks.append(("img", path.relative_to(self.root).as_posix(), caption))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                out.append("| " + " | ".join(b[1]) + " |\n|" + " --- |" * len(b[1]) + "\n"
                           + "\n".join("| " + " | ".join(r) + " |" for r in b[2]))
            else:
                out.append(f"![{b[2]}]({b[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
               "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
               "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
               "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:85%;color:#555}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in b[1]) + "</tr>"
                           + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2])
                           + "</table>")
            else:
                out.append(f"<figure><img src='{e(b[1])}' alt='{e(b[2])}'><figcaption>{e(b[2])}</figcaption></figure>")
        return "\n".join(out) + "\n</body></html>\n"


def _slug(*parts: str) -> str:
    return "_".join(p.replace("/", "-").replace(" ", "") for p in parts)


def _finals_table(exp: ExperimentFolder, doc: Doc, setting: str) -> None:
    rows = [r for r in exp.finals_rows if r["setting"] == setting]
    if not rows:
        return
    by_method = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)

    def cell(rs, key):
        m, sd = mean_std([100 * float(r[key]) for r in rs])
        return f"{m:.2f} ± {sd:.2f}"
    last = exp.last_words(rows)
    doc.table(["method", "seeds", "best (proxy-selected epoch)", f"last ({last})",
               "oracle max (TEST-SELECTED)", "proxy at best"],
              [[m, str(len(rs)), cell(rs, "best"), cell(rs, "last"), cell(rs, "oracle_max"), cell(rs, "proxy")]
               for m, rs in by_method.items()])


def _fidelity_table(doc: Doc, rows: list[dict]) -> None:
    if not rows:
        return
    from .fidelity import fmt
    doc.p("Proxy fidelity (tune_lnl.fidelity): how each logged proxy ranks the trials (at their proxy-best epochs) "
          "and the epochs of the finals against the test accuracy, and what selecting on it cost (regret: "
          "the test-selected choice's test accuracy minus the proxy's choice's, percentage points, >= 0; 0 is "
          "perfect). *: the proxy that selected here.")
    doc.table(["method", "proxy", "trials", "search tau", "search rho", "search regret (pp)", "seeds",
               "finals tau", "finals rho", "finals epoch regret (pp)"],
              [[r["method"], r["proxy"] + (" *" if r["selects"] else ""), str(r.get("trials", 0)),
                fmt(r.get("search_tau")), fmt(r.get("search_rho")), fmt(r.get("search_regret")),
                str(r.get("seeds", 0)), fmt(r.get("finals_tau")), fmt(r.get("finals_rho")),
                fmt(r.get("finals_regret"))] for r in rows])


def build(folder: str | Path, top: int = TOP_TRIALS, quiet: bool = False, fidelity: list[dict] | None = None) -> Path:
    """Write the report of an experiment folder; returns the path of ``report.html``.
    ``fidelity``: the rows of :func:`tune_lnl.results.fidelity.write` when the caller has just computed
    them (the search), else they are computed here from the folder."""
    exp = ExperimentFolder(Path(folder))
    root = exp.dir / "report"
    figs = _fresh_figures(root)
    doc = Doc(root)
    _header(exp, doc)
    if fidelity is None:
        from .fidelity import experiment_fidelity
        fidelity = experiment_fidelity(exp.dir, exp.methods, exp.settings, exp.proxy)
    for setting in exp.settings:
        _setting_section(exp, doc, setting, [r for r in fidelity if r["setting"] == setting], figs, top)
    _write(exp, doc, root, figs, quiet)
    return root / "report.html"


def _header(exp: ExperimentFolder, doc: Doc) -> None:
    """The title and the paragraph saying what the experiment is (folder, dataset, proxy,
    backend, status, budget) and how to read the finals table."""
    doc.h(1, f"Report: {exp.name}")
    doc.p(f"Folder {exp.dir}; dataset {exp.dataset}; proxy {exp.proxy} (the only thing that selects: trials, "
          f"configs and epochs; test accuracy is drawn, never used to choose); backend "
          f"{exp.manifest.get('backend', '?')}; status: {exp.status}."
          + (" --paper-only: no search, the finals retrain the space file's paper values." if exp.paper_only else "")
          + (" --smoke budget." if exp.manifest.get("smoke") else ""))
    if (exp.dir / "finals.md").exists():
        doc.p("The finals table (finals.md): 'best' is the test accuracy at the epoch with the highest proxy, "
              f"'last' the {exp.last_words(exp.finals_rows)}; "
              "the oracle maximum is test-selected and shown "
              "only for comparison with papers that report it.")


def _setting_section(exp: ExperimentFolder, doc: Doc, setting: str, fidelity: list[dict], figs: Path, top: int) -> None:
    """One noise setting: its finals and fidelity tables, the realised noise rate, the finals'
    figures (or, before the finals, the top trials' analytics) and every method's search."""
    doc.h(2, f"Setting {setting}")
    _finals_table(exp, doc, setting)
    _fidelity_table(doc, fidelity)
    per_method = {m: list(exp.final_runs(m, setting).values()) for m in exp.methods}
    per_method = {m: hs for m, hs in per_method.items() if hs}
    _realised_noise(doc, per_method)
    if per_method:
        _finals_figures(exp, doc, setting, per_method, figs)
        analytics_from = "finals (mean over seeds)"
    else:
        doc.p("No final runs yet (search running or interrupted): the analytics below are those of each "
              "method's top trial by the proxy.")
        per_method = _top_trials(exp, setting)
        analytics_from = "top trial by the proxy"
    if per_method:
        doc.img(fig_analytics(per_method, f"{setting}: analytics, {analytics_from}",
                              figs / f"{_slug('analytics', setting)}.png"),
                f"{setting}: divergence of the two networks on held-out images (MLC Eq. 1), label correction "
                f"(corrected = clean label, originally noisy / clean / all training samples), precision of "
                f"small-loss selections; {analytics_from}")
    for m in exp.methods:
        _search_section(exp, doc, m, setting, figs, top)


def _realised_noise(doc: Doc, per_method: dict[str, list[list[dict]]]) -> None:
    """The realised noise rate(s) the final runs logged (one value unless methods ran on
    different subsets); nothing when none logged it."""
    realised = sorted({round(h[0]["noise_rate_realised"], 4) for hs in per_method.values() for h in hs
                       if h and h[0].get("noise_rate_realised") is not None})
    if realised:
        doc.p(f"Realised noise rate (the share of training labels that differ from the clean ones, over the "
              f"training images the runs draw from -- the whole training set, or its train_subset -- as drawn "
              f"with the noise seed): {', '.join(f'{r:.4f}' for r in realised)}.")


def _finals_figures(exp: ExperimentFolder, doc: Doc, setting: str, per_method: dict[str, list[list[dict]]],
                    figs: Path) -> None:
    """The finals of one setting as box plots (last ``last_k`` epochs of every seed) and as
    proxy / test accuracy curves (mean over seeds)."""
    span = last_epochs_span(exp.last_k, [len(h) for hs in per_method.values() for h in hs])
    doc.img(fig_box(per_method, exp.last_k, f"{setting}: finals", figs / f"{_slug('box', setting)}.png"),
            f"{setting}: finals, test accuracy over the last {span} epochs of every seed (box plot)")
    doc.img(fig_final_curves(per_method, f"{setting}: finals", figs / f"{_slug('finals', setting)}.png"),
            f"{setting}: finals, proxy and test accuracy per epoch (mean over seeds)")


def _top_trials(exp: ExperimentFolder, setting: str) -> dict[str, list[list[dict]]]:
    """Method -> ``[history of its top search trial by the proxy]`` (the methods with runs):
    what the analytics show before the finals exist."""
    per_method = {}
    for m in exp.methods:
        runs = exp.search_runs(m, setting)
        if runs:
            per_method[m] = [runs[rank_trials(runs)[0]]]
    return per_method


def _write(exp: ExperimentFolder, doc: Doc, root: Path, figs: Path, quiet: bool) -> None:
    """``report.md`` and ``report.html`` written atomically (a link there is replaced, never
    written through), and unless ``quiet`` one line saying where."""
    made = len(list(figs.glob("*.png")))
    atomic_write(root / "report.md", doc.markdown())
    atomic_write(root / "report.html", doc.html(f"Report: {exp.name}"))
    if not quiet:
        print(f"report: {root / 'report.html'} (and report.md; {made} figures in {figs})", flush=True)


def _fresh_figures(root: Path) -> Path:
    """``<root>/figures``, made, with the figures of an earlier build deleted (a rebuilt report
    shows only what exists now). ``report/`` or ``report/figures/`` being a symbolic link is
    refused (:func:`~tune_lnl.results.runs.link_refused`): the clean-up never deletes a file
    through a link (a user's folder)."""
    figs = root / "figures"
    for folder in (root, figs):
        if folder.is_symlink():
            raise link_refused(folder)
    figs.mkdir(parents=True, exist_ok=True)
    for old in figs.glob("*.png"):
        old.unlink()  # (a link among them: the link is removed, not its target)
    return figs


def _search_section(exp: ExperimentFolder, doc: Doc, m: str, setting: str, figs: Path, top: int) -> None:
    """One method's search in one setting: its study's trials and best, the top trials' curves,
    the rungs, the hyperparameter importance and parallel coordinates (what exists of them)."""
    runs = exp.search_runs(m, setting)
    study = exp.study(m, setting)
    if not runs and study is None:
        return
    doc.h(3, f"{m} / {setting}: search")
    states = run_states(runs, study) if study is not None else {}
    if study is not None:
        _study_summary(doc, study)
    if runs:
        name = f"{m} / {setting}"
        doc.img(fig_top_curves(runs, top, name, figs / f"{_slug('top', m, setting)}.png"),
                f"{name}: the top {min(top, len(runs))} trials by the proxy: proxy and test accuracy per epoch")
        doc.img(fig_rungs(runs, states, exp.grace, exp.rf, name, figs / f"{_slug('rungs', m, setting)}.png"),
                f"{name}: every trial's proxy_best per epoch (grey: pruned, blue: complete) and the pruner's rungs")
    if study is not None:
        _study_figures(doc, study, f"{m} / {setting}", figs, _slug(m, setting))


def _study_summary(doc: Doc, study) -> None:
    """How many trials the study holds per state, and its best trial by the proxy (if any)."""
    counts = defaultdict(int)
    for t in study.trials:
        counts[t.state.name] += 1
    try:
        bt = study.best_trial
        doc.p(f"{len(study.trials)} trials ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
              f"best by the proxy: trial {bt.number}, proxy_best {bt.value:.4f}, {bt.params}")
    except ValueError:
        doc.p(f"{len(study.trials)} trials, none complete yet")


def _study_figures(doc: Doc, study, name: str, figs: Path, slug: str) -> None:
    """The study's hyperparameter importance and parallel coordinates, or why they are absent."""
    if not _drawable(study):
        doc.p("No importance or parallel-coordinates view: they need two complete trials with "
              "parameters (pruned trials have no final value).")
    doc.img(fig_importance(study, name, figs / f"importance_{slug}.png"),
            f"{name}: hyperparameter importance for the proxy (Optuna, complete trials)")
    doc.img(fig_parallel(study, name, figs / f"parallel_{slug}.png"),
            f"{name}: parallel coordinates of the complete trials (Optuna)")


def main(argv=None, prog: str = "python -m tune_lnl.report") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="experiment folder (<storage>/<name>)")
    p.add_argument("--top", type=int, default=TOP_TRIALS,
                   help=f"trials in the learning-curve figures (default {TOP_TRIALS})")
    args = p.parse_args(argv)
    try:
        build(args.experiment, top=args.top)
    except (FileNotFoundError, TuneLNLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
