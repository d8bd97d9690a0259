"""A user's own method and data, end to end, from a folder OUTSIDE the package.

The folder (made once per module) holds what a user would write: a copy of the plugin method
``examples/taylor_ce/taylor_ce.py`` (Taylor cross entropy, named ``"taylor_ce:TaylorCE"``), ``arrays.npz`` (5
classes of 3-channel 32x32 uint8 images, N x H x W x C, a class colour plus seeded noise:
learnable in 3 epochs) and ``space.yaml`` (``method: "taylor_ce:TaylorCE"``, ``dataset: {type: arrays, path:
arrays.npz}``, a ``smoke:`` budget). Covered here:

* the ``--smoke`` search through both backends, run as ``python -m tune_lnl.search`` from that
  folder WITHOUT the folder on PYTHONPATH (the framework hands the path to Ray's and its own
  workers): the import path is the method's name in best_configs.yaml, finals.csv, the study,
  the folders, the checkpoints and TensorBoard; the finals table agrees with the raw per-epoch
  results; the model takes its shape from the data;
* SIGKILL of the whole search mid-trial, then ``--resume`` (optuna backend);
* the exact-resume property of the plugin method in-process (4 epochs straight == 2 + save +
  load into a fresh object + 2);
* ``tune_lnl.run`` (the Python API) against the CLI: same selection, same finals numbers
  (``--backend optuna --workers 1`` is deterministic on CPU);
* bad input: the API's typed exception carries exactly the message the CLI prints (exit 2).
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

METHOD = "taylor_ce:TaylorCE"
SETTING = "sym-0.4"
KEY = f"{METHOD}/{SETTING}"
NUM_SAMPLES, SEEDS, EPOCHS, LAST_K = 3, 2, 3, 2
CLASSES, SIZE, N_TRAIN, N_TEST = 5, 32, 1000, 200
PAPER = {"t": 2, "lr": 0.001}
EXP = "taylor_ce_arrays-smoke"  # <name>-smoke
TIMING = {"epoch_time", "train_time"}

SPACE_YAML = f"""\
# a user's experiment: their own method (taylor_ce.py in this folder) on their own images
name: taylor_ce_arrays
method: "{METHOD}"
dataset: {{type: arrays, path: arrays.npz}}
proxy: noisy_val
search: {{num_samples: 20, grace_period: 10, reduction_factor: 3}}
finals: {{seeds: 5, last_k: {LAST_K}}}
fixed: {{model: mlp, batch_size: 64, epochs: 50}}
space:
  t: {{low: 1, high: 6}}
  lr: {{low: 0.0003, high: 0.003, log: true}}
paper: {{t: {PAPER['t']}, lr: {PAPER['lr']}}}
settings:
  {SETTING}: {{noise: {{type: symmetric, rate: 0.4}}}}
smoke:
  num_samples: {NUM_SAMPLES}
  seeds: {SEEDS}
  grace_period: 1
  reduction_factor: 2
  fixed: {{epochs: {EPOCHS}}}
"""

#: one clearly distinct colour per class; per-pixel Gaussian noise (std 90) makes it non-trivial
COLOURS = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [200, 200, 60], [60, 200, 200]])


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % CLASSES)
    x = COLOURS[y][:, None, None, :] + rng.normal(0, 90, size=(n, SIZE, SIZE, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory, repo) -> Path:
    """The user's project folder (outside the package): taylor_ce.py, arrays.npz, space.yaml."""
    d = tmp_path_factory.mktemp("user_project")
    shutil.copy(repo / "examples" / "taylor_ce" / "taylor_ce.py", d / "taylor_ce.py")
    train_x, train_y = _images(N_TRAIN, 1)
    test_x, test_y = _images(N_TEST, 2)
    np.savez(d / "arrays.npz", train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y)
    (d / "space.yaml").write_text(SPACE_YAML)
    return d


