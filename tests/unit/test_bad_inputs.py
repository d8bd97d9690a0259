"""The table of bad inputs: each row is one mistake a user can make on the command line, in a
search-space file or in the data folder. Every one must stop `python -m tune_lnl.search` with
exit code 2 BEFORE any trial runs, with a message naming what is wrong (file, key, value, what
is allowed), and must leave no experiment.yaml behind that a later --resume could trip over.
(The YAML-level table with 55 single-key mutations is tests/unit/test_config.py; the multi-method
one tests/unit/test_search_spaces.py; bad checkpoints tests/unit/methods/test_checkpoint.py.)"""
import fcntl
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tune_lnl import search
from tune_lnl.cli import search_main
from tune_lnl.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / "search_spaces" / "mlc_mnist.yaml"


def _space(tmp_path, mutate=None, name="space.yaml"):
    raw = yaml.safe_load(MLC.read_text())
    if mutate:
        mutate(raw)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def _setup_existing(tmp_path, data_root, manifest_space):
    """An experiment folder ``results/mlc_mnist`` holding the manifest of ``manifest_space``."""
    exp = tmp_path / "results" / "mlc_mnist"
    exp.mkdir(parents=True)
    from tune_lnl.config import load_experiment
    from tune_lnl.search.experiment import manifest
    e = load_experiment(manifest_space)
    doc = manifest(e, False, "ray", False, list(e.methods), e.settings, e.first.num_samples, e.first.final_seeds)
    (exp / "experiment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return exp


def _partial_mnist(tmp_path, data_root):
    raw = tmp_path / "partial" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        shutil.copy(data_root / "MNIST" / "raw" / name, raw / name)
    return raw.parents[1]


def _truncated_mnist(tmp_path, data_root):
    raw = tmp_path / "trunc" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        shutil.copy(data_root / "MNIST" / "raw" / name, raw / name)
    with open(raw / "t10k-labels-idx1-ubyte", "r+b") as f:
        f.truncate(5000)
    return raw.parents[1]


# (id, argv builder(tmp_path, data_root) -> list, substrings the message must contain)
CASES = [
    ("malformed-yaml", lambda t, d: ["--space", str(_write(t, "a: [1, 2\n"))], ["malformed YAML", "bad.yaml"]),
    ("missing-space-file", lambda t, d: ["--space", str(t / "nope.yaml")], ["nope.yaml", "no such file"]),
    ("unknown-method", lambda t, d: ["--space", str(_space(t, lambda r: r.update(method="mlcc")))],
     ["space.yaml", "method", "'mlcc'", "allowed"]),
    ("unknown-dataset", lambda t, d: ["--space", str(_space(t, lambda r: r.update(dataset="svhn")))],
     ["dataset", "'svhn'", "allowed: mnist, fashionmnist, cifar10, cifar100, cifar10n, cifar100n, clothing1m"]),
    ("unknown-model", lambda t, d: ["--space", str(_space(t, lambda r: r["fixed"].update(model="resnet99")))],
     ["fixed.model", "'resnet99'", "allowed"]),
    ("unknown-noise-type", lambda t, d: ["--space", str(_space(
        t, lambda r: r["settings"]["sym-0.2"]["noise"].update(type="asym")))],
     ["settings.sym-0.2.noise.type", "'asym'"]),
    ("unknown-proxy", lambda t, d: ["--space", str(_space(t, lambda r: r.update(proxy="test")))],
     ["proxy", "'test'", "allowed"]),
    ("unknown-setting-name", lambda t, d: ["--space", str(MLC), "--settings", "sym-0.9"],
     ["--settings", "'sym-0.9'", "sym-0.2"]),
    ("unknown-method-filter", lambda t, d: ["--space", str(MLC), "--methods", "jocor"],
     ["--methods", "'jocor'", "mlc"]),
    ("noise-rate-above-one", lambda t, d: ["--space", str(_space(
        t, lambda r: r["settings"]["sym-0.2"]["noise"].update(rate=1.2)))],
     ["settings.sym-0.2.noise.rate", "1.2", "[0, 1)"]),
    ("forget-rate-negative", lambda t, d: ["--space", str(_space(
        t, lambda r: r["settings"]["sym-0.2"]["space"].update(forget_rate={"low": -0.1, "high": 0.3})))],
     ["settings.sym-0.2.space.forget_rate.low", "-0.1"]),
    ("empty-range", lambda t, d: ["--space", str(_space(
        t, lambda r: r["space"].update(K={"low": 3.0, "high": 3.0})))],
     ["space.K", "empty or inverted"]),
    ("inverted-range", lambda t, d: ["--space", str(_space(
        t, lambda r: r["space"].update(K={"low": 9.0, "high": 3.0})))],
     ["space.K", "empty or inverted"]),
    ("log-range-touching-zero", lambda t, d: ["--space", str(_space(
        t, lambda r: r["space"].update(xi={"low": 0.0, "high": 1.0, "log": True})))], ["space.xi.low", "log range"]),
    ("device-unknown", lambda t, d: ["--space", str(_space(t, lambda r: r.update(device="gpu0")))],
     ["device", "'gpu0'", "cuda:N"]),
    ("too-many-seeds", lambda t, d: ["--space", str(MLC), "--seeds", "1000"], ["--seeds", "[1, 100]", "1000"]),
    ("too-many-trials", lambda t, d: ["--space", str(MLC), "--num-samples", "20000"], ["--num-samples", "20000"]),
    ("zero-trials", lambda t, d: ["--space", str(MLC), "--num-samples", "0"], ["--num-samples", "0"]),
    ("zero-seeds", lambda t, d: ["--space", str(MLC), "--seeds", "0"], ["--seeds", "0"]),
    ("paper-only-with-num-samples", lambda t, d: ["--space", str(MLC), "--paper-only", "--num-samples", "3"],
     ["--paper-only", "no search", "--num-samples"]),
    ("workers-zero", lambda t, d: ["--space", str(MLC), "--backend", "optuna", "--workers", "0"],
     ["--workers", "[1, 256]", "0"]),
    ("workers-with-ray-backend", lambda t, d: ["--space", str(MLC), "--backend", "ray", "--workers", "2"],
     ["--workers", "--backend optuna"]),
    ("address-with-optuna-backend", lambda t, d: ["--space", str(MLC), "--backend", "optuna", "--address", "h:6379"],
     ["--address", "--backend ray"]),
    ("data-root-missing", lambda t, d: ["--space", str(MLC), "--data-root", str(t / "nodata")],
     ["MNIST not found", "nodata/MNIST/raw", "train-images-idx3-ubyte"]),
    ("data-root-incomplete", lambda t, d: ["--space", str(MLC), "--data-root", str(_partial_mnist(t, d))],
     ["MNIST not found", "partial/MNIST/raw", "t10k-images-idx3-ubyte"]),
    ("data-file-truncated", lambda t, d: ["--space", str(MLC), "--data-root", str(_truncated_mnist(t, d))],
     ["t10k-labels-idx1-ubyte", "5000 bytes", "10008 bytes"]),
    ("asymmetric-without-a-mapping", lambda t, d: [
        "--space", str(_arrays_space(t, {"type": "asymmetric", "rate": 0.4}))],
     ["settings.sym-0.2.noise.type", "declares no asymmetric class mapping", "type: matrix"]),
    ("instance-without-rate", lambda t, d: ["--space", str(_space(
        t, lambda r: r["settings"]["sym-0.2"].update(noise={"type": "instance"})))],
     ["settings.sym-0.2.noise", "noise type instance needs 'rate'"]),
    ("matrix-row-not-summing-to-one", lambda t, d: ["--space", str(_matrix_space(t, [[0.9] + [0.0] * 9] * 10))],
     ["space.yaml", "settings.sym-0.2.noise.matrix", "row 0", "sums to 0.9"]),
    ("matrix-entry-negative", lambda t, d: ["--space", str(_matrix_space(t, _eye(10, {(2, 2): 1.1, (2, 3): -0.1})))],
     ["settings.sym-0.2.noise.matrix", "row 2", "[0, 1]"]),
    ("matrix-file-of-wrong-shape", lambda t, d: [
        "--space", str(_matrix_space(t, path=_csv(t, "T.csv", [[0.5, 0.5]] * 2)))],
     ["settings.sym-0.2.noise.path", "T.csv", "must be 10 x 10", "(2, 2)"]),
    ("matrix-file-missing", lambda t, d: ["--space", str(_matrix_space(t, path="absent.npy"))],
     ["settings.sym-0.2.noise.path", "absent.npy", "cannot read"]),
    ("matrix-with-a-rate", lambda t, d: ["--space", str(_matrix_space(t, _eye(10), rate=0.2))],
     ["settings.sym-0.2.noise.rate", "does not apply to noise type matrix"]),
    ("human-noise-on-cifar10", lambda t, d: ["--space", str(_human_space(t, "cifar10", "worse"))],
     ["settings.sym-0.2.noise.type", "'human'", "allowed"]),
    ("human-label-set-unknown", lambda t, d: ["--space", str(_human_space(t, "cifar10n", "worst"))],
     ["settings.sym-0.2.noise.labels", "'worst'", "aggre, worse, random1"]),
    ("cifar-n-file-missing", lambda t, d: ["--space", str(_human_space(t, "cifar10n", "worse")),
                                           "--data-root", str(_tiny_cifar10(t))],
     ["CIFAR-10_human.pt", "no such file", "CIFAR-N paper"]),
    ("cifar-n-clean-labels-differ", lambda t, d: ["--space", str(_human_space(t, "cifar10n", "worse")),
                                                  "--data-root", str(_tiny_cifar10(t, human="shifted"))],
     ["CIFAR-10_human.pt", "clean_label differs from the CIFAR training labels"]),
    ("cifar-n-file-too-short", lambda t, d: ["--space", str(_human_space(t, "cifar10n", "worse")),
                                             "--data-root", str(_tiny_cifar10(t, human="short"))],
     ["CIFAR-10_human.pt", "worse_label", "must be 20 integer labels"]),
    ("cifar100-file-truncated", lambda t, d: ["--space", str(_human_space(t, "cifar100", None)),
                                              "--data-root", str(_truncated_cifar100(t))],
     ["cifar-100-python", "cannot be read", "train ("]),
    ("storage-path-not-writable", lambda t, d: ["--space", str(MLC), "--storage-path", str(_write(t, "x") / "sub")],
     ["--storage-path", "cannot write"]),
    ("resume-of-nothing", lambda t, d: ["--space", str(MLC), "--resume", "--storage-path", str(t / "results")],
     ["--resume", "holds no experiment"]),
    ("resume-of-another-experiment", lambda t, d: [
        "--space", str(MLC), "--resume", "--storage-path",
        str(_setup_existing(t, d, _space(t, lambda r: r["search"].update(num_samples=7))).parent)],
     ["--resume", "holds a different experiment"]),
    ("new-search-into-existing-experiment", lambda t, d: [
        "--space", str(MLC), "--storage-path", str(_setup_existing(t, d, MLC).parent)],
     ["already holds an experiment", "--resume", "--name"]),
]
if not torch.cuda.is_available():
    CASES.append(("cuda-device-without-gpu",
                  lambda t, d: ["--space", str(_space(t, lambda r: r.update(device="cuda")))],
                  ["device: 'cuda'", "no usable CUDA GPU"]))


def _eye(n, changes=None):
    rows = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for (i, j), v in (changes or {}).items():
        rows[i][j] = v
    return rows


def _csv(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return name  # relative to the space file's folder


def _matrix_space(tmp_path, matrix=None, path=None, rate=None):
    noise = {"type": "matrix", **({"matrix": matrix} if matrix is not None else {}),
             **({"path": path} if path is not None else {}), **({"rate": rate} if rate is not None else {})}
    return _space(tmp_path, lambda r: r["settings"]["sym-0.2"].update(noise=noise))


def _with_noise(noise):
    """Every setting of mlc_mnist.yaml gets ``noise`` (the files' per-setting keys stay)."""
    def mutate(raw):
        for s in raw["settings"].values():
            s["noise"] = dict(noise)
    return mutate


def _arrays_space(tmp_path, noise):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", train_images=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
             train_labels=np.arange(40) % 4, test_images=rng.integers(0, 256, (8, 8, 8), dtype=np.uint8),
             test_labels=np.arange(8) % 4)
    return _space(tmp_path, lambda r: (r.update(dataset={"type": "arrays", "path": "data.npz"}), _with_noise(noise)(r)))


def _human_space(tmp_path, dataset, labels):
    noise = {"type": "human", "labels": labels} if labels else {"type": "symmetric", "rate": 0.2}
    return _space(tmp_path, lambda r: (r.update(dataset=dataset), _with_noise(noise)(r)))


def _tiny_cifar10(tmp_path, human=None):
    """Tiny CIFAR-10 files (20 training images) and, with ``human``, a CIFAR-10N label file whose
    clean labels are ``shifted`` by one class or whose arrays are ``short`` by one image."""
    from realformat import write_cifar10, write_cifar_n
    root = tmp_path / "cifar"
    _, _, labels, _, _ = write_cifar10(root)
    clean = np.array(labels)
    if human:
        arrays = {k: clean for k in ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2",
                                     "random_label3")}
        if human == "shifted":
            arrays["clean_label"] = (clean + 1) % 10
        else:
            arrays["worse_label"] = clean[:-1]
        write_cifar_n(root / "CIFAR-10_human.pt", arrays)
    return root


