"""Tests for personalab.harness.cache: stable keys, get/put semantics, WAL mode, two processes writing at once."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from personalab.harness.cache import GenerationCache, cache_key, default_cache_path
from personalab.harness.client import GenRequest, Sampling

BASE = {"model": "m", "weights": "w" * 64, "messages": [{"role": "user", "content": "hi"}], "prompt": None,
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": 16, "n": 1, "seed": 0, "logprobs": False,
                     "top_logprobs": 0, "stop": []}}


# ---------------------------------------------------------------- keys


def test_key_is_sha256_hex_and_stable_across_dict_order():
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    reordered["sampling"] = {k: BASE["sampling"][k] for k in reversed(list(BASE["sampling"]))}
    reordered["messages"] = [{"content": "hi", "role": "user"}]
    key = cache_key(BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key(reordered) == key
    assert cache_key(dict(BASE)) == key


@pytest.mark.parametrize("change", [
    {"model": "other"},
    {"weights": "x" * 64},
    {"messages": [{"role": "user", "content": "hi!"}]},
    {"messages": [{"role": "system", "content": "hi"}]},
    {"prompt": "hi"},
])
def test_key_changes_with_any_determining_field(change):
    assert cache_key({**BASE, **change}) != cache_key(BASE)


@pytest.mark.parametrize("field,value", [("temperature", 0.8), ("top_p", 0.9), ("max_tokens", 17), ("n", 2),
                                         ("seed", 1), ("logprobs", True), ("top_logprobs", 1), ("stop", ["\n"])])
def test_key_changes_with_each_sampling_field(field, value):
    changed = {**BASE, "sampling": {**BASE["sampling"], field: value}}
    assert cache_key(changed) != cache_key(BASE)


def test_request_key_ignores_endpoint_and_meta_but_not_seed():
    """The harness's key payload has no endpoint in it; meta is not part of it; the seed is."""
    req = GenRequest.chat([{"role": "user", "content": "hi"}], Sampling(seed=3), persona="a")
    same = GenRequest.chat([{"role": "user", "content": "hi"}], Sampling(seed=3), persona="b")
    other_seed = GenRequest.chat([{"role": "user", "content": "hi"}], Sampling(seed=4))
    payload = req.key_payload("m", "w")
    assert not any("endpoint" in k or "url" in k for k in payload)
    assert cache_key(payload) == cache_key(same.key_payload("m", "w"))
    assert cache_key(payload) != cache_key(other_seed.key_payload("m", "w"))
    assert cache_key(payload) != cache_key(req.key_payload("m", "w2"))
    assert cache_key(payload) != cache_key(req.key_payload("m2", "w"))


# ---------------------------------------------------------------- get / put


def test_put_get_get_many_count(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    assert cache.get("k1") is None and cache.count() == 0
    assert cache.put("k1", "m1", {"q": 1}, {"texts": ["a"], "ünï": "çødé"}) is True
    assert cache.put("k2", "m1", {"q": 2}, {"texts": ["b"]}) is True
    assert cache.put("k3", "m2", {"q": 3}, {"texts": ["c"]}) is True
    assert cache.get("k1") == {"texts": ["a"], "ünï": "çødé"}
    assert cache.get_many(["k1", "k3", "missing", "k1"]) == {"k1": cache.get("k1"), "k3": {"texts": ["c"]}}
    assert cache.get_many([]) == {}
    assert cache.count() == 3 and cache.count("m1") == 2 and cache.count("m2") == 1 and cache.count("zz") == 0
    cache.close()


def test_get_many_over_chunk_size(tmp_path):
    """More keys than one query's chunk (500) are all found."""
    cache = GenerationCache(tmp_path / "c.sqlite")
    for i in range(1001):
        cache.put(f"k{i}", "m", {}, {"i": i})
    found = cache.get_many(f"k{i}" for i in range(1100))
    assert len(found) == 1001 and found["k1000"] == {"i": 1000}


def test_put_twice_keeps_first_and_returns_false(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    assert cache.put("k", "m", {}, {"v": 1}) is True
    assert cache.put("k", "m", {}, {"v": 2}) is False
    assert cache.get("k") == {"v": 1}
    assert cache.count() == 1


def test_persists_across_instances(tmp_path):
    path = tmp_path / "sub" / "c.sqlite"
    GenerationCache(path).put("k", "m", {}, {"v": 1})
    assert GenerationCache(path).get("k") == {"v": 1}


def test_wal_mode_is_on(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = GenerationCache(path)
    assert cache._conn().execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    cache.put("k", "m", {}, {})
    with sqlite3.connect(path) as other:  # WAL is persistent: a fresh connection sees it too
        assert other.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_default_path_under_personalab_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path / "d"))
    assert default_cache_path() == tmp_path / "d" / "generations.sqlite"
    assert GenerationCache().path == tmp_path / "d" / "generations.sqlite"


# ---------------------------------------------------------------- two processes


def _writer(path: str, start: int, results) -> None:
    cache = GenerationCache(path)
    inserted = 0
    for i in range(start, start + 200):
        inserted += cache.put(f"key-{i}", "m", {"i": i}, {"i": i, "pad": "x" * 200})
    cache.close()
    results.put(inserted)


def test_two_processes_write_concurrently(tmp_path):
    """2 processes x 200 puts, 100 keys in common: exactly 300 rows, each stored once and intact."""
    path = str(tmp_path / "c.sqlite")
    GenerationCache(path).close()
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, start, results)) for start in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    inserted = [results.get(timeout=5), results.get(timeout=5)]
    assert sum(inserted) == 300
    cache = GenerationCache(path)
    assert cache.count() == 300
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    found = cache.get_many(f"key-{i}" for i in range(300))
    assert len(found) == 300 and all(found[f"key-{i}"]["i"] == i for i in range(300))
