"""Publishing the website: the GitHub Pages workflow builds with `make site` from committed results and deploys
`_build/html`; the repository address lives in one place of `_config.yml` and the workflow fills it in."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
import yaml

from personalab.paths import repo_path

WORKFLOW = repo_path(".github", "workflows", "pages.yml")


def _tool():
    spec = importlib.util.spec_from_file_location("set_repository_url", repo_path("tools", "set_repository_url.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workflow_builds_with_make_site_and_deploys_the_html():
    """Push to main -> `make site` (after filling in the address) -> the Pages artifact of _build/html -> deploy."""
    flow = yaml.safe_load(WORKFLOW.read_text())
    assert "main" in flow[True]["push"]["branches"]  # PyYAML reads the bare key `on` as True
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    steps = flow["jobs"]["build"]["steps"]
    runs = [s.get("run", "") for s in steps]
    fill = next(i for i, r in enumerate(runs) if "tools/set_repository_url.py" in r)
    build = next(i for i, r in enumerate(runs) if r.strip() == "make site")
    upload = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert fill < build < upload and steps[upload]["with"]["path"] == "_build/html"
    assert "github.repository" in runs[fill]
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["steps"][0]["uses"].startswith("actions/deploy-pages")
    assert not any("personalab figures" in r or "make book" in r for r in runs)  # it regenerates nothing


def test_the_repository_address_has_one_place_in_the_config():
    """Only `repository.url` holds it; the theme option is not set a second time."""
    text = repo_path("_config.yml").read_text()
    config = yaml.safe_load(text)
    settings = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert "url" in config["repository"] and "repository_url" not in settings
    assert config["html"]["use_repository_button"] is (bool(config["repository"]["url"]))


def test_the_tool_fills_in_the_address_and_turns_the_buttons_on(tmp_path):
    config = tmp_path / "_config.yml"
    shutil.copy(repo_path("_config.yml"), config)
    before = yaml.safe_load(config.read_text())
    tool = _tool()
    assert tool.main(["https://github.com/someone/persona-problem", str(config)]) == 0
    after = yaml.safe_load(config.read_text())
    assert after["repository"]["url"] == "https://github.com/someone/persona-problem"
    assert after["html"]["use_repository_button"] is True and after["html"]["use_issues_button"] is True
    after["repository"]["url"], after["html"]["use_repository_button"] = "", False
    after["html"]["use_issues_button"] = False
    assert after == before  # nothing else changed (and the comments survive: plain text edits)
    assert tool.main(["https://github.com/other/fork", str(config)]) == 0  # a second run replaces the address
    assert yaml.safe_load(config.read_text())["repository"]["url"] == "https://github.com/other/fork"


@pytest.mark.parametrize("url", ["github.com/someone/repo", "https://github.com/only-owner", "https://x/a/b c"])
def test_a_bad_address_is_refused_and_the_config_left_alone(tmp_path, url, capsys):
    config = tmp_path / "_config.yml"
    shutil.copy(repo_path("_config.yml"), config)
    before = config.read_text()
    assert _tool().main([url, str(config)]) == 2
    assert "is not a repository address" in capsys.readouterr().err and config.read_text() == before
