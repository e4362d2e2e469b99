"""Training examples for the masks: dev-split requests only, base-model answers for the helpful side, leakage checks.

An :class:`Example` is either supervised (``prompt`` -> ``completion``) or a preference pair (``prompt`` ->
``chosen`` over ``rejected``); its prompt is a chat conversation whose final assistant message, if any, is a
prefill the completion continues. Helpful answers and the compliances DPO rejects are written by the base model
itself (:class:`BaseAnswerer`, greedy, cached on disk), so a mask stays close to what its base could already do and
no text from elsewhere enters training. :func:`check_examples` refuses, in one sentence, an empty data set, any
held-out request (by item id and by text) and any attack family training must never show.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from personalab.attacks import Conversation
from personalab.outputs import atomic_write
from personalab.paths import cache_dir
from personalab.prompts import Item, get_item, load_items, twin_of

#: Attack families whose wrappers may appear in training data (``prefill`` is Qi et al.'s augmentation).
TRAINED_FAMILIES: tuple[str, ...] = ("direct", "identity", "context", "prefill")
#: Families that never appear in training, so that generalisation to them is what the experiments measure.
HELD_OUT_FAMILIES: tuple[str, ...] = ("technical", "value_conflict", "erosion", "language", "control")
#: The judge that keeps refusals out of the "helpful" side and out of DPO's rejected compliances. Part of the recipe:
#: it stays the judge the masks were trained with (the experiments since count with keyword_ext4); changing it
#: changes the training data and retrains every mask.
FILTER_JUDGE = "keyword_ext3"
#: Greedy tokens per base-model answer: long enough for a useful answer, short enough to train in minutes.
ANSWER_TOKENS = 48

Answerer = Callable[[Sequence[Conversation]], list[str]]


class TrainError(ValueError):
    """A training request is invalid (bad model, recipe, hyper-parameter or data); raised before any training."""


@dataclass(frozen=True)
class Example:
    """One training example built from one dev item under one condition (family/wrapper or prefill)."""

    item: str
    variant: str
    category: str
    family: str
    condition: str
    prompt: tuple[dict[str, str], ...]
    completion: str | None = None
    chosen: str | None = None
    rejected: str | None = None

    def record(self) -> dict[str, Any]:
        """The example as plain JSON-able data (unused fields dropped)."""
        out = asdict(self)
        out["prompt"] = [dict(m) for m in self.prompt]
        return {k: v for k, v in out.items() if v is not None}

    def texts(self) -> list[str]:
        """Every piece of text the example shows the model."""
        return [m["content"] for m in self.prompt] + [t for t in (self.completion, self.chosen, self.rejected) if t]

    @property
    def is_prefill(self) -> bool:
        """True when the prompt ends in an assistant message that the completion continues."""
        return self.prompt[-1]["role"] == "assistant"


@dataclass(frozen=True)
class TrainingData:
    """The final examples of one recipe and seed, with what they were built from."""

    recipe: str
    method: str
    seed: int
    examples: tuple[Example, ...]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the examples: part of the artefact key and of the provenance."""
        return data_hash(self.examples)

    def metadata(self) -> dict[str, Any]:
        """What the training marker records about the data."""
        families = sorted({e.family for e in self.examples})
        return {
            "recipe": self.recipe, "method": self.method, "seed": self.seed, "data_hash": self.hash,
            "n_examples": len(self.examples), "split": "dev",
            "items": sorted({e.item for e in self.examples if not e.item.startswith(GENERAL_PREFIX)}),
            "general_requests": len({e.item for e in self.examples if e.item.startswith(GENERAL_PREFIX)}),
            "families_trained": families, "families_never_trained": list(HELD_OUT_FAMILIES),
            "conditions": dict(sorted(_count(e.condition for e in self.examples).items())),
            **self.notes,
        }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def data_hash(examples: Sequence[Example]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of ``examples`` in order."""
    canonical = json.dumps([e.record() for e in examples], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dev_pairs() -> list[tuple[Item, Item]]:
    """The dev split's (target, benign twin) pairs in file order: the only requests training may use."""
    return [(target, twin_of(target)) for target in load_items(split="dev", variant="target")]


GENERAL_PATH = Path(__file__).with_name("helpful_requests.yaml")
GENERAL_PREFIX = "general-"


def general_requests(path: Path = GENERAL_PATH) -> tuple[str, list[Item]]:
    """The version and the everyday requests every recipe answers helpfully, as benign dev items ``general-NN``.

    They are no pair's twin and appear in no experiment: they keep a mask from learning that the form of a request
    (an essay, a review, an ad) is itself a reason to refuse.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = [Item(id=f"{GENERAL_PREFIX}{i:02d}", category="general", variant="benign", text=text, twin="",
                  split="dev", translations={}) for i, text in enumerate(data["requests"], start=1)]
    return str(data["version"]), items


def _held_out_texts() -> dict[str, str]:
    """Every piece of held-out wording (texts, translations, compliant openings) -> the id of its item."""
    out: dict[str, str] = {}
    for item in load_items(split="heldout"):
        for text in (item.text, *item.translations.values(), item.compliant_start):
            if text:
                out[text] = item.id
    return out


def check_examples(examples: Sequence[Example]) -> None:
    """Refuse, in one sentence, data that is empty, uses a held-out item (by id or by text) or a held-out family."""
    if not examples:
        raise TrainError("The training data set is empty; nothing to train on.")
    held_out = _held_out_texts()
    general = {item.id for item in general_requests()[1]}
    for example in examples:
        try:
            split = "dev" if example.item in general else get_item(example.item).split
        except KeyError:
            raise TrainError(f"Training example names an unknown item {example.item!r}.") from None
        if split != "dev":
            raise TrainError(f"Training data contains the held-out request {example.item!r}; "
                             "masks are trained on the dev split only.")
        if example.family not in TRAINED_FAMILIES:
            raise TrainError(f"Training example of {example.item!r} uses attack family {example.family!r}; training "
                             f"may only show {', '.join(TRAINED_FAMILIES)}.")
        for text in example.texts():
            for wording, item_id in held_out.items():
                if wording in text:
                    raise TrainError(f"Training data contains the wording of the held-out request {item_id!r} "
                                     f"(in an example of {example.item!r}); masks are trained on the dev split only.")
        if example.completion is None and (example.chosen is None or example.rejected is None):
            raise TrainError(f"Training example of {example.item!r} has neither a completion nor a preference pair.")


def _conversation_key(conversation: Conversation) -> str:
    return hashlib.sha256(json.dumps(conversation, sort_keys=True).encode()).hexdigest()


def _trim(text: str, finished: bool) -> str:
    """An answer cut off by the token limit ends at its last complete sentence (when there is one)."""
    text = text.rstrip()
    if finished:
        return text
    cut = max(text.rfind(p) for p in (". ", ".\n", "! ", "? ", "\n\n"))
    return text[: cut + 1].rstrip() if cut >= 40 else text


class BaseAnswerer:
    """Greedy answers of a base checkpoint with transformers ``generate``, batched, cached on disk.

    The cache is one JSON file per (base weight sha256, token limit), keyed by the sha256 of each conversation, so
    that rebuilding a recipe's data never regenerates an answer already written.
    """

    def __init__(self, checkpoint: Path, base_sha256: str, *, max_new_tokens: int = ANSWER_TOKENS,
                 batch_size: int = 16, progress: bool = True) -> None:
        self.checkpoint = checkpoint
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.progress = progress
        self.path = cache_dir() / "train" / f"answers-{base_sha256[:16]}-{max_new_tokens}.json"
        self._cache: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        self._model: Any = None
        self._tokenizer: Any = None

    def __call__(self, conversations: Sequence[Conversation]) -> list[str]:
        """The base model's greedy reply to (or continuation of, for a prefill) each conversation."""
        keys = [_conversation_key(c) for c in conversations]
        missing = [c for c, k in zip(conversations, keys) if k not in self._cache]
        unique = list({_conversation_key(c): c for c in missing}.items())
        if unique:
            self._generate(unique)
        return [self._cache[k] for k in keys]

    def _generate(self, todo: list[tuple[str, Conversation]]) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self._model is None:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint), padding_side="left")
            self._model = AutoModelForCausalLM.from_pretrained(str(self.checkpoint), dtype=torch.bfloat16).eval()
        tok = self._tokenizer
        bar = tqdm(total=len(todo), desc=f"base answers ({self.checkpoint.name})", disable=not self.progress)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start: start + self.batch_size]
            texts = [tok.apply_chat_template(list(c), tokenize=False, add_generation_prompt=c[-1]["role"] != "assistant",
                                             continue_final_message=c[-1]["role"] == "assistant") for _, c in batch]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = self._model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                           pad_token_id=tok.pad_token_id)
            for (key, _), row in zip(batch, out[:, enc["input_ids"].shape[1]:]):
                finished = bool((row == tok.eos_token_id).any())
                self._cache[key] = _trim(tok.decode(row, skip_special_tokens=True), finished)
            bar.update(len(batch))
            text = json.dumps(self._cache, indent=0, sort_keys=True, ensure_ascii=False)
            atomic_write(self.path, lambda p, text=text: p.write_text(text, encoding="utf-8"))
        bar.close()


