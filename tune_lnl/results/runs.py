"""The experiment folder: atomic writes, the runs' ``result.json`` lines, the Optuna studies,
and the per-run summary (best / last / oracle) every table is made of. Read by the report and
fidelity, written by the search backends; nothing here imports Ray.

Experiment folder ``<storage>/<name>/``::

    experiment.yaml             what was asked for (checked on --resume)
    optuna.db | optuna.journal  one Optuna study per method and setting ("<method>/<setting>"),
                                in the storage file its search backend names (SQLite or a journal)
    search/<method>/<setting>/  the trials (one run folder each: tune_lnl.results.recorder)
    finals/<method>/<setting>/  the final retrainings, one run folder per seed
    tensorboard/                one run per trial: tensorboard --logdir <storage>/<name>
    best_configs.yaml           each method's and setting's proxy-selected config (tune_lnl.train)
    finals.csv, finals.md       one row per method: best / last per setting (MLC paper Tables II/III)
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from pathlib import Path

import yaml

from ..errors import CorruptFileError
from ..files import link_refused, open_no_follow  # noqa: F401 -- (link_refused: the report's)
from .journal import RECOVER as STORAGE_RECOVER
from .journal import open_journal

#: one JSON line per epoch of a run (a trial or a final seed)
RESULTS = "result.json"
#: a run's run config (see :class:`tune_lnl.results.recorder.RunRecorder`)
PARAMS = "params.json"
#: the Optuna storages a search backend keeps its studies in (its ``storage_file``): a
#: JournalStorage file (several processes share it) and an SQLite database
JOURNAL = "optuna.journal"
SQLITE = "optuna.db"
STORAGE_FILES = (JOURNAL, SQLITE)
#: what the search was asked for (``--resume`` compares it with the command)
MANIFEST = "experiment.yaml"
#: the end mark of a run (``{"state": ..., ...}``; see :class:`~tune_lnl.results.recorder.RunRecorder`)
OUTCOME = "outcome.json"
#: what :func:`atomic_write` (and ``Method.save``) add to a file's name while writing it
TMP = ".tmp"
#: the files written that way (``<name><ext>.tmp``; a leftover of another kind is not ours)
TMP_KINDS = (".json", ".jsonl", ".yaml", ".csv", ".md", ".html", ".pt")


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash never leaves a half-written file there. A link
    at ``path`` is replaced (``os.replace``), never written through; one at the temporary file
    is refused (:func:`open_no_follow`)."""
    tmp = path.with_suffix(path.suffix + TMP)
    try:
        with open_no_follow(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a full disk: the cut-off copy goes (its space with it), the error names it
        if exc.filename is None:
            exc.filename = str(tmp)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(tmp).st_mode):
                os.unlink(tmp)
        raise


def remove_temporaries(exp_dir: Path) -> list[Path]:
    """Delete the temporary files that writes cut off (a full disk, a kill) left under an
    experiment folder: ``<name><ext>.tmp`` of :func:`atomic_write` and ``Method.save``
    (``checkpoint.pt.tmp``, ``result.json.tmp``, ``experiment.yaml.tmp``, ...). Regular files
    only: no link is followed or deleted, nothing else is touched. Returns what it deleted."""
    removed = []
    for root, _, files in os.walk(exp_dir):  # (a linked folder is not entered)
        for name in files:
            p = Path(root) / name
            if not (name.endswith(TMP) and Path(name[:-len(TMP)]).suffix in TMP_KINDS):
                continue
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISREG(os.lstat(p).st_mode):
                    p.unlink()
                    removed.append(p)
    return removed


def study_name(method: str, setting: str) -> str:
    return f"{method}/{setting}"


