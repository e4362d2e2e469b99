"""The attack registry: the :class:`Wrapper` type, :data:`WRAPPERS` and its lookups, and helpers every family uses.

Family modules build messages with ``_system``/``_user``/``_assistant`` and add templates with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from personalab.prompts import Item, get_item

Message = dict[str, str]
Conversation = list[Message]
Builder = Callable[[Item], Conversation]

FAMILIES: tuple[str, ...] = (
    "direct", "control", "identity", "context", "erosion", "technical", "value_conflict", "prefill",
)
CONTROL_FAMILY = "control"
"""The family of null wrappers: analyses use it as a baseline, never as an attack."""
EXAMPLE_ITEM_ID = "acad-01-t"  # a dev item: examples in the book never show heldout wording


@dataclass(frozen=True)
class Wrapper:
    """A registered attack template: ``wrapper(item)`` returns the conversation to send."""

    name: str
    family: str
    description: str
    build: Builder
    requires_target: bool = False  # True when the template needs ``item.compliant_start`` (benign items raise)

    @property
    def key(self) -> str:
        """The registry key, ``family/name``."""
        return f"{self.family}/{self.name}"

    def __call__(self, item: Item) -> Conversation:
        return self.build(item)


WRAPPERS: dict[str, Wrapper] = {}


def register(
    family: str, name: str, description: str, *, requires_target: bool = False
) -> Callable[[Builder], Builder]:
    """Register the decorated builder as ``family/name``; the builder is returned unchanged.

    The builder must have a docstring (the methods appendix prints it); duplicate keys and unknown families
    raise ``ValueError`` at import time.
    """

    def decorator(build: Builder) -> Builder:
        key = f"{family}/{name}"
        if family not in FAMILIES:
            raise ValueError(f"Cannot register {key!r}: family {family!r} is not one of {', '.join(FAMILIES)}.")
        if key in WRAPPERS:
            raise ValueError(f"Cannot register {key!r}: the key is already taken.")
        if not (build.__doc__ or "").strip():
            raise ValueError(f"Cannot register {key!r}: the builder has no docstring.")
        WRAPPERS[key] = Wrapper(name, family, description, build, requires_target)
        return build

    return decorator


def wrappers(family: str | None = None) -> list[Wrapper]:
    """All registered wrappers in registration order, or those of one family."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"Unknown attack family {family!r}; expected one of {', '.join(FAMILIES)}.")
    return [w for w in WRAPPERS.values() if family is None or w.family == family]


def get_wrapper(key: str) -> Wrapper:
    """The wrapper registered as ``key`` (``family/name``); unknown keys raise ``KeyError`` listing valid ones."""
    try:
        return WRAPPERS[key]
    except KeyError:
        raise KeyError(f"No attack wrapper {key!r}; valid keys are: {', '.join(WRAPPERS)}.") from None


def _system(content: str) -> Message:
    return {"role": "system", "content": content}


def _user(content: str) -> Message:
    return {"role": "user", "content": content}


def _assistant(content: str) -> Message:
    return {"role": "assistant", "content": content}


def conversation_text(conversation: Conversation) -> str:
    """The contents of a conversation joined by blank lines: what :func:`many_shot` counts tokens on.

    Chat-template tokens are not included, so pass a ``max_context_tokens`` with some margin.
    """
    return "\n\n".join(message["content"] for message in conversation)


def describe_wrappers() -> list[dict[str, Any]]:
    """One row per registered wrapper for the book's methods appendix.

    Keys: ``key``, ``family``, ``name``, ``description``, ``docstring`` and ``example`` (the conversation
    built on the fixed dev item :data:`EXAMPLE_ITEM_ID`).
    """
    item = get_item(EXAMPLE_ITEM_ID)
    return [
        {
            "key": w.key,
            "family": w.family,
            "name": w.name,
            "description": w.description,
            "docstring": (w.build.__doc__ or "").strip(),
            "example": w(item),
        }
        for w in WRAPPERS.values()
    ]
