"""Tests for the attack wrappers: conversation shapes, that each wrapper carries the request, the parameterised
builders (many-shot, escalation, prefill) and the language guesser."""

from __future__ import annotations

import base64
import binascii
import re

import pytest

from personalab import attacks
from personalab.attacks import (
    EXAMPLE_ITEM_ID,
    FAMILIES,
    REFUSAL_OPENING,
    WRAPPERS,
    ContextTooLong,
    Conversation,
    conversation_text,
    describe_wrappers,
    escalation_turns,
    get_wrapper,
    language_of,
    many_shot,
    prefill,
    refusal_prefill,
    register,
    wrappers,
)
from personalab.prompts import FauxExchange, Item, get_item, load_faux_dialogues, load_items, twin_of

TARGET = get_item("market-02-t")
BENIGN = twin_of(TARGET)
ROLES = {"system", "user", "assistant"}


def assert_well_formed(conversation: Conversation) -> None:
    """Valid chat: only role/content keys, non-empty strings, an optional leading system message, then turns that
    alternate user/assistant starting with a user turn (a trailing assistant message is a prefill)."""
    assert isinstance(conversation, list) and conversation
    for message in conversation:
        assert set(message) == {"role", "content"}, message
        assert message["role"] in ROLES
        assert isinstance(message["content"], str) and message["content"].strip()
    turns = conversation[1:] if conversation[0]["role"] == "system" else conversation
    assert turns, "a conversation needs at least one user turn"
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    assert [m["role"] for m in turns] == expected


def _leet(text: str) -> str:
    """An independent re-implementation of the leetspeak table the technical/leetspeak prompt announces."""
    table = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
    return "".join(table.get(c.lower(), c) for c in text)


