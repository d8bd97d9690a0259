"""benchmarks/suite.py still runs (issue 27's typed hyperparameters had broken its floor, unnoticed until issue
29's epoch-time measurement): one row, a two-phase method timed in its corrected phase on 512 MNIST images, one
epoch per cell. Only that a row comes back whole, with the network work the floor repeats, is checked, never a
time: the floor sends as many images through a network as the method's epoch (counted on its networks), which
for Forward-T at the start of its corrected phase is each training image once with gradients and once without
(T's estimate), and for DivideMix (issue 30) also the two networks'
scoring passes over every training image without gradients."""
import json
import subprocess
import sys

import pytest

SUITE_ROW = "SUITE_ROW "


@pytest.mark.parametrize("method,epoch", [("forward_t", 79), ("dividemix", 150)])
def test_one_row_of_the_suite_runs(repo, data_root, method, epoch):
    cmd = [sys.executable, str(repo / "benchmarks" / "suite.py"), "--one", method, "mnist", "--data-root",
           str(data_root), "--mnist-images", "512", "--repeats", "1", "--warmup", "0", "--no-usual", "--epoch",
           str(epoch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(SUITE_ROW)]
    row = json.loads(lines[-1][len(SUITE_ROW):])
    assert row["method"] == method and row["epoch_index"] == epoch
    assert row["floor_s"] > 0 and row["ours_s"] > 0
    n, images = row["n_train"], row["images_per_epoch"]
    if method == "forward_t":  # the first epoch of its corrected phase: one network, each image once with
        # gradients, and once without for the anchor-point estimate of T made at the phase's start
        assert row["networks"] == 1 and images == {"grad": n, "no_grad": n}
    else:  # per network: a scoring pass over all n (no gradients), then MixMatch steps; two networks
        assert images["no_grad"] >= 2 * n and images["grad"] > 0
