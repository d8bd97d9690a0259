"""The search-backend interface (issue 27, item 2): a third backend is a plugin. A toy backend
(a :class:`tune_lnl.search.backend.SearchBackend` subclass that runs every trial and final seed
one after another in the driver, random sampling after the paper's point) is registered by a
fake installed distribution (a ``*.dist-info`` folder with ``entry_points.txt`` on the Python
path) under the group ``tune_lnl.backends`` and runs a smoke search end to end from the command
line: the usual outputs (best configs, finals table, report), each choice recomputed here from
the raw run folders. Plus: an unknown backend is refused naming the available ones (the plugin
among them); an option of another backend and a class that is no backend are refused; the Ray
backend writes its run folders through the same recorder; ``experiment.py`` and ``cli.py`` never
name a backend."""
import ast
import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from tiny_spaces import ENV, tiny_space

import tune_lnl
from tune_lnl import plugins
from tune_lnl.cli import search_main
from tune_lnl.errors import ConfigError
from tune_lnl.search import backend as backend_registry

REPO = Path(__file__).resolve().parents[2]
SETTING = "sym-0.2"
SPACE = tiny_space(SETTING, {"type": "symmetric", "rate": 0.2})

TOY_SOURCE = '''
"""A toy search backend: every trial, then every final seed, one after another in this process."""
import time

import optuna

from tune_lnl.results.recorder import RunRecorder
from tune_lnl.search.backend import SearchBackend
from tune_lnl.search.optuna_backend import train_run
from tune_lnl.search.studies import METRIC, distributions, run_dirs


class ToyBackend(SearchBackend):
    summary = "one run after another in the driver (a test plugin)"
    storage_file = "optuna.journal"

    def open(self, python_path):
        print(f"toy backend opened for {self.exp_dir.name}", flush=True)

    def run_jobs(self, jobs, plan, on_search_done):
        out = {}
        for job in jobs:
            if job.best is None:
                t0 = time.monotonic()
                study = self._search(job, plan)
                on_search_done(job, study, time.monotonic() - t0)
            out[(job.method, job.setting)] = self._finals(job, plan)
        return out

    def _search(self, job, plan):
        study = optuna.create_study(study_name=job.key, storage=self.storage(), direction="maximize",
                                    load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=0))
        if not study.trials:
            study.enqueue_trial(job.space.paper_point(job.setting))
        base = job.space.base_config(job.setting, str(plan.data_root))
        runs, tb = run_dirs(self.exp_dir, "search", job.method, job.setting)
        while len(study.trials) < plan.num_samples:
            trial = study.ask(distributions(job.space, job.setting))
            name = f"trial_{trial.number:04d}"
            state, error, epoch = train_run({**base, **trial.params}, runs / name, tb / name)
            RunRecorder(runs / name).finish(state, error, epoch)
            history = RunRecorder(runs / name).history()
            if state == "complete":
                study.tell(trial, max(h[METRIC] for h in history))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return study

    def _finals(self, job, plan):
        runs, tb = run_dirs(self.exp_dir, "finals", job.method, job.setting)
        done = {}
        for seed in plan.seeds:
            run = RunRecorder(runs / f"seed_{seed}")
            state, error, epoch = train_run({**job.best["config"], "seed": seed}, run.dir, tb / f"seed_{seed}")
            run.finish(state, error, epoch)
            if state == "complete":
                done[seed] = run.history()
        return done


class NotABackend:
    pass
'''


def _install_toy(folder: Path) -> Path:
    """``toy_backend.py`` and a fake distribution registering it as ``toy`` in ``folder``."""
    (folder / "toy_backend.py").write_text(textwrap.dedent(TOY_SOURCE))
    dist = folder / "toyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tune_lnl.backends]\ntoy = toy_backend:ToyBackend\n")
    return folder


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy plugin installed on this process's path (forgotten afterwards)."""
    plug = tmp_path / "plugins"
    plug.mkdir()
    _install_toy(plug)
    monkeypatch.syspath_prepend(str(plug))
    monkeypatch.setattr(plugins, "_roots", set(plugins._roots))
    monkeypatch.delitem(sys.modules, "toy_backend", raising=False)
    monkeypatch.setattr(backend_registry, "_resolved", {})
    importlib.invalidate_caches()
    return plug