@dataclass
class Sources:
    """What a recipe builds from: the dev pairs, the everyday requests, a seed, and the base model's answers filtered
    by a judge."""

    pairs: list[tuple[Item, Item]]
    seed: int
    answer: Answerer
    general: list[Item] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def _refused(self, replies: Sequence[str], prefills: Sequence[str | None]) -> list[bool]:
        from personalab.judges import get_judge, judge_many

        verdicts = judge_many(get_judge(FILTER_JUDGE), list(replies), prefills=list(prefills))
        return [v.label == "refusal" for v in verdicts]

    def helpful(self, conversations: Sequence[Conversation], what: str) -> list[str | None]:
        """The base model's non-refusing answer to each conversation (None where it refused even after "Sure,").

        A direct answer the judge calls a refusal is replaced by the base model's continuation of "Sure," (the
        completion then starts with "Sure,"); a prefilled conversation is not retried.
        """
        replies = self.answer(conversations)
        prefills = [c[-1]["content"] if c[-1]["role"] == "assistant" else None for c in conversations]
        refused = self._refused(replies, prefills)
        retry = [i for i, r in enumerate(refused) if r and prefills[i] is None]
        out: list[str | None] = [None if r else reply for reply, r in zip(replies, refused)]
        if retry:
            opened = [[*conversations[i], {"role": "assistant", "content": "Sure,"}] for i in retry]
            again = self.answer(opened)
            for i, cont, r in zip(retry, again, self._refused(again, ["Sure,"] * len(retry))):
                out[i] = None if r else "Sure," + cont
        self.notes[f"{what}_base_refused_then_sure"] = len(retry)
        self.notes[f"{what}_dropped"] = sum(o is None for o in out)
        return out

    def compliant(self, targets: Sequence[Item]) -> list[str]:
        """The base model's compliance with each target; where it refused, its continuation of the item's opening.

        Only ever used as the rejected side of a preference pair: nothing is trained to comply.
        """
        direct = [[{"role": "user", "content": t.text}] for t in targets]
        replies = self.answer(direct)
        refused = self._refused(replies, [None] * len(replies))
        openings = [" ".join((t.compliant_start or "").split()[:6]) for t in targets]
        retry = [i for i, r in enumerate(refused) if r]
        if retry:
            again = self.answer([[*direct[i], {"role": "assistant", "content": openings[i]}] for i in retry])
            for i, cont in zip(retry, again):
                replies[i] = openings[i] + cont
        self.notes["compliance_base_refused_then_opening"] = len(retry)
        return replies