def read_lines(path: Path) -> list[dict]:
    """The JSON lines of a ``result.json`` (a line torn by a killed run is skipped). A file that
    is not the JSON text written there (binary data; complete lines of which none is a JSON
    object): :class:`~tune_lnl.errors.CorruptFileError`."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    lines = data.split(b"\n")
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    out = [h for h in out if isinstance(h, dict)]
    binary = not _is_text(data)
    if binary or (not out and any(line.strip() for line in lines[:-1])):
        raise CorruptFileError(path, "expected the run's epochs, one JSON object per line"
                               + (", not binary data" if binary else ""),
                               f"delete the folder {Path(path).parent} to leave this run out (a --resume trains a "
                               f"deleted final seed again)")
    return [h for h in out if "epoch" in h and "proxy" in h]


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def read_history(run_dir: Path) -> list[dict]:
    """The epoch lines of one run folder, as written."""
    return read_lines(Path(run_dir) / RESULTS)


def runs_under(folder: Path) -> dict[str, list[dict]]:
    """Run folder name -> epoch history (sorted, the last line of a redone epoch kept)."""
    runs = {}
    for f in sorted(Path(folder).glob(f"*/{RESULTS}")):
        by_epoch = {int(h["epoch"]): h for h in read_lines(f)}
        if by_epoch:
            runs[f.parent.name] = [by_epoch[e] for e in sorted(by_epoch)]
    return runs


def journal_storage(exp_dir: Path):
    """The experiment's Optuna ``JournalStorage`` (safe for several processes): a record a
    write cut off is repaired, a damaged file is a :class:`~tune_lnl.errors.CorruptFileError`
    (:func:`tune_lnl.results.journal.open_journal`)."""
    return open_journal(Path(exp_dir) / JOURNAL)


def sqlite_url(exp_dir: Path) -> str:
    return f"sqlite:///{Path(exp_dir) / SQLITE}"


def open_storage(exp_dir: Path, file: str):
    """The Optuna storage ``file`` (one of :data:`STORAGE_FILES`) of an experiment folder:
    ``optuna.journal`` as a JournalStorage (a cut-off last record repaired), ``optuna.db`` as its
    SQLite URL (checked to be a database). A damaged one: :class:`~tune_lnl.errors.CorruptFileError`."""
    exp_dir = Path(exp_dir)
    if file == JOURNAL:
        return journal_storage(exp_dir)
    if file != SQLITE:
        raise ValueError(f"unknown Optuna storage file {file!r}; known: {', '.join(STORAGE_FILES)}")
    db = exp_dir / SQLITE
    with open(db, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":  # (an empty file too: SQLite would start a new database)
            raise CorruptFileError(db, "expected an SQLite database (an Optuna storage)", STORAGE_RECOVER)
    return sqlite_url(exp_dir)


def dashboard_command(exp_dir: Path) -> list[str] | None:
    """The ``optuna-dashboard`` command that opens an experiment's studies (``pip install
    optuna-dashboard``): the SQLite database by its URL, the journal by its path (optuna-dashboard
    opens a file that is not SQLite as a ``JournalFileBackend``); None when the folder has no storage."""
    exp_dir = Path(exp_dir).resolve()
    if (exp_dir / JOURNAL).exists():
        return ["optuna-dashboard", str(exp_dir / JOURNAL)]
    if (exp_dir / SQLITE).exists():
        return ["optuna-dashboard", sqlite_url(exp_dir)]
    return None


def study_storage(exp_dir: Path):
    """The experiment's Optuna storage, whichever backend wrote it (the first of
    :data:`STORAGE_FILES` the folder holds, :func:`open_storage`), or None when there is none."""
    for file in STORAGE_FILES:
        if (Path(exp_dir) / file).exists():
            return open_storage(exp_dir, file)
    return None


def open_study(exp_dir, key: str, storage=None):
    """The Optuna study ``key`` of an experiment folder (``storage``: its :func:`study_storage`,
    opened here when not given). Checked against the run folders: a storage that lost records
    (a trial folder ``trial_NNNN`` of a trial it does not hold; a finished search, ``.done``,
    without a complete trial) is a :class:`~tune_lnl.errors.CorruptFileError`, never "no trial
    completed". ``FileNotFoundError``: no storage; ``KeyError``: no such study (nor runs of it)."""
    import optuna
    exp_dir = Path(exp_dir)
    folder = exp_dir / "search" / key
    numbers = [int(m.group(1)) for d in folder.glob("trial_*") if (m := re.fullmatch(r"trial_(\d+)", d.name))
               and (d / RESULTS).exists()]  # (before the study is read: a trial is recorded before its folder)
    done = (folder / ".done").exists()
    storage = storage or study_storage(exp_dir)
    if storage is None:
        raise FileNotFoundError(f"{exp_dir}: no Optuna storage ({JOURNAL} or {SQLITE})")
    path = exp_dir / (SQLITE if isinstance(storage, str) else JOURNAL)
    try:
        study = optuna.load_study(study_name=key, storage=storage)
    except KeyError:  # no such study
        study = None
    except Exception as exc:  # noqa: BLE001 -- SQLite: "file is not a database", "malformed" (SQLAlchemy's)
        if not isinstance(storage, str) or isinstance(exc, OSError):
            raise
        raise CorruptFileError(path, f"expected an SQLite database (an Optuna storage) "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0]})", STORAGE_RECOVER) from None
    trials = study.get_trials(deepcopy=False) if study is not None else []
    if numbers and max(numbers) >= len(trials):
        raise CorruptFileError(path, f"expected a record of every trial that has a run folder, but it holds "
                               f"{len(trials)} trial(s) of the study {key} while {folder} holds "
                               f"trial_{max(numbers):04d} (records were lost: the file was cut short or replaced)",
                               STORAGE_RECOVER)
    if done and not any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
        raise CorruptFileError(path, f"expected the trials of the finished search {key} ({folder / '.done'}), at "
                               f"least one of them complete, but it holds none (records were lost)", STORAGE_RECOVER)
    if study is None:
        raise KeyError(f"{path}: no study {key!r}")
    return study


