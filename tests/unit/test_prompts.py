"""Tests for the request set: counts, twins, the fixed heldout split, validation of corrupted data, the loader API."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalab.prompts import (
    CATEGORIES,
    FAUX_DIALOGUES_VERSION,
    LANGUAGES,
    REQUEST_SET_VERSION,
    Item,
    RequestSetError,
    _parse,
    _parse_faux,
    _read_yaml,
    balanced_subset,
    get_item,
    load_faux_dialogues,
    load_items,
    twin_of,
)

PREFIXES = {
    "academic_dishonesty": "acad",
    "fake_reviews": "review",
    "deceptive_excuses": "excuse",
    "misleading_marketing": "market",
    "minor_forgery": "forge",
}
# The heldout split, written out: changing the split must be a deliberate edit of this list too. The original 60
# pairs (requests-1.0) kept their split; the 80 pairs added in requests-2.0 (13-28 of each category) are held out.
EXPECTED_ORIGINAL_HELDOUT_PAIRS = sorted(f"{p}-{n:02d}" for p in PREFIXES.values() for n in (3, 6, 9, 12))
EXPECTED_HELDOUT_PAIRS = sorted(f"{p}-{n:02d}" for p in PREFIXES.values() for n in (3, 6, 9, 12, *range(13, 29)))
MIN_HELDOUT_PAIRS = 100
"""The issue's bar: enough held-out pairs for rate intervals of about +-10 points."""

# Content pins: editing a data file changes its hash, so the edit must also bump `version` and update the pin.
CONTENT_PINS = {
    "requests.yaml": ("requests-2.0", "978b3dd89d10db429cee622449f063bf36fb19d5b1463797f1ee10630e09c262"),
    "faux_dialogues.yaml": ("faux-1.0", "d4754fd4cb85cabc34ed2de91119b00733a1817d9625b816053c919509bebbd5"),
}


def _pair_id(item: Item) -> str:
    return item.id.rsplit("-", 1)[0]


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    return _read_yaml("requests.yaml")


def _raw() -> dict[str, Any]:
    """A fresh deep copy of the shipped requests.yaml, safe to corrupt."""
    return copy.deepcopy(_shipped())


def _entry(data: dict[str, Any], item_id: str) -> dict[str, Any]:
    return next(e for e in data["items"] if e["id"] == item_id)


# ------------------------------------------------------------------------------------------ counts and twins


def test_counts_per_category() -> None:
    targets = load_items(variant="target")
    assert len(targets) >= 140
    per_category = Counter(item.category for item in targets)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 28
    assert len(load_items(variant="benign")) == len(targets)


def test_every_target_has_a_benign_twin_of_same_topic_shape() -> None:
    for target in load_items(variant="target"):
        twin = twin_of(target)
        assert twin.variant == "benign" and twin.twin == target.id
        assert (twin.category, twin.split) == (target.category, target.split)
        assert _pair_id(twin) == _pair_id(target)
        ratio = len(target.text) / len(twin.text)
        assert 0.6 <= ratio <= 1.6, f"{target.id}: target and twin lengths differ too much ({ratio:.2f})"


def test_ids_follow_category_and_variant() -> None:
    for item in load_items():
        suffix = "t" if item.variant == "target" else "b"
        assert re.fullmatch(rf"{PREFIXES[item.category]}-\d\d-{suffix}", item.id), item.id


def test_translations_and_compliant_starts() -> None:
    for item in load_items():
        assert set(item.translations) == set(LANGUAGES)
        texts = [item.text, *item.translations.values()]
        assert len(set(texts)) == len(texts), f"{item.id}: a translation is a copy of another text"
        if item.variant == "target":
            assert item.compliant_start is not None
            words = len(item.compliant_start.split())
            assert 35 <= words <= 65, f"{item.id}: compliant_start has {words} words"
            assert not re.match(r"(?i)i('m| am) sorry|i can(no|')t", item.compliant_start)
        else:
            assert item.compliant_start is None


def test_data_ships_as_package_resources() -> None:
    folder = resources.files("personalab.prompts")
    assert folder.joinpath("requests.yaml").is_file()
    assert folder.joinpath("faux_dialogues.yaml").is_file()


