"""The ``personalab`` command: pull models, serve them, run experiments, regenerate every figure."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Sequence

from personalab.harness.registry import RegistryError, load_registry


def _cmd_models_list(args: argparse.Namespace) -> int:
    from personalab.harness.models import is_pulled

    registry = load_registry()
    for spec in registry.models.values():
        if spec.kind == "trained":
            state = "trained" if is_pulled(spec) else "not trained"
        else:
            state = ("pulled" if is_pulled(spec) else "not pulled") if spec.kind == "embedded" else spec.kind
        default = " (default)" if spec.id == registry.default else ""
        print(f"{spec.id:32s} {spec.kind:9s} {state:11s} {spec.display_name}{default}")
    return 0


def _cmd_models_pull(args: argparse.Namespace) -> int:
    from personalab.harness.registry import get_model
    from personalab.train import pull

    for model_id in args.ids or [None]:
        trained = get_model(model_id).kind == "trained"
        result = pull(model_id)
        if trained:
            verb = "already trained, nothing to do" if result.already_present else "trained and merged"
            print(f"{result.id}: {verb} -> {result.path} (artefact key {result.sha256})")
        else:
            verb = "already pulled, nothing to do" if result.already_present else "pulled and converted"
            print(f"{result.id}: {verb} -> {result.path} (GGUF sha256 {result.sha256})")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from personalab.harness.server import serve

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with serve(args.id, extra_args=args.vllm_args) as endpoint:
        print(f"Serving {endpoint.spec.id} at {endpoint.base_urls[0]} (OpenAI-compatible; Ctrl-C stops it).", flush=True)
        print(f"Other runs attach to it automatically; or export PERSONALAB_ENDPOINT={endpoint.base_urls[0]}", flush=True)
        stop.wait()
    print("Server stopped.")
    return 0


def _parse_params(pairs: Sequence[str]) -> dict[str, object]:
    import yaml

    params: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--param expects key=value, got {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--param {key.strip()}: {value!r} is not a YAML value (quote a string, or write a "
                             "list as [a, b]).") from None
    return params


def _cmd_run(args: argparse.Namespace) -> int:
    from personalab.pipeline import run_experiment

    run_experiment(args.experiment, model_id=args.model, params=_parse_params(args.param),
                   serve_model=not args.no_serve)
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from personalab.pipeline import run_all

    run_all(config_path=args.config, only=args.only, tiers=args.tier or ("main", "extended"))
    return 0


def _cmd_stability(args: argparse.Namespace) -> int:
    from personalab.stability import DEFAULT_OUT_DIR, repetition_seeds, rerun

    rerun(args.out or DEFAULT_OUT_DIR, seeds=repetition_seeds(args.repetitions, args.seeds),
          temperature=args.temperature, only=args.only, judge=args.judge)
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from personalab.harness.cache import GenerationCache, default_cache_path, repair

    if args.repair:
        aside = repair()
        if aside is None:
            print(f"{default_cache_path()} is usable; nothing to repair.")
        else:
            print(f"Moved the unusable cache to {aside} and started a new one at {default_cache_path()}.")
        return 0
    cache = GenerationCache()
    print(f"{cache.path}: {cache.count()} generations")
    for spec in load_registry().models.values():
        n = cache.count(spec.id)
        if n:
            print(f"  {spec.id}: {n}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from personalab.judges.sample import write_pool

    path = write_pool()
    print(f"Wrote the labelling pool to {path}.")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from personalab.judges.probe_pool import (FRESH_SEED, FRESH_SPLIT, PER_FAMILY, PROBE_MODELS,
                                              probe_conditions, probe_plan,
                                              write_probe_pool)

    keys = probe_conditions(args.languages, include_other=not args.languages_only)
    draw = {"split": FRESH_SPLIT, "seed": FRESH_SEED} if args.fresh else {}
    draw["per_family"] = args.per_family or PER_FAMILY
    plan = probe_plan(args.models or list(PROBE_MODELS), keys, **draw)
    print(f"Planned {len(plan)} probe replies ({draw.get('split', 'dev')} split); serving the models.")
    path = write_probe_pool(args.models or list(PROBE_MODELS), keys, **draw)
    print(f"Wrote the probe pool ({len(keys)} conditions) to {path}; label the new rows by the guide.")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from personalab.judges.embedding import train

    path, summary = train()
    print(f"Trained the embedding judge on {summary['n_train']} dev labels "
          f"(labels {summary['labels_sha256'][:12]}); wrote {path}.")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from personalab.book.judge_report import write_report

    headline = write_report(n_boot=args.n_boot)
    for name, row in headline.items():
        print(f"{name:12s} worst held-out group {row['worst_grouping']}={row['worst_group']}: refusal-vs-not kappa "
              f"{row['kappa']:.2f} (95% CI {row['kappa_lo']:.2f} to {row['kappa_hi']:.2f}), n = {row['n']}; "
              f"{row['groups_at_target']} of {row['n_groups']} groups at kappa >= 0.8")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from personalab.judges.labels import LABELS_PATH, check_labels, read_pool
    from personalab.judges.request_check import write_question_scores
    from personalab.judges.served import check_judge_model, write_scores
    from personalab.judges.validate import labelled_pool
    from personalab.outputs import read_table

    check_judge_model(args.model)
    pool, labels = read_pool(), read_table(LABELS_PATH)
    check_labels(labels, pool)
    df = labelled_pool(pool, labels)
    path = write_scores(args.model, df)
    questions = write_question_scores(args.model, df)
    print(f"Wrote {args.model}'s refusal log-odds for {len(df)} labelled replies to {path}, and its answers to the "
          f"two questions the keyword rules cannot answer to {questions}; `personalab judges validate` adds both to "
          "the judge tables.")
    return 0


def add_judges_commands(subparsers: Any) -> None:
    """Add ``judges sample``, ``probe``, ``train``, ``ask`` and ``validate`` to the ``personalab`` parser."""
    judges = subparsers.add_parser("judges", help="build the labelling pool, train and validate the judges")
    sub = judges.add_subparsers(dest="judges_command", required=True)
    sub.add_parser("sample", help="generate experiments/labels/pool.csv from both embedded models"
                   ).set_defaults(func=_cmd_sample)
    probe = sub.add_parser("probe", help="add replies under conditions no judge was trained on to "
                           "experiments/labels/probe_pool.csv (for out-of-distribution validation)")
    probe.add_argument("--models", nargs="+", help="model ids (default: every probe model)")
    probe.add_argument("--languages", nargs="*", default=["fr", "es", "de", "it", "pt"],
                       help="languages of the lang_xx probes (none: no language probes)")
    probe.add_argument("--languages-only", action="store_true", help="only the language probes")
    probe.add_argument("--per-family", type=int, default=None,
                       help="replies per probe family and model (default: the first draw's 16)")
    probe.add_argument("--fresh", action="store_true",
                       help="draw held-out requests (a fresh check no judge trains on) instead of dev ones")
    probe.set_defaults(func=_cmd_probe)
    sub.add_parser("train", help="fit the embedding judge on the dev-split hand labels and write its weights"
                   ).set_defaults(func=_cmd_train)
    ask = sub.add_parser("ask", help="serve a chat model and record its refusal log-odds for every labelled reply "
                         "(the served judge) and its answers to the request questions the keyword rules cannot "
                         "answer (both scored by `judges validate`); replaces the recorded scores, which name the "
                         "judge model")
    ask.add_argument("--model", default="qwen2.5-coder-1.5b-instruct", help="the judge model's id in the registry")
    ask.set_defaults(func=_cmd_ask)
    validate = sub.add_parser("validate", help="compare every judge with the hand labels; write tables and figures")
    validate.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over items")
    validate.set_defaults(func=_cmd_validate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="personalab", description="Pull models, serve them with vLLM, run the experiment notebooks, regenerate every figure.")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list or pull the models of the registry")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="list known models and whether they are pulled").set_defaults(func=_cmd_models_list)
    pull = models_sub.add_parser("pull", help="download, verify and convert embedded models (idempotent)")
    pull.add_argument("ids", nargs="*", help="model ids (default: the registry's default model)")
    pull.set_defaults(func=_cmd_models_pull)

    serve = sub.add_parser("serve", help="serve a model with vLLM on 127.0.0.1 until Ctrl-C")
    serve.add_argument("id", nargs="?", default=None, help="model id (default: the registry's default model)")
    serve.add_argument("vllm_args", nargs=argparse.REMAINDER,
                       help="extra vLLM arguments after --, e.g. -- --tensor-parallel-size 2")
    serve.set_defaults(func=_cmd_serve)

    run = sub.add_parser("run", help="execute one experiment notebook with papermill")
    run.add_argument("experiment", help="experiment name (a notebook in experiments/)")
    run.add_argument("--model", default=None, help="model id from the registry (default: the registry's default)")
    run.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                     help="override a notebook parameter (YAML value), repeatable")
    run.add_argument("--no-serve", action="store_true", help="do not start a server (the notebook only reads results)")
    run.set_defaults(func=_cmd_run)

    figures = sub.add_parser("figures", help="run every experiment listed in experiments/config.yaml")
    figures.add_argument("--config", default=None, help="path of the run configuration")
    figures.add_argument("--only", action="append", default=None, help="run only these experiments (repeatable)")
    figures.add_argument("--tier", action="append", choices=("main", "extended"), default=None,
                         help="run only the runs of this tier of experiments/config.yaml (repeatable; default: all)")
    figures.set_defaults(func=_cmd_figures)

    stability = sub.add_parser("stability", help="re-run the main job from an empty generation cache (per seed) and "
                               "record whether each claim-table verdict held")
    stability.add_argument("--repetitions", type=int, default=None,
                           help="re-runs, each from an empty cache with the configured seeds (default 1)")
    stability.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                           help="one re-run per seed, passed to every notebook as its seed parameter")
    stability.add_argument("--temperature", type=float, default=None,
                           help="sampling temperature, in [0, 2], for the notebooks that declare one")
    stability.add_argument("--only", nargs="+", default=None, metavar="EXP", help="re-run only these experiments")
    stability.add_argument("--judge", default=None, metavar="NAME",
                           help="instead of re-generating, re-judge the committed replies with this registered judge "
                                "(from copies of the caches, never serving a model); records go to "
                                "experiments/results/stability/judge/NAME/")
    stability.add_argument("--out", default=None,
                           help="folder for the repetitions' caches and results (default <repo>/.personalab/stability)")
    stability.set_defaults(func=_cmd_stability)

    cache = sub.add_parser("cache", help="show what the generation cache holds")
    cache.add_argument("--repair", action="store_true",
                       help="move an unusable cache file aside (with a timestamp, never deleted) and start a new one")
    cache.set_defaults(func=_cmd_cache)

    add_judges_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``personalab`` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "vllm_args", None) and args.vllm_args[:1] == ["--"]:
        args.vllm_args = args.vllm_args[1:]
    try:
        return args.func(args)
    except (RegistryError, ValueError) as err:
        print(f"personalab: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"personalab: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
