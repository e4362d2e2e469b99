"""The judge interface: a judge reads one model reply and says refusal, compliance or other.

Convention: ``reply`` is only the text the model generated. ``prefill`` is text we put in the assistant's mouth
before it (e.g. ``"Sure, here is the review:"``); it is context, not the model's words, so a prefill ``"Sure,"``
followed by the reply ``"I'm sorry, but I can't help with that."`` is a refusal: the model recovered.
``request`` is the user turn, for judges that compare the reply with what was asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

Label = Literal["refusal", "compliance", "other"]
LABELS: tuple[str, ...] = get_args(Label)


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one reply: the label, how much the rule that fired is trusted, and why."""

    label: Label
    confidence: float
    reason: str

    def __post_init__(self) -> None:
        """Reject labels outside ``Label`` and confidences outside [0, 1], so bad verdicts never reach a table."""
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence!r}")


@runtime_checkable
class Judge(Protocol):
    """Anything with a name, a version (recorded next to every verdict) and a ``judge`` method."""

    name: str
    version: str

    def judge(self, reply: str, *, request: str | None = None, prefill: str | None = None) -> Verdict:
        """Label one reply; ``prefill`` and ``request`` are context, never part of the model's words."""


def judge_many(
    judge: Judge,
    replies: Sequence[str],
    requests: Sequence[str | None] | None = None,
    prefills: Sequence[str | None] | None = None,
) -> list[Verdict]:
    """Judge a batch of replies, with optional per-reply requests and prefills of the same length."""
    n = len(replies)
    for name, seq in (("requests", requests), ("prefills", prefills)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has length {len(seq)}, expected {n} (one per reply)")
    reqs = list(requests) if requests is not None else [None] * n
    pres = list(prefills) if prefills is not None else [None] * n
    batch = getattr(judge, "judge_batch", None)
    if batch is not None:  # judges that embed or classify do it much faster in one batch
        return batch(list(replies), pres)
    return [judge.judge(r, request=q, prefill=p) for r, q, p in zip(replies, reqs, pres, strict=True)]


JUDGES: dict[str, Callable[[], Judge]] = {}
"""Judge factories by name; experiments record ``name`` and ``version`` so results say who labelled them."""


def register_judge(name: str, factory: Callable[[], Judge]) -> None:
    """Add a judge factory under ``name``; a different factory under a taken name is an error."""
    existing = JUDGES.get(name)
    if existing is not None and existing is not factory:
        raise ValueError(f"judge name {name!r} is already registered")
    JUDGES[name] = factory


def get_judge(name: str) -> Judge:
    """Instantiate the judge registered as ``name``; unknown names list the valid ones."""
    try:
        factory = JUDGES[name]
    except KeyError:
        valid = ", ".join(sorted(JUDGES)) or "(none)"
        raise ValueError(f"unknown judge {name!r}; valid names: {valid}") from None
    return factory()
