"""Shared test set-up: offline hub, CPU, quiet progress bars."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import pathlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fixtures() -> pathlib.Path:
    """Folder of the project's own fixture files."""
    return FIXTURES


@pytest.fixture
def shared_samples() -> pathlib.Path:
    """../shared/data/format-samples, skipping the test when it is not beside the checkout."""
    p = SHARED / "data" / "format-samples"
    if not p.exists():
        pytest.skip("../shared/data/format-samples is not present")
    return p
