"""Train a mask: TRL's SFTTrainer or DPOTrainer with a PEFT LoRA adapter on the base, merged into a checkpoint.

:func:`pull` makes a ``kind: trained`` registry entry's checkpoint exist, in the model cache where an embedded
model's checkpoint lives, so vLLM serves it like any other. It validates everything first (model, recipe,
hyper-parameters, data), rebuilds the data (base answers come from a disk cache), and trains only when the artefact
key (base weights + data hash + recipe + hyper-parameters + seed) differs from the finished checkpoint's. Work
happens in a temporary folder renamed into place when complete; the marker JSON records how the mask was made.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from personalab.harness.models import MARKER, PulledModel, checkpoint_dir, read_marker
from personalab.harness.models import pull as pull_weights
from personalab.harness.registry import ModelSpec, RegistryError, check_hyper_parameter, get_model
from personalab.paths import models_dir
from personalab.train.data import BaseAnswerer, TrainError, TrainingData
from personalab.train.recipes import build_data, get_recipe

def default_precision() -> str:
    """bf16 autocast where the hardware computes bfloat16 natively (a bf16 GPU; a CPU with AVX512-BF16 or AMX: 1.34x
    fp32 on the reference machine, benchmarks/bench_training.py), else fp32 (an AVX2 CPU only emulates bf16)."""
    import torch

    from personalab.harness.server import cpu_dtype

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_dtype() == "bfloat16" else "fp32"


#: The precision masks train in on this machine; part of the artefact key, so a mask trained in fp32 elsewhere is
#: a different artefact.
PRECISION = default_precision()
DATA_FILE = "training_data.json"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all validated on construction; a GPU reader raises them)."""

    epochs: int = 3
    lr: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    batch_size: int = 8
    max_length: int = 512
    beta: float = 0.1
    max_steps: int | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "max_steps" and value is None:
                continue
            try:
                check_hyper_parameter(name, value)
            except RegistryError as err:
                raise TrainError(str(err)) from None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "TrainConfig":
        """The configuration of a trained registry entry (its hyper-parameters over the defaults)."""
        assert spec.training is not None
        return cls(**dict(spec.training.hyper))


