"""A full disk loses nothing, and damaged state files are explained, never tracebacked.

* Full disk (issue 26, item 4): a write that fails for lack of space (ENOSPC / EDQUOT) stops the
  search with ONE message naming the folder to free and saying to rerun with ``--resume``
  (exit 2, no traceback); the temporary files of cut-off writes are removed (at once, or on the
  next start); a journal ending in a record a write cut off is repaired when opened (a copy of
  it kept), so that ``--resume`` works after space is freed. For real on a small tmpfs (root
  only: skipped elsewhere), and by injecting ENOSPC (everywhere).
* Damaged files (item 5): a truncated, emptied or garbage ``optuna.journal``, ``optuna.db``,
  ``outcome.json``, ``experiment.yaml`` or ``result.json`` gives ``error: FILE is corrupt: what
  was expected; how to recover`` and exit 2 from ``python -m tune_lnl.search ... --resume``,
  ``python -m tune_lnl.report`` and ``python -m tune_lnl.fidelity`` (each where it reads the
  file), on copies of one tiny finished experiment.
"""
import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_spaces import ENV, tiny_space

SETTING = "sym-0.2"
KEY = f"ce/{SETTING}"
NAME = "tiny-smoke"
#: the cheapest search there is: one setting, 2 trials and 1 final seed of 2 epochs on 500 images
SPACE = tiny_space(SETTING, {"type": "symmetric", "rate": 0.2}, "narrow")
#: binary garbage (not UTF-8, newlines inside)
GARBAGE = bytes(range(256)) * 8


def _search_cmd(space: Path, storage: Path, data_root, *extra) -> list[str]:
    return [sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--smoke", "--backend", "optuna",
            "--workers", "1", "--data-root", str(data_root), "--storage-path", str(storage), *extra]


def _run(cmd, repo, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=repo, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, repo, data_root):
    """``(space file, experiment folder)`` of one tiny finished ``--backend optuna`` search."""
    root = tmp_path_factory.mktemp("finished")
    space = root / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    proc = _run(_search_cmd(space, root / "store", data_root), repo)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return space, root / "store" / NAME


def _copy(finished, tmp_path: Path) -> Path:
    """A copy of the finished experiment, ``<tmp>/store/tiny-smoke``, to damage."""
    dst = tmp_path / "store" / NAME
    shutil.copytree(finished[1], dst, symlinks=True)
    return dst


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


DAMAGE = {"truncated": _truncate, "empty": lambda p: p.write_bytes(b""), "garbage": lambda p: p.write_bytes(GARBAGE)}


