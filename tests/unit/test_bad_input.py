"""A catalogue of bad inputs: each one is refused in one clear sentence before any expensive work starts.

Every entry goes through a public door (the ``personalab`` command line, ``load_config``, ``parse_registry`` through
``PERSONALAB_MODELS``, the activations checks) with every kind of expensive work replaced by a stand-in that records
the call and raises: starting a server, a notebook kernel or papermill, pulling, converting or training a model, and
a stability repetition. An entry passes only if the error is one line, one sentence ending in a single full stop,
matches its pattern, shows no traceback text, and nothing expensive was called.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import yaml

from personalab import pipeline
from personalab.cli import main
from personalab.paths import data_dir

SMOL = "smollm2-135m-instruct"
EMBEDDED = {"kind": "embedded", "parts": [{"package": "p", "version": "1", "path": "p/a.bin"}], "sha256": "ab" * 32}
#: What no user-facing refusal may contain: traceback text or the name of an exception from a programming error.
TRACEBACK = re.compile(r"Traceback|File \"|TypeError|AttributeError|KeyError|IndexError|JSONDecodeError|"
                       r"ParserError|ScannerError|NoneType")


class Expensive(BaseException):
    """Raised by every stand-in for expensive work (a BaseException, so no ``except Exception`` can hide it)."""


@pytest.fixture
def expensive(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace every kind of expensive work with a stand-in that records its name and raises :class:`Expensive`."""
    import papermill

    import personalab.harness.models as models
    import personalab.harness.server as server
    import personalab.train
    import personalab.train.trainer as trainer
    from personalab import stability

    calls: list[str] = []

    def stand_in(what: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(what)
            raise Expensive(what)

        return call

    for target, name, what in [(pipeline, "serve", "a vLLM server"), (server, "serve", "a vLLM server"),
                               (pipeline, "_execute", "a notebook kernel"), (papermill, "execute_notebook", "papermill"),
                               (personalab.train, "pull", "a model pull or training"),
                               (models, "download_wheels", "a wheel download"), (models, "convert_gguf", "a conversion"),
                               (trainer, "fit", "a training run"), (trainer, "build_data", "building training data"),
                               (stability, "_run_plan", "a stability repetition"),
                               (stability, "seed_results", "copying results for a repetition")]:
        monkeypatch.setattr(target, name, stand_in(what))
    return calls


# ---------------------------------------------------------------------------------------------------------- setups
Setup = Callable[[Path, pytest.MonkeyPatch], None]


def config(text: str) -> Setup:
    """Write ``text`` as {tmp}/config.yaml."""
    return lambda tmp, mp: (tmp / "config.yaml").write_text(text) and None


def registry(models: dict[str, Any]) -> Setup:
    """Point PERSONALAB_MODELS at a registry holding ``models``."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        (tmp / "models.yaml").write_text(yaml.safe_dump({"models": models}))
        mp.setenv("PERSONALAB_MODELS", str(tmp / "models.yaml"))

    return setup


def corrupt_cache(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    data_dir().mkdir(parents=True, exist_ok=True)
    (data_dir() / "generations.sqlite").write_bytes(b"\x8f\x01 not SQLite at all " * 300)


def foreign_cache(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    data_dir().mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data_dir() / "generations.sqlite") as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER, total REAL)")


def real_pull(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """Let `models pull` reach the real pull: its own refusal is what is tested (download and conversion stay stubbed)."""
    import personalab.train
    from personalab.train.trainer import pull

    mp.setattr(personalab.train, "pull", pull)


# ---------------------------------------------------------------------------------------------------------- the catalogue
@dataclass(frozen=True)
class Bad:
    """One bad input: a command line (``{tmp}`` is the test's folder) or a call, and what its refusal must say."""

    id: str
    pattern: str
    argv: tuple[str, ...] = ()
    code: int = 2  # the exit code: 2 for bad input (ValueError), 1 for a RuntimeError such as a damaged cache
    setup: Setup | None = None
    call: Callable[[Path], Any] | None = None


def cli(id: str, *argv: str, pattern: str, code: int = 2, setup: Setup | None = None) -> Bad:
    return Bad(id, pattern, argv=argv, code=code, setup=setup)


def run(id: str, *args: str, pattern: str, **kw: Any) -> Bad:
    return cli(id, "run", *args, pattern=pattern, **kw)


def _stub_model(n_layers: int) -> Any:
    from personalab.activations import LocalModel

    net = SimpleNamespace(model=SimpleNamespace(layers=[object()] * n_layers), config=SimpleNamespace(hidden_size=8))
    return LocalModel("stub-model", "w" * 64, Path("stub"), net, tokenizer=None)


def _check_local(model_id: str) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        from personalab.activations import check_local

        return check_local(model_id)

    return call


def _ensure_local(models: list[str]) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        from personalab.experiments.refusal_direction import ensure_local

        return ensure_local(models)

    return call


CATALOGUE: list[Bad] = [
    # -- personalab run: names
    run("unknown experiment", "no_such_experiment",
        pattern=r"^Unknown experiment 'no_such_experiment'; available: .*prefill_sure"),
    run("unknown model id", "prefill_sure", "--model", "no-such-model",
        pattern=r"^Unknown model id 'no-such-model'; the registry .*models\.yaml knows: .*smollm2-135m-instruct"),
    # -- personalab run --param
    run("undeclared parameter", "prefill_sure", "--param", "n_itmes=3",
        pattern=r"^prefill_sure has no parameter\(s\) n_itmes; it declares: .*n_items"),
    run("n_items negative", "prefill_sure", "--param", "n_items=-3",
        pattern=r"^prefill_sure: parameter n_items must be an integer >= 1 or None, got -3\.$"),
    run("n_items not a number", "prefill_sure", "--param", "n_items=abc",
        pattern=r"^prefill_sure: parameter n_items must be an integer >= 1 or None, got 'abc'\.$"),
    run("unknown split", "prefill_sure", "--param", "split=weird",
        pattern=r"^prefill_sure: parameter split must be a request split, got 'weird'\.$"),
    run("max_tokens zero", "prefill_sure", "--param", "max_tokens=0",
        pattern=r"^prefill_sure: parameter max_tokens must be an integer >= 1 and <= 4096, got 0\.$"),
    run("unknown judge", "prefill_sure", "--param", "judge=no-such-judge",
        pattern=r"^prefill_sure: parameter judge must be a registered judge, got 'no-such-judge'\.$"),
    run("a string for a list parameter", "wisdom_handicap", "--param", "wrappers=direct/plain",
        pattern=r"^wisdom_handicap: parameter wrappers must be a non-empty list of a registered attack wrapper, "
                r"got 'direct/plain'\.$"),
    run("a list element out of range", "depth", "--param", "ks=[0, 3, -1]",
        pattern=r"^depth: parameter ks must be a non-empty list of an integer >= 0 and <= 200, got \[0, 3, -1\]\.$"),
    run("not true or false", "persona_selection", "--param", "completion_twins=maybe",
        pattern=r"^persona_selection: parameter completion_twins must be true or false, got 'maybe'\.$"),
    run("an endpoint that is not a URL", "prefill_sure", "--param", "endpoint=localhost:8000",
        pattern=r"^prefill_sure: parameter endpoint must be an http\(s\) URL or None, got 'localhost:8000'\.$"),
    run("--param without =", "prefill_sure", "--param", "n_items",
        pattern=r"^--param expects key=value, got 'n_items'\.$"),
    run("--param value that is not YAML", "prefill_sure", "--param", "n_items=[1,",
        pattern=r"^--param n_items: '\[1,' is not a YAML value"),
    run("--param model_id against --model", "prefill_sure", "--model", SMOL, "--param",
        "model_id=qwen2.5-coder-0.5b-instruct",
        pattern=r"^prefill_sure: the model is chosen with --model .*, not the model_id parameter; "
                r"got model_id='qwen2\.5-coder-0\.5b-instruct' for a run on smollm2-135m-instruct\.$"),
    # -- the generation cache
    run("a corrupt cache file", "prefill_sure", "--model", SMOL, code=1, setup=corrupt_cache,
        pattern=r"^CacheCorrupt: .*generations\.sqlite is not a usable generation cache .*; run "
                r"`personalab cache --repair` .*\(nothing is deleted\)\.$"),
    cli("personalab cache on a foreign file", "cache", code=1, setup=foreign_cache,
        pattern=r"^CacheCorrupt: .*generations\.sqlite is not a usable generation cache \(it is another SQLite "
                r"database \(tables: invoices\)\); run `personalab cache --repair`"),
    # -- experiments/config.yaml (personalab figures --config)
    cli("config: a run with no experiment", "figures", "--config", "{tmp}/config.yaml",
        setup=config(f"runs:\n  - models: [{SMOL}]\n"),
        pattern=r"config\.yaml: run 1 must be a mapping with an experiment \(one of: .*prefill_sure.*\), got "),
    cli("config: a run that is not a mapping", "figures", "--config", "{tmp}/config.yaml",
        setup=config("runs:\n  - prefill_sure\n"), pattern=r"config\.yaml: run 1 must be a mapping with an experiment"),
    cli("config: unknown tier", "figures", "--config", "{tmp}/config.yaml",
        setup=config("runs:\n  - experiment: prefill_sure\n    tier: later\n"),
        pattern=r"config\.yaml: the run of prefill_sure has tier 'later'; expected one of: main, extended\.$"),
    cli("config: unknown model", "figures", "--config", "{tmp}/config.yaml",
        setup=config("runs:\n  - experiment: prefill_sure\n    models: [no-such-model]\n"),
        pattern=r"^Unknown model id 'no-such-model'; the registry "),
    cli("config: models not a list", "figures", "--config", "{tmp}/config.yaml",
        setup=config(f"runs:\n  - experiment: prefill_sure\n    models: {SMOL}\n"),
        pattern=r"config\.yaml: the models of prefill_sure must be a list of model ids, got 'smollm2-135m-instruct'\.$"),
    cli("config: a bad parameter value", "figures", "--config", "{tmp}/config.yaml",
        setup=config("runs:\n  - experiment: depth\n    params: {scale: cubic}\n"),
        pattern=r"^depth: parameter scale must be 'log1p' or 'linear', got 'cubic'\.$"),
    cli("config: model_id in params", "figures", "--config", "{tmp}/config.yaml",
        setup=config(f"runs:\n  - experiment: prefill_sure\n    params: {{model_id: {SMOL}}}\n"),
        pattern=r"config\.yaml: the params of prefill_sure set model_id; list the models under models instead\.$"),
    cli("config: not YAML", "figures", "--config", "{tmp}/config.yaml", setup=config("runs: [\n  - {experiment: \n"),
        pattern=r"config\.yaml is not valid YAML \(.* at line \d+\)\.$"),
    cli("config: no such file", "figures", "--config", "{tmp}/missing.yaml",
        pattern=r"^No run configuration at .*missing\.yaml\.$"),
    # -- experiments/models.yaml (PERSONALAB_MODELS)
    run("registry: bad sha256", "prefill_sure", setup=registry({"a": {**EMBEDDED, "sha256": "abc123"}}),
        pattern=r"models\.yaml: model 'a' has a malformed sha256 'abc123' \(64 lowercase hex digits\)\.$"),
    run("registry: embedded with no parts", "prefill_sure", setup=registry({"a": {**EMBEDDED, "parts": []}}),
        pattern=r"Model 'a' is embedded but lists no wheel parts\.$"),
    run("registry: trained with an unknown base", "prefill_sure",
        setup=registry({"a": EMBEDDED, "m": {"kind": "trained", "base": "nope", "recipe": "deep"}}),
        pattern=r"models\.yaml: trained model 'm' has base 'nope'; expected one of the embedded models: a\.$"),
    run("registry: a bad hyper-parameter value", "prefill_sure",
        setup=registry({"a": EMBEDDED, "m": {"kind": "trained", "base": "a", "recipe": "deep", "lr": -1}}),
        pattern=r"models\.yaml: trained model 'm': Training hyper-parameter lr must be positive, got -1\.$"),
    run("registry: an unknown hyper-parameter", "prefill_sure",
        setup=registry({"a": EMBEDDED, "m": {"kind": "trained", "base": "a", "recipe": "deep", "learning_rate": 0.1}}),
        pattern=r"models\.yaml: trained model 'm': Unknown training hyper-parameter 'learning_rate'; valid ones are: "),
    run("registry: not YAML", "prefill_sure",
        setup=lambda tmp, mp: (tmp / "models.yaml").write_text("models: [\n  - {a: \n") and None
        or mp.setenv("PERSONALAB_MODELS", str(tmp / "models.yaml")),
        pattern=r"models\.yaml is not valid YAML \(.* at line \d+\)\.$"),
    run("registry: a chat template that is not a file", "prefill_sure",
        setup=registry({"a": {**EMBEDDED, "chat_template": "experiments/chat_templates/none.jinja"}}),
        pattern=r"models\.yaml: model 'a' names chat_template '.*none\.jinja', which is not a file of the repository"),
    run("registry: an unknown mode", "prefill_sure", setup=registry({"a": {**EMBEDDED, "mode": "text"}}),
        pattern=r"models\.yaml: model 'a' has mode 'text'; expected one of chat, completion\.$"),
    run("registry: no such file", "prefill_sure",
        setup=lambda tmp, mp: mp.setenv("PERSONALAB_MODELS", str(tmp / "none.yaml")),
        pattern=r"^No model registry at .*none\.yaml \(set PERSONALAB_MODELS to point at one\)\.$"),
    # -- models
    cli("pull a remote model", "models", "pull", "my-endpoint", code=1, setup=real_pull,
        pattern=r"^PullError: my-endpoint is a remote model: vLLM or the remote endpoint loads it; nothing to pull\.$"),
    cli("pull an unknown model", "models", "pull", "no-such-model", pattern=r"^Unknown model id 'no-such-model'"),
    # -- activations
    Bad("activations of a remote model", call=_check_local("my-endpoint"),
        pattern=r"^my-endpoint is a remote model: activations need local weights, so only embedded or trained models "),
    Bad("activations of a hub model", call=_check_local("qwen2.5-7b-instruct-hub"),
        pattern=r"^qwen2\.5-7b-instruct-hub is a hub model: activations need local weights"),
    Bad("activations of a model not pulled", call=_check_local(SMOL),
        pattern=r"^smollm2-135m-instruct is not in the model cache; `personalab models pull smollm2-135m-instruct` "
                r"pulls it\.$"),
    Bad("a remote model among the compared ones", call=_ensure_local([SMOL, "my-endpoint"]),
        pattern=r"^my-endpoint is a remote model: activations need local weights, .* compared here\.$"),
    Bad("a layer past the last", call=lambda tmp: _stub_model(30).check_layer(30),
        pattern=r"^layer 30 is out of range: stub-model has layers 0 to 29\.$"),
    Bad("a negative layer", call=lambda tmp: _stub_model(30).check_layer(-1),
        pattern=r"^layer -1 is out of range: stub-model has layers 0 to 29\.$"),
    # -- personalab stability
    cli("stability: a negative seed", "stability", "--seeds", "-1",
        pattern=r"^stability: seeds must be whole numbers >= 0, got -1\.$"),
    cli("stability: zero repetitions", "stability", "--repetitions", "0",
        pattern=r"^stability: the number of repetitions must be at least 1, got 0\.$"),
    cli("stability: repetitions against seeds", "stability", "--repetitions", "3", "--seeds", "1", "2",
        pattern=r"^stability: --repetitions 3 does not match the 2 seed\(s\) given; "),
    cli("stability: temperature out of range", "stability", "--temperature", "3",
        pattern=r"^stability: the temperature must be a number from 0 to 2, got 3\.0\.$"),
    cli("stability: unknown experiment", "stability", "--only", "slipage",
        pattern=r"^stability: unknown experiment 'slipage' in --only; available: "),
    cli("stability: a temperature nothing declares", "stability", "--only", "prefill_sure", "--temperature", "0.7",
        pattern=r"^stability: none of prefill_sure declares a temperature parameter, so --temperature would change "
                r"nothing\.$"),
]


def test_the_catalogue_is_large_and_its_entries_distinct() -> None:
    """The catalogue covers at least 15 kinds of bad input, each once."""
    assert len(CATALOGUE) >= 15
    assert len({bad.id for bad in CATALOGUE}) == len(CATALOGUE)
    assert len({(bad.argv, bad.pattern) for bad in CATALOGUE}) == len(CATALOGUE)


def assert_one_sentence(message: str, pattern: str) -> None:
    """One line, one sentence ending in a single full stop, matching ``pattern``, with no traceback text."""
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert "\n" not in message, message
    assert message.endswith(".") and not message.endswith(".."), message
    assert not re.search(r"\.\s+[A-Z]", message), f"more than one sentence: {message!r}"
    assert not TRACEBACK.search(message), message


@pytest.mark.parametrize("bad", CATALOGUE, ids=[bad.id for bad in CATALOGUE])
def test_bad_input_is_refused_in_one_sentence_before_any_work(bad: Bad, expensive: list[str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad input gets one clear sentence (exit 2 for bad input, 1 for a damaged file) and starts nothing."""
    if bad.setup:
        bad.setup(tmp_path, monkeypatch)
    if bad.call is not None:
        with pytest.raises((ValueError, RuntimeError)) as err:
            bad.call(tmp_path)
        assert not isinstance(err.value, (TypeError, AttributeError, KeyError, IndexError))
        message = str(err.value)
    else:
        code = main([arg.replace("{tmp}", str(tmp_path)) for arg in bad.argv])
        out, err_text = capsys.readouterr()
        assert code == bad.code, err_text
        assert err_text.startswith("personalab: ") and err_text.count("\n") == 1, err_text
        assert "== " not in out, out  # no run was announced
        message = err_text.removeprefix("personalab: ").rstrip("\n")
    assert_one_sentence(message, bad.pattern)
    assert expensive == []


# ------------------------------------------------------------------------------------ activations need local weights
LOCAL_ONLY = [
    pytest.param(("run", "refusal_direction", "--model", "my-endpoint"), id="activations experiment on a remote model"),
    pytest.param(("run", "refusal_direction", "--model", SMOL, "--param", "masks=[my-endpoint]"),
                 id="a remote model among the masks"),
    pytest.param(("run", "persona_axis", "--model", "qwen2.5-7b-instruct-hub"), id="axis on a hub model"),
    pytest.param(("run", "capping", "--model", SMOL, "--param", "masks=[my-endpoint]"),
                 id="a remote model among the capped masks"),
]


@pytest.mark.parametrize("argv", LOCAL_ONLY)
def test_activations_experiments_refuse_models_without_local_weights_before_the_kernel(
        argv: tuple[str, ...], expensive: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The activations notebooks type their models as ``localmodel``: a remote or hub model is refused at once."""
    code = main(list(argv))
    assert code == 2 and expensive == []
    assert_one_sentence(capsys.readouterr().err.removeprefix("personalab: ").rstrip("\n"), r"local weights")


# ---------------------------------------------------------------------------------------------------------- known gaps
#: Bad inputs that are refused clearly, but only from inside the notebook, after a kernel has started: the
#: parameter types cannot say "a layer this model has" (that needs the checkpoint's config). Each is a strict
#: xfail, so the test turns red (XPASS) the day the refusal moves before the kernel, and the marker must then go.
GAPS = [
    pytest.param(("run", "persona_axis", "--model", SMOL, "--param", "layer=999"), id="a layer the model lacks"),
]


@pytest.mark.xfail(raises=Expensive, strict=True,
                   reason="gap: refused inside the notebook (ActivationsError) after the kernel starts, not before")
@pytest.mark.parametrize("argv", GAPS)
def test_activations_requests_are_refused_before_the_kernel(argv: tuple[str, ...], expensive: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A layer out of range should be refused before any kernel starts (today it reaches the kernel: the stand-in
    raises Expensive)."""
    code = main(list(argv))
    assert code == 2 and expensive == []
    assert_one_sentence(capsys.readouterr().err.removeprefix("personalab: ").rstrip("\n"), r"layer")
