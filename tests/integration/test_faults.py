"""A server that dies mid-run: finished generations are kept, a re-run completes, nothing is duplicated."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest

from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenerationError, GenRequest, Harness, Sampling
from personalab.harness.registry import get_model
from personalab.harness.server import VLLMServer

from .conftest import TEST_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.server]

N_REQUESTS = 160


def _requests() -> list[GenRequest]:
    return [GenRequest.chat([{"role": "user", "content": f"Write a short sentence about the number {i}."}],
                            Sampling(temperature=0.0, max_tokens=48)) for i in range(N_REQUESTS)]


def _rows(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]


def _kill_when(cache_path, server: VLLMServer, at_least: int) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if cache_path.exists() and _rows(cache_path) >= at_least:
                os.killpg(server.proc.pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_killed_server_loses_nothing_and_duplicates_nothing(pulled_model, tmp_path):
    cache_path = tmp_path / "gen.sqlite"
    server = VLLMServer(get_model(TEST_MODEL))
    endpoint = server.start()
    try:
        harness = Harness(endpoint, cache=GenerationCache(cache_path), progress=False, max_retries=2, backoff_s=0.2,
                          concurrency=8)
        watcher = _kill_when(cache_path, server, at_least=20)
        with pytest.raises(GenerationError, match="in the cache"):
            harness.generate(_requests())
        watcher.join()
        finished = _rows(cache_path)
        assert 20 <= finished < N_REQUESTS
        # A new server, the same cache: only the missing generations are sent.
        endpoint = server.restart()
        harness = Harness(endpoint, cache=GenerationCache(cache_path), progress=False)
        results = harness.generate(_requests())
        assert sum(g.cached for g in results) == finished
        assert _rows(cache_path) == N_REQUESTS
        assert len({g.key for g in results}) == N_REQUESTS
    finally:
        server.stop()


def test_owned_server_is_restarted_mid_run(pulled_model, tmp_path):
    cache_path = tmp_path / "gen.sqlite"
    server = VLLMServer(get_model(TEST_MODEL))
    endpoint = server.start()
    try:
        harness = Harness(endpoint, cache=GenerationCache(cache_path), progress=False, max_retries=2, backoff_s=0.2,
                          concurrency=8, restart=server.restart)
        _kill_when(cache_path, server, at_least=20)
        results = harness.generate(_requests())
        assert harness.restarts == 1
        assert len(results) == N_REQUESTS and all(g.text for g in results)
        assert _rows(cache_path) == N_REQUESTS
    finally:
        server.stop()
