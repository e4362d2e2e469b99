"""Tests for personalab.harness.cache: stable keys, get/put semantics, WAL mode, two processes writing at once."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from personalab.harness.cache import CacheCorrupt, GenerationCache, cache_key, default_cache_path, repair
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


# ------------------------------------------------------------------------------------------ a cache that fails well
@pytest.mark.parametrize("content, phrase", [(b"\x8f\x01 random bytes, not SQLite" * 200, "file is not a database"),
                                             (b"SQLite format 3\x00" + b"\x10\x00", "not a database")])
def test_damaged_file_is_named_and_repair_is_offered(tmp_path, content, phrase):
    path = tmp_path / "generations.sqlite"
    path.write_bytes(content)
    with pytest.raises(CacheCorrupt) as err:
        GenerationCache(path)
    assert str(path) in str(err.value) and phrase in str(err.value) and "personalab cache --repair" in str(err.value)


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "generations.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    with pytest.raises(CacheCorrupt, match="another SQLite database .tables: invoices"):
        GenerationCache(path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE generations (key TEXT, reply TEXT)")
    with pytest.raises(CacheCorrupt, match="generations table has the columns key, reply"):
        GenerationCache(path)


def test_repair_moves_the_file_aside_and_starts_afresh(tmp_path):
    path = tmp_path / "generations.sqlite"
    damaged = b"garbage" * 1000
    path.write_bytes(damaged)
    aside = repair(path)
    assert aside is not None and aside.name.startswith("generations.sqlite.corrupt-")
    assert aside.read_bytes() == damaged  # moved, never deleted
    cache = GenerationCache(path)
    assert cache.count() == 0 and cache.put("k", "m", {}, {"text": "ok"})
    assert repair(path) is None  # a usable cache is left alone
    assert cache.get("k") == {"text": "ok"}


def test_unparseable_row_is_set_aside_with_a_warning_and_can_be_regenerated(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    cache.put("good", "m", {}, {"text": "fine"})
    cache.put("bad", "m", {}, {"text": "will be damaged"})
    with sqlite3.connect(cache.path) as conn:
        conn.execute("UPDATE generations SET response = '{\"text\": \"trunc' WHERE key = 'bad'")
    with pytest.warns(RuntimeWarning, match="does not parse"):
        found = cache.get_many(["good", "bad"])
    assert found == {"good": {"text": "fine"}}
    assert cache.put("bad", "m", {}, {"text": "regenerated"})  # the slot is free again
    assert cache.get("bad") == {"text": "regenerated"}
    with sqlite3.connect(cache.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM unreadable WHERE key = 'bad'").fetchone()[0] == 1


def test_cli_reports_a_damaged_cache_in_one_line_and_repairs_it(tmp_path, monkeypatch, capsys):
    from personalab.cli import main

    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    (tmp_path / "generations.sqlite").write_bytes(b"not a database at all" * 100)
    assert main(["cache"]) == 1
    err = capsys.readouterr().err
    assert "personalab cache --repair" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["cache", "--repair"]) == 0
    assert "Moved the unusable cache to" in capsys.readouterr().out
    assert main(["cache"]) == 0
    assert "0 generations" in capsys.readouterr().out
    assert len(list(tmp_path.glob("generations.sqlite.corrupt-*"))) == 1
