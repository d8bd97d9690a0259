"""Nothing is written outside ``--storage-path``, and no link planted in an experiment folder is
followed for a write or a delete (issue 26, items 2 and 3).

* Every name that becomes a folder -- the experiment's (``--name``, ``tune_lnl.run(name=...)``,
  the space file's ``name:``), a setting's (``search/<method>/<setting>/``) and a method's (its
  spec, ``module:Class`` for a plugin) -- must be a portable folder name; anything else is
  refused with exit 2 before any folder is made (the searches here would train if it were not:
  the backend is replaced by one that stops at once, so a missed refusal fails fast).
* The report's figure clean-up never deletes through a symlinked ``report/`` or
  ``report/figures/``, the report's documents and the atomic writes never write through a link
  (``os.replace`` replaces the link itself), and the lock ``<exp>/.lock`` is never opened through
  a link: the search is refused, naming it, and the link's target is left as it was.
"""
from pathlib import Path

import pytest
import yaml

from tune_lnl.cli import report_main, search_main
from tune_lnl.config import check_folder_name
from tune_lnl.errors import ConfigError, SearchError
from tune_lnl.results.runs import atomic_write
from tune_lnl.search import experiment

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / "search_spaces" / "mlc_mnist.yaml"
RULE = "is not a portable folder name: use letters, digits, '.', '_' and '-' (at most 100 characters), " \
       "not starting with '.'"
LINK = "is a symbolic link: tune_lnl writes and deletes there itself, never through a link; remove the link " \
       "(tune_lnl makes the file or folder anew)"
#: forms of a name that must never become a folder (None: an absolute path under the test's folder)
BAD_NAMES = ["../evil", None, "a/b", "a\\b", "..", ".", "", ".hidden", "x" * 101, "two words", "tab\there",
             "colon:name", "caf\u00e9", "end\n"]


@pytest.fixture
def no_training(monkeypatch):
    """Any search that gets past the checks stops before the backend starts (a guard: these
    tests never train, even on code that misses a refusal)."""
    def stop(*args, **kwargs):
        raise SearchError("test guard: the backend was reached")
    monkeypatch.setattr(experiment, "_start_backend", stop)