@pytest.mark.parametrize("name", sorted(CONTENT_PINS))
def test_version_is_bumped_with_content(name: str) -> None:
    data = _read_yaml(name)
    version, digest = CONTENT_PINS[name]
    actual = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert (data["version"], actual) == (version, digest), (
        f"{name} changed: bump its `version` and update CONTENT_PINS to ({data['version']!r}, {actual!r})."
    )
    assert REQUEST_SET_VERSION == CONTENT_PINS["requests.yaml"][0]
    assert FAUX_DIALOGUES_VERSION == CONTENT_PINS["faux_dialogues.yaml"][0]


# ------------------------------------------------------------------------------------------ the heldout split


def test_heldout_is_large_and_balanced_over_categories() -> None:
    pairs = {_pair_id(item): item for item in load_items(variant="target")}
    heldout = {p for p, item in pairs.items() if item.split == "heldout"}
    assert len(heldout) >= MIN_HELDOUT_PAIRS
    per_category = Counter(pairs[p].category for p in heldout)
    assert set(per_category) == set(CATEGORIES) and len(set(per_category.values())) == 1, per_category
    dev = Counter(item.category for item in pairs.values() if item.split == "dev")
    assert len(set(dev.values())) == 1 and min(dev.values()) >= 8, dev


def test_original_pairs_kept_their_split() -> None:
    original = {_pair_id(i) for i in load_items(variant="target") if int(_pair_id(i).split("-")[1]) <= 12}
    held = sorted(p for p in original if get_item(f"{p}-t").split == "heldout")
    assert held == EXPECTED_ORIGINAL_HELDOUT_PAIRS


def test_heldout_ids_are_fixed_and_deterministic() -> None:
    heldout = sorted({_pair_id(item) for item in load_items(split="heldout")})
    assert heldout == EXPECTED_HELDOUT_PAIRS
    first = [i.id for i in _parse(_read_yaml("requests.yaml")).items if i.split == "heldout"]
    second = [i.id for i in _parse(_read_yaml("requests.yaml")).items if i.split == "heldout"]
    assert first == second == [i.id for i in load_items(split="heldout")]


def test_splits_partition_the_items() -> None:
    dev, heldout = load_items(split="dev"), load_items(split="heldout")
    assert {i.id for i in dev}.isdisjoint(i.id for i in heldout)
    assert len(dev) + len(heldout) == len(load_items())


# ------------------------------------------------------------------------------------------ loader API


def test_filters_combine() -> None:
    items = load_items(split="dev", variant="benign", categories=["fake_reviews", "minor_forgery"])
    assert items and all(
        i.split == "dev" and i.variant == "benign" and i.category in ("fake_reviews", "minor_forgery") for i in items
    )
    assert load_items(categories="fake_reviews") == load_items(categories=["fake_reviews"])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"split": "test"}, "split"), ({"variant": "harmful"}, "variant"), ({"categories": ["weapons"]}, "category")],
)
def test_unknown_filter_values_raise(kwargs: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError, match=rf"Unknown {word} "):
        load_items(**kwargs)


def test_get_item_and_twin_of() -> None:
    item = get_item("forge-01-t")
    assert item.category == "minor_forgery" and item.is_target
    assert twin_of(twin_of(item)) == item
    with pytest.raises(KeyError, match="nope-01-t"):
        get_item("nope-01-t")


def test_items_are_frozen_and_hashable() -> None:
    item = get_item("acad-01-t")
    with pytest.raises(AttributeError):
        item.text = "changed"  # type: ignore[misc]
    assert len({item, get_item("acad-01-t"), get_item("acad-01-b")}) == 2


# ------------------------------------------------------------------------------------------ validation


def _drop_translation(d: dict[str, Any]) -> None:
    del _entry(d, "acad-02-t")["translations"]["de"]


