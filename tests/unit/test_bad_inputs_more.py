"""More bad inputs (issue 26, items 6-10), each refused with a typed error before any work:

* trial resources of 0 or below (``search.cpus_per_trial``, ``gpus_per_trial``), and a worker
  count derived from the resources never above :data:`MAX_WORKERS`;
* YAML: a key given twice, an alias bomb, a value too long to print whole;
* the Python API (:func:`tune_lnl.run`, :func:`tune_lnl.train`): every argument of the wrong
  type is a :class:`ConfigError` naming it, and a refused run leaves no folder behind;
* ``tune_lnl.train`` / ``python -m tune_lnl.train``: epochs below 1, a device that is no device
  here, a checkpoint path that cannot be written; the per-epoch lines come from the API;
* a dataset too small for its splits, labels beyond any class count.

Command-line rows check exit code 2, a one-line ``error: ...`` and no traceback; API rows check
the error's class and that the storage folder stays absent."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_bad_inputs import MLC, _space  # mlc_mnist.yaml, and it mutated into a temporary file

import tune_lnl
from tune_lnl.cli import search_main, train_main
from tune_lnl.config import load_experiment, load_space
from tune_lnl.errors import ConfigError, DataError

LR_SPACE = {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}


# -- helpers ------------------------------------------------------------------------------------
def _text(tmp_path, text: str, name="space.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _line_of(text: str, line: str) -> int:
    """1-based number of the first line of ``text`` equal to ``line``."""
    return text.splitlines().index(line) + 1


def _duplicate_top_level(tmp_path):
    """mlc_mnist.yaml with ``dataset: mnist`` given again at the end."""
    text = MLC.read_text()
    first = _line_of(text, "dataset: mnist")
    text = text.rstrip("\n") + "\ndataset: mnist\n"
    return _text(tmp_path, text), f"key 'dataset' is given twice (lines {first} and {len(text.splitlines())})"


def _duplicate_nested(tmp_path):
    """mlc_mnist.yaml with ``lr`` given twice under ``fixed:``."""
    lines = MLC.read_text().splitlines()
    first = lines.index("  lr: 1.0e-3") + 1
    at = lines.index("  augment: true") + 1
    lines.insert(at, "  lr: 0.1")
    return _text(tmp_path, "\n".join(lines) + "\n"), f"key 'lr' is given twice (lines {first} and {at + 1})"


#: nested aliases: 9 ** 7 strings from 63 written values (two levels more: a 2 GB error message today)
BILLION_LAUGHS = """\
name: bomb
method: mlc
dataset: mnist
settings:
- &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
- &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
- &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
- &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
- &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
- &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


def _npz(folder: Path, n: int = 100, labels=None, n_test: int = 20, classes: int = 5) -> Path:
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", train_images=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
             train_labels=np.arange(n) % classes if labels is None else labels,
             test_images=rng.integers(0, 256, (n_test, 8, 8), dtype=np.uint8),
             test_labels=np.arange(n_test) % classes)
    return folder / "data.npz"


def _arrays_space(folder: Path, dataset=None, **top) -> Path:
    """A one-method (ce) space over ``data.npz`` (one epoch of a small MLP, on the CPU)."""
    raw = {"name": "open", "method": "ce", "dataset": dataset or {"type": "arrays", "path": "data.npz"},
           "device": "cpu", **top,
           "fixed": {"epochs": 1, "batch_size": 16, "augment": False, "model": "mlp"},
           "space": LR_SPACE, "paper": {"lr": 1.0e-3},
           "settings": {"sym-0.2": {"noise": {"type": "symmetric", "rate": 0.2}}}}
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _tiny_arrays(t):
    _npz(t, n=5, classes=2)
    return _arrays_space(t)


def _huge_label(t):
    _npz(t, labels=np.r_[np.arange(99) % 5, 10 ** 12])
    return _arrays_space(t)


def _huge_num_classes(t):
    _npz(t)
    return _arrays_space(t, dataset={"type": "arrays", "path": "data.npz", "num_classes": 10 ** 9})


def _cli_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line
    return err


