"""Committed evidence is machine-independent (issue 27, item 7): ``experiment.yaml`` (and
``best_configs.yaml``) record the space file's path, and a noise matrix file's, relative to the
space file's repository (its git root; else the current directory), so that an experiment
committed under ``docs/results/`` names no folder of the machine that ran it; ``--resume``
still accepts it -- from the same checkout, from a copy of it elsewhere (another machine), and
when its ``experiment.yaml`` was written with absolute paths (by an earlier version)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_spaces import ENV, tiny_space

from tune_lnl.results.runs import portable_path, repository_root

SETTING = "custom"
#: the cheapest search: one setting whose noise is a matrix FILE (a second path the record
#: holds), 2 trials and 1 final seed of 2 epochs on 500 images
SPACE = tiny_space(SETTING, {"type": "matrix", "path": "T.npy"}, "narrow")
NAME = "tiny-smoke"


def _is_absolute(text: str) -> bool:
    """A path of some machine: POSIX or Windows absolute, or under a home folder."""
    return text.startswith(("/", "~", "\\")) or (len(text) > 2 and text[1] == ":" and text[2] in "/\\")


def _strings(value):
    """Every string in a parsed YAML document (keys and values, nested)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _search(space: Path, storage: Path, data_root, cwd, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--smoke", "--backend", "optuna",
           "--workers", "1", "--data-root", str(data_root), "--storage-path", str(storage), *extra]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600,
                          check=False)


# -- portable_path --------------------------------------------------------------------------

def test_a_path_inside_the_root_is_recorded_relative_to_it(tmp_path):
    assert portable_path(tmp_path / "spaces" / "x.yaml", tmp_path) == "spaces/x.yaml"


def test_a_path_outside_the_root_is_recorded_as_given(tmp_path):
    outside = tmp_path.parent / "elsewhere" / "x.yaml"
    assert portable_path(outside, tmp_path / "repo") == str(outside)


def test_a_relative_path_and_none_stay_as_they_are(tmp_path):
    assert portable_path("spaces/x.yaml", tmp_path) == "spaces/x.yaml"
    assert portable_path(None, tmp_path) is None


def test_the_root_is_the_git_repository_else_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "spaces").mkdir()
    (tmp_path / "loose").mkdir()
    assert repository_root(tmp_path / "repo" / "spaces" / "x.yaml") == (tmp_path / "repo").resolve()
    assert portable_path(tmp_path / "repo" / "spaces" / "x.yaml") == "spaces/x.yaml"
    monkeypatch.chdir(tmp_path / "loose")
    assert repository_root(tmp_path / "loose" / "x.yaml") == (tmp_path / "loose").resolve()
    assert portable_path(tmp_path / "loose" / "a" / "x.yaml") == "a/x.yaml"


# -- a search and its --resume --------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory, repo, data_root):
    """A tiny finished ``--backend optuna --smoke`` search whose space file and matrix file lie
    in a git repository of their own (``<tmp>/checkout/spaces/``), run from the project's
    folder (another current directory): ``(checkout, space file, experiment folder)``."""
    checkout = tmp_path_factory.mktemp("machine") / "checkout"
    (checkout / "spaces").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(checkout)], check=True, capture_output=True)
    np.save(checkout / "spaces" / "T.npy", 0.8 * np.eye(10) + 0.2 * np.roll(np.eye(10), 1, axis=1))
    space = checkout / "spaces" / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    proc = _search(space, checkout / "store", data_root, repo)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return checkout, space, checkout / "store" / NAME


def test_the_experiment_records_no_path_of_the_machine(finished, repo):
    checkout, _, exp = finished
    text = (exp / "experiment.yaml").read_text()
    for machine_path in (str(checkout), str(checkout.parent), str(repo), "/work"):
        assert machine_path not in text, machine_path
    man = yaml.safe_load((exp / "experiment.yaml").read_text())
    assert man["space_file"] == "spaces/tiny.yaml"
    assert man["noise_options"][SETTING]["path"] == "spaces/T.npy"
    assert len(man["noise_options"][SETTING]["sha256"]) == 64  # the content still identifies the file
    assert not [s for s in _strings(man) if _is_absolute(s)]
    # (best_configs.yaml's run configs keep their absolute data_root and matrix path: tune_lnl.train runs them)
    assert yaml.safe_load((exp / "best_configs.yaml").read_text())["space_file"] == "spaces/tiny.yaml"


def test_resume_accepts_the_relative_record(finished, data_root, repo):
    _, space, exp = finished
    proc = _search(space, exp.parent, data_root, repo, "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert yaml.safe_load((exp / "experiment.yaml").read_text())["space_file"] == "spaces/tiny.yaml"


def test_resume_of_a_copy_on_another_machine(finished, tmp_path, data_root):
    """The checkout copied elsewhere (another machine's folder) and resumed there, from its own
    folder: the record names the same files, so it is the same experiment."""
    checkout, _, _ = finished
    copy = tmp_path / "other-machine" / "checkout"
    shutil.copytree(checkout, copy, symlinks=True)
    proc = _search(Path("spaces/tiny.yaml"), Path("store"), data_root, copy, "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = (copy / "store" / NAME / "experiment.yaml").read_text()
    assert str(tmp_path) not in text and str(checkout) not in text


def test_resume_accepts_a_record_with_absolute_paths(finished, tmp_path, data_root, repo):
    """An experiment.yaml written before paths were recorded relative (absolute paths of this
    machine) is still the same experiment; the resumed search records the paths relative."""
    checkout, _, _ = finished
    copy = tmp_path / "checkout"
    shutil.copytree(checkout, copy, symlinks=True)
    man_path = copy / "store" / NAME / "experiment.yaml"
    man = yaml.safe_load(man_path.read_text())
    man["space_file"] = str(copy / "spaces" / "tiny.yaml")
    man["noise_options"][SETTING]["path"] = str(copy / "spaces" / "T.npy")
    man_path.write_text(yaml.safe_dump(man, sort_keys=False))
    proc = _search(copy / "spaces" / "tiny.yaml", copy / "store", data_root, repo, "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert yaml.safe_load(man_path.read_text())["noise_options"][SETTING]["path"] == "spaces/T.npy"


def test_resume_still_refuses_another_matrix_file(finished, tmp_path, data_root, repo):
    """Portable paths do not loosen --resume: the same space text naming an edited matrix file is
    another experiment."""
    checkout, _, _ = finished
    copy = tmp_path / "checkout"
    shutil.copytree(checkout, copy, symlinks=True)
    np.save(copy / "spaces" / "T.npy", np.eye(10))
    proc = _search(copy / "spaces" / "tiny.yaml", copy / "store", data_root, repo, "--resume")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "holds a different experiment" in proc.stderr


# -- the committed evidence -----------------------------------------------------------------

def test_committed_experiments_hold_no_absolute_path(repo):
    files = sorted((repo / "docs" / "results").glob("**/experiment.yaml"))
    assert len(files) >= 10  # the committed experiments are found
    for f in files + sorted((repo / "docs" / "results").glob("**/best_configs.yaml")):
        doc = yaml.safe_load(f.read_text())
        if "space_file" in doc:
            assert not _is_absolute(str(doc["space_file"])), f
            assert (repo / doc["space_file"]).is_file(), f  # relative to this repository
    for f in files:
        absolute = [s for s in _strings(yaml.safe_load(f.read_text())) if _is_absolute(s)]
        assert not absolute, (f, absolute)
