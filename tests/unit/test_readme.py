"""The README's Python API example runs as pasted: as a plain script (no main guard) in a folder
holding the shipped search spaces, with the data root from ``TUNE_LNL_DATA``."""
import os
import re
import shutil
import subprocess
import sys

import pytest


def _api_example(readme: str) -> str:
    section = readme[readme.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow  # a whole (smoke) search
def test_the_python_api_example_runs_as_pasted(tmp_path, repo, data_root):
    code = _api_example((repo / "README.md").read_text())
    shutil.copytree(repo / "search_spaces", tmp_path / "search_spaces")
    (tmp_path / "example.py").write_text(code)
    env = {**os.environ, "TUNE_LNL_DATA": str(data_root), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "results" / "api-example" / "finals.csv").exists()
    assert proc.stdout.count("experiment: ") == 1  # the search ran once (not again in each worker)