def check_studies(exp_dir: Path, keys: list[str]) -> None:
    """``--resume``: every study of ``keys`` that the storage or the run folders know of is
    whole (:func:`open_study`; a :class:`~tune_lnl.errors.CorruptFileError` before any run)."""
    storage = study_storage(exp_dir)
    if storage is None:
        return
    for key in keys:
        with contextlib.suppress(KeyError):  # not started yet
            open_study(exp_dir, key, storage)


def experiment_title(exp_dir: Path, manifest: dict) -> str:
    """An experiment's name in titles: its folder's (``--name``, as ``finals.md`` and
    ``best_configs.yaml`` say, e.g. ``mlc_mnist-smoke``), with the space file's ``name`` beside it
    where it differs."""
    name = Path(exp_dir).resolve().name
    space_name = (manifest.get("space") or {}).get("name", name)
    return name if space_name == name else f"{name} (space {space_name})"


def read_manifest(exp_dir: Path, keys=("space", "methods", "settings")) -> dict:
    """``experiment.yaml``: what the search was asked for (a mapping holding at least ``keys``).
    A file that is not: :class:`~tune_lnl.errors.CorruptFileError`."""
    path = Path(exp_dir) / MANIFEST
    kinds = {"space": dict, "methods": list, "settings": list, "num_samples": int, "final_seeds": int}
    try:
        man = yaml.safe_load(path.read_bytes())
    except (yaml.YAMLError, ValueError):
        man = None
    if not isinstance(man, dict) or not all(k in man and isinstance(man[k], kinds.get(k, object)) for k in keys):
        raise CorruptFileError(path, f"expected the YAML mapping the search wrote (what it was asked for: "
                               f"{', '.join(keys)}, ...)", "restore it from a backup (--resume compares it with "
                               "the command), or search anew under another --name")
    return man


def read_outcome(run_dir: Path) -> dict:
    """A final run's ``outcome.json`` (``{"state": "complete" | "failed", ...}``: it ended). A
    file that is not: :class:`~tune_lnl.errors.CorruptFileError`."""
    path = Path(run_dir) / OUTCOME
    try:
        outcome = json.loads(path.read_bytes())
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict) or not isinstance(outcome.get("state"), str):
        raise CorruptFileError(path, 'expected the JSON object {"state": "complete" or "failed", ...} that marks '
                               'this final run as ended', "delete it: --resume then continues this final run from "
                               "its last checkpoint")
    return outcome


