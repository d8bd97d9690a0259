"""``tune-lnl methods`` (and ``python -m tune_lnl methods``): every available method, built-in or
registered by an installed package under the entry-point group ``tune_lnl.methods``, with its
declared hyperparameters, as aligned tables or ``--json``.

The commands run as subprocesses with a fake installed package on their path (a
``*.dist-info`` folder whose ``entry_points.txt`` registers the example plugin ``taylor_ce:TaylorCE``
as ``mytaylor`` and a method whose module does not exist as ``broken``). Expectations are typed here
by hand: the built-in names, the papers' values (GCE q = 0.7 in (0, 1], MLC lambda = 1000 for
sym-0.2, IMAE T = 8 under noise, SCE alpha 0.1 / beta 1.0 / A = -4), and a space file accepting
every listed key with its listed default."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tune_lnl.config import load_experiment

REPO = Path(__file__).resolve().parents[2]
BUILTINS = ["ce", "mae", "gce", "imae", "pencil", "coteaching", "coteaching_plus", "jocor", "mlc",
            "sce", "nce_rce", "gls", "bootstrap", "peer", "elr", "sop",
            "volminnet", "cores", "forward_t", "backward_t", "t_revision", "dividemix", "unicon", "elr_plus",
            "sop_plus", "pes_semi", "promix"]
TUNE_LNL = Path(sys.executable).with_name("tune-lnl")  # the console script of this environment


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    """A folder holding the example plugin and a fake installed package registering it."""
    d = tmp_path_factory.mktemp("installed")
    shutil.copy(REPO / "examples" / "taylor_ce" / "taylor_ce.py", d / "taylor_ce.py")
    dist = d / "fakeplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tune_lnl.methods]\nmytaylor = taylor_ce:TaylorCE\n"
                                           "broken = no_such_module_xyz:Method\n")
    return d


def _run(plugin_dir: Path, *args: str, console: bool = False) -> subprocess.CompletedProcess:
    """``tune-lnl methods ARGS`` (``console``: the console script, else ``python -m tune_lnl``)
    with ``plugin_dir`` on the Python path, from a folder that holds nothing."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH"))
                                                       if p)}
    cmd = [str(TUNE_LNL)] if console else [sys.executable, "-m", "tune_lnl"]
    return subprocess.run([*cmd, "methods", *args], env=env, cwd=plugin_dir.parent, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def listing(plugin_dir) -> dict:
    """``--json`` of every method (``python -m tune_lnl``)."""
    proc = _run(plugin_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    return {"json": json.loads(proc.stdout), "stderr": proc.stderr}


def test_json_lists_every_builtin_and_the_plugin(listing):
    out = listing["json"]
    assert list(out)[:len(BUILTINS)] == BUILTINS
    assert "mytaylor" in out and "broken" not in out  # stdout stays one JSON object of what loads
    assert "broken" in listing["stderr"] and "no_such_module_xyz" in listing["stderr"]


def test_json_holds_the_papers_values(listing):
    out = listing["json"]
    q = out["gce"]["q"]
    assert (q["default"], q["type"], q["high"], q["above"]) == (0.7, "float", 1.0, 0.0)  # q in (0, 1]
    assert "lambda" in out["mlc"] and "lambda_" not in out["mlc"]
    assert out["mlc"]["lambda"]["default"] == 1000.0 and out["mlc"]["epochs"]["default"] == 320
    assert out["imae"]["T"]["default"] == 8.0
    assert out["mlc"]["variant"]["choices"] == ["paper", "official"]
    taylor = out["mytaylor"]
    assert (taylor["t"]["default"], taylor["t"]["type"], taylor["t"]["low"]) == (2, "int", 1.0)
    assert "below" not in taylor["t"] and "high" not in taylor["t"]  # t >= 1, no upper bound
    assert taylor["lr"] == out["ce"]["lr"]  # inherited from SingleNetwork.Hyper, as declared there


def test_every_builtin_hyperparameter_is_described(listing):
    for method in BUILTINS:
        for key, d in listing["json"][method].items():
            assert {"default", "type", "meaning"} <= set(d), (method, key)
            assert d["meaning"].strip() and d["meaning"] != "(not described)", (method, key)


@pytest.mark.parametrize("method", BUILTINS)
def test_a_space_file_accepts_every_listed_key_with_its_default(listing, method, tmp_path):
    described = listing["json"][method]
    raw = {"name": "all_keys", "method": method, "dataset": "mnist",
           "fixed": {k: d["default"] for k, d in described.items() if k != "lr"},  # lr: searched
           "space": {"lr": {"low": 1.0e-4, "high": 1.0, "log": True}},  # wide: holds every method's default lr
           "settings": {"clean": {"noise": {"type": "none"}}}}
    cfg = load_experiment(raw).first.paper_config("clean", str(tmp_path))
    for key, d in described.items():
        assert cfg[key] == d["default"], (method, key)  # lr: the paper point is the default


def test_the_table_of_one_method_is_aligned(plugin_dir):
    proc = _run(plugin_dir, "gce", console=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gce: ") and "Generalized cross entropy" in lines[0]
    assert lines[1] == "  class trainables.gce:GCE"
    header, rows = lines[2], lines[3:]
    assert header.split() == ["key", "type", "default", "allowed", "meaning"]
    assert [r.split()[0] for r in rows][-1] == "q" and len(rows) == 15  # Common 10, optimizer 3, schedule, q
    q = rows[-1]
    assert q.split()[:4] == ["q", "float", "0.7", "(0,"] and "(0, 1]" in q
    for column in ("type", "default", "allowed", "meaning"):  # every cell starts under its header
        at = header.index(column)
        for row in rows:
            assert row[at - 2:at] == "  " and (row[at] != " " or column == "allowed"), (column, row)
    assert "  epochs " in proc.stdout and "> 0" in proc.stdout and "[0, 1)" in proc.stdout  # momentum


def test_the_full_table_lists_a_broken_plugin_with_its_error(plugin_dir):
    proc = _run(plugin_dir)
    assert proc.returncode == 0, proc.stderr
    heads = [line.split(":")[0] for line in proc.stdout.splitlines() if line and not line.startswith(" ")]
    assert heads[:len(BUILTINS)] == BUILTINS and set(heads[len(BUILTINS):]) == {"mytaylor", "broken"}
    broken = proc.stdout.split("\nbroken")[1].split("\n\n")[0]
    assert "cannot be loaded" in broken and "no_such_module_xyz" in broken
    assert "mytaylor: Taylor cross entropy" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_an_unknown_name_is_refused_naming_the_available_ones(plugin_dir):
    proc = _run(plugin_dir, "gce", "nosuch", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "'nosuch'" in proc.stderr, proc.stderr
    for name in [*BUILTINS, "mytaylor", "broken"]:
        assert name in proc.stderr, name
    assert "Traceback" not in proc.stderr


def test_a_named_plugin_that_fails_to_load_is_an_error(plugin_dir):
    proc = _run(plugin_dir, "broken")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "no_such_module_xyz" in proc.stderr
    assert "Traceback" not in proc.stderr