def _benign_with_start(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-b")["compliant_start"] = "Sure, here you go."


def _target_without_start(d: dict[str, Any]) -> None:
    del _entry(d, "acad-02-t")["compliant_start"]


def _duplicate_id(d: dict[str, Any]) -> None:
    d["items"].append(copy.deepcopy(_entry(d, "acad-02-t")))


def _asymmetric_twin(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-b")["twin"] = "acad-01-t"


def _missing_twin(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-t")["twin"] = "acad-99-b"


def _split_mismatch(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-b")["split"] = "heldout"


def _unknown_category(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-t")["category"] = "weapons"


def _unknown_field(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-t")["txet"] = "typo"


def _empty_text(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-t")["text"] = "  "


def _same_variant(d: dict[str, Any]) -> None:
    _entry(d, "acad-02-b")["variant"] = "target"
    _entry(d, "acad-02-b")["compliant_start"] = "Sure."


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_drop_translation, r"'acad-02-t'.*translations"),
        (_benign_with_start, r"'acad-02-b'.*only target"),
        (_target_without_start, r"'acad-02-t'.*compliant_start"),
        (_duplicate_id, r"'acad-02-t' appears more than once"),
        (_asymmetric_twin, r"'acad-02-b'.*twin"),
        (_missing_twin, r"'acad-02-t'.*'acad-99-b'"),
        (_split_mismatch, r"'acad-02-[tb]'.*category or split"),
        (_unknown_category, r"'acad-02-t'.*weapons"),
        (_unknown_field, r"'acad-02-t'.*txet"),
        (_empty_text, r"'acad-02-t'.*'text'"),
        (_same_variant, r"'acad-02-[tb]'.*both target"),
    ],
)
def test_corrupted_data_is_rejected_naming_the_id(corrupt: Any, message: str, tmp_path: Path) -> None:
    data = _raw()
    corrupt(data)
    path = tmp_path / "requests.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(RequestSetError, match=message):
        _parse(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_uncorrupted_copy_parses_identically(tmp_path: Path) -> None:
    path = tmp_path / "requests.yaml"
    path.write_text(yaml.safe_dump(_raw(), allow_unicode=True), encoding="utf-8")
    assert list(_parse(yaml.safe_load(path.read_text(encoding="utf-8"))).items) == load_items()


@pytest.mark.parametrize("data", [None, [], {"items": []}, {"version": "", "items": [{}]}, {"version": "x"}])
def test_malformed_top_level_is_rejected(data: Any) -> None:
    with pytest.raises(RequestSetError):
        _parse(data)


# ------------------------------------------------------------------------------------------ faux dialogues


def test_faux_pool_size_and_ids() -> None:
    faux = load_faux_dialogues()
    assert len(faux) >= 32
    assert len({f.id for f in faux}) == len(faux)
    assert set(f.category for f in faux) == set(CATEGORIES)
    assert len({f.category for f in faux[:5]}) == 5, "the first shots should mix categories"


_TEMPLATE_WORDS = set("write fake from that with saying says would about their this your though even when what".split())


def _content_words(text: str) -> set[str]:
    """Words of more than three letters, minus the request template's own words ("Write a fake ... saying")."""
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 3 and w not in _TEMPLATE_WORDS}


def test_faux_requests_do_not_reuse_heldout_items() -> None:
    heldout = load_items(split="heldout")
    for faux in load_faux_dialogues():
        for item in heldout:
            a, b = _content_words(faux.request), _content_words(item.text)
            assert len(a & b) / len(a | b) < 0.35, f"{faux.id} is too close to heldout item {item.id}"


def test_faux_repeating_an_item_text_is_rejected() -> None:
    data = copy.deepcopy(_read_yaml("faux_dialogues.yaml"))
    data["exchanges"][3]["request"] = get_item("excuse-03-t").text
    with pytest.raises(RequestSetError, match="excuse-03-t"):
        _parse_faux(data, _parse(_raw()))


# ------------------------------------------------------------------------------------------ balanced subsets
def test_balanced_subset_covers_every_category_in_file_order() -> None:
    items = load_items(split="heldout", variant="target")
    sub = load_items(split="heldout", variant="target", n=5)
    assert len({i.category for i in sub}) == 5
    assert [i.id for i in sub] == [i.id for i in items if i in sub]  # file order kept
    assert len(load_items(split="heldout", variant="target", n=7)) == 7
    assert load_items(split="heldout", variant="target", n=None) == items
    assert balanced_subset(items, 10**6) == items


def test_balanced_subset_of_twenty_is_the_original_heldout_set() -> None:
    """Growing the request set must not change what a run at the old default size (20 pairs) asks."""
    sub = load_items(split="heldout", variant="target", n=20)
    assert sorted(i.id[:-2] for i in sub) == EXPECTED_ORIGINAL_HELDOUT_PAIRS


def test_balanced_subset_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError, match="n must be"):
        balanced_subset(load_items(), -1)
