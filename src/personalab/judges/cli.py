"""``personalab judges sample | train | validate``: the labelling pool, the embedding judge, the validation report."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_sample(args: argparse.Namespace) -> int:
    from .sample import write_pool

    path = write_pool()
    print(f"Wrote the labelling pool to {path}.")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .embedding import train

    path, summary = train()
    print(f"Trained the embedding judge on {summary['n_train']} dev labels "
          f"(labels {summary['labels_sha256'][:12]}); wrote {path}.")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validate import write_report

    headline = write_report(n_boot=args.n_boot)
    for name, row in headline.items():
        print(f"{name:10s} held-out refusal-vs-not kappa {row['kappa']:.2f} "
              f"(95% CI {row['kappa_lo']:.2f} to {row['kappa_hi']:.2f}), accuracy {row['accuracy']:.0%}, n = {row['n']}")
    return 0


def add_judges_commands(subparsers: Any) -> None:
    """Add ``judges sample``, ``judges train`` and ``judges validate`` to the ``personalab`` parser."""
    judges = subparsers.add_parser("judges", help="build the labelling pool, train and validate the judges")
    sub = judges.add_subparsers(dest="judges_command", required=True)
    sub.add_parser("sample", help="generate experiments/labels/pool.csv from both embedded models"
                   ).set_defaults(func=_cmd_sample)
    sub.add_parser("train", help="fit the embedding judge on the dev-split hand labels and write its weights"
                   ).set_defaults(func=_cmd_train)
    validate = sub.add_parser("validate", help="compare every judge with the hand labels; write tables and figures")
    validate.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over items")
    validate.set_defaults(func=_cmd_validate)
