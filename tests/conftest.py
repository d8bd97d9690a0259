import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Every test under tests/e2e/ is ``slow`` (the fast tier: ``pytest -m "not slow"``)."""
    for item in items:
        if E2E in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


def _data_root() -> Path:
    env = os.environ.get("TUNE_LNL_DATA")
    if env:
        return Path(env).resolve()
    return (REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists() and \
            not (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"real MNIST is needed: set TUNE_LNL_DATA to a folder holding MNIST/raw (tried {root})")
    return root


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
