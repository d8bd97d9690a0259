"""Where an experiment folder lives: a path (local, or a filesystem every node mounts), or a URI
that Ray Tune stores runs at (``s3://bucket/results``, ``gs://...``, ``file:///...``: anything
``pyarrow.fs.FileSystem.from_uri`` opens).

With a URI, the experiment has two halves:

* the **remote folder** ``<uri>/<name>/``: Ray Tune writes each trial's results and checkpoints
  there from whichever node runs it, and the search uploads the rest (``experiment.yaml``,
  ``optuna.db``, ``best_configs.yaml``, the tables, TensorBoard runs, the report) whenever a study
  ends and at the end: the remote folder alone is the complete experiment;
* a **local working copy** on the machine that runs the search (:func:`local_copy`), where the
  Optuna database, the lock and the tables are written and the trials' result lines are
  downloaded (never their checkpoints) for the report. ``--resume`` first downloads the remote
  folder into it, so a search can continue from another machine.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["is_uri", "local_copy", "join", "remote_exists", "pull", "push"]

#: what a working copy skips when downloading: checkpoints stay where Tune wrote them
_SKIP = re.compile(r"(^|/)checkpoint_\d+(/|$)")


def is_uri(storage_path) -> bool:
    return isinstance(storage_path, str) and "://" in storage_path


def _fs(uri: str):
    import pyarrow.fs
    return pyarrow.fs.FileSystem.from_uri(uri)


def local_copy(uri: str, name: str) -> Path:
    """The working copy of ``<uri>/<name>``: ``$TUNE_LNL_CACHE`` (default
    ``~/.cache/tune_lnl``) / a readable form of the URI plus a short hash of it."""
    root = Path(os.environ.get("TUNE_LNL_CACHE", Path.home() / ".cache" / "tune_lnl")).expanduser()
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", uri.split("?")[0])[-80:]
    return root / f"{tag}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}" / name


def join(uri: str, *parts: str) -> str:
    """``uri`` with path parts added (before its query string, e.g. ``?endpoint_override=``)."""
    base, _, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + (f"?{query}" if query else "")


def remote_exists(uri: str) -> bool:
    import pyarrow.fs
    fs, path = _fs(uri)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def _files(fs, root: str) -> list[str]:
    import pyarrow.fs
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
    return [i.path for i in infos if i.type == pyarrow.fs.FileType.File]


def pull(uri: str, local: Path) -> int:
    """Download ``uri`` (a folder) into ``local``, every file but checkpoints; returns the count."""
    fs, root = _fs(uri)
    n = 0
    for path in _files(fs, root):
        rel = path[len(root):].lstrip("/")
        if _SKIP.search(rel):
            continue
        dst = Path(local) / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(path) as src, open(dst, "wb") as out:
            out.write(src.read())
        n += 1
    return n


def push(local: Path, uri: str, only: list[str] | None = None) -> int:
    """Upload ``local`` (a folder) into ``uri``: every file (``only``: just these relative
    paths, files or folders, those that exist); returns the count. Lock files stay local."""
    fs, root = _fs(uri)
    local = Path(local)
    picked = [local / p for p in only] if only is not None else [local]
    files = [f for p in picked if p.exists() for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    n = 0
    for f in files:
        rel = f.relative_to(local).as_posix()
        if f.name.endswith(".lock") or f.name == ".lock" or f.name.startswith(".write-test"):
            continue
        dst = f"{root.rstrip('/')}/{rel}"
        fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
        with open(f, "rb") as src, fs.open_output_stream(dst) as out:
            out.write(src.read())
        n += 1
    return n
