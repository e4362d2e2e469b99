"""The request set: target requests, their benign twins, and the faux dialogues used by many-shot erosion.

The data live in ``requests.yaml`` and ``faux_dialogues.yaml`` next to this file and are read with
``importlib.resources`` so that an installed package finds them. Both files are validated on load: a broken
file fails loudly, naming the bad id, instead of silently skewing a refusal rate.

Every target (a low-stakes request a well-aligned assistant may decline) has a benign twin on the same topic;
comparing the two separates "refuses the request" from "refuses the topic". A fixed, category-balanced third of
the pairs is ``heldout``: wrapper wording is tuned on ``dev`` only and the book reports on ``heldout``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

CATEGORIES: tuple[str, ...] = (
    "academic_dishonesty",
    "fake_reviews",
    "deceptive_excuses",
    "misleading_marketing",
    "minor_forgery",
)
SPLITS: tuple[str, ...] = ("dev", "heldout")
VARIANTS: tuple[str, ...] = ("target", "benign")
LANGUAGES: tuple[str, ...] = ("fr", "es", "de", "it", "pt")

_ITEM_KEYS = frozenset({"id", "category", "variant", "split", "twin", "text", "translations", "compliant_start"})
_FAUX_KEYS = frozenset({"id", "category", "request", "response"})


class RequestSetError(ValueError):
    """A data file of the request set is malformed; the message names the offending id."""


@dataclass(frozen=True)
class Item:
    """One request: a target or its benign twin, with translations and (targets only) a compliant opening."""

    id: str
    category: str
    variant: str
    text: str
    twin: str
    split: str
    translations: Mapping[str, str] = field(hash=False)  # a plain dict so that items pickle and ``asdict``
    compliant_start: str | None = None

    @property
    def is_target(self) -> bool:
        """True for the request a model may refuse, False for its benign twin."""
        return self.variant == "target"


@dataclass(frozen=True)
class FauxExchange:
    """One pre-written user request and compliant assistant answer, used as a shot in many-shot erosion."""

    id: str
    category: str
    request: str
    response: str


@dataclass(frozen=True)
class RequestSet:
    """A parsed and validated ``requests.yaml``: its version and its items in file order."""

    version: str
    items: tuple[Item, ...]


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    """Return a required non-empty string field, or raise naming the entry."""
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RequestSetError(f"{where}: field {key!r} must be a non-empty string.")
    return value


def _choice(entry: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str) -> str:
    """Return a required field that must be one of ``allowed``."""
    value = _text(entry, key, where)
    if value not in allowed:
        raise RequestSetError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}.")
    return value


def _parse_item(entry: Any, index: int) -> Item:
    """Validate one raw item mapping (fields only; cross-item checks are in :func:`_parse`)."""
    if not isinstance(entry, Mapping):
        raise RequestSetError(f"Item #{index} is not a mapping.")
    where = f"Item {entry.get('id', f'#{index}')!r}"
    item_id = _text(entry, "id", where)
    unknown = set(entry) - _ITEM_KEYS
    if unknown:
        raise RequestSetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    variant = _choice(entry, "variant", VARIANTS, where)
    translations = entry.get("translations")
    if not isinstance(translations, Mapping) or set(translations) != set(LANGUAGES):
        raise RequestSetError(f"{where}: translations must have exactly the keys {', '.join(LANGUAGES)}.")
    for lang in LANGUAGES:
        _text(translations, lang, f"{where} translation")
    start = entry.get("compliant_start")
    if variant == "target":
        start = _text(entry, "compliant_start", where)
    elif start is not None:
        raise RequestSetError(f"{where}: only target items may have a compliant_start.")
    return Item(
        id=item_id,
        category=_choice(entry, "category", CATEGORIES, where),
        variant=variant,
        text=_text(entry, "text", where),
        twin=_text(entry, "twin", where),
        split=_choice(entry, "split", SPLITS, where),
        translations={lang: translations[lang] for lang in LANGUAGES},
        compliant_start=start,
    )


def _parse(data: Any) -> RequestSet:
    """Validate the raw YAML of a request set and build it.

    Checks: a non-empty ``version`` string; unique ids; every field present and valid; translations for every
    language; ``compliant_start`` on targets only; twins exist, point back, have the other variant and share
    category and split. Raises :class:`RequestSetError` naming the first bad id.
    """
    if not isinstance(data, Mapping):
        raise RequestSetError("The request set must be a mapping with 'version' and 'items'.")
    version = _text(data, "version", "The request set")
    raw = data.get("items")
    if not isinstance(raw, list) or not raw:
        raise RequestSetError("The request set must have a non-empty list of 'items'.")
    items = tuple(_parse_item(entry, i) for i, entry in enumerate(raw))
    by_id: dict[str, Item] = {}
    for item in items:
        if item.id in by_id:
            raise RequestSetError(f"Item {item.id!r} appears more than once.")
        by_id[item.id] = item
    for item in items:
        twin = by_id.get(item.twin)
        if twin is None or twin.id == item.id:
            raise RequestSetError(f"Item {item.id!r}: its twin {item.twin!r} is not another item of the set.")
        if twin.twin != item.id:
            raise RequestSetError(f"Item {item.id!r}: its twin {twin.id!r} names {twin.twin!r} as its twin instead.")
        if twin.variant == item.variant:
            raise RequestSetError(f"Item {item.id!r}: it and its twin {twin.id!r} are both {item.variant}.")
        if (twin.category, twin.split) != (item.category, item.split):
            raise RequestSetError(f"Item {item.id!r}: its twin {twin.id!r} has another category or split.")
    return RequestSet(version=version, items=items)


def _parse_faux(data: Any, request_set: RequestSet) -> tuple[str, tuple[FauxExchange, ...]]:
    """Validate the raw YAML of the faux dialogues; return its version and exchanges.

    Besides field checks and unique ids, a faux request may not repeat the text of any item of ``request_set``:
    a shot that is itself an evaluated request would leak the answer into the prompt.
    """
    if not isinstance(data, Mapping):
        raise RequestSetError("The faux dialogues must be a mapping with 'version' and 'exchanges'.")
    version = _text(data, "version", "The faux dialogues")
    raw = data.get("exchanges")
    if not isinstance(raw, list) or not raw:
        raise RequestSetError("The faux dialogues must have a non-empty list of 'exchanges'.")
    item_texts = {item.text: item.id for item in request_set.items}
    seen: set[str] = set()
    out: list[FauxExchange] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise RequestSetError(f"Faux exchange #{i} is not a mapping.")
        where = f"Faux exchange {entry.get('id', f'#{i}')!r}"
        unknown = set(entry) - _FAUX_KEYS
        if unknown:
            raise RequestSetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
        exchange = FauxExchange(
            id=_text(entry, "id", where),
            category=_choice(entry, "category", CATEGORIES, where),
            request=_text(entry, "request", where),
            response=_text(entry, "response", where),
        )
        if exchange.id in seen:
            raise RequestSetError(f"{where} appears more than once.")
        if exchange.request in item_texts:
            raise RequestSetError(f"{where} repeats the text of item {item_texts[exchange.request]!r}.")
        seen.add(exchange.id)
        out.append(exchange)
    return version, tuple(out)


def _read_yaml(name: str) -> Any:
    """Read one YAML data file shipped in this package."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: same result, faster
    return yaml.load(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"), Loader=loader)


@lru_cache(maxsize=1)
def _request_set() -> RequestSet:
    """The shipped request set, parsed once."""
    return _parse(_read_yaml("requests.yaml"))


@lru_cache(maxsize=1)
def _index() -> dict[str, Item]:
    """The shipped items by id."""
    return {item.id: item for item in _request_set().items}


@lru_cache(maxsize=1)
def _faux() -> tuple[str, tuple[FauxExchange, ...]]:
    """The shipped faux dialogues, parsed once."""
    return _parse_faux(_read_yaml("faux_dialogues.yaml"), _request_set())


REQUEST_SET_VERSION: str = _request_set().version
FAUX_DIALOGUES_VERSION: str = _faux()[0]


def _check(value: str | None, allowed: tuple[str, ...], what: str) -> None:
    """Raise a one-sentence ValueError when a filter value is not allowed."""
    if value is not None and value not in allowed:
        raise ValueError(f"Unknown {what} {value!r}; expected one of {', '.join(allowed)}.")


def load_items(
    split: str | None = None,
    variant: str | None = None,
    categories: Sequence[str] | None = None,
    n: int | None = None,
) -> list[Item]:
    """Return the items in file order, filtered by split, variant and categories (``None`` keeps all).

    A single category may be passed as a plain string. Unknown values raise ``ValueError``. With ``n``, only
    :func:`balanced_subset` of the filtered items is kept, so a small run still covers every category.
    """
    _check(split, SPLITS, "split")
    _check(variant, VARIANTS, "variant")
    wanted: tuple[str, ...] | None = None
    if categories is not None:
        wanted = (categories,) if isinstance(categories, str) else tuple(categories)
        for category in wanted:
            _check(category, CATEGORIES, "category")
    items = [
        item
        for item in _request_set().items
        if (split is None or item.split == split)
        and (variant is None or item.variant == variant)
        and (wanted is None or item.category in wanted)
    ]
    return items if n is None else balanced_subset(items, n)


def balanced_subset(items: Sequence[Item], n: int | None) -> list[Item]:
    """The first ``n`` of ``items`` taken round-robin over categories (file order within each), returned in file
    order; all of them when ``n`` is None or at least their number.

    With pairs numbered in file order this keeps the lowest-numbered pairs of every category, so a run at the
    old size (20 held-out pairs) asks exactly the requests it asked before the set grew.
    """
    if n is not None and n < 0:
        raise ValueError(f"n must be None or >= 0, got {n}.")
    if n is None or n >= len(items):
        return list(items)
    queues: dict[str, list[Item]] = {}
    for item in items:
        queues.setdefault(item.category, []).append(item)
    chosen: set[str] = set()
    while len(chosen) < n:
        for queue in queues.values():
            if queue and len(chosen) < n:
                chosen.add(queue.pop(0).id)
    return [item for item in items if item.id in chosen]


def get_item(item_id: str) -> Item:
    """Return the item with this id; an unknown id raises ``KeyError``."""
    try:
        return _index()[item_id]
    except KeyError:
        raise KeyError(f"No item has the id {item_id!r}.") from None


def twin_of(item: Item) -> Item:
    """Return the benign twin of a target, or the target of a benign item."""
    return get_item(item.twin)


def load_faux_dialogues() -> list[FauxExchange]:
    """Return the faux exchanges for many-shot erosion, in file order (categories interleaved)."""
    return list(_faux()[1])


__all__ = [
    "CATEGORIES",
    "FAUX_DIALOGUES_VERSION",
    "LANGUAGES",
    "REQUEST_SET_VERSION",
    "SPLITS",
    "VARIANTS",
    "FauxExchange",
    "Item",
    "RequestSet",
    "RequestSetError",
    "balanced_subset",
    "get_item",
    "load_faux_dialogues",
    "load_items",
    "twin_of",
]