@pytest.fixture(scope="module")
def toy_search(tmp_path_factory, data_root):
    """``python -m tune_lnl.search --smoke --backend toy`` with the plugin on PYTHONPATH."""
    tmp = tmp_path_factory.mktemp("toy")
    plug = tmp / "plugins"
    plug.mkdir()
    _install_toy(plug)
    space = tmp / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(plug), str(REPO), ENV.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--smoke", "--backend", "toy",
           "--storage-path", str(tmp / "results"), "--data-root", str(data_root)]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    helped = subprocess.run([sys.executable, "-m", "tune_lnl.search", "--help"], cwd=tmp, env=env,
                            capture_output=True, text=True, timeout=300)
    return tmp / "results" / "tiny-smoke", proc, helped


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "result.json").read_text().splitlines() if line.strip()]


# -- a plugin backend runs a smoke search end to end ---------------------------------------------
def test_a_plugin_backend_runs_a_smoke_search_end_to_end(toy_search):
    exp, proc, _ = toy_search
    assert "toy backend opened for tiny-smoke" in proc.stdout and "backend: toy;" in proc.stdout
    assert "optuna.journal" in proc.stdout  # the outputs line names the plugin's storage file
    assert yaml.safe_load((exp / "experiment.yaml").read_text())["backend"] == "toy"
    stats = json.loads((exp / "search" / "ce" / SETTING / "search_stats.json").read_text())
    assert stats["backend"] == "toy" and stats["trials"] == 2
    for name in ("best_configs.yaml", "finals.csv", "finals.md", "fidelity.md", "report/report.html"):
        assert (exp / name).is_file(), name


def test_the_plugins_study_starts_with_the_paper_and_the_best_config_follows_the_proxy(toy_search):
    exp, _, _ = toy_search
    study = optuna.load_study(study_name=f"ce/{SETTING}",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(exp / "optuna.journal"))))
    assert len(study.trials) == 2 and study.trials[0].params == {"lr": 1.0e-3}  # the paper's point first
    # the best config is the trial whose run folder holds the highest proxy (recomputed here)
    runs = {d.name: _history(d) for d in sorted((exp / "search" / "ce" / SETTING).glob("trial_*"))}
    assert sorted(runs) == ["trial_0000", "trial_0001"] and all(len(h) == 2 for h in runs.values())
    best_run = max(runs, key=lambda n: (max(h["proxy"] for h in runs[n]), -int(n[-4:])))
    best = yaml.safe_load((exp / "best_configs.yaml").read_text())["methods"]["ce"][SETTING]
    assert best["config"]["lr"] == study.trials[int(best_run[-4:])].params["lr"]
    assert best["proxy_best"] == pytest.approx(max(h["proxy"] for h in runs[best_run]))


