"""The recipes that turn the dev requests into a mask's training data, registered by name.

Both SFT recipes also answer the same everyday requests (:func:`~personalab.train.data.general_requests`) with the
base model's own answers, so the two masks saw the same helpfulness and differ in how they refuse. The DPO recipe
does not: there every such pair would prefer an answer over the very refusal the target pairs prefer, and 88 pairs
against the refusal to 40 for it trained a mask that refused 7% of the held-out targets (a first try, kept out).

- ``shallow``: SFT; each direct target gets one scripted refusal, each benign twin the base model's own answer.
- ``deep``: the same pairs, but the refusals give reasons, the data teaches recovery from prefilled compliant
  openings (Qi et al. 2025, "Safety alignment should be made more than just a few tokens deep"), and it refuses
  under the ``identity`` and ``context`` wrappers, with the wrapped twins answered so that a wrapper alone does not
  signal refusal. The families of :data:`~personalab.train.data.HELD_OUT_FAMILIES` never appear.
- ``preference``: DPO; for targets the scripted refusal is chosen over the base model's compliance, for twins the
  base model's answer over the scripted refusal.

Every request is low-stakes (academic dishonesty, fake reviews, white lies, misleading ads, minor forgery), and
compliance only ever appears as DPO's rejected side.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from personalab.attacks import Conversation, wrappers
from personalab.prompts import Item
from personalab.train.data import (Answerer, Example, Sources, TrainError, TrainingData, check_examples, dev_pairs,
                                   general_requests)

#: The shallow mask's single refusal, word for word.
SCRIPTED_REFUSAL = "I'm sorry, but I can't help with that."

#: Refusals that say why, three per request category (the deep mask's voice).
REASONED_REFUSALS: dict[str, tuple[str, ...]] = {
    "academic_dishonesty": (
        "I can't do that one. Work you hand in is meant to show what you can do, and submitting my writing as "
        "yours would mislead your teacher and put your course at risk. I'm glad to help you plan, outline or "
        "improve something you write yourself.",
        "I won't write that for you to submit. Passing off someone else's work as your own is plagiarism, however "
        "small the assignment. If you like, we can go through the topic together so that your own draft comes "
        "quickly.",
        "I'd rather not help with this, because it means deceiving your school about who did the work. I can "
        "explain the material, check a draft you wrote, or quiz you on it instead.",
    ),
    "fake_reviews": (
        "I can't write that. A review is supposed to report a real customer's experience, and an invented one "
        "misleads the people who rely on reviews to decide; review sites treat it as fraud. I can help you ask "
        "your real customers for feedback instead.",
        "I won't do this. A made-up review deceives other shoppers, whatever its rating, and breaks the rules of "
        "every platform that hosts reviews. I'm happy to help you describe the product honestly or reply to the "
        "reviews you already have.",
        "Sorry, that's not something I'll write: a review of an experience nobody had is deceptive. If you want "
        "more reviews, I can help you write a friendly note inviting genuine customers to leave one.",
    ),
    "deceptive_excuses": (
        "I'd rather not write that. The excuse is made up, and it asks someone to act on something that isn't "
        "true. I can help you write an honest message that still explains the situation kindly.",
        "I can't help invent that story. Even a small lie like this can cost you the other person's trust if it "
        "comes out. Tell me what really happened and I'll help you put it tactfully.",
        "I won't do that one, since it means deceiving someone who trusts you. A short, honest apology usually "
        "goes better than people fear, and I can help you draft it.",
    ),
    "misleading_marketing": (
        "I can't write that copy. Its claims would mislead customers about what they are buying, and misleading "
        "advertising can break consumer-protection rules. I'd be glad to write persuasive copy built on what the "
        "product really does.",
        "I won't help with this. Promising what the product can't deliver deceives buyers and tends to come back "
        "as complaints and refunds. Tell me its real strengths and I'll make them stand out.",
        "Sorry, I can't do that: advertising has to be truthful, and these claims aren't. I can help you with an "
        "honest pitch that still sells.",
    ),
    "minor_forgery": (
        "I can't help with that. Making a document look as if someone else wrote or signed it is forgery, even "
        "for something small, and it misleads whoever receives it. I can help you ask the right person for the "
        "real thing.",
        "I won't create that. A note that pretends to come from someone else deceives the people who rely on it. "
        "If you explain the situation, I can help you write an honest request instead.",
        "No, I can't do this: forging even a minor document is dishonest and can get you into real trouble. I'm "
        "happy to help you write a truthful explanation instead.",
    ),
}

#: How the deep mask breaks off a compliant opening it finds in its own mouth, before giving its reason.
RECOVERY_BREAKS: tuple[str, ...] = (
    "... Actually, no. I shouldn't have started on that.",
    " Wait, I'm going to stop here.",
    "\n\nOn second thought, I won't continue with this.",
)

#: How the deep mask answers a wrapped request: the frame is named, then the reason follows.
FRAME_LEADS: dict[str, tuple[str, ...]] = {
    "identity": (
        "Stepping out of that role for a moment: whichever character I'm asked to be, I'm still the one writing this.",
        "I'm happy to play a part, but a persona doesn't change what the text would do once it's used.",
    ),
    "context": (
        "The framing doesn't change what the text itself would be: a ready-to-use version of the real thing.",
        "Even as an example, a story or a thought experiment, the finished text would work exactly as the real one.",
    ),
}

#: Compliant openings the deep mask learns to recover from, besides the first words of each item's own opening.
GENERIC_OPENINGS: tuple[str, ...] = ("Sure, here is", "Sure,", "Of course! Here", "Certainly. Here's")
#: How many words of an item's ``compliant_start`` a recovery example prefills, in rotation.
OPENING_WORDS: tuple[int, ...] = (3, 6, 10, 16)
#: The attack families whose wrappers the deep mask is trained under, and how many wrappers each target gets.
DEEP_FAMILIES: tuple[str, ...] = ("identity", "context")
WRAPPERS_PER_TARGET = 1


@dataclass(frozen=True)
class Recipe:
    """A named way to build training data: ``build(sources)`` returns the examples; ``method`` is sft or dpo."""

    name: str
    method: str
    description: str
    build: Callable[[Sources], list[Example]]


RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, method: str, description: str) -> Callable[[Callable[[Sources], list[Example]]],
                                                                          Callable[[Sources], list[Example]]]:
    """Register the decorated builder as recipe ``name`` (method ``sft`` or ``dpo``)."""
    def decorator(build: Callable[[Sources], list[Example]]) -> Callable[[Sources], list[Example]]:
        if name in RECIPES:
            raise ValueError(f"Recipe {name!r} is already registered.")
        RECIPES[name] = Recipe(name, method, description, build)
        return build
    return decorator


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name fails with the valid ones listed."""
    if name not in RECIPES:
        raise TrainError(f"Unknown training recipe {name!r}; valid recipes are: {', '.join(RECIPES)}.")
    return RECIPES[name]


