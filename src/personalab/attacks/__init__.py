"""Attack families: pure functions that wrap a request :class:`~personalab.prompts.Item` into a conversation.

A conversation is a list of OpenAI-style chat messages ``{"role": "system" | "user" | "assistant", "content": ...}``.
When the last message is an ``assistant`` message it is a PREFILL: the generation harness asks the server to
continue that message instead of starting a new turn.

Each family holds several templates so that a measured effect is not one prompt's accident. Templates are
registered in :data:`WRAPPERS` (keyed ``family/name``, in the style of inspect_ai's registries); parameterised
builders (:func:`many_shot`, :func:`escalation_turns`, :func:`prefill`, :func:`refusal_prefill`) are plain
functions, with a few fixed settings registered for single-shot sweeps.

``base`` holds the registry and the message helpers, each family is one module (``direct``, ``control`` (the
matched-length null wrapper, a baseline rather than an attack), ``identity``, ``context``, ``erosion``,
``technical``, ``value_conflict``, and ``prefilling`` for the ``prefill`` family, named
so that it does not shadow the :func:`prefill` builder) and ``language`` guesses a reply's language. A new family is one new module that calls :func:`register`, its name added to ``base.FAMILIES``, and
one import line below: the import order is the registration order, which is the order of :func:`wrappers`.
"""

from personalab.attacks.base import (
    CONTROL_FAMILY, EXAMPLE_ITEM_ID, FAMILIES, WRAPPERS, Conversation, Message, Wrapper, conversation_text,
    describe_wrappers, get_wrapper, register, wrappers,
)
from personalab.attacks import direct  # noqa: F401  (registers its wrappers)
from personalab.attacks import control  # noqa: F401
from personalab.attacks import identity  # noqa: F401
from personalab.attacks import context  # noqa: F401
from personalab.attacks.erosion import MAX_ESCALATION_TURNS, ContextTooLong, escalation_turns, many_shot
from personalab.attacks.technical import to_leetspeak
from personalab.attacks import value_conflict  # noqa: F401
from personalab.attacks.prefilling import REFUSAL_OPENING, prefill, refusal_prefill
from personalab.attacks.language import language_of

__all__ = [
    "CONTROL_FAMILY", "EXAMPLE_ITEM_ID", "FAMILIES", "MAX_ESCALATION_TURNS", "REFUSAL_OPENING", "WRAPPERS",
    "ContextTooLong",
    "Conversation", "Message", "Wrapper", "conversation_text", "describe_wrappers", "escalation_turns",
    "get_wrapper", "language_of", "many_shot", "prefill", "refusal_prefill", "register", "to_leetspeak", "wrappers",
]