# -- subprocesses -------------------------------------------------------------------------------
def _env(user_dir: Path) -> dict:
    """The test's environment, with the user's folder NOT on PYTHONPATH (``python -m`` puts the
    current folder on the driver's path only; the workers must get it from the framework)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p).resolve() != user_dir.resolve()]
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    else:
        env.pop("PYTHONPATH", None)
    return env


def _search_cmd(storage: Path, data_root: Path, backend: str, *extra) -> list[str]:
    return [sys.executable, "-m", "tune_lnl.search", "--space", "space.yaml", "--smoke", "--backend", backend,
            "--storage-path", str(storage), "--data-root", str(data_root), *extra]


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the process group the test started (its session leader's pid)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; its whole process group is killed on return (whatever
    strays) and on timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        _stop_group(proc)
        raise
    _stop_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# -- reading the experiment folder (independently of tune_lnl.results) ---------------------------
def _lines(run_dir: Path) -> list[dict]:
    """result.json as written (a torn last line of a killed run skipped)."""
    out = []
    f = run_dir / "result.json"
    for line in (f.read_text().splitlines() if f.exists() else []):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _history(run_dir: Path) -> list[dict]:
    """One line per epoch, sorted (a redone epoch: its last line)."""
    by_epoch = {r["epoch"]: r for r in _lines(run_dir)}
    return [by_epoch[e] for e in sorted(by_epoch)]


def _run_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "result.json").exists()) \
        if folder.exists() else []


def _checkpoints(run_dir: Path) -> list[Path]:
    """optuna backend: ``<run>/checkpoint.pt``; Ray: ``<trial>/checkpoint_*/state.pt``."""
    return sorted([*run_dir.glob("checkpoint.pt"), *run_dir.glob("checkpoint_*/state.pt")])


def _finals_csv(exp: Path) -> list[dict]:
    with (exp / "finals.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cli_search(user_dir, data_root, tmp_path_factory):
    """``cli_search(backend)``: the plugin's ``--smoke`` search through the CLI, run once per
    backend and module (optuna: ``--workers 1``, the deterministic mode); (exp folder, process)."""
    done = {}

    def get(backend: str):
        if backend not in done:
            storage = tmp_path_factory.mktemp(f"cli_{backend}")
            extra = ("--workers", "1") if backend == "optuna" else ()
            proc = _run(_search_cmd(storage, data_root, backend, *extra), user_dir)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            done[backend] = (storage / EXP, proc)
        return done[backend]
    return get


BACKENDS = ["ray", "optuna"]


# -- b. the search, both backends ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_search_selects_and_exports_under_the_import_path(cli_search, user_dir, backend):
    """best_configs.yaml: the plugin's import path is the method; the selected config names the
    arrays dataset with the npz's absolute path; its proxy_best is the best proxy of the
    full-length trials (recomputed from their result.json)."""
    exp, proc = cli_search(backend)
    assert f"backend: {backend}" in proc.stdout
    assert not (exp / "failures.jsonl").exists(), (exp / "failures.jsonl").read_text()
    best = yaml.safe_load((exp / "best_configs.yaml").read_text())
    assert list(best["methods"]) == [METHOD]
    assert list(best["methods"][METHOD]) == [SETTING]
    sel = best["methods"][METHOD][SETTING]
    cfg = sel["config"]
    assert cfg["method"] == METHOD and cfg["dataset"] == "arrays"
    assert cfg["dataset_options"]["path"] == str((user_dir / "arrays.npz").resolve())
    assert cfg["noise_type"] == "symmetric" and cfg["noise_rate"] == 0.4 and cfg["epochs"] == EPOCHS
    assert isinstance(cfg["t"], int) and 1 <= cfg["t"] <= 6  # the plugin's own key, searched
    trials = [_history(d) for d in _run_dirs(exp / "search" / METHOD / SETTING)]
    assert len(trials) == NUM_SAMPLES
    full = [t for t in trials if len(t) == EPOCHS]
    assert full, "no trial ran to the last epoch"
    assert sel["proxy_best"] == pytest.approx(max(r["proxy"] for t in full for r in t))


@pytest.mark.parametrize("backend", BACKENDS)
def test_finals_table_agrees_with_each_seeds_results(cli_search, backend):
    """finals.csv: one row per seed for "taylor_ce:TaylorCE"; accuracies in [0, 1]; ``best`` is the test
    accuracy at the first epoch of maximal proxy of that seed's result.json, ``last`` the mean of
    the last ``last_k`` epochs, ``oracle_max`` the maximum; each run went to the last epoch. The
    data is learnable: every seed's selected test accuracy is well above chance (1/5)."""
    exp, _ = cli_search(backend)
    rows = _finals_csv(exp)
    assert {r["method"] for r in rows} == {METHOD} and {r["setting"] for r in rows} == {SETTING}
    by_seed = {int(r["seed"]): r for r in rows}
    assert len(rows) == SEEDS and sorted(by_seed) == list(range(1, SEEDS + 1))
    runs = _run_dirs(exp / "finals" / METHOD / SETTING)
    assert len(runs) == SEEDS
    for d in runs:
        hist = _history(d)
        assert [h["epoch"] for h in hist] == list(range(1, EPOCHS + 1)), d
        seed = hist[-1]["config"]["seed"]
        row = by_seed[seed]
        for k in ("best", "last", "oracle_max", "proxy"):
            assert 0.0 <= float(row[k]) <= 1.0, (k, row)
        i = max(range(len(hist)), key=lambda j: (hist[j]["proxy"], -j))  # first maximum of the proxy
        assert float(row["best"]) == pytest.approx(hist[i]["test_acc"]), (d, row)
        assert int(row["best_epoch"]) == hist[i]["epoch"]
        assert float(row["proxy"]) == pytest.approx(hist[i]["proxy"])
        tail = [h["test_acc"] for h in hist[-LAST_K:]]
        assert float(row["last"]) == pytest.approx(sum(tail) / len(tail))
        assert float(row["oracle_max"]) == pytest.approx(max(h["test_acc"] for h in hist))
        assert int(row["epochs"]) == EPOCHS
        assert float(row["best"]) > 2.0 / CLASSES, f"seed {seed}: test accuracy {row['best']} is near chance"