def _decoded_base64(content: str) -> list[str]:
    """Every base64 token of ``content`` that decodes to UTF-8 text."""
    out = []
    for token in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", content):
        try:
            out.append(base64.b64decode(token, validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            continue
    return out


def carries_request(conversation: Conversation, item: Item) -> bool:
    """True when some user message holds the item's text, a translation, its leetspeak or its base64."""
    for message in conversation:
        if message["role"] != "user":
            continue
        content = message["content"]
        forms = [item.text, _leet(item.text), *item.translations.values()]
        if any(form in content for form in forms) or item.text in _decoded_base64(content):
            return True
    return False


# ------------------------------------------------------------------------------------------ the registry


def test_families_have_enough_templates() -> None:
    for family in ("identity", "context", "erosion", "technical", "value_conflict", "prefill"):
        assert len(wrappers(family)) >= 3, family
    assert [w.key for w in wrappers("direct")] == ["direct/plain"]
    assert {w.family for w in wrappers()} == set(FAMILIES)


def test_required_keys_are_registered() -> None:
    required = {
        "direct/plain",
        "erosion/many_shot_4",
        "erosion/many_shot_8",
        "technical/lang_fr",
        "technical/lang_es",
        "technical/lang_de",
        "technical/base64",
        "technical/leetspeak",
        "technical/code",
        "prefill/sure",
        "prefill/k5",
        "prefill/k10",
    }
    assert required <= set(WRAPPERS)
    for key, wrapper in WRAPPERS.items():
        assert key == wrapper.key == f"{wrapper.family}/{wrapper.name}"
        assert wrapper.description.strip()
        assert "Example" in (wrapper.build.__doc__ or ""), f"{key} has no example in its docstring"


def test_get_wrapper_and_unknown_keys() -> None:
    assert get_wrapper("technical/base64") is WRAPPERS["technical/base64"]
    with pytest.raises(KeyError, match="direct/plain"):
        get_wrapper("technical/rot13")
    with pytest.raises(ValueError, match="Unknown attack family"):
        wrappers("jailbreak")


def test_register_rejects_bad_entries() -> None:
    def documented(item: Item) -> Conversation:
        """Documented."""
        return [{"role": "user", "content": item.text}]

    with pytest.raises(ValueError, match="already taken"):
        register("direct", "plain", "duplicate")(documented)
    with pytest.raises(ValueError, match="family"):
        register("poetry", "sonnet", "unknown family")(documented)
    with pytest.raises(ValueError, match="docstring"):
        register("direct", "undocumented", "no docstring")(lambda item: [])
    assert "direct/undocumented" not in WRAPPERS and "poetry/sonnet" not in WRAPPERS


# ------------------------------------------------------------------------------------------ every wrapper


@pytest.mark.parametrize("key", sorted(WRAPPERS))
def test_every_wrapper_is_well_formed_and_carries_the_request(key: str) -> None:
    wrapper = WRAPPERS[key]
    items = load_items() if not wrapper.requires_target else load_items(variant="target")
    for item in items:
        conversation = wrapper(item)
        assert_well_formed(conversation)
        assert carries_request(conversation, item), f"{key} lost the request of {item.id}"
        assert conversation[-1]["role"] == "user" or wrapper.family == "prefill", f"{key} prefills unexpectedly"


@pytest.mark.parametrize("key", sorted(k for k, w in WRAPPERS.items() if w.requires_target))
def test_target_only_wrappers_reject_benign_items(key: str) -> None:
    with pytest.raises(ValueError, match=BENIGN.id):
        WRAPPERS[key](BENIGN)


def test_wrappers_are_pure() -> None:
    for wrapper in wrappers():
        first, second = wrapper(TARGET), wrapper(TARGET)
        assert first == second and first is not second


def test_templates_do_not_leak_heldout_requests() -> None:
    heldout_texts = [item.text for item in load_items(split="heldout")]
    for wrapper in wrappers():
        contents = " ".join(m["content"] for m in wrapper(TARGET))
        assert not any(text in contents for text in heldout_texts), wrapper.key


def test_base64_decodes_back_to_the_text() -> None:
    for item in load_items():
        content = get_wrapper("technical/base64")(item)[0]["content"]
        assert item.text not in content
        assert _decoded_base64(content) == [item.text]


def test_leetspeak_hides_the_plain_text() -> None:
    content = get_wrapper("technical/leetspeak")(TARGET)[0]["content"]
    assert TARGET.text not in content
    assert _leet(TARGET.text) in content


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_language_wrappers_use_the_translation_only(lang: str) -> None:
    for item in load_items(variant="target"):
        content = get_wrapper(f"technical/lang_{lang}")(item)[0]["content"]
        assert item.translations[lang] in content and item.text not in content
    recognised = [language_of(get_wrapper(f"technical/lang_{lang}")(i)[0]["content"]) == lang for i in load_items()]
    assert sum(recognised) >= 0.9 * len(recognised)


def test_code_wrapper_embeds_the_request_as_a_docstring() -> None:
    content = get_wrapper("technical/code")(TARGET)[0]["content"]
    assert f'"""{TARGET.text}"""' in content and "def " in content


# ------------------------------------------------------------------------------------------ prefill


def test_prefill_k0_is_the_direct_conversation() -> None:
    assert prefill(TARGET, 0) == get_wrapper("direct/plain")(TARGET)


def test_prefill_whitespace_words() -> None:
    conversation = prefill(TARGET, 3)
    assert_well_formed(conversation)
    assert conversation[0] == {"role": "user", "content": TARGET.text}
    assert conversation[-1] == {"role": "assistant", "content": " ".join(TARGET.compliant_start.split()[:3])}
    assert conversation[-1]["content"] == "Sure, here is"
    assert prefill(TARGET, 10_000)[-1]["content"] == " ".join(TARGET.compliant_start.split())


def test_prefill_honours_a_custom_tokenizer() -> None:
    calls: list[str] = []

    def tokenize(text: str) -> list[str]:
        calls.append(text)
        return list(text)

    conversation = prefill(TARGET, 5, tokenize=tokenize, detokenize="".join)
    assert conversation[-1]["content"] == TARGET.compliant_start[:5] == "Sure,"
    assert calls == [TARGET.compliant_start]


def test_prefill_errors() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        prefill(TARGET, -1)
    with pytest.raises(ValueError, match=rf"{BENIGN.id}.*benign"):
        prefill(BENIGN, 3)
    with pytest.raises(ValueError, match="both tokenize and detokenize"):
        prefill(TARGET, 3, tokenize=list)
    with pytest.raises(ValueError, match="empty"):
        prefill(TARGET, 3, tokenize=lambda s: [], detokenize="".join)


def test_registered_prefills() -> None:
    assert get_wrapper("prefill/sure")(BENIGN)[-1] == {"role": "assistant", "content": "Sure,"}
    assert get_wrapper("prefill/k5")(TARGET)[-1]["content"].split() == TARGET.compliant_start.split()[:5]
    assert get_wrapper("prefill/k10")(TARGET)[-1]["content"].split() == TARGET.compliant_start.split()[:10]


def test_refusal_prefill_works_on_both_variants() -> None:
    assert refusal_prefill(BENIGN, 2)[-1] == {"role": "assistant", "content": "I'm sorry,"}
    assert refusal_prefill(TARGET, 100)[-1]["content"] == REFUSAL_OPENING
    assert refusal_prefill(TARGET, 0) == [{"role": "user", "content": TARGET.text}]
    with pytest.raises(ValueError):
        refusal_prefill(TARGET, -2)


# ------------------------------------------------------------------------------------------ erosion


@pytest.mark.parametrize("n", [0, 1, 4, 8, 32])
def test_many_shot_shape(n: int) -> None:
    conversation = many_shot(TARGET, n)
    assert_well_formed(conversation)
    assert len(conversation) == 2 * n + 1
    assert conversation[-1] == {"role": "user", "content": TARGET.text}
    pool = load_faux_dialogues()
    assert [m["content"] for m in conversation[:-1:2]] == [f.request for f in pool[:n]]
    assert [m["content"] for m in conversation[1::2]] == [f.response for f in pool[:n]]


def test_many_shot_registered_settings() -> None:
    assert get_wrapper("erosion/many_shot_4")(TARGET) == many_shot(TARGET, 4)
    assert len(get_wrapper("erosion/many_shot_8")(TARGET)) == 17
    history = get_wrapper("erosion/short_history")(TARGET)
    assert len(history) == 5 and history[-1]["content"] == TARGET.text


def test_many_shot_custom_pool_and_pool_limit() -> None:
    pool = [FauxExchange(f"x{i}", "fake_reviews", f"req {i}", f"resp {i}") for i in range(3)]
    assert [m["content"] for m in many_shot(TARGET, 2, faux=pool)[:4]] == ["req 0", "resp 0", "req 1", "resp 1"]
    with pytest.raises(ValueError, match=r"n=4.*only 3"):
        many_shot(TARGET, 4, faux=pool)
    with pytest.raises(ValueError, match="n >= 0"):
        many_shot(TARGET, -1)


def test_many_shot_context_limit() -> None:
    def count_words(text: str) -> int:
        return len(text.split())

    small = many_shot(TARGET, 2, count_tokens=count_words, max_context_tokens=10_000)
    assert len(small) == 5
    needed = count_words(attacks.conversation_text(many_shot(TARGET, 8)))
    assert many_shot(TARGET, 8, count_tokens=count_words, max_context_tokens=needed)
    with pytest.raises(ContextTooLong) as caught:
        many_shot(TARGET, 8, count_tokens=count_words, max_context_tokens=needed - 1)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.n, error.tokens, error.limit) == (8, needed, needed - 1)
    assert "n=8" in str(error) and str(needed) in str(error) and str(needed - 1) in str(error)
    with pytest.raises(ValueError, match="both"):
        many_shot(TARGET, 2, count_tokens=count_words)


@pytest.mark.parametrize("turns", [2, 3, 6, attacks.MAX_ESCALATION_TURNS])
def test_escalation_turns(turns: int) -> None:
    script = escalation_turns(TARGET, turns)
    assert len(script) == turns
    assert script[0] == BENIGN.text and script[-1] == TARGET.text
    assert len(set(script)) == turns
    assert all(isinstance(t, str) and t.strip() for t in script)


def test_escalation_defaults_and_errors() -> None:
    assert len(escalation_turns(TARGET)) == 6
    middle = escalation_turns(TARGET)[1:-1]
    assert middle[0] == escalation_turns(TARGET, attacks.MAX_ESCALATION_TURNS)[1], "starts at the mildest step"
    assert middle[-1] == escalation_turns(TARGET, attacks.MAX_ESCALATION_TURNS)[-2], "ends at the strongest step"
    with pytest.raises(ValueError, match="benign"):
        escalation_turns(BENIGN)
    for bad in (1, attacks.MAX_ESCALATION_TURNS + 1):
        with pytest.raises(ValueError, match="turns"):
            escalation_turns(TARGET, bad)


# ------------------------------------------------------------------------------------------ helpers


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Thank you for the lovely dinner, it was the best evening we have had in months.", "en"),
        ("Je vous remercie pour ce dîner, c'était une soirée très agréable avec les enfants.", "fr"),
        ("Muchas gracias por la cena, fue una noche muy agradable con los niños y mis padres.", "es"),
        ("Vielen Dank für das Abendessen, es war ein sehr schöner Abend mit den Kindern.", "de"),
        ("12345 67890 !!!", "other"),
        ("", "other"),
        ("def f(x): return x + 1", "other"),
        ("Hello the world", "other"),  # one stopword is not evidence
        ("Je suis sure the answer is oui", "other"),  # a tie between two languages
    ],
)
def test_language_of(text: str, lang: str) -> None:
    assert language_of(text) == lang


