"""Fixtures for the book's site tests: the built HTML, a local server, the toc pages.

Environment variables:

* ``PERSONALAB_SITE_DIR``: an already built site (the folder holding
  ``index.html``); when unset the book is built once per session.
* ``PERSONALAB_BOOK_DIR``: the book's source folder (``_config.yml``,
  ``_toc.yml``); defaults to the repository root.
* ``PERSONALAB_ARTIFACTS``: where screenshots go; defaults to
  ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .checks import TocPage, chromium, serve_directory, toc_pages

if TYPE_CHECKING:
    from playwright.sync_api import Browser

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 1800
OUTPUT_TAIL_LINES = 60
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used here (harmless if pyproject also does)."""
    config.addinivalue_line("markers", "site: builds the book and opens it in headless Chromium")
    config.addinivalue_line("markers", "slow: needs a book build or another long-running step")


@pytest.fixture(scope="session")
def book_dir() -> Path:
    """The book's source folder (``PERSONALAB_BOOK_DIR`` or the repository root)."""
    path = Path(os.environ.get("PERSONALAB_BOOK_DIR", REPO_ROOT)).resolve()
    if not (path / "_toc.yml").is_file():
        pytest.fail(f"no _toc.yml in the book folder {path} (set PERSONALAB_BOOK_DIR to the book's source)")
    return path


def _build_book(book: Path, output: Path) -> Path:
    """Build ``book`` strictly (warnings are errors) and return its HTML folder."""
    # jupyter_book 1.0.4 has no __main__ module, so "python -m jupyter_book"
    # does not run; calling its click entry point keeps the build in this venv.
    command = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(book),
        "--warningiserror",
        "--nitpick",
        "--keep-going",
        "--path-output",
        str(output),
    ]
    try:
        result = subprocess.run(
            command,
            cwd=book,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"jupyter-book build of {book} took over {BUILD_TIMEOUT_S} s", pytrace=False)
    if result.returncode != 0:
        plain = ANSI_ESCAPE.sub("", result.stdout)
        tail = "\n".join(plain.splitlines()[-OUTPUT_TAIL_LINES:])
        pytest.fail(
            f"jupyter-book build exited {result.returncode}:\n  {shlex.join(command)}\n"
            f"--- last {OUTPUT_TAIL_LINES} lines of its output ---\n{tail}",
            pytrace=False,
        )
    html = output / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.fail(f"jupyter-book build exited 0 but wrote no {html / 'index.html'}", pytrace=False)
    return html


@pytest.fixture(scope="session")
def site_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built HTML site: ``PERSONALAB_SITE_DIR`` or a fresh strict build (once per session)."""
    given = os.environ.get("PERSONALAB_SITE_DIR")
    if given:
        path = Path(given).resolve()
        if not (path / "index.html").is_file():
            pytest.fail(f"PERSONALAB_SITE_DIR={given} has no index.html: point it at the built _build/html folder")
        return path
    return _build_book(request.getfixturevalue("book_dir"), tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def http_server(site_dir: Path) -> Iterator[str]:
    """Serve ``site_dir`` on 127.0.0.1 (free port); yields the base URL ending in ``/``."""
    with serve_directory(site_dir) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def toc(book_dir: Path) -> list[TocPage]:
    """The pages of ``_toc.yml`` in reading order (``page.html`` is the built path)."""
    pages = toc_pages(book_dir)
    assert pages, f"{book_dir / '_toc.yml'} lists no pages"
    return pages


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for screenshots: ``PERSONALAB_ARTIFACTS`` or ``test-artifacts/`` at the repo root."""
    path = Path(os.environ.get("PERSONALAB_ARTIFACTS", REPO_ROOT / "test-artifacts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium (Debian's /usr/bin/chromium) for the session."""
    with chromium() as instance:
        yield instance
