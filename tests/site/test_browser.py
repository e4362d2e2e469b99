"""Every page of the table of contents renders cleanly in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .checks import TocPage, audit_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.slow, pytest.mark.site]


def test_landing_page(browser: Browser, http_server: str, artifacts_dir: Path) -> None:
    """index.html (or the page it redirects to) renders without errors; saves landing.png."""
    screenshot = artifacts_dir / "landing.png"
    audit = audit_page(browser, http_server + "index.html", screenshot=screenshot)
    if audit.problems:
        pytest.fail("index.html -> " + "\nindex.html -> ".join(audit.problems), pytrace=False)
    assert screenshot.is_file() and screenshot.stat().st_size > 0


def test_every_toc_page(browser: Browser, http_server: str, toc: list[TocPage], artifacts_dir: Path) -> None:
    """No HTTP error, failed local request, console error, page error or broken image on any page.

    Pages whose source has a figure or an image must show at least one loaded
    image. The first page with a loaded image inside a <figure> is saved as
    figure-page.png.
    """
    problems: list[str] = []
    figure_page: TocPage | None = None
    for page in toc:
        audit = audit_page(browser, http_server + page.html, expect_figure=page.has_figure)
        problems += [f"{page.html} -> {problem}" for problem in audit.problems]
        if figure_page is None and audit.figure_images:
            figure_page = page
    if figure_page is not None:
        audit_page(browser, http_server + figure_page.html, screenshot=artifacts_dir / "figure-page.png")
    if problems:
        pytest.fail(f"{len(problems)} problem(s) in {len(toc)} page(s):\n" + "\n".join(problems), pytrace=False)