@pytest.mark.parametrize("backend", BACKENDS)
def test_study_is_named_by_the_import_path_and_starts_with_the_paper(cli_search, backend):
    from tune_lnl.results.runs import open_study
    exp, _ = cli_search(backend)
    study = open_study(exp, KEY)
    assert study.study_name == KEY
    states = [t.state.name for t in study.trials]
    assert len(states) == NUM_SAMPLES and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert "COMPLETE" in states
    assert study.trials[0].params == pytest.approx(PAPER)
    points = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(points) == NUM_SAMPLES, [t.params for t in study.trials]  # no point sampled twice


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoints_name_the_plugin_and_fit_the_data(cli_search, backend):
    """Every search trial and final run has a checkpoint whose "method" is the import path; the
    MLP inside reads 3 x 32 x 32 inputs and has 5 outputs (taken from the archive)."""
    exp, _ = cli_search(backend)
    runs = _run_dirs(exp / "search" / METHOD / SETTING) + _run_dirs(exp / "finals" / METHOD / SETTING)
    assert len(runs) == NUM_SAMPLES + SEEDS
    for d in runs:
        files = _checkpoints(d)
        assert files, f"{d}: no checkpoint"
        state = torch.load(files[-1], map_location="cpu", weights_only=False)
        assert state["method"] == METHOD, files[-1]
        assert state["config"]["method"] == METHOD
    weights = [v for k, v in state["method_state"]["net"].items() if k.endswith("weight") and v.dim() == 2]
    assert weights[0].shape[1] == 3 * SIZE * SIZE and weights[-1].shape[0] == CLASSES


