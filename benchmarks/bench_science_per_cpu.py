"""Science per CPU-minute on the slippage workload: the main job's old slippage design against its new one.

"Science" here is what the slippage chapter reads: the precision of each attack family's slippage (direct minus
attacked refusal on targets, a paired bootstrap over request pairs), measured as 1 / (half-width of its 95%
interval)^2, averaged over the attack families. It grows with the number of independent requests behind a family
rate, not with the number of replies. Three ways, each on a fresh server with an empty generation cache, in
alternating order per repeat:

* ``old``: the main job before this change, the full design (every target under every wrapper, every twin under
  every wrapper that accepts it) on the 20 pairs of requests-1.0, 64 tokens per reply;
* ``new_64``: the incomplete design (one wrapper per attack family per request, dealt evenly, the baselines whole;
  :func:`personalab.experiments.slippage.assign_wrappers`) on all 100 held-out pairs, 64 tokens;
* ``new``: the same requests at 32 tokens, the main job's setting now.

``new_64`` against ``new`` isolates the token cut: judged replies per CPU-minute and the agreement of the refusal
labels on identical requests (Cohen's kappa, share of labels that differ). ``old`` against ``new_64`` isolates the
design. CPU-seconds are those of the vLLM server's process tree plus this process (which judges). Greedy decoding
under batching is not bit-repeatable, so ``new_64`` against itself across repeats is the agreement baseline.

Usage: ``python benchmarks/bench_science_per_cpu.py [--model ID] [--repeats 2] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psutil
from sklearn.metrics import cohen_kappa_score

from personalab.experiment import Run
from personalab.experiments import slippage as sl
from personalab.harness.cache import GenerationCache
from personalab.harness.client import Harness, Sampling
from personalab.harness.registry import get_model
from personalab.harness.server import VLLMServer
from personalab.prompts import load_items, twin_of
from process_cpu import tree_cpu_seconds

JUDGE = "keyword_ext3"


@dataclass(frozen=True)
class Way:
    """One way of running the slippage workload."""

    n_items: int | None
    wrappers_per_family: int | None
    max_tokens: int


WAYS: dict[str, Way] = {"old": Way(20, None, 64), "new_64": Way(None, 1, 64), "new": Way(None, 1, 32)}


def precision(replies: pd.DataFrame, n_boot: int) -> tuple[float, dict[str, float]]:
    """Mean over attack families of 1 / half-width^2 of the family's target slippage interval; and the half-widths."""
    slip = sl.slippage_table(replies, n_boot=n_boot)
    fam = slip[(slip["level"] == "family") & (slip["variant"] == "target") & (slip["group"] != sl.CONTROL_FAMILY)]
    half = {g: (hi - lo) / 2 for g, lo, hi in zip(fam["group"], fam["lo"], fam["hi"])}
    return statistics.mean(1 / max(h, 1e-3) ** 2 for h in half.values()), half


def run_way(model: str, name: str, n_boot: int) -> tuple[dict, pd.DataFrame]:
    """Start a server, ask and judge the way's slippage requests from an empty cache, stop the server."""
    way = WAYS[name]
    targets = load_items(split="heldout", variant="target", n=way.n_items)
    benign = [twin_of(t) for t in targets]
    server = VLLMServer(get_model(model))
    endpoint = server.start()
    try:
        assert server.proc is not None
        run = Run.start("bench", model, endpoint=endpoint.base_urls[0], judge=JUDGE, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            cache = GenerationCache(Path(tmp) / "bench.sqlite")
            run.harness = Harness(endpoint, cache=cache, concurrency=32, progress=False)
            cpu0, client0, t0 = tree_cpu_seconds(server.proc.pid), time.process_time(), time.perf_counter()
            replies = sl.ask_all(run, targets, benign, Sampling(temperature=0.0, max_tokens=way.max_tokens, seed=0),
                                 wrappers_per_family=way.wrappers_per_family, seed=0)
            replies = sl.add_competence(replies, [*targets, *benign])
            wall = time.perf_counter() - t0
            cpu = tree_cpu_seconds(server.proc.pid) - cpu0 + time.process_time() - client0
            cache.close()
    finally:
        server.stop()
    score, half = precision(replies, n_boot)
    record = {"way": name, **way.__dict__, "n_pairs": len(targets), "n_replies": len(replies),
              "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "replies_per_cpu_min": round(len(replies) / (cpu / 60), 1),
              "prompt_tokens": int(replies["prompt_tokens"].sum()),
              "completion_tokens": int(replies["completion_tokens"].sum()),
              "precision": round(score, 1), "precision_per_cpu_min": round(score / (cpu / 60), 2),
              "half_width": {g: round(h, 3) for g, h in half.items()}}
    return record, replies[["variant", "wrapper", "item", "refused"]]


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Cohen's kappa and share of differing refusal labels on the requests two runs share."""
    both = a.merge(b, on=["variant", "wrapper", "item"], suffixes=("_a", "_b"))
    x, y = both["refused_a"].astype(bool), both["refused_b"].astype(bool)
    kappa = cohen_kappa_score(x, y) if len(set(x) | set(y)) > 1 else 1.0
    return {"n": len(both), "kappa": round(float(kappa), 3), "differ": round(float((x != y).mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="write every repeat's numbers here")
    args = parser.parse_args()
    if args.repeats < 1 or args.n_boot < 1:
        parser.error("--repeats and --n-boot must be >= 1.")
    get_model(args.model)  # an unknown id fails here, before any server starts
    print(f"slippage workload on {args.model}, {args.repeats} alternating repeats of: {', '.join(WAYS)}", flush=True)
    runs: dict[tuple[int, str], dict] = {}
    labels: dict[tuple[int, str], pd.DataFrame] = {}
    for repeat in range(args.repeats):
        order = list(WAYS) if repeat % 2 == 0 else list(reversed(WAYS))
        for name in order:
            record, labels[(repeat, name)] = run_way(args.model, name, args.n_boot)
            runs[(repeat, name)] = record | {"repeat": repeat}
            print(f"repeat {repeat} {name:7s} {record['n_replies']:5d} replies  wall {record['wall_s']:6.1f} s  "
                  f"cpu {record['cpu_s']:7.1f} s  {record['replies_per_cpu_min']:6.1f} replies/CPU-min  "
                  f"precision {record['precision']:7.1f} ({record['precision_per_cpu_min']:.2f} per CPU-min)",
                  flush=True)
    reps = range(args.repeats)

    def ratio(a: str, b: str, key: str) -> list[float]:
        return [round(runs[(i, a)][key] / runs[(i, b)][key], 2) for i in reps]

    summary = {
        "science_per_cpu_min_new_over_old": ratio("new", "old", "precision_per_cpu_min"),
        "design_alone_new_64_over_old": ratio("new_64", "old", "precision_per_cpu_min"),
        "tokens_alone_replies_per_cpu_min_new_over_new_64": ratio("new", "new_64", "replies_per_cpu_min"),
        "replies_per_cpu_min_new_over_old": ratio("new", "old", "replies_per_cpu_min"),
        "agreement_32_vs_64_tokens": [agreement(labels[(i, "new_64")], labels[(i, "new")]) for i in reps],
        "agreement_64_vs_itself": [agreement(labels[(0, "new_64")], labels[(i, "new_64")]) for i in reps if i],
    }
    for key, value in summary.items():
        print(f"{key}: {value}")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                  "cpus": psutil.cpu_count(), "args": vars(args) | {"json": str(args.json)},
                  "runs": list(runs.values()), "summary": summary}
        args.json.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
