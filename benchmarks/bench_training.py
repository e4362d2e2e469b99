"""Training throughput of a mask: bf16 autocast against fp32, alternating, on one recipe's real data.

    .venv/bin/python benchmarks/bench_training.py [--model smollm2-135m-mask-shallow] [--steps 6] [--repeats 2]

Each repeat trains the model's recipe from scratch for ``--steps`` optimizer steps in fp32 and then in bf16
autocast (the book's setting, ``personalab.train.PRECISION``), and reports non-padding training tokens per second
of each and the ratio within the repeat. The first step of every run is a warm-up and is included, as it is in
a real training run. Nothing is saved; the result JSON goes to stdout (and to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-mask-shallow", help="a kind: trained registry entry")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from dataclasses import replace

    from personalab.harness.models import pull as pull_weights
    from personalab.harness.registry import get_model
    from personalab.train import TrainConfig, build_data
    from personalab.train.data import BaseAnswerer
    from personalab.train.trainer import make_trainer, run_training

    spec = get_model(args.model)
    if spec.training is None:
        raise SystemExit(f"{args.model} is not a trained model entry.")
    base = pull_weights(spec.training.base)
    data = build_data(spec.training.recipe, spec.training.seed, BaseAnswerer(base.path, spec.training.base_sha256))
    config = replace(TrainConfig.from_spec(spec), max_steps=args.steps)
    runs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for precision in ("fp32", "bf16"):
            with tempfile.TemporaryDirectory() as work:
                trainer = make_trainer(base.path, data, config, spec.training.seed, Path(work), progress=False,
                                       precision=precision)
                record = run_training(trainer)
            runs[precision].append(record["tokens_per_second"])
            print(f"{precision}: {record['tokens_per_second']} tokens/s ({record['training_tokens']} tokens, "
                  f"{record['wall_seconds']} s)", flush=True)
    ratios = [b / f for f, b in zip(runs["fp32"], runs["bf16"])]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": args.model,
              "recipe": spec.training.recipe, "steps": args.steps, "batch_size": config.batch_size,
              "tokens_per_second": runs, "bf16_over_fp32": [round(r, 2) for r in ratios],
              "median_ratio": round(statistics.median(ratios), 2)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