# -- 1. python -m tune_lnl.search: refused with exit 2, naming file, key and value ---------------
# (id, make(tmp_path) -> (space file, substrings the message must contain))
SEARCH_CASES = [
    ("cpus-per-trial-zero", lambda t: (_space(t, lambda r: r["search"].update(cpus_per_trial=0)),
                                       ["space.yaml", "search.cpus_per_trial", "(got 0)", "> 0"])),
    ("cpus-per-trial-negative", lambda t: (_space(t, lambda r: r["search"].update(cpus_per_trial=-2)),
                                           ["space.yaml", "search.cpus_per_trial", "(got -2)"])),
    ("gpus-per-trial-negative", lambda t: (_space(t, lambda r: r["search"].update(gpus_per_trial=-0.5)),
                                           ["space.yaml", "search.gpus_per_trial", "(got -0.5)", ">= 0"])),
    ("duplicate-top-level-key", lambda t: (lambda p_msg: (p_msg[0], ["space.yaml", p_msg[1]]))(
        _duplicate_top_level(t))),
    ("duplicate-nested-key", lambda t: (lambda p_msg: (p_msg[0], ["space.yaml", p_msg[1]]))(_duplicate_nested(t))),
    ("alias-bomb", lambda t: (_text(t, BILLION_LAUGHS), ["space.yaml", "aliases", "expand"])),
    ("value-too-long-to-print", lambda t: (_space(t, lambda r: r.update(device="x" * 100_000)),
                                           ["space.yaml", "device", "'xxxx", "characters"])),
    ("arrays-too-small-for-its-splits", lambda t: (_tiny_arrays(t),
                                                   ["data.npz", "5 training images", "10%", "val_fraction"])),
    ("arrays-label-beyond-any-class-count", lambda t: (_huge_label(t),
                                                       ["data.npz", "train_labels", "1000000000000"])),
    ("arrays-num-classes-beyond-any-class-count", lambda t: (_huge_num_classes(t),
                                                             ["num_classes", "1000000000"])),
]