def test_language_of_recognises_the_request_set() -> None:
    texts = [(item.text, "en") for item in load_items()]
    texts += [(t, lang) for item in load_items() for lang, t in item.translations.items()]
    wrong = [(lang, t) for t, lang in texts if language_of(t) != lang]
    assert len(wrong) <= 0.05 * len(texts), wrong


def test_describe_wrappers_for_the_methods_appendix() -> None:
    rows = describe_wrappers()
    assert [row["key"] for row in rows] == list(WRAPPERS)
    assert get_item(EXAMPLE_ITEM_ID).split == "dev"
    for row in rows:
        assert set(row) == {"key", "family", "name", "description", "docstring", "example"}
        assert_well_formed(row["example"])
        assert carries_request(row["example"], get_item(EXAMPLE_ITEM_ID))


# ------------------------------------------------------------------------------------------ the control family


def test_control_filler_is_deterministic_neutral_and_matched_in_length() -> None:
    """The null wrapper keeps the request verbatim inside filler about as long as the persuasion wrappers add."""
    from statistics import median

    from personalab.attacks import control

    items = load_items(split="heldout", variant="target")
    w = get_wrapper("control/filler")
    assert w.family == "control" and not w.requires_target
    added = [len(conversation_text(w(i))) - len(i.text) for i in items]
    persuasion = [len(conversation_text(v(i))) - len(i.text) for i in items
                  for fam in ("identity", "context", "value_conflict") for v in wrappers(fam)]
    assert abs(median(added) - median(persuasion)) <= 0.2 * median(persuasion)
    assert abs(median(added) - control.FILLER_CHARS) <= 0.2 * control.FILLER_CHARS
    for item in items:
        conv = w(item)
        assert conv == w(item) and len(conv) == 1 and conv[0]["role"] == "user"
        before, text, after = conv[0]["content"].split("\n\n")
        assert text == item.text and before and after
    assert len({w(i)[0]["content"].split("\n\n")[0] for i in items}) > 1  # the start depends on the item
    assert w(BENIGN)[0]["content"].split("\n\n")[1] == BENIGN.text
