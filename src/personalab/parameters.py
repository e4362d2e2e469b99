"""Typed notebook parameters, checked before any server or kernel starts.

Each experiment notebook's ``parameters`` cell annotates every parameter with a small type string, e.g.::

    n_items: "int[1,] or None" = None
    split: "split" = "heldout"
    wrappers: "list[wrapper]" = ["direct/plain"]
    temperature: "float[0,2]" = 0.7

A type is alternatives separated by ``or``. Each alternative is ``None``, ``bool``, ``str``, ``int`` or ``float``
(optionally with an inclusive range ``[a,b]``, ``[a,]`` or ``[,b]`` of whole numbers), ``choice[a,b]`` (one of
these strings), ``list[T]`` (a non-empty list of T), or a named domain checked against the project's registries:
``split`` (a request split), ``judge`` (a registered judge), ``wrapper`` (a registered attack wrapper), ``model``
(a registry id), ``localmodel`` (a registry id with local weights, for the activations notebooks), ``strategy`` (a wisdom-handicap strategy) and ``url`` (an http(s) base URL). The annotation is a
plain string, so the cell still runs as ordinary Python and papermill injects values as usual. The grammar uses
only letters, digits, brackets, commas and spaces because papermill recognises a parameter line only when its
annotation has no other characters (otherwise it warns "Passed unknown parameter" and lists nothing).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_BOUND = re.compile(r"^(int|float)(?:\[\s*(\d+)?\s*,\s*(\d+)?\s*\])?$")
_CHOICE = re.compile(r"^choice\[([\w\s,]+)\]$")


def _splits() -> tuple[str, ...]:
    from personalab.prompts import SPLITS

    return SPLITS


def _judges() -> tuple[str, ...]:
    from personalab.judges import JUDGES

    return tuple(JUDGES)


def _wrappers() -> tuple[str, ...]:
    from personalab.attacks import wrappers

    return tuple(w.key for w in wrappers())


def _strategies() -> tuple[str, ...]:
    from personalab.experiments.handicap import STRATEGIES

    return tuple(STRATEGIES)


def _models() -> tuple[str, ...]:
    from personalab.harness.registry import load_registry

    return tuple(load_registry().models)


def _local_models() -> tuple[str, ...]:
    from personalab.harness.registry import load_registry

    return tuple(m.id for m in load_registry().models.values() if m.is_local)


#: Named domains: what each name accepts, described for the error message.
DOMAINS: dict[str, tuple[str, Callable[[], tuple[str, ...]]]] = {
    "split": ("a request split", _splits),
    "judge": ("a registered judge", _judges),
    "wrapper": ("a registered attack wrapper", _wrappers),
    "model": ("a model id of experiments/models.yaml", _models),
    "localmodel": ("a model of experiments/models.yaml with local weights (embedded or trained)", _local_models),
    "strategy": ("a wisdom-handicap strategy", _strategies),
}


@dataclass(frozen=True)
class ParamType:
    """One parsed alternative of a parameter type."""

    kind: str  # none, bool, str, int, float, choice, list, domain or url
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    item: "tuple[ParamType, ...] | None" = None  # alternatives of a list's elements
    domain: str | None = None

    def describe(self) -> str:
        """The type in words, for error messages."""
        if self.kind == "none":
            return "None"
        if self.kind == "choice":
            return " or ".join(repr(c) for c in self.choices)
        if self.kind == "list":
            return f"a non-empty list of {' or '.join(t.describe() for t in self.item or ())}"
        if self.kind == "domain":
            return DOMAINS[self.domain][0]
        if self.kind == "url":
            return "an http(s) URL"
        noun = {"bool": "true or false", "str": "a string", "int": "an integer", "float": "a number"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return f"{noun} {' and '.join(bounds)}".strip()

    def problem(self, value: Any) -> str | None:
        """None if ``value`` fits this alternative, else why not (a short phrase)."""
        if self.kind == "none":
            return None if value is None else "not None"
        if self.kind == "bool":
            return None if isinstance(value, bool) else "not true/false"
        if self.kind == "str":
            return None if isinstance(value, str) else "not a string"
        if self.kind == "choice":
            return None if value in self.choices else "another value"
        if self.kind == "url":
            return None if isinstance(value, str) and re.match(r"^https?://\S+$", value) else "not an http(s) URL"
        if self.kind == "domain":
            choices = DOMAINS[self.domain][1]()
            if isinstance(value, str) and value in choices:
                return None
            return f"not one of {', '.join(choices)}"
        if self.kind == "list":
            if not isinstance(value, list) or not value:
                return "not a non-empty list"
            for element in value:
                if all(t.problem(element) for t in self.item or ()):
                    return f"element {element!r} is not {' or '.join(t.describe() for t in self.item or ())}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "not a number"
        if self.kind == "int" and not isinstance(value, int):
            return "not an integer"
        if isinstance(value, float) and not math.isfinite(value):
            return "not finite"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return "out of range"
        return None


def _split_alternatives(text: str) -> list[str]:
    """Split a type on the word ``or`` outside brackets."""
    parts, depth, current = [], 0, []
    for word in re.split(r"(\s+)", text):
        if word == "or" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += word.count("[") - word.count("]")
        current.append(word)
    return [*parts, "".join(current)]


def parse_type(text: str) -> tuple[ParamType, ...]:
    """Parse a type string into its alternatives; a malformed string raises ValueError."""
    alternatives = []
    for raw in _split_alternatives(text):
        part = raw.strip()
        if part == "None":
            alternatives.append(ParamType("none"))
        elif part in ("bool", "str", "url"):
            alternatives.append(ParamType(part))
        elif part in DOMAINS:
            alternatives.append(ParamType("domain", domain=part))
        elif m := _CHOICE.match(part):
            alternatives.append(ParamType("choice", choices=tuple(c.strip() for c in m.group(1).split(","))))
        elif part.startswith("list[") and part.endswith("]"):
            alternatives.append(ParamType("list", item=parse_type(part[5:-1])))
        elif m := _BOUND.match(part):
            kind, low, high = m.groups()
            alternatives.append(ParamType(kind, low=None if low is None else float(low),
                                          high=None if high is None else float(high)))
        else:
            raise ValueError(f"unknown parameter type {part!r} in {text!r}")
    return tuple(alternatives)


@dataclass(frozen=True)
class Parameter:
    """A notebook parameter: its name, declared type (None when unannotated) and default value."""

    name: str
    type_text: str | None
    default: Any

    @property
    def types(self) -> tuple[ParamType, ...]:
        return parse_type(self.type_text) if self.type_text else ()

    def problem(self, value: Any) -> str | None:
        """None if ``value`` is allowed, else what was expected and what came."""
        types = self.types
        if not types or any(t.problem(value) is None for t in types):
            return None
        return f"must be {' or '.join(t.describe() for t in types)}, got {value!r}"


def parameters_of_cell(source: str, where: str = "the parameters cell") -> dict[str, Parameter]:
    """The parameters a ``parameters`` cell declares, with their types and literal defaults."""
    params = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if not (isinstance(node.annotation, ast.Constant) and isinstance(node.annotation.value, str)):
                raise ValueError(f"{where}: parameter {node.target.id} must be annotated with a type string.")
            parse_type(node.annotation.value)
            params[node.target.id] = Parameter(node.target.id, node.annotation.value, _literal(node.value))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    params[target.id] = Parameter(target.id, None, _literal(node.value))
    return params


def _literal(node: ast.expr | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def check_values(experiment: str, declared: Mapping[str, Parameter], values: Mapping[str, Any]) -> None:
    """Refuse unknown names and values outside their declared type, in one sentence, before any work starts."""
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"{experiment} has no parameter(s) {', '.join(unknown)}; "
                         f"it declares: {', '.join(sorted(declared))}.")
    for name, value in values.items():
        problem = declared[name].problem(value)
        if problem:
            raise ValueError(f"{experiment}: parameter {name} {problem}.")