@pytest.mark.parametrize("case,make", SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES])
def test_search_cli_refuses(tmp_path, capsys, monkeypatch, case, make):
    """An empty data folder and a budget of one: were the input let through, the data check (or
    a search of one trial) would end the call."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nodata").mkdir()
    space, expected = make(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        search_main(["--space", str(space), "--storage-path", str(tmp_path / "results"), "--backend", "optuna",
                     "--data-root", str(tmp_path / "nodata"), "--num-samples", "1", "--seeds", "1"])
    assert exit_info.value.code == 2
    err = _cli_error(capsys)
    assert len(err) < 1500, f"{len(err)} characters: {err[:300]}..."
    for part in expected:
        assert part in err, (part, err)
    assert not (tmp_path / "results").exists()


def test_ordinary_anchors_aliases_and_merge_keys_still_load(tmp_path):
    """What YAML anchors are for (a shared mapping, a merge key overriding one of its values)
    loads as before: a key given by a merge ``<<`` and again beside it is no duplicate."""
    text = MLC.read_text().replace("    noise: {type: symmetric, rate: 0.2}",
                                   "    noise: &sym {type: symmetric, rate: 0.2}")
    text = text.replace("    noise: {type: symmetric, rate: 0.4}", "    noise: {<<: *sym, rate: 0.4}")
    exp = load_experiment(_text(tmp_path, text))
    assert [(s.noise_type, s.noise_rate) for s in exp.first.settings.values()][:2] == [("symmetric", 0.2),
                                                                                        ("symmetric", 0.4)]


# -- 2. derived worker counts ------------------------------------------------------------------
def test_trial_slots_never_exceed_the_maximum():
    from tune_lnl.search.studies import MAX_WORKERS, slots
    assert MAX_WORKERS == 256
    assert slots(2, 0, 1e-6, 0)[1] == 256       # 2 / 1e-6 trials asked: capped
    assert slots(2, 4, 1e-6, 1e-9)[1] == 256
    assert slots(8, 0, 2, 0) == (2.0, 4)       # an ordinary request is unchanged
    assert slots(8, 1, 1, 0.25) == (1.0, 4)


def test_optuna_workers_never_exceed_the_maximum(tmp_path):
    from tune_lnl.search.optuna_backend import workers_for
    space = load_space(_space(tmp_path, lambda r: (r["search"].update(cpus_per_trial=1e-6), r.update(device="cpu"))))
    n, threads = workers_for(space)
    assert n == 256 and threads == 1


def test_no_gpu_share_is_accepted(tmp_path):
    """gpus_per_trial 0: trials ask for no GPU share (legitimate, unlike a negative one)."""
    exp = load_experiment(_space(tmp_path, lambda r: r["search"].update(gpus_per_trial=0)))
    assert exp.first.search.gpus_per_trial == 0


# -- 3. tune_lnl.run: every argument of the wrong type --------------------------------------------
# (id, keyword arguments, substrings the message must contain)
RUN_CASES = [
    ("space-none", {"space": None}, ["space", "None"]),
    ("space-number", {"space": 3}, ["space", "3"]),
    ("data-root-number", {"data_root": 5}, ["data_root", "5"]),
    ("storage-path-none", {"storage_path": None}, ["storage_path", "None"]),
    ("num-samples-bool", {"num_samples": True}, ["num_samples", "True"]),
    ("num-samples-str", {"num_samples": "3"}, ["num_samples", "'3'"]),
    ("methods-number", {"methods": 5}, ["methods", "5"]),
    ("methods-list-of-numbers", {"methods": ["mlc", 5]}, ["methods", "5"]),
    ("methods-single-unknown-name", {"methods": "nope"}, ["--methods", "'nope'", "mlc"]),
    ("settings-number", {"settings": 5}, ["settings", "5"]),
    ("seeds-bool", {"seeds": True}, ["seeds", "True"]),
    ("seeds-float", {"seeds": 2.0}, ["seeds", "2.0"]),
    ("resume-str", {"resume": "yes"}, ["resume", "'yes'", "True or False"]),
    ("backend-none", {"backend": None}, ["backend", "None"]),
    ("workers-str", {"workers": "2"}, ["workers", "'2'"]),
    ("workers-bool", {"workers": True}, ["workers", "True"]),
    ("address-number", {"address": 6379}, ["address", "6379"]),
    ("paper-only-int", {"paper_only": 1}, ["paper_only", "1", "True or False"]),
    ("smoke-str", {"smoke": "no"}, ["smoke", "'no'"]),
    ("one-study-at-a-time-none", {"one_study_at_a_time": None}, ["one_study_at_a_time", "None"]),
]


@pytest.mark.parametrize("case,kwargs,expected", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_refuses_an_argument_of_the_wrong_type(tmp_path, monkeypatch, case, kwargs, expected):
    """An empty data folder: were an argument let through, the data check would stop the call
    with a DataError (never a search)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nodata").mkdir()
    args = {"space": str(MLC), "data_root": str(tmp_path / "nodata"), "storage_path": str(tmp_path / "results"),
            "backend": "optuna", **kwargs}
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(args.pop("space"), **args)
    for part in expected:
        assert part in str(info.value), (part, str(info.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nodata"]  # no results/ (nor ./results)


def test_run_takes_a_single_method_name_as_one_method(tmp_path):
    """``methods="mlc"`` names one method (not the methods 'm', 'l', 'c'): the call goes on to
    the next check, here a storage path that cannot be written."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(str(MLC), methods="mlc", settings="sym-0.2", storage_path=str(blocker / "sub"),
                     backend="optuna", paper_only=True)
    assert "--storage-path" in str(info.value) and "cannot write" in str(info.value)


# -- 4. tune_lnl.train: every argument of the wrong type or value ---------------------------------
# (id, keyword arguments, substrings the message must contain)
TRAIN_CASES = [
    ("config-none", {"config": None}, ["config", "None"]),
    ("setting-number", {"setting": 2}, ["setting", "2"]),
    ("method-number", {"method": 1}, ["method", "1"]),
    ("data-root-number", {"data_root": 5}, ["data_root", "5"]),
    ("seed-str", {"seed": "1"}, ["seed", "'1'"]),
    ("seed-negative", {"seed": -1}, ["seed", "-1"]),
    ("epochs-zero", {"epochs": 0}, ["epochs", "0", "at least 1"]),
    ("epochs-negative", {"epochs": -5}, ["epochs", "-5", "at least 1"]),
    ("epochs-bool", {"epochs": True}, ["epochs", "True"]),
    ("device-unknown", {"device": "banana"}, ["device", "'banana'", "cuda:N"]),
    ("device-absent-gpu", {"device": "cuda:99"}, ["device", "'cuda:99'"]),
    ("device-number", {"device": 0}, ["device", "0"]),
    ("smoke-str", {"smoke": "yes"}, ["smoke", "'yes'"]),
    ("checkpoint-number", {"checkpoint": 5}, ["checkpoint", "5"]),
    ("checkpoint-in-a-missing-folder", {"checkpoint": "{tmp}/absent/final.pt"},
     ["checkpoint", "absent", "no such folder"]),
    ("checkpoint-is-a-folder", {"checkpoint": "{tmp}"}, ["checkpoint", "is a folder"]),
    ("on-start-not-callable", {"on_start": 5}, ["on_start", "5", "callable"]),
    ("on-epoch-not-callable", {"on_epoch": "print"}, ["on_epoch", "'print'", "callable"]),
    ("quiet-str", {"quiet": "yes"}, ["quiet", "'yes'"]),
]


@pytest.mark.parametrize("case,kwargs,expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_a_bad_argument(tmp_path, case, kwargs, expected):
    """An empty data folder: were an argument let through, loading the data would stop the call
    with a DataError (never a training)."""
    (tmp_path / "nodata").mkdir()
    kwargs = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in kwargs.items()}
    args = {"config": str(MLC), "setting": "sym-0.2", "data_root": str(tmp_path / "nodata"), "smoke": True, **kwargs}
    with pytest.raises(ConfigError) as info:
        tune_lnl.train(args.pop("config"), args.pop("setting"), **args)
    for part in expected:
        assert part.replace("{tmp}", str(tmp_path)) in str(info.value), (part, str(info.value))


# -- 5. python -m tune_lnl.train: exit 2, one line, no traceback ---------------------------------
# (id, make(tmp_path) -> extra argv, substrings the message must contain)
TRAIN_CLI_CASES = [
    ("epochs-zero", lambda t: ["--epochs", "0"], ["--epochs", "0", "at least 1"]),
    ("epochs-negative", lambda t: ["--epochs", "-3"], ["--epochs", "-3", "at least 1"]),
    ("device-unknown", lambda t: ["--device", "banana"], ["--device", "'banana'", "cuda:N"]),
    ("device-absent-gpu", lambda t: ["--device", "cuda:99"], ["--device", "'cuda:99'"]),
    ("checkpoint-in-a-missing-folder", lambda t: ["--checkpoint", str(t / "absent" / "final.pt")],
     ["--checkpoint", "absent", "no such folder"]),
    ("checkpoint-is-a-folder", lambda t: ["--checkpoint", str(t)], ["--checkpoint", "is a folder"]),
    ("checkpoint-under-a-file", lambda t: ["--checkpoint", str(_text(t, "", "plain")) + "/final.pt"],
     ["--checkpoint", "plain", "not a folder"]),
]
if not torch.cuda.is_available():
    TRAIN_CLI_CASES.append(("device-cuda-without-gpu", lambda t: ["--device", "cuda"],
                            ["--device", "'cuda'", "no usable CUDA GPU"]))


@pytest.mark.parametrize("case,extra,expected", TRAIN_CLI_CASES, ids=[c[0] for c in TRAIN_CLI_CASES])
def test_train_cli_refuses(tmp_path, capsys, case, extra, expected):
    (tmp_path / "nodata").mkdir()
    rc = train_main(["--config", str(MLC), "--setting", "sym-0.2", "--smoke", "--data-root", str(tmp_path / "nodata"),
                     *extra(tmp_path)])
    assert rc == 2
    err = _cli_error(capsys)
    for part in expected:
        assert part in err, (part, err)


@pytest.mark.parametrize("make", [_duplicate_nested, _duplicate_top_level], ids=["nested", "top-level"])
def test_train_cli_refuses_a_duplicate_key(tmp_path, capsys, make):
    space, message = make(tmp_path)
    rc = train_main(["--config", str(space), "--setting", "sym-0.2", "--data-root", str(tmp_path)])
    assert rc == 2
    err = _cli_error(capsys)
    assert f"{space}: {message}" in err, err


def test_train_cli_refuses_a_dataset_too_small_for_its_splits(tmp_path, capsys):
    rc = train_main(["--config", str(_tiny_arrays(tmp_path)), "--setting", "sym-0.2", "--data-root", str(tmp_path)])
    assert rc == 2
    err = _cli_error(capsys)
    assert "data.npz" in err and "5 training images" in err, err


def test_a_split_left_empty_at_run_time_is_a_data_error(tmp_path):
    """Per-class rounding can leave the noisy hold-out empty where the total would not (10
    classes of 5 images: 0.1 x 5 rounds to 0 in each): the data is refused, never trained on
    with a proxy over no image."""
    from tune_lnl.data.splits import Arrays, make_noisy_data
    x = torch.zeros(50, 1, 2, 2, dtype=torch.uint8)
    y = torch.arange(50) % 10
    cfg = {"noise_type": "none", "noise_rate": 0.0, "noise_seed": 0, "proxy": "noisy_val", "val_fraction": 0.1,
           "dataset": "arrays"}
    with pytest.raises(DataError) as info:
        make_noisy_data(Arrays(x, y, x[:4], y[:4]), 10, cfg)
    assert "50 training images" in str(info.value) and "noisy validation" in str(info.value)


# -- 6. the per-epoch lines come from the API -----------------------------------------------------
EPOCH_LINE = re.compile(r"^epoch +(\d+)  proxy\(noisy_val\) \d\.\d{4}  best \d\.\d{4}@\d+  test \d\.\d{4}  "
                        r"time \d+\.\d\ds$")
START_LINE = re.compile(r"^ce on arrays sym-0\.2: \d+ train, \d+ noisy-val, 20 test; realised noise 0\.\d{4}; "
                        r"device cpu$")


def test_train_prints_its_epochs_unless_quiet(tmp_path, capsys):
    _npz(tmp_path)
    space = _arrays_space(tmp_path)
    seen = []
    tune_lnl.train(str(space), "sym-0.2", epochs=2, on_epoch=seen.append)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and START_LINE.match(lines[0]), lines
    assert [int(EPOCH_LINE.match(line).group(1)) for line in lines[1:]] == [1, 2], lines
    assert [m["epoch"] for m in seen] == [1, 2]  # the caller's callback still runs
    tune_lnl.train(str(space), "sym-0.2", epochs=1, quiet=True)
    assert capsys.readouterr().out == ""
    assert train_main(["--config", str(space), "--setting", "sym-0.2", "--epochs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and START_LINE.match(lines[0]) and EPOCH_LINE.match(lines[1]), lines


def test_a_taken_name_is_refused_in_the_callers_words(tmp_path):
    """A new experiment where one exists is refused before anything runs, naming the way to go on
    both for the command line (--resume, --name) and for Python (resume=True, name=...)."""
    _npz(tmp_path)
    space = _arrays_space(tmp_path)
    folder = tmp_path / "results" / "taken"
    folder.mkdir(parents=True)
    (folder / "experiment.yaml").write_text("space_file: elsewhere.yaml\n")
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(str(space), name="taken", storage_path=str(tmp_path / "results"), backend="optuna")
    message = str(info.value)
    assert "already holds an experiment" in message
    assert "resume=True" in message and "name=" in message and "--resume" in message
    assert (folder / "experiment.yaml").read_text() == "space_file: elsewhere.yaml\n"  # the record untouched
    assert not (folder / "search").exists() and not (folder / "finals").exists()


def test_smoke_says_when_a_file_sets_no_smoke_budget(tmp_path, data_root, capsys):
    """--smoke on a space whose smoke: section shrinks neither the data nor the epochs says so
    (it would otherwise train the full budget silently); a file that sets them is not noted."""
    from tune_lnl.search.experiment import checked_request
    base = {"name": "s", "method": "ce", "dataset": "mnist", "paper": {"lr": 1.0e-3},
            "space": {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
            "settings": {"sym-0.2": {"noise": {"type": "symmetric", "rate": 0.2}}}}
    args = dict(data_root=str(data_root), storage_path=str(tmp_path), name=None, num_samples=None, methods=None,
                settings=None, seeds=None, resume=False, backend="optuna", workers=None, address=None,
                paper_only=False, smoke=True, one_study_at_a_time=False, progress=None)
    checked_request({**args, "space": base})
    assert "--smoke keeps ce's whole training set and its full epochs" in capsys.readouterr().out
    checked_request({**args, "space": {**base, "smoke": {"train_subset": 500}}})
    assert "--smoke keeps" not in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # nothing written