def _tree(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def _refused(tmp_path, data_root, capsys, args) -> str:
    """Run the search CLI from ``tmp_path``; it must exit 2 and create nothing at all there."""
    before = _tree(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        search_main([*args, "--storage-path", str(tmp_path / "store"), "--data-root", str(data_root),
                     "--backend", "optuna"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert _tree(tmp_path) == before, "a refused name created something"
    return err.strip()


def _bad(tmp_path, name):
    return str(tmp_path / "abs") if name is None else name


def _space(tmp_path, mutate) -> Path:
    raw = yaml.safe_load(MLC.read_text())
    mutate(raw)
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


# -- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_cli_name_that_is_not_a_portable_folder_name_is_refused(tmp_path, data_root, capsys, monkeypatch,
                                                                no_training, bad):
    monkeypatch.chdir(tmp_path)
    name = _bad(tmp_path, bad)
    err = _refused(tmp_path, data_root, capsys, ["--space", str(MLC), "--smoke", "--name", name])
    assert err == f"error: --name: {name!r} {RULE}"


@pytest.mark.parametrize("bad", ["../evil", None, "a/b", "..", ".", "", "x" * 101, "two words"], ids=repr)
def test_space_file_name_that_is_not_a_portable_folder_name_is_refused(tmp_path, data_root, capsys, monkeypatch,
                                                                       no_training, bad):
    monkeypatch.chdir(tmp_path)
    name = _bad(tmp_path, bad)
    space = _space(tmp_path, lambda raw: raw.update(name=name))
    err = _refused(tmp_path, data_root, capsys, ["--space", str(space), "--smoke"])
    assert err == f"error: {space}: name: {name!r} {RULE}"
    # --name does not rescue a bad name in the file: the file itself is invalid
    assert _refused(tmp_path, data_root, capsys, ["--space", str(space), "--name", "fine"]) == err


@pytest.mark.parametrize("bad", ["../evil", "a/b", "..", ".", "x" * 101, "sym 0.2"], ids=repr)
def test_setting_name_that_is_not_a_portable_folder_name_is_refused(tmp_path, data_root, capsys, monkeypatch,
                                                                    no_training, bad):
    monkeypatch.chdir(tmp_path)

    def rename(raw):
        raw["settings"] = {bad if k == "sym-0.2" else k: v for k, v in raw["settings"].items()}
    space = _space(tmp_path, rename)
    err = _refused(tmp_path, data_root, capsys, ["--space", str(space), "--smoke"])
    assert err == f"error: {space}: settings: {bad!r} {RULE}"


@pytest.mark.parametrize("bad", ["../evil:Thing", "a/b:C", "..", "x" * 101 + ":C"], ids=repr)
def test_method_that_is_not_a_portable_folder_name_is_refused(tmp_path, data_root, capsys, monkeypatch,
                                                              no_training, bad):
    """A method's spec is its folder name (``search/taylor_ce:TaylorCE/...``): ':' is allowed there."""
    monkeypatch.chdir(tmp_path)
    space = _space(tmp_path, lambda raw: raw.update(method=bad))
    err = _refused(tmp_path, data_root, capsys, ["--space", str(space), "--smoke"])
    assert err == f"error: {space}: method: {bad!r} " + RULE.replace("'_' and '-'", "'_', '-' and ':'")


def test_python_api_name_is_checked_like_the_cli(tmp_path, data_root, no_training):
    import tune_lnl
    with pytest.raises(ConfigError) as info:
        tune_lnl.run(str(MLC), name="../evil", storage_path=tmp_path / "store", data_root=data_root,
                     backend="optuna", smoke=True)
    assert str(info.value) == f"--name: '../evil' {RULE}"
    assert not (tmp_path / "store").exists() and not (tmp_path / "evil").exists()


def test_the_names_the_project_ships_and_uses_are_portable():
    """Every shipped space file's name (with and without '-smoke'), setting and method, and the
    names the tests use, pass; a plugin spec keeps its ':'."""
    files = sorted(REPO.glob("search_spaces/*.yaml")) + sorted(REPO.glob("examples/**/*.yaml"))
    assert len(files) > 30
    for f in files:
        raw = yaml.safe_load(f.read_text())
        for name in (raw["name"], raw["name"] + "-smoke", *map(str, raw["settings"])):
            assert check_folder_name(name, str(f)) == name
        for method in [raw["method"]] if "method" in raw else list(raw["methods"]):
            assert check_folder_name(method, str(f), plugin=True) == method
    for name in ("mlc_mnist-smoke", "sym-0.2", "pair-0.45", "x" * 100, "v1.2_final-B"):
        assert check_folder_name(name, "--name") == name
    assert check_folder_name("openplug:Alpha", "m", plugin=True) == "openplug:Alpha"
    with pytest.raises(ConfigError):
        check_folder_name("openplug:Alpha", "--name")  # ':' only in a method's spec


# -- links ----------------------------------------------------------------------------------------

def _experiment(tmp_path) -> Path:
    """The cheapest experiment folder a report can be built of (not started: no runs)."""
    exp = tmp_path / "store" / "exp"
    exp.mkdir(parents=True)
    (exp / "experiment.yaml").write_text(yaml.safe_dump(
        {"space": {"name": "exp", "dataset": "mnist"}, "methods": ["mlc"], "settings": ["sym-0.2"],
         "backend": "optuna"}))
    return exp


def _users_folder(tmp_path) -> Path:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"a user's picture")
    return mine


@pytest.mark.parametrize("linked", ["report/figures", "report"])
def test_report_never_deletes_through_a_symlinked_folder(tmp_path, capsys, linked):
    """A ``report/figures`` (or ``report``) that is a link to a user's folder: the report is
    refused naming it, and the user's PNG survives (it used to be deleted as an old figure)."""
    exp = _experiment(tmp_path)
    mine = _users_folder(tmp_path)
    if linked == "report/figures":
        (exp / "report").mkdir()
        target = mine
    else:
        (mine / "figures").mkdir()
        (mine / "figures" / "holiday.png").write_bytes(b"a user's picture")
        target = mine
    (exp / linked).symlink_to(target, target_is_directory=True)
    code = report_main([str(exp)])
    assert (mine / "holiday.png").read_bytes() == b"a user's picture"
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {exp / linked} {LINK}"
    assert sorted(p.name for p in mine.rglob("*")) == (["holiday.png"] if linked == "report/figures"
                                                       else ["figures", "holiday.png", "holiday.png"])
    (exp / linked).unlink()  # without the link the report is built as always
    assert report_main([str(exp)]) == 0
    assert (exp / "report" / "report.html").is_file()


def test_report_documents_replace_a_link_instead_of_writing_through_it(tmp_path, capsys):
    exp = _experiment(tmp_path)
    (exp / "report").mkdir()
    mine = _users_folder(tmp_path)
    (mine / "notes.md").write_text("my notes\n")
    (exp / "report" / "report.md").symlink_to(mine / "notes.md")
    assert report_main([str(exp)]) == 0
    assert (mine / "notes.md").read_text() == "my notes\n"
    md = exp / "report" / "report.md"
    assert not md.is_symlink() and md.read_text().startswith("# Report: exp")


def test_atomic_write_never_writes_through_a_linked_temporary_file(tmp_path):
    mine = _users_folder(tmp_path)
    (tmp_path / "finals.md.tmp").symlink_to(mine / "holiday.png")
    with pytest.raises(ConfigError) as info:
        atomic_write(tmp_path / "finals.md", "# Finals\n")
    assert str(info.value) == f"{tmp_path / 'finals.md.tmp'} {LINK}"
    assert (mine / "holiday.png").read_bytes() == b"a user's picture"
    assert not (tmp_path / "finals.md").exists()
    (tmp_path / "finals.md.tmp").unlink()
    atomic_write(tmp_path / "finals.md", "# Finals\n")
    assert (tmp_path / "finals.md").read_text() == "# Finals\n"


def test_lock_is_never_opened_through_a_link(tmp_path):
    """``lock_experiment`` used to open ``<exp>/.lock`` with "a+" and truncate it: through a
    planted link, a user's file was emptied and overwritten with the lock's line."""
    exp = tmp_path / "exp"
    exp.mkdir()
    mine = _users_folder(tmp_path)
    (exp / ".lock").symlink_to(mine / "holiday.png")
    with pytest.raises(ConfigError) as info:
        experiment.lock_experiment(exp)
    assert str(info.value) == f"{exp / '.lock'} {LINK}"
    assert (mine / "holiday.png").read_bytes() == b"a user's picture"
    (exp / ".lock").unlink()
    lock = experiment.lock_experiment(exp)  # a real lock file: taken as always
    try:
        assert (exp / ".lock").read_text().startswith("pid ")
    finally:
        lock.close()


def test_search_into_a_folder_with_a_linked_lock_is_refused(tmp_path, data_root, capsys, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "store" / "mlc_mnist-smoke"
    exp.mkdir(parents=True)
    mine = _users_folder(tmp_path)
    (exp / ".lock").symlink_to(mine / "holiday.png")
    with pytest.raises(SystemExit) as exit_info:
        search_main(["--space", str(MLC), "--smoke", "--storage-path", str(tmp_path / "store"),
                     "--data-root", str(data_root), "--backend", "optuna"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err == f"error: {exp / '.lock'} {LINK}"
    assert (mine / "holiday.png").read_bytes() == b"a user's picture"
    assert not (exp / "experiment.yaml").exists()