def test_the_plugins_run_folders_are_the_recorders_and_the_finals_table_agrees(toy_search):
    exp, _, _ = toy_search
    seed_dir = exp / "finals" / "ce" / SETTING / "seed_1"
    assert json.loads((seed_dir / "outcome.json").read_text())["state"] == "complete"
    params = json.loads((seed_dir / "params.json").read_text())
    best = yaml.safe_load((exp / "best_configs.yaml").read_text())["methods"]["ce"][SETTING]["config"]
    assert params["seed"] == 1 and params["lr"] == best["lr"] and params["method"] == "ce"
    assert (seed_dir / "checkpoint.pt").is_file()
    history = _history(seed_dir)
    assert [h["epoch"] for h in history] == [1, 2]
    i_best = max(range(len(history)), key=lambda i: (history[i]["proxy"], -i))  # the proxy's first maximum
    with open(exp / "finals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["method"] == "ce" and rows[0]["setting"] == SETTING
    assert float(rows[0]["best"]) == pytest.approx(history[i_best]["test_acc"])
    assert float(rows[0]["last"]) == pytest.approx(history[-1]["test_acc"])  # last_k 1


def test_the_help_lists_the_installed_plugin(toy_search):
    _, _, helped = toy_search
    assert helped.returncode == 0, helped.stderr
    assert "{auto,ray,optuna,toy}" in helped.stdout and "installed plugins: toy" in " ".join(helped.stdout.split())


# -- refusals --------------------------------------------------------------------------------------
def _space_file(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def test_an_unknown_backend_is_refused_naming_the_available_ones(toy, tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = _space_file(tmp_path)
    with pytest.raises(SystemExit) as info:
        search_main(["--space", str(space), "--backend", "nosuch", "--data-root", str(data_root)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --backend: unknown value 'nosuch'; allowed: auto, ray, optuna, toy, or an import "
                          "path 'package.module:ClassName'"), err
    assert "Traceback" not in err and not (tmp_path / "results").exists()
    with pytest.raises(ConfigError) as api:
        tune_lnl.run(space, backend="nosuch", data_root=data_root, storage_path=tmp_path / "results")
    assert "unknown value 'nosuch'" in str(api.value) and "toy" in str(api.value)
    assert not (tmp_path / "results").exists()


def test_an_option_of_another_backend_is_refused_saying_what_it_is_for(toy, tmp_path, data_root):
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(_space_file(tmp_path), backend="toy", workers=2, data_root=data_root,
                     storage_path=tmp_path / "results")
    assert str(info.value) == ("--workers sets the worker processes of --backend optuna; with Ray use "
                               "search.cpus_per_trial / gpus_per_trial (--backend toy has no such option)")
    assert not (tmp_path / "results").exists()


def test_a_class_that_is_not_a_backend_is_refused(toy, tmp_path, data_root):
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(_space_file(tmp_path), backend="toy_backend:NotABackend", data_root=data_root,
                     storage_path=tmp_path / "results")
    assert "'toy_backend:NotABackend' is not a search backend" in str(info.value)
    assert "SearchBackend" in str(info.value)


def test_auto_picks_the_first_builtin_that_can_run_and_plugins_are_listed(toy):
    assert backend_registry.backend_names() == ["auto", "ray", "optuna", "toy"]
    name, cls, options = backend_registry.choose_backend("toy", address=None, workers=None)
    assert (name, cls.__name__, options) == ("toy", "ToyBackend", {})
    has_ray = importlib.util.find_spec("ray") is not None  # (the fallback to optuna: test_bad_inputs)
    assert backend_registry.choose_backend("auto")[0] == ("ray" if has_ray else "optuna")


# -- the Ray backend writes its run folders through the same recorder --------------------------------
class _Trial:
    """What RecorderCallback reads of a Ray trial."""

    def __init__(self, path: Path, config: dict, last_result: dict):
        self.trial_id, self.local_path, self.config, self.last_result = path.name, str(path), config, last_result


@pytest.mark.parametrize("last,state", [({"training_iteration": 4, "epoch": 4}, "complete"),
                                        ({"training_iteration": 2, "epoch": 2}, "pruned"),
                                        ({"training_iteration": 3, "epoch": 3, "failed": True, "error": "nan"},
                                         "failed")])
def test_the_ray_backend_records_params_and_outcome_like_every_backend(tmp_path, last, state):
    pytest.importorskip("ray.tune")
    from tune_lnl.search.ray_backend import RecorderCallback
    cb = RecorderCallback({"method": "ce", "epochs": 4, "lr": 0.5})
    trial = _Trial(tmp_path / "CETrainable_00000", {"lr": 0.01}, last)
    cb.on_trial_start(0, [], trial)
    cb.on_trial_complete(0, [], trial)
    assert json.loads((tmp_path / "CETrainable_00000" / "params.json").read_text()) == \
        {"method": "ce", "epochs": 4, "lr": 0.01}
    outcome = json.loads((tmp_path / "CETrainable_00000" / "outcome.json").read_text())
    assert outcome["state"] == state and outcome["epoch"] == last["epoch"]
    assert outcome["error"] == last.get("error")


# -- experiment.py and cli.py never test a backend's name ------------------------------------------
@pytest.mark.parametrize("path", ["tune_lnl/search/experiment.py", "tune_lnl/cli.py"])
def test_the_experiment_and_the_cli_never_name_a_backend(path):
    """No string in them is a built-in backend's name or names one as ``--backend NAME`` (their
    choices, options, storage files and messages come from the backend classes)."""
    names = set(backend_registry.BUILTIN)
    tree = ast.parse((REPO / path).read_text())
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if s.strip().lower() in names]
    assert not [s for s in strings for n in names if f"--backend {n}" in s or f"backend == {n!r}" in s]
    source = (REPO / path).read_text()
    for storage in ("optuna.db", "optuna.journal"):
        assert storage not in source