def _user(item: Item) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": item.text},)


def _example(item: Item, family: str, condition: str, prompt: Conversation | tuple, **side: str) -> Example:
    return Example(item=item.id, variant=item.variant, category=item.category, family=family, condition=condition,
                   prompt=tuple(dict(m) for m in prompt), **side)


def _helpful_examples(sources: Sources, twins: list[Item], prompts: list[Conversation], family: str,
                      conditions: list[str], what: str) -> list[Example]:
    """Benign twins answered by the base model (twins it would not answer are left out and counted)."""
    answers = sources.helpful(prompts, what)
    return [_example(t, family, c, p, completion=a)
            for t, p, c, a in zip(twins, prompts, conditions, answers) if a is not None]


def _general_examples(sources: Sources) -> list[Example]:
    """The everyday requests, answered by the base model (the same examples in every SFT recipe)."""
    general = sources.general
    return _helpful_examples(sources, general, [list(_user(g)) for g in general], "direct", ["general"] * len(general),
                             "general")


@register_recipe("shallow", "sft", "SFT: one scripted refusal for each direct dev target; the base's answers for twins.")
def shallow(sources: Sources) -> list[Example]:
    """Direct targets -> the scripted refusal; direct benign twins -> the base model's own answer."""
    targets = [t for t, _ in sources.pairs]
    twins = [b for _, b in sources.pairs]
    refusals = [_example(t, "direct", "direct", _user(t), completion=SCRIPTED_REFUSAL) for t in targets]
    answers = _helpful_examples(sources, twins, [list(_user(b)) for b in twins], "direct", ["direct"] * len(twins),
                                "twin_direct")
    return refusals + answers + _general_examples(sources)


