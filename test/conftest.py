"""Shared pytest fixtures: paths to the real data beside the repo, small deterministic tensors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """Engines built by the tests (ONNX Runtime is the CPU default) go to a temporary folder,
    never into the user's ~/.cache/temcoco/engines."""
    previous = os.environ.get("TEMCOCO_ENGINE_CACHE")
    os.environ["TEMCOCO_ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engines"))
    yield
    if previous is None:
        os.environ.pop("TEMCOCO_ENGINE_CACHE", None)
    else:
        os.environ["TEMCOCO_ENGINE_CACHE"] = previous


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite: the tensors are tiny, and on a small CPU shared
    with other jobs OpenMP threads spin-waiting on each other slow them down many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the shared folder beside the repo)")
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data {DATA} is absent (see ../shared/data/README.md)")
    return DATA