@pytest.mark.parametrize("backend", BACKENDS)
def test_report_and_tensorboard_runs(cli_search, backend):
    """report/report.html is written (and announced); TensorBoard has one run folder per search
    trial and per final run, under the import path (Ray names a trial folder after its run)."""
    exp, proc = cli_search(backend)
    assert (exp / "report" / "report.html").is_file()
    assert f"report: {exp / 'report' / 'report.html'}" in proc.stdout
    for part in ("search", "finals"):
        tb = exp / "tensorboard" / part / METHOD / SETTING
        tb_runs = [p.name for p in tb.iterdir() if p.is_dir() and any(p.glob("events.out.tfevents.*"))] \
            if tb.exists() else []
        runs = _run_dirs(exp / part / METHOD / SETTING)
        assert len(tb_runs) == len(runs) == (NUM_SAMPLES if part == "search" else SEEDS), (part, tb_runs, runs)
        for d in runs:
            assert any(d.name == r or d.name.startswith(r + "_") for r in tb_runs), (d.name, tb_runs)


# -- c. kill + resume --------------------------------------------------------------------------
def test_sigkill_mid_trial_then_resume(user_dir, data_root, tmp_path):
    """SIGKILL the search's process group while a sampled trial (not the paper's trial 0) is
    between its first and last epoch; ``--resume`` completes it: the killed trial is continued
    from its checkpoint, the study has its trials, every run's epochs are contiguous from 1 (at
    most one epoch redone), what was reported before the kill is kept, the finals ran once, and
    the resumed search samples no point twice."""
    from tune_lnl.results.runs import open_study
    exp = tmp_path / EXP
    search = exp / "search" / METHOD / SETTING
    cmd = _search_cmd(tmp_path, data_root, "optuna", "--workers", "1")
    log_path = tmp_path / "search.log"

    def mid_run() -> bool:
        return any(d.name != "trial_0000" and 1 <= len(_lines(d)) < EPOCHS for d in _run_dirs(search))
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=user_dir, env=_env(user_dir), stdout=log, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            t0 = time.monotonic()
            while not mid_run():
                assert proc.poll() is None, ("the search ended before it could be killed:\n"
                                             + log_path.read_text()[-3000:])
                assert time.monotonic() - t0 < 600, "no trial was ever seen mid-run"
                time.sleep(0.01)
        finally:
            _stop_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not (search / ".done").exists() and not (exp / "finals.csv").exists()
    before = {d.name: [h["epoch"] for h in _lines(d)] for d in _run_dirs(search)}
    time.sleep(1.0)  # the kernel releases the experiment lock with the last process of the group

    out = _run(cmd + ["--resume"], user_dir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    if any(len(seq) < EPOCHS for seq in before.values()):
        assert "a new worker continues it from its checkpoint" in out.stdout, (before, out.stdout[-3000:])
    assert not (exp / "failures.jsonl").exists()
    study = open_study(exp, KEY)
    states = [t.state.name for t in study.trials]
    assert len(states) == NUM_SAMPLES and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert study.trials[0].params == pytest.approx(PAPER)
    trials = _run_dirs(search)
    assert len(trials) == NUM_SAMPLES, [d.name for d in trials]
    for d in trials + _run_dirs(exp / "finals" / METHOD / SETTING):
        seq = [h["epoch"] for h in _lines(d)]
        assert seq and seq[0] == 1, (d, seq)
        assert {b - a for a, b in zip(seq, seq[1:])} <= {0, 1}, (d, seq)  # at most the unsaved epoch redone
        assert len(seq) - len(set(seq)) <= 1, (d, seq)
    for name, seq in before.items():
        assert [h["epoch"] for h in _lines(search / name)][:len(seq)] == seq, name
    finals = _run_dirs(exp / "finals" / METHOD / SETTING)
    assert len(finals) == SEEDS  # one folder per seed: the finals ran once
    for d in finals:
        assert [h["epoch"] for h in _lines(d)] == list(range(1, EPOCHS + 1)), d
    assert len((exp / "finals.csv").read_text().splitlines()) == 1 + SEEDS
    # a resumed search must not spend a trial on a point it already tried (a worker started after the
    # kill must not replay the random start-up draws of the killed one)
    params = [t.params for t in study.trials]
    assert len({tuple(sorted(p.items())) for p in params}) == NUM_SAMPLES, (
        f"after SIGKILL + --resume a new trial re-sampled an earlier trial's hyperparameters: {params} "
        f"(killed with {before})")


# -- in-process use of the plugin -------------------------------------------------------------
@pytest.fixture
def in_process(user_dir, monkeypatch):
    """The user's folder on this process's path (and as cwd) for one test; afterwards the path,
    PYTHONPATH, the imported ``taylor_ce`` module and tune_lnl's resolution caches are as before."""
    from tune_lnl import plugins
    from tune_lnl.data import registry as data_registry
    from tune_lnl.methods import registry as method_registry
    had_taylor = "taylor_ce" in sys.modules
    monkeypatch.syspath_prepend(str(user_dir))  # sys.path restored afterwards (also what run() appends)
    monkeypatch.chdir(user_dir)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # run() exports the plugin folders
    monkeypatch.setattr(method_registry, "_resolved", dict(method_registry._resolved))
    monkeypatch.setattr(data_registry, "_instances", dict(data_registry._instances))
    monkeypatch.setattr(plugins, "_roots", set(plugins._roots))
    yield user_dir
    if not had_taylor:
        sys.modules.pop("taylor_ce", None)


def test_exact_resume_of_the_plugin_method(in_process, data_root, tmp_path, monkeypatch):
    """4 epochs straight == 2 epochs + save to a file + load into a fresh object + 2 epochs: the
    same history numbers (timings aside) and the same weights, optimizer state and RNG. (The
    space is loaded from another working folder: the archive's relative path is taken from the
    space file's folder.)"""
    from method_helpers import TIMING as HELPER_TIMING
    from method_helpers import assert_exact_resume

    from tune_lnl.config import load_space
    from tune_lnl.methods import method_class
    cls = method_class(METHOD)
    assert cls.__module__ == "taylor_ce" and cls.__name__ == "TaylorCE"
    monkeypatch.chdir(tmp_path)
    cfg = load_space(in_process / "space.yaml", smoke_mode=True).paper_config(SETTING, str(data_root))
    assert cfg["dataset_options"]["path"] == str((in_process / "arrays.npz").resolve())
    cfg.update(epochs=4, device="cpu", seed=5)
    assert cfg["method"] == METHOD and cfg["t"] == PAPER["t"] and cfg["lr"] == PAPER["lr"]
    assert HELPER_TIMING == TIMING
    made = []

    def make():
        made.append(cls(dict(cfg)))
        return made[-1]
    path = tmp_path / "half.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the backends' workers (and faster on a busy machine)
    try:
        straight = assert_exact_resume(make, path, epochs=4)
    finally:
        torch.set_num_threads(threads)
        for m in made:
            m.close()
    assert [h["epoch"] for h in straight.history] == [1, 2, 3, 4]
    assert torch.load(path, map_location="cpu", weights_only=False)["method"] == METHOD


def test_api_run_matches_the_cli(cli_search, in_process, data_root, tmp_path):
    """``tune_lnl.run`` (in-process, absolute paths) == ``python -m tune_lnl.search`` (both
    ``--backend optuna --workers 1``): the same selected hyperparameters and proxy_best, the same
    finals numbers per seed; the Result points at the experiment folder and its report."""
    import tune_lnl
    cli_exp, _ = cli_search("optuna")
    storage = tmp_path / "api"
    result = tune_lnl.run(str(in_process / "space.yaml"), smoke=True, backend="optuna", workers=1,
                          storage_path=str(storage), data_root=str(data_root))
    assert isinstance(result, tune_lnl.Result)
    assert Path(result.path) == (storage / EXP).resolve()
    assert result.report is not None and Path(result.report) == Path(result.path) / "report" / "report.html"
    assert Path(result.report).is_file()
    cli_best = yaml.safe_load((cli_exp / "best_configs.yaml").read_text())["methods"]
    assert list(result.best_configs) == [METHOD]
    api_sel, cli_sel = result.best_configs[METHOD][SETTING], cli_best[METHOD][SETTING]
    assert result.best_config(METHOD, SETTING) == api_sel["config"]
    assert {k: api_sel["config"][k] for k in PAPER} == {k: cli_sel["config"][k] for k in PAPER}
    assert api_sel["proxy_best"] == cli_sel["proxy_best"]
    assert api_sel["optuna_trial"] == cli_sel["optuna_trial"]
    # tune_lnl.train of the selected config with seed 1 replays that final run, epoch by epoch
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the backend's workers
    try:
        history = tune_lnl.train(result.best_config(METHOD, SETTING), seed=1)
    finally:
        torch.set_num_threads(torch_threads)
    final = _history(Path(result.path) / "finals" / METHOD / SETTING / "seed_1")
    assert len(history) == len(final) == EPOCHS
    for mine, logged in zip(history, final):
        assert {k: v for k, v in mine.items() if k not in TIMING} == \
            {k: logged[k] for k in mine if k not in TIMING}, (mine, logged)
    # finals: the DataFrame is the API run's finals.csv, whose numbers are the CLI run's
    df = result.finals
    assert list(df["method"]) == [METHOD] * SEEDS and sorted(df["seed"]) == list(range(1, SEEDS + 1))
    api_rows = {int(r["seed"]): r for r in _finals_csv(Path(result.path))}
    cli_rows = {int(r["seed"]): r for r in _finals_csv(cli_exp)}
    assert api_rows.keys() == cli_rows.keys()
    for seed in api_rows:
        for k in ("best", "best_epoch", "last", "oracle_max", "proxy"):
            assert api_rows[seed][k] == cli_rows[seed][k], (seed, k, api_rows[seed][k], cli_rows[seed][k])
        frame = df[df["seed"] == seed].iloc[0]
        for k in ("best", "last", "oracle_max"):
            assert float(frame[k]) == pytest.approx(float(api_rows[seed][k]), abs=1e-12)


# -- f. bad input: the API's exception == the CLI's message -------------------------------------
BAD = {
    "no_module": ("method", "no_such_module:X", "ConfigError"),
    "no_class": ("method", "taylor_ce:NoSuchClass", "ConfigError"),
    "no_archive": ("dataset", {"type": "arrays", "path": "missing.npz"}, "DataError"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_what_the_cli_prints(in_process, data_root, tmp_path, case):
    import tune_lnl
    key, value, error = BAD[case]
    raw = yaml.safe_load(SPACE_YAML)
    raw[key] = value
    space = in_process / f"bad_{case}.yaml"
    space.write_text(yaml.safe_dump(raw, sort_keys=False))
    storage = tmp_path / "results"
    with pytest.raises(getattr(tune_lnl, error)) as exc:
        tune_lnl.run(str(space), smoke=True, backend="optuna", workers=1, storage_path=str(storage),
                     data_root=str(data_root))
    msg = str(exc.value)
    assert str(value if isinstance(value, str) else space.parent / "missing.npz") in msg, msg
    proc = _run([sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--smoke", "--backend", "optuna",
                 "--workers", "1", "--storage-path", str(storage), "--data-root", str(data_root)], in_process,
                timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {msg}", proc.stderr
    assert not (storage / EXP / "experiment.yaml").exists()  # refused before any work


def test_bad_method_in_a_dict_names_the_dict(in_process, data_root, tmp_path):
    import tune_lnl
    raw = yaml.safe_load(SPACE_YAML)
    raw["method"] = "no_such_module:X"
    raw["dataset"]["path"] = str(in_process / "arrays.npz")  # a dict has no folder of its own
    with pytest.raises(tune_lnl.ConfigError) as exc:
        tune_lnl.run(raw, smoke=True, backend="optuna", storage_path=str(tmp_path), data_root=str(data_root))
    msg = str(exc.value)
    assert msg.startswith("<space dict>: method") and "'no_such_module:X'" in msg and "no_such_module" in msg, msg