def first_best(history: list[dict], key: str = "proxy") -> int:
    """Index of the epoch with the highest ``key`` (ties: the earliest): the proxy's choice."""
    return max(range(len(history)), key=lambda i: (history[i][key], -i))


def summarize_run(history: list[dict], last_k: int) -> dict:
    """best = test acc at the proxy-best epoch (first maximum); last = mean test acc of the last
    ``last_k`` epochs; oracle = max test acc over epochs (test-selected: comparison only)."""
    i_best = first_best(history)
    tests = [h["test_acc"] for h in history]
    tail = tests[-last_k:]
    return {"best": tests[i_best], "best_epoch": int(history[i_best]["epoch"]), "proxy": history[i_best]["proxy"],
            "last": sum(tail) / len(tail), "oracle_max": max(tests), "epochs": len(history)}


def last_epochs_words(last_k: int, epochs: list[int]) -> str:
    """What "last" averaged, in words: ``"mean of the last 10 epochs"``, or the real count when the
    runs (``epochs``: each run's length) are shorter than ``last_k`` (``"mean of the last 6 epochs"``,
    ``"mean of the last 4-6 epochs"`` when they differ): :func:`summarize_run` averages what exists."""
    span = last_epochs_span(last_k, epochs)
    return f"mean of the last {span} epoch{'' if span == '1' else 's'}"


def last_epochs_span(last_k: int, epochs: list[int]) -> str:
    """How many epochs "the last ``last_k``" are for runs of these lengths: ``"10"``, ``"6"``, ``"4-6"``."""
    counts = sorted({min(last_k, int(e)) for e in epochs if int(e) > 0}) or [last_k]
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


# -- paths as a committed experiment records them --------------------------------------------

def repository_root(path) -> Path:
    """The root of the git repository holding ``path`` (the nearest folder above it with a
    ``.git``), else the current directory: what :func:`portable_path` records paths relative to."""
    for folder in Path(path).resolve().parents:
        if (folder / ".git").exists():
            return folder
    return Path.cwd().resolve()


def portable_path(path, root=None) -> str | None:
    """``path`` as ``experiment.yaml`` records it: relative (``/``-separated) to ``root``
    (default: :func:`repository_root` of ``path``) when it lies inside it, else as given; a
    relative path and ``None`` stay as they are. So a committed experiment names no folder of
    the machine that ran it (``search_spaces/mlc_mnist.yaml``, not ``/home/me/repo/...``)."""
    if path is None or not Path(path).is_absolute():
        return None if path is None else str(path)
    root = Path(root if root is not None else repository_root(path)).resolve()
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:  # outside the repository: only the absolute path says where it was
        return str(path)


def portable_manifest(doc: dict, space_path) -> dict:
    """``experiment.yaml``'s content (``doc``) with the paths of the machine it holds -- the
    space file's (``space_file``) and a noise matrix file's (``noise_options.<setting>.path``)
    -- made :func:`portable_path` relative to the space file's repository (no space file: the
    current directory). The space's own text is kept as written."""
    root = repository_root(space_path) if space_path else Path.cwd().resolve()
    out = dict(doc)
    if "space_file" in doc:
        out["space_file"] = portable_path(doc["space_file"], root)
    if isinstance(doc.get("noise_options"), dict):
        out["noise_options"] = {s: dict(o, path=portable_path(o["path"], root)) if isinstance(o, dict) and "path" in o
                                else o for s, o in doc["noise_options"].items()}
    return out


def resume_identity(doc: dict, space_path) -> dict:
    """What ``--resume`` compares of an ``experiment.yaml`` (``doc``) with the command's: all
    but ``space_file`` (the space's content decides, not where its file lies: another checkout,
    another machine), its paths made portable as :func:`portable_manifest` does, so that a
    record holding absolute paths (written before paths were recorded relative) and one holding
    relative paths of the same files compare equal."""
    return {k: v for k, v in portable_manifest(doc, space_path).items() if k != "space_file"}