def artefact_key(base_sha256: str, data_hash: str, recipe: str, config: TrainConfig, seed: int) -> str:
    """sha256 of everything that determines the trained weights; the same inputs never train twice."""
    payload = {"base_sha256": base_sha256, "data_hash": data_hash, "recipe": recipe, "hyper": asdict(config),
               "seed": seed, "precision": PRECISION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _versions() -> dict[str, str]:
    return {d: importlib.metadata.version(d) for d in ("trl", "peft", "transformers", "torch", "datasets")}


def _as_text(tokenizer: Any, data: TrainingData) -> list[dict[str, str]]:
    """The examples rendered with the base's chat template: TRL's prompt-completion / preference text format.

    A prompt ending in an assistant message is rendered as a prefill the completion continues (as vLLM does with
    ``continue_final_message``); TRL appends the end-of-turn token and computes the loss on the completion only.
    """
    rows = []
    for ex in data.examples:
        prompt = tokenizer.apply_chat_template(list(ex.prompt), tokenize=False, add_generation_prompt=not ex.is_prefill,
                                               continue_final_message=ex.is_prefill)
        if data.method == "sft":
            rows.append({"prompt": prompt, "completion": ex.completion})
        else:
            rows.append({"prompt": prompt, "chosen": ex.chosen, "rejected": ex.rejected})
    return rows


def make_trainer(base_dir: Path, data: TrainingData, config: TrainConfig, seed: int, work_dir: Path,
                 progress: bool = True, precision: str = PRECISION) -> Any:
    """A TRL SFTTrainer (recipe method ``sft``) or DPOTrainer (``dpo``) with a LoRA adapter on all linear layers.

    With PEFT, DPO's reference model is the base itself (the adapter disabled), so no second copy is loaded.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    if precision not in ("bf16", "fp32"):
        raise TrainError(f"Unknown precision {precision!r}; expected bf16 or fp32.")
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    dataset = Dataset.from_list(_as_text(tokenizer, data))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    common = dict(output_dir=str(work_dir), num_train_epochs=config.epochs,
                  max_steps=config.max_steps or -1, per_device_train_batch_size=config.batch_size,
                  learning_rate=config.lr, max_length=config.max_length, logging_steps=1, save_strategy="no",
                  report_to="none", use_cpu=not torch.cuda.is_available(), bf16=precision == "bf16", seed=seed, data_seed=seed,
                  include_num_input_tokens_seen="non_padding", disable_tqdm=not progress, dataloader_num_workers=0,
                  gradient_checkpointing=False)
    if data.method == "sft":
        # Batches of similar length waste less compute on padding (about a third of it here).
        args = SFTConfig(**common, completion_only_loss=True, train_sampling_strategy="group_by_length")
        return SFTTrainer(model=model, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora)
    return DPOTrainer(model=model, args=DPOConfig(**common, beta=config.beta), train_dataset=dataset,
                      processing_class=tokenizer, peft_config=lora)


def run_training(trainer: Any) -> dict[str, Any]:
    """Train and return the record: tokens seen, CPU- and wall-seconds, tokens/s, steps, final and mean loss."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = trainer.train()
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    tokens = int(trainer.state.num_input_tokens_seen)
    return {"training_tokens": tokens, "cpu_seconds": round(cpu_s, 1), "wall_seconds": round(wall_s, 1),
            "tokens_per_second": round(tokens / wall_s, 1) if wall_s else None,
            "steps": int(trainer.state.global_step), "final_loss": losses[-1] if losses else None,
            "mean_loss": round(float(result.training_loss), 4), "losses": losses}


def fit(base_dir: Path, data: TrainingData, config: TrainConfig, seed: int, out_dir: Path,
        progress: bool = True) -> dict[str, Any]:
    """Train a LoRA adapter on ``base_dir`` with ``data``, merge it and save a bf16 checkpoint into ``out_dir``."""
    import torch

    trainer = make_trainer(base_dir, data, config, seed, out_dir / "trainer", progress=progress)
    record = run_training(trainer)
    merged = trainer.model.merge_and_unload().to(torch.bfloat16)
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    trainer.processing_class.save_pretrained(str(out_dir))
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    return record


def _validated(model_id: str | None) -> tuple[ModelSpec, ModelSpec, TrainConfig]:
    """The trained spec, its base spec and its configuration; invalid requests fail before any work."""
    spec = get_model(model_id)
    if spec.kind != "trained" or spec.training is None:
        raise TrainError(f"{spec.id} is a {spec.kind} model, not a trained one; nothing to train.")
    base = get_model(spec.training.base)
    get_recipe(spec.training.recipe)
    return spec, base, TrainConfig.from_spec(spec)


def _install(tmp: Path, final: Path) -> None:
    """Put the finished folder ``tmp`` where ``final`` is expected, replacing an older artefact atomically enough:
    the old folder is moved aside first, so a crash leaves either the old or the new checkpoint, never a mix."""
    tmp.chmod(0o755)  # mkdtemp creates 0700
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}-old-{time.time_ns()}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def pull(model_id: str | None = None, *, progress: bool = True) -> PulledModel:
    """Make ``model_id`` available: pull an embedded model, or train a trained one whose artefact is missing."""
    spec = get_model(model_id)
    if spec.kind != "trained":
        return pull_weights(spec.id)
    spec, base, config = _validated(spec.id)
    assert spec.training is not None
    base_pulled = pull_weights(base.id)
    data = build_data(spec.training.recipe, spec.training.seed,
                      BaseAnswerer(base_pulled.path, spec.training.base_sha256, progress=progress))
    key = artefact_key(spec.training.base_sha256, data.hash, data.recipe, config, spec.training.seed)
    final = checkpoint_dir(spec)
    marker = read_marker(spec)
    if marker is not None and marker.get("artefact_key") == key:
        return PulledModel(spec.id, final, key, already_present=True)
    print(f"Training {spec.id}: recipe {data.recipe} ({data.method}), {len(data.examples)} examples, base {base.id}, "
          f"{PRECISION} ...", flush=True)
    models_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.id}-", dir=models_dir()))
    try:
        record = fit(base_pulled.path, data, config, spec.training.seed, tmp, progress=progress)
        (tmp / DATA_FILE).write_text(json.dumps([e.record() for e in data.examples], indent=1, ensure_ascii=False),
                                     encoding="utf-8")
        marker = {
            "model_id": spec.id, "kind": "trained", "artefact_key": key,
            "training_fingerprint": spec.training.fingerprint,
            "base": {"id": base.id, "weight_sha256": spec.training.base_sha256},
            "recipe": data.recipe, "method": data.method, "seed": spec.training.seed,
            "data": data.metadata(), "hyper_parameters": asdict(config), "precision": PRECISION,
            "lora_target_modules": "all-linear", "software": _versions(), **record,
            "dtype": "bfloat16", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"{spec.id}: {record['training_tokens']} training tokens in {record['wall_seconds']} s "
          f"({record['tokens_per_second']} tokens/s, {record['cpu_seconds']} CPU-s), final loss {record['final_loss']}",
          flush=True)
    return PulledModel(spec.id, final, key, already_present=False)
