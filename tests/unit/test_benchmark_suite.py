"""benchmarks/suite.py still runs (issue 27's typed hyperparameters had broken its floor, unnoticed until issue
29's epoch-time measurement): one row, a two-phase method timed in its corrected phase on 512 MNIST images, one
epoch per cell. Only that a row comes back whole is checked, never a time."""
import json
import subprocess
import sys

SUITE_ROW = "SUITE_ROW "


def test_one_row_of_the_suite_runs(repo, data_root):
    cmd = [sys.executable, str(repo / "benchmarks" / "suite.py"), "--one", "forward_t", "mnist", "--data-root",
           str(data_root), "--mnist-images", "512", "--repeats", "1", "--warmup", "0", "--no-usual", "--epoch", "79"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(SUITE_ROW)]
    row = json.loads(lines[-1][len(SUITE_ROW):])
    assert row["method"] == "forward_t" and row["networks"] == 1 and row["epoch_index"] == 79
    assert row["floor_s"] > 0 and row["ours_s"] > 0