def _error_line(stderr: str) -> str:
    """The one ``error:`` line, which must end stderr, with no traceback anywhere."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], stderr[-3000:]
    return lines[-1]


def _assert_corrupt(stderr: str, path: Path) -> str:
    """``error: FILE is corrupt: what was expected; how to recover``."""
    line = _error_line(stderr)
    assert re.fullmatch(rf"error: {re.escape(str(path))} is corrupt: expected .+; .+", line), line
    return line


def _resume(finished, exp: Path, repo, data_root) -> subprocess.CompletedProcess:
    return _run(_search_cmd(finished[0], exp.parent, data_root, "--resume"), repo)


def _cli(capsys, *argv) -> tuple[int, str]:
    """``tune-lnl report|fidelity ...`` in this process: (exit code, stderr)."""
    from tune_lnl.cli import main
    code = main(list(argv))
    return code, capsys.readouterr().err


# -- the journal: a cut-off last record is repaired; any other damage is named -------------------

def _journal_with_trials(folder: Path, n: int = 2) -> Path:
    import optuna

    from tune_lnl.results.runs import JOURNAL, journal_storage
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=KEY, storage=journal_storage(folder), direction="maximize")
    for i in range(n):
        lr = optuna.distributions.FloatDistribution(1e-4, 1e-2)
        study.add_trial(optuna.trial.create_trial(value=float(i), params={"lr": 0.001}, distributions={"lr": lr}))
    return folder / JOURNAL


def test_a_journal_ending_in_a_cut_off_record_is_repaired_and_a_copy_kept(tmp_path, capsys):
    """The record a full disk cut off is dropped when the journal is opened (the file as it was
    kept beside it): appending after it then reloads, where it failed for good with JSONDecodeError."""
    import optuna

    from tune_lnl.results.runs import journal_storage, open_study
    journal = _journal_with_trials(tmp_path)
    whole = journal.read_bytes()
    cut = b'{"op_code":5,"worker_id":"x","trial_id":1,"param_na'
    journal.write_bytes(whole + cut)
    storage = journal_storage(tmp_path)
    assert journal.read_bytes() == whole
    copies = list(tmp_path.glob("optuna.journal.corrupt-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == whole + cut
    out = capsys.readouterr().out
    assert f"note: {journal} ended in a partial record" in out and str(copies[0]) in out
    assert f"kept {len(whole.splitlines())} complete records" in out
    study = optuna.load_study(study_name=KEY, storage=storage)
    study.add_trial(optuna.trial.create_trial(value=5.0, params={"lr": 0.002},
                                              distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}))
    assert [t.value for t in open_study(tmp_path, KEY).trials] == [0.0, 1.0, 5.0]  # a fresh replay
    assert "partial record" not in capsys.readouterr().out  # nothing more to repair


def test_a_journal_damaged_before_its_last_line_is_named_never_cut(tmp_path):
    from tune_lnl.errors import CorruptFileError
    from tune_lnl.results.runs import journal_storage
    journal = _journal_with_trials(tmp_path)
    lines = journal.read_bytes().split(b"\n")
    damaged = b"\n".join(lines[:2] + [b'{"op_code": 4, "trunc'] + lines[2:])
    journal.write_bytes(damaged)
    with pytest.raises(CorruptFileError) as info:
        journal_storage(tmp_path)
    assert str(info.value).startswith(f"{journal} is corrupt: expected Optuna's journal, one JSON record per line; "
                                      f"line 3 is not one; restore it from a backup")
    assert journal.read_bytes() == damaged and not list(tmp_path.glob("optuna.journal.corrupt-*"))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_names_a_damaged_journal(finished, tmp_path, repo, data_root, damage):
    """Never "no trial completed" while the trials' run folders are there."""
    exp = _copy(finished, tmp_path)
    DAMAGE[damage](exp / "optuna.journal")
    proc = _resume(finished, exp, repo, data_root)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    line = _assert_corrupt(proc.stderr, exp / "optuna.journal")
    assert "no trial completed" not in proc.stderr + proc.stdout
    if damage != "garbage":
        assert f"{exp / 'search' / KEY} holds trial_0001 (records were lost" in line


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_report_names_a_damaged_journal(finished, tmp_path, capsys, damage):
    exp = _copy(finished, tmp_path)
    DAMAGE[damage](exp / "optuna.journal")
    code, err = _cli(capsys, "report", str(exp))
    assert code == 2
    _assert_corrupt(err, exp / "optuna.journal")


# -- optuna.db (the Ray backend's SQLite storage) ---------------------------------------------------