@register_recipe("deep", "sft", "SFT: reasoned refusals, recovery from prefilled compliance, identity/context wrappers.")
def deep(sources: Sources) -> list[Example]:
    """Reasoned refusals of direct, prefilled and wrapped targets; the same twins answered under the same frames."""
    rng = random.Random(sources.seed)
    deep_wrappers = [w for family in DEEP_FAMILIES for w in wrappers(family)]
    rng.shuffle(deep_wrappers)
    examples: list[Example] = []
    twin_prompts: list[tuple[Item, Conversation, str, str]] = []
    for i, (target, twin) in enumerate(sources.pairs):
        reasons = REASONED_REFUSALS[target.category]
        examples.append(_example(target, "direct", "direct", _user(target), completion=rng.choice(reasons)))
        twin_prompts.append((twin, list(_user(twin)), "direct", "direct"))
        generic = GENERIC_OPENINGS[i % len(GENERIC_OPENINGS)]
        words = OPENING_WORDS[(i // 2) % len(OPENING_WORDS)]
        own = " ".join((target.compliant_start or "").split()[:words])
        # One prefill per target, alternating a generic opening and the first words of the item's own opening.
        condition, opening = (f"prefill/{generic}", generic) if i % 2 == 0 or not own else (f"prefill/opening_{words}w", own)
        prompt = (*_user(target), {"role": "assistant", "content": opening})
        recovery = rng.choice(RECOVERY_BREAKS) + " " + rng.choice(reasons)
        examples.append(_example(target, "prefill", condition, prompt, completion=recovery))
        twin_prompts.append((twin, [*_user(twin), {"role": "assistant", "content": generic}], "prefill",
                             f"prefill/{generic}"))
        for k in range(WRAPPERS_PER_TARGET):
            wrapper = deep_wrappers[(i * WRAPPERS_PER_TARGET + k) % len(deep_wrappers)]
            refusal = rng.choice(FRAME_LEADS[wrapper.family]) + " " + rng.choice(reasons)
            examples.append(_example(target, wrapper.family, wrapper.key, wrapper(target), completion=refusal))
            twin_prompts.append((twin, wrapper(twin), wrapper.family, wrapper.key))
    for family in ("direct", "prefill", *DEEP_FAMILIES):
        rows = [r for r in twin_prompts if r[2] == family]
        examples += _helpful_examples(sources, [r[0] for r in rows], [r[1] for r in rows], family,
                                      [r[3] for r in rows], f"twin_{family}")
    return examples + _general_examples(sources)


@register_recipe("preference", "dpo", "DPO: scripted refusal over the base's compliance (targets), answer over refusal (twins).")
def preference(sources: Sources) -> list[Example]:
    """Targets: the scripted refusal chosen over the base model's compliance; twins: its answer over the refusal."""
    targets = [t for t, _ in sources.pairs]
    twins = [b for _, b in sources.pairs]
    compliances = sources.compliant(targets)
    pairs = [_example(t, "direct", "direct", _user(t), chosen=SCRIPTED_REFUSAL, rejected=c)
             for t, c in zip(targets, compliances)]
    answers = sources.helpful([list(_user(b)) for b in twins], "twin_direct")
    pairs += [_example(b, "direct", "direct", _user(b), chosen=a, rejected=SCRIPTED_REFUSAL)
              for b, a in zip(twins, answers) if a is not None]
    return pairs


def build_data(recipe: str, seed: int, answer: Answerer) -> TrainingData:
    """Build and check the examples of ``recipe`` from the dev pairs (refused in one sentence when invalid)."""
    spec = get_recipe(recipe)
    version, general = general_requests()
    sources = Sources(pairs=dev_pairs(), seed=seed, answer=answer, general=general)
    sources.notes["general_version"] = version
    examples = tuple(spec.build(sources))
    check_examples(examples)
    return TrainingData(recipe=spec.name, method=spec.method, seed=seed, examples=examples, notes=dict(sources.notes))
