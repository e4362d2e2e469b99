"""`personalab run` end to end: papermill executes a real notebook against a real vLLM server (SmolLM2-135M)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from personalab.paths import REPO_ROOT

from .conftest import TEST_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.server]

EXPERIMENT = "prefill_sure"


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory) -> Path:
    """A copy of the repository's experiment sources, so test runs never overwrite committed results."""
    root = tmp_path_factory.mktemp("repo")
    (root / "experiments").mkdir()
    for name in (f"{EXPERIMENT}.md", "models.yaml", "config.yaml"):
        shutil.copy(REPO_ROOT / "experiments" / name, root / "experiments" / name)
    shutil.copytree(REPO_ROOT / "experiments" / "chat_templates", root / "experiments" / "chat_templates")
    return root


def _personalab(repo: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PERSONALAB_REPO": str(repo), "PERSONALAB_DATA": str(data)}
    return subprocess.run([sys.executable, "-m", "personalab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=900)


def test_run_publishes_notebook_results_and_figures(endpoint, integration_data, scratch_repo):
    proc = _personalab(scratch_repo, integration_data, "run", EXPERIMENT, "--model", TEST_MODEL,
                       "--param", "n_items=3", "--param", "n_boot=200")
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = scratch_repo / "experiments" / "executed" / EXPERIMENT / f"{TEST_MODEL}.ipynb"
    results = scratch_repo / "experiments" / "results" / EXPERIMENT / TEST_MODEL
    figures = scratch_repo / "figures" / EXPERIMENT / TEST_MODEL
    nb = nbformat.read(executed, as_version=4)
    assert TEST_MODEL in nb.cells[0].source  # the lab-notebook title names the model
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n_items = 3" in injected[0].source
    rates = pd.read_csv(results / "rates.csv")
    assert set(rates["n"]) == {3} and len(rates) == 2
    responses = pd.read_csv(results / "responses.csv")
    assert len(responses) == 6 and responses["reply"].notna().all()
    prov = json.loads((results / "provenance.json").read_text())
    assert prov["model"]["weight_sha256"] and prov["server"][0]["vllm_version"]
    assert prov["prompt_set_version"] and prov["judge"]["name"] == "keyword_ext5" and prov["parameters"]["n_items"] == 3
    assert (figures / "refusal_rate.svg").stat().st_size > 1000 and (figures / "refusal_rate.png").exists()
    assert not list((scratch_repo / ".personalab" / "staging").iterdir())

    again = _personalab(scratch_repo, integration_data, "run", EXPERIMENT, "--model", TEST_MODEL,
                        "--param", "n_items=3", "--param", "n_boot=200")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "no server needed" in again.stdout
    assert pd.read_csv(results / "responses.csv")["reply"].tolist() == responses["reply"].tolist()


def test_failed_cell_fails_the_command_and_publishes_nothing(endpoint, integration_data, scratch_repo):
    results = scratch_repo / "experiments" / "results" / EXPERIMENT / TEST_MODEL
    before = {p.name: p.read_bytes() for p in results.glob("*")} if results.exists() else {}
    # the experiment's notebook with one more cell that fails after every generation and table is done
    failing = scratch_repo / "experiments" / "failing_cell.md"
    failing.write_text((scratch_repo / "experiments" / f"{EXPERIMENT}.md").read_text()
                       + '\n```{code-cell} ipython3\nraise RuntimeError("a deliberately failing last cell")\n```\n')
    try:
        proc = _personalab(scratch_repo, integration_data, "run", "failing_cell", "--model", TEST_MODEL,
                           "--param", "n_items=2")
    finally:
        failing.unlink()
    assert proc.returncode != 0
    assert "a deliberately failing last cell" in proc.stderr and "Nothing was published" in proc.stderr
    after = {p.name: p.read_bytes() for p in results.glob("*")} if results.exists() else {}
    assert after == before
    assert not list((scratch_repo / ".personalab" / "staging").iterdir())


def test_unknown_parameter_fails_before_any_work(integration_data, scratch_repo):
    proc = _personalab(scratch_repo, integration_data, "run", EXPERIMENT, "--param", "n_itmes=3")
    assert proc.returncode == 2
    assert "n_itmes" in proc.stderr and "declares" in proc.stderr


@pytest.mark.parametrize("param, phrase", [("n_items=-3", "n_items must be an integer >= 1 or None, got -3"),
                                           ("n_items=abc", "got 'abc'"), ("split=weird", "split must be a request split"),
                                           ("max_tokens=0", "max_tokens must be an integer >= 1 and <= 4096"),
                                           ("judge=no-such-judge", "judge must be a registered judge")])
def test_bad_parameter_value_fails_before_any_work(param, phrase, integration_data, scratch_repo):
    proc = _personalab(scratch_repo, integration_data, "run", EXPERIMENT, "--param", param)
    assert proc.returncode == 2, proc.stderr
    assert phrase in proc.stderr and "Traceback" not in proc.stderr
    assert "Starting vLLM" not in proc.stdout + proc.stderr and "==" not in proc.stdout