@pytest.mark.parametrize("damage", list(DAMAGE))
def test_report_names_a_damaged_sqlite_storage(finished, tmp_path, capsys, damage):
    import optuna

    from tune_lnl.results.runs import journal_storage, sqlite_url
    exp = _copy(finished, tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.copy_study(from_study_name=KEY, from_storage=journal_storage(exp), to_storage=sqlite_url(exp))
    (exp / "optuna.journal").unlink()  # as --backend ray leaves it
    capsys.readouterr()
    DAMAGE[damage](exp / "optuna.db")
    code, err = _cli(capsys, "report", str(exp))
    assert code == 2
    _assert_corrupt(err, exp / "optuna.db")


# -- outcome.json, experiment.yaml, result.json ---------------------------------------------------

@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_names_a_damaged_outcome(finished, tmp_path, repo, data_root, damage):
    exp = _copy(finished, tmp_path)
    outcome = exp / "finals" / KEY / "seed_1" / "outcome.json"
    DAMAGE[damage](outcome)
    proc = _resume(finished, exp, repo, data_root)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "delete it: --resume then continues this final run" in _assert_corrupt(proc.stderr, outcome)


def _command(command: str, finished, exp, repo, data_root, capsys) -> tuple[int, str]:
    """``(exit code, stderr)`` of ``--resume`` (a subprocess), ``report`` or ``fidelity`` on ``exp``."""
    if command == "resume":
        proc = _resume(finished, exp, repo, data_root)
        return proc.returncode, proc.stderr
    return _cli(capsys, command, str(exp))


@pytest.mark.parametrize("command", ["resume", "report", "fidelity"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_experiment_yaml_is_named(finished, tmp_path, repo, data_root, capsys, command, damage):
    exp = _copy(finished, tmp_path)
    DAMAGE[damage](exp / "experiment.yaml")
    code, err = _command(command, finished, exp, repo, data_root, capsys)
    assert code == 2, err[-3000:]
    _assert_corrupt(err, exp / "experiment.yaml")


@pytest.mark.parametrize("command,garbage", [("resume", "binary"), ("report", "binary"), ("report", "text"),
                                             ("fidelity", "binary"), ("fidelity", "text")])
def test_a_garbage_result_json_is_named(finished, tmp_path, repo, data_root, capsys, command, garbage):
    """A line torn by a kill is skipped (as before); a file that is not JSON lines at all (binary
    data, or text of which no line is a JSON object) is named, never a traceback or a run
    silently left out."""
    exp = _copy(finished, tmp_path)
    result = exp / "finals" / KEY / "seed_1" / "result.json"
    result.write_bytes(GARBAGE if garbage == "binary" else b"not a record\nnor this\n")
    code, err = _command(command, finished, exp, repo, data_root, capsys)
    assert code == 2, err[-3000:]
    assert f"delete the folder {result.parent} to leave this run out" in _assert_corrupt(err, result)


# -- temporary files of cut-off writes --------------------------------------------------------------

def test_resume_removes_the_temporary_files_of_cut_off_writes_and_nothing_else(finished, tmp_path, repo, data_root):
    exp = _copy(finished, tmp_path)
    trial = exp / "search" / KEY / "trial_0000"
    ours = [trial / "checkpoint.pt.tmp", trial / "result.json.tmp", exp / "experiment.yaml.tmp",
            exp / "finals" / KEY / "seed_1" / "outcome.json.tmp", exp / "best_configs.yaml.tmp"]
    for f in ours:
        f.write_bytes(b"cut off")
    outside = tmp_path / "users"
    outside.mkdir()
    (outside / "precious.json.tmp").write_text("the user's")
    (outside / "target.txt").write_text("the user's")
    kept = [exp / "notes.tmp", exp / "data.bin.tmp", trial / "checkpoint.pt"]
    kept[0].write_text("not ours: no such kind of file")
    kept[1].write_text("not ours")
    (exp / "link.json.tmp").symlink_to(outside / "target.txt")  # a link: neither followed nor deleted
    (exp / "linked").symlink_to(outside, target_is_directory=True)  # a linked folder: not entered
    proc = _resume(finished, exp, repo, data_root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert not [f for f in ours if f.exists()]
    assert all(f.exists() for f in kept) and (exp / "link.json.tmp").is_symlink()
    assert (outside / "precious.json.tmp").read_text() == "the user's" == (outside / "target.txt").read_text()
    assert f"note: removed {len(ours)} temporary file(s)" in proc.stdout


# -- a full disk ----------------------------------------------------------------------------------

def test_disk_full_is_recognised_behind_the_errors_that_wrap_it():
    """torch re-raises a failed write as a bare RuntimeError, Optuna's journal lock as another:
    the ENOSPC behind them counts; a quota (EDQUOT) is said as such."""
    from tune_lnl.errors import disk_full, disk_full_message
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    try:
        try:
            raise enospc
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")  # noqa: B904
    except RuntimeError as exc:
        wrapped = exc
    assert disk_full(enospc) and disk_full(wrapped) and not disk_full(OSError(errno.EACCES, "denied"))
    quota = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/x/y/checkpoint.pt.tmp")
    assert disk_full_message(quota, "/x") == ("disk quota exceeded while writing /x/y/checkpoint.pt.tmp: free space "
                                              "under /x (nothing finished is lost), then rerun the same command with "
                                              "--resume")


class _CutOff:
    """A file whose first write lands half and then fails as on a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):  # what torch.save asks of a file object
        return getattr(self.f, name)


def test_a_checkpoint_on_a_full_disk_raises_enospc_and_leaves_no_temporary_file(tmp_path, data_root, monkeypatch):
    from method_helpers import tiny_cfg

    import tune_lnl.methods.base as base
    from tune_lnl.methods import method_class
    method = method_class("ce")(tiny_cfg("ce", data_root, epochs=1))
    monkeypatch.setattr(base, "open_no_follow", lambda path, mode: _CutOff(open(path, mode)))
    with pytest.raises(OSError) as info:
        method.save(tmp_path / "checkpoint.pt")
    assert info.value.errno == errno.ENOSPC and info.value.filename == f"{tmp_path / 'checkpoint.pt'}.tmp"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cut_off,rerun", [("best_configs.yaml", ["--resume"]), ("experiment.yaml", [])])
def test_a_full_disk_stops_the_search_with_one_message_and_the_rerun_completes(tmp_path, repo, data_root, monkeypatch,
                                                                              capsys, cut_off, rerun):
    """ENOSPC injected into one write of the driver (a --paper-only search, the cheapest):
    exit 2 with the one message, the cut-off file removed; the command it says to rerun
    completes. Cut off while the experiment is recorded (``experiment.yaml``), there is nothing
    to resume: the same command, as it was."""
    from tune_lnl.cli import search_main
    from tune_lnl.results import runs
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "store"
    exp = storage / NAME
    cmd = _search_cmd(space, storage, data_root, "--paper-only", "--seeds", "1")[3:]
    real = getattr(runs, "open_no_follow", open)

    def full_disk(path, mode):
        return _CutOff(real(path, mode)) if Path(path).name == f"{cut_off}.tmp" else real(path, mode)

    monkeypatch.chdir(repo)
    monkeypatch.setattr(runs, "open_no_follow", full_disk, raising=False)
    with pytest.raises(SystemExit) as info:
        search_main(cmd)
    assert info.value.code == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: no space left on device while writing {exp / cut_off}.tmp: free space under {exp} "
        f"(nothing finished is lost), then rerun the same command" + (" with --resume" if rerun else ""))
    assert not list(exp.rglob("*.tmp")) and (exp / "experiment.yaml").exists() == bool(rerun)
    monkeypatch.setattr(runs, "open_no_follow", real)
    assert search_main(cmd + rerun) == 0
    assert yaml.safe_load((exp / "best_configs.yaml").read_text())["methods"]["ce"][SETTING]["config"]["lr"] == 0.001


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs at ``<tmp>/disk`` with a ballast file leaving 3 MiB free: one checkpoint
    of the tiny search (2.4 MB) fits, the next does not. Skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mount.stderr.strip()}")
    try:
        st = os.statvfs(disk)
        with open(disk / "ballast", "wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 3 * 2**20))
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_search_on_a_full_disk_stops_cleanly_and_resumes_once_space_is_freed(small_disk, tmp_path, repo, data_root):
    from tune_lnl.results.runs import open_study
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    cmd = _search_cmd(space, small_disk, data_root)
    exp = small_disk / NAME
    proc = _run(cmd, repo)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    line = _error_line(proc.stderr)
    assert re.fullmatch(rf"error: no space left on device while writing {re.escape(str(exp))}/\S+: free space under "
                        rf"{re.escape(str(exp))} \(nothing finished is lost\), then rerun the same command with "
                        rf"--resume", line), line
    assert not list(exp.rglob("*.tmp"))  # the cut-off writes went, their space with them
    (small_disk / "ballast").unlink()  # space is freed
    proc = _run(cmd + ["--resume"], repo)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    states = [t.state.name for t in open_study(exp, KEY).trials]
    assert len(states) == 2 and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert (exp / "finals.csv").exists()
