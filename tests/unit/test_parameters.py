"""Typed notebook parameters: the type strings, every notebook's declarations, and refusal before any work."""

from __future__ import annotations

import pytest

from personalab import pipeline
from personalab.parameters import Parameter, check_values, parameters_of_cell, parse_type
from personalab.paths import REPO_ROOT


def allowed(type_text: str, value: object) -> bool:
    return Parameter("p", type_text, None).problem(value) is None


@pytest.mark.parametrize("type_text, good, bad", [
    ("int[1,] or None", [1, 20, None], [0, -3, "abc", 2.5, True]),
    ("int[1,4096]", [1, 4096], [0, 4097, 1.0]),
    ("int[,10]", [-5, 10], [11]),
    ("float[0,2]", [0, 0.7, 2], [-0.1, 2.5, float("nan"), "0.7"]),
    ("float", [0.1, -3], ["1", None]),
    ("bool", [True, False], [1, "yes"]),
    ("choice[log1p,linear]", ["log1p", "linear"], ["log", None]),
    ("list[int[0,200]]", [[0, 1, 40]], [[], [0, -1], 5, ["1"]]),
    ("list[float[0,1]] or None", [[0.5], None], [[2.0]]),
    ("split", ["dev", "heldout"], ["weird", None]),
    ("judge", ["keyword", "embedding"], ["no-such-judge"]),
    ("list[wrapper]", [["direct/plain", "context/fiction"]], [["direct/plain", "nope/none"]]),
    ("model", ["smollm2-135m-instruct"], ["no-such-model"]),
    ("url or None", ["http://127.0.0.1:8000/v1", None], ["127.0.0.1:8000", 3]),
    ("list[strategy]", [["none", "rules"]], [["none", "magic"]]),
])
def test_types_accept_and_refuse(type_text, good, bad):
    assert all(allowed(type_text, v) for v in good)
    assert not any(allowed(type_text, v) for v in bad)


def test_malformed_type_string_is_refused():
    with pytest.raises(ValueError, match="unknown parameter type 'integer'"):
        parse_type("integer or None")
    with pytest.raises(ValueError, match="unknown parameter type 'int 1..'"):
        parse_type("int 1..")  # the old range syntax, which papermill cannot read
    with pytest.raises(ValueError, match="must be annotated with a type string"):
        parameters_of_cell("n: int = 3\n", where="x.md")


def test_unannotated_parameters_are_accepted_as_they_are():
    declared = parameters_of_cell("n = 3  # a reader's fork without types\n")
    check_values("fork", declared, {"n": "anything"})


@pytest.mark.parametrize("name", pipeline.experiment_names())
def test_every_notebook_parameter_is_typed_and_its_default_fits(name):
    declared = pipeline.declared_parameters(pipeline.notebook_source(name))
    assert declared, name
    untyped = [p.name for p in declared.values() if p.type_text is None]
    assert not untyped, f"{name}: parameters without a type: {untyped}"
    for param in declared.values():
        assert param.problem(param.default) is None, f"{name}.{param.name}: default {param.problem(param.default)}"


@pytest.mark.parametrize("name", pipeline.experiment_names())
def test_papermill_itself_reads_every_parameter(name):
    """papermill recognises a parameter line only if its annotation fits its own pattern; one it cannot read is
    reported to the reader as 'Passed unknown parameter' on every run."""
    import jupytext
    from papermill.translators import PythonTranslator

    source = pipeline.notebook_source(name)
    cell = next(c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", []))
    seen = {p.name for p in PythonTranslator.inspect(cell)}
    declared = set(pipeline.declared_parameters(source))
    assert declared <= seen, f"{name}: papermill cannot read {sorted(declared - seen)}"


@pytest.mark.parametrize("params, message", [
    ({"n_items": -3}, "prefill_sure: parameter n_items must be an integer >= 1 or None, got -3."),
    ({"n_items": "abc"}, "prefill_sure: parameter n_items must be an integer >= 1 or None, got 'abc'."),
    ({"split": "weird"}, "prefill_sure: parameter split must be a request split, got 'weird'."),
    ({"max_tokens": 0}, "prefill_sure: parameter max_tokens must be an integer >= 1 and <= 4096, got 0."),
    ({"judge": "no-such-judge"}, "prefill_sure: parameter judge must be a registered judge, got 'no-such-judge'."),
    ({"endpoint": "localhost:8000"}, "prefill_sure: parameter endpoint must be an http(s) URL or None"),
    ({"seed": -1}, "prefill_sure: parameter seed must be an integer >= 0, got -1."),
])
def test_bad_values_get_one_sentence(params, message):
    with pytest.raises(ValueError) as err:
        pipeline._check_params(pipeline.notebook_source("prefill_sure"), params)
    assert str(err.value).startswith(message)
    assert str(err.value).count(".") >= 1 and not str(err.value).endswith("..")


def test_list_element_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"wisdom_handicap: parameter wrappers must be a non-empty list of a "
                                         r"registered attack wrapper, got \['direct/plain', 'nope/x'\]"):
        pipeline._check_params(pipeline.notebook_source("wisdom_handicap"), {"wrappers": ["direct/plain", "nope/x"]})


def test_the_real_config_passes_and_a_bad_value_in_it_is_refused(tmp_path):
    pipeline.load_config(REPO_ROOT / "experiments" / "config.yaml")
    bad = tmp_path / "config.yaml"
    bad.write_text("runs:\n  - experiment: depth\n    models: [smollm2-135m-instruct]\n"
                   "    params: {scale: cubic}\n")
    with pytest.raises(ValueError, match=r"depth: parameter scale must be 'log1p' or 'linear', got 'cubic'\."):
        pipeline.load_config(bad)
    bad.write_text("runs:\n  - experiment: depth\n    params: [1, 2]\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        pipeline.load_config(bad)