def _truncated_cifar100(tmp_path):
    from realformat import write_cifar100
    root = tmp_path / "c100"
    folder = write_cifar100(root, 200, 100)[0]
    with open(folder / "train", "r+b") as f:
        f.truncate(5000)
    return root


def _write(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


def _manifests(root: Path) -> set:
    return {p for p in root.rglob("experiment.yaml")}


@pytest.mark.parametrize("case,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_early_and_explained(tmp_path, data_root, capsys, case, argv, expected, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default ./results lands here
    args = argv(tmp_path, data_root)
    if "--data-root" not in args:
        args += ["--data-root", str(data_root)]
    if "--storage-path" not in args:
        args += ["--storage-path", str(tmp_path / "results")]
    before = _manifests(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        search_main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for part in expected:
        assert part in err, (part, err)
    assert _manifests(tmp_path) == before  # nothing written that a later --resume would trust


def test_a_running_experiment_is_locked(tmp_path, data_root, capsys):
    """Two processes never drive one experiment: while one holds the lock (here: this test), a
    second search or --resume into it is refused, naming the holder."""
    exp = _setup_existing(tmp_path, data_root, MLC)
    with open(exp / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 12345 on testhost since now\n")
        held.flush()
        with pytest.raises(SystemExit) as exit_info:
            search_main(["--space", str(MLC), "--resume", "--storage-path", str(exp.parent),
                         "--data-root", str(data_root)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "in use by another running search" in err and "pid 12345 on testhost" in err


def test_gpu_fraction_without_a_gpu_is_explained(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from tune_lnl.config import load_experiment
    search.check_device(load_experiment(MLC))  # gpus_per_trial 0.25 in the file
    out = capsys.readouterr().out
    assert "no GPU here" in out and "gpus_per_trial 0.25 is not requested" in out


def test_backend_ray_where_ray_is_missing_is_explained(monkeypatch, capsys):
    """Where Ray is not installed (the lent GPU machines): ``--backend ray`` says what to do,
    ``auto`` quietly picks the Optuna backend."""
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.split(".")[0] == "ray"
                        else real(name, *a))
    assert search.resolve_backend("auto", None) == "optuna"
    with pytest.raises(ConfigError) as info:
        search.resolve_backend("ray", None)
    assert "Ray Tune is not installed" in str(info.value) and "--backend optuna" in str(info.value)
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert search.resolve_backend("auto", None) == "ray"  # installed here
