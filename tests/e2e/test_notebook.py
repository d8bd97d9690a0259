"""examples/quickstart.ipynb runs top to bottom on a real Jupyter kernel (nbclient + ipykernel), as a
user opening it from examples/ would: the plan (when tune_lnl has it), a smoke search on the Optuna
backend, the finals as a DataFrame and the report's figures inline (issue 28 item 6)."""
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

import tune_lnl


def _outputs(nb, mime: str) -> list:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            if mime in out.get("data", {})]


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.slow  # a whole (smoke) search
def test_the_quickstart_notebook_runs_on_a_real_kernel(tmp_path, repo, data_root, monkeypatch):
    shutil.copytree(repo / "search_spaces", tmp_path / "search_spaces")
    (tmp_path / "examples").mkdir()
    shutil.copy(repo / "examples" / "quickstart.ipynb", tmp_path / "examples")
    for key, value in {"TUNE_LNL_DATA": str(data_root), "RAY_AUTH_MODE": "disabled",
                       "RAY_USAGE_STATS_ENABLED": "0"}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    nb = nbformat.read(tmp_path / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "examples")}}).execute()

    experiment = tmp_path / "examples" / "results" / "quickstart"
    assert (experiment / "finals.csv").exists()
    assert (experiment / "optuna.journal").exists()  # the Optuna backend ran it
    html_tables = [o["data"]["text/html"] for o in _outputs(nb, "text/html")]
    assert any("best" in t and "sym-0.2" in t and "pair-0.45" in t for t in html_tables)  # the DataFrames
    figures = sorted((experiment / "report" / "figures").glob("*.png"))
    assert figures and len(_outputs(nb, "image/png")) == len(figures)  # every figure shown inline
    text = _text(nb)
    if hasattr(tune_lnl, "plan"):
        assert "estimated:" in text
    assert "Traceback" not in text
