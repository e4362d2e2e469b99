"""Fast tests of the site checkers on tiny hand-written sites (no book build).

The link and toc tests need nothing but the stdlib and PyYAML. The browser
tests open Chromium (marked ``site``) but build nothing, so they are not
``slow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .checks import audit_page, check_internal_links, is_internal, serve_directory, toc_pages

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser

# A 1x1 transparent PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def page(body: str, head: str = "") -> str:
    """A minimal HTML document with ``body`` inside <main><article>."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>{head}</head>"
        f"<body><main><article><h1 id='top'>Title</h1>{body}</article></main></body></html>"
    )


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path -> content) under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


# --------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "internal"),
    [
        ("page.html", True),
        ("../a/b.html#x", True),
        ("/root.html", True),
        ("#frag", True),
        ("#", False),
        ("", False),
        ("https://example.org/", False),
        ("http://example.org/", False),
        ("//cdn.example.org/x.js", False),
        ("mailto:a@b.c", False),
        ("javascript:void(0)", False),
        ("data:image/png;base64,AAAA", False),
    ],
)
def test_is_internal(url: str, internal: bool) -> None:
    """Only relative and root-relative URLs are checked."""
    assert is_internal(url) is internal


def test_good_site_has_no_broken_links(tmp_path: Path) -> None:
    """Relative, root-relative, directory, escaped, srcset and fragment links all resolve."""
    write(
        tmp_path,
        {
            "index.html": page(
                "<a href='chapters/one.html#sec'>one</a> <a href='#top'>up</a> <a href='#'>x</a>"
                "<a href='https://example.org/nowhere'>ext</a> <a href='mailto:x@y.z'>m</a>"
                "<a href='sub/'>dir</a> <a href='with%20space.html'>sp</a> <a href='/chapters/one.html'>abs</a>"
                "<img src='_images/fig.png' srcset='_images/fig.png 1x, _images/fig.png 2x'>"
                "<link rel='stylesheet' href='_static/style.css?v=1'><script src='_static/app.js'></script>",
            ),
            "chapters/one.html": page("<section id='sec'><a href='../index.html#top'>back</a></section>"),
            "sub/index.html": page(""),
            "with space.html": page(""),
            "_images/fig.png": PNG,
            "_static/style.css": "",
            "_static/app.js": "",
            # Theme template fragments are not pages and are skipped.
            "_static/webpack-macros.html": "<script src=\"{{ pathto('_static/x.js', 1) }}\"></script>",
        },
    )
    assert check_internal_links(tmp_path) == []


def test_broken_links_are_all_reported(tmp_path: Path) -> None:
    """Each kind of broken link is reported, all of them at once."""
    write(
        tmp_path,
        {
            "index.html": page(
                "<a href='missing.html'>a</a>\n"
                "<a href='chapters/one.html#nope'>b</a>\n"
                "<a href='#also-nope'>c</a>\n"
                "<img src='_images/gone.png'>\n"
                "<img src='_images/fig.png' srcset='_images/gone2x.png 2x'>\n"
                "<a href='../outside.html'>d</a>\n"
                "<script src='/_static/none.js'></script>"
            ),
            "chapters/one.html": page(""),
            "_images/fig.png": PNG,
        },
    )
    problems = check_internal_links(tmp_path)
    report = "\n".join(problems)
    assert len(problems) == 7, report
    assert "missing file missing.html" in report
    assert "no id 'nope' in chapters/one.html" in report
    assert "no id 'also-nope' in index.html" in report
    assert "missing file _images/gone.png" in report
    assert "missing file _images/gone2x.png" in report
    assert "points outside the built site" in report
    assert "missing file _static/none.js" in report
    assert all(problem.startswith("index.html:") for problem in problems)


# --------------------------------------------------------------------------
# Table of contents
# --------------------------------------------------------------------------


def test_toc_pages_follow_parts_chapters_sections_and_globs(tmp_path: Path) -> None:
    """Root first, then files and globs in toc order; figures detected in md and ipynb."""
    write(
        tmp_path,
        {
            "_toc.yml": (
                "format: jb-book\n"
                "root: index\n"
                "parts:\n"
                "  - caption: One\n"
                "    chapters:\n"
                "      - file: chapters/a.md\n"
                "        sections:\n"
                "          - glob: chapters/extra/*\n"
                "          - url: https://example.org\n"
                "            title: External\n"
                "  - caption: Two\n"
                "    chapters:\n"
                "      - file: chapters/nb\n"
                "      - file: chapters/extra/y\n"
            ),
            "index.md": "# Home\n",
            "chapters/a.md": "# A\n\n```{figure} ../fig.svg\nCaption\n```\n",
            "chapters/extra/y.md": "# Y\n\n![alt](pic.png)\n",
            "chapters/extra/x.md": "# X\n",
            "chapters/nb.ipynb": '{"cells": [{"outputs": [{"data": {"image/png": "iVBOR"}}]}]}',
        },
    )
    pages = toc_pages(tmp_path)
    assert [p.html for p in pages] == [
        "index.html",
        "chapters/a.html",
        "chapters/extra/x.html",
        "chapters/extra/y.html",
        "chapters/nb.html",
    ]
    assert [p.has_figure for p in pages] == [False, True, False, True, True]


def test_toc_entry_without_source_is_an_error(tmp_path: Path) -> None:
    """A toc entry with no source file fails loudly."""
    write(tmp_path, {"_toc.yml": "format: jb-book\nroot: index\nchapters:\n  - file: ghost\n", "index.md": "# I\n"})
    with pytest.raises(FileNotFoundError, match="ghost"):
        toc_pages(tmp_path)


# --------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hand-written site with one good page and one page per failure, served locally."""
    root = write(
        tmp_path_factory.mktemp("mini-site"),
        {
            "good.html": page("<figure><img src='fig.png' alt='f'><figcaption>c</figcaption></figure>"),
            "fig.png": PNG,
            "index.html": '<meta http-equiv="Refresh" content="0; url=good.html" />',
            "console.html": page("<p>text</p><script>console.error('x')</script>"),
            "throws.html": page("<p>text</p><script>null.boom()</script>"),
            "broken-img.html": page("<p>text</p><img src='gone.png' alt='g'>"),
            "missing-js.html": page("<p>text</p>", head="<script src='gone.js'></script>"),
            "no-figure.html": page("<p>only text</p>"),
            "external.html": page("<p>text</p><img src='https://example.org/remote.png' alt='r'>"),
            "theme-bug.html": page(
                "<p>text</p>", head="<script>const THEBE_JS_URL = 1</script><script>const THEBE_JS_URL = 1</script>"
            ),
            "empty.html": "<!DOCTYPE html><html><body><main><article></article></main></body></html>",
        },
    )
    with serve_directory(root) as base_url:
        yield base_url


@pytest.mark.site
def test_good_page_and_redirect_pass(browser: Browser, mini_site: str, tmp_path: Path) -> None:
    """A clean page passes; a meta-refresh index is followed and screenshotted."""
    good = audit_page(browser, mini_site + "good.html", expect_figure=True)
    assert good.problems == []
    assert (good.figure_images, good.content_images) == (1, 1)
    shot = tmp_path / "shot.png"
    redirected = audit_page(browser, mini_site + "index.html", screenshot=shot)
    assert redirected.problems == []
    assert redirected.figure_images == 1
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.site
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("console.html", "console error: x"),
        ("throws.html", "uncaught JavaScript error"),
        ("broken-img.html", "broken image (naturalWidth 0)"),
        ("missing-js.html", "HTTP 404"),
        ("empty.html", "no visible <article>/<main> text"),
    ],
)
def test_failures_are_reported(browser: Browser, mini_site: str, name: str, expected: str) -> None:
    """Console errors, exceptions, broken images, 404s and empty pages are caught."""
    audit = audit_page(browser, mini_site + name)
    assert any(expected in problem for problem in audit.problems), audit.problems


@pytest.mark.site
def test_missing_figure_is_reported(browser: Browser, mini_site: str) -> None:
    """A page expected to show a figure but showing none fails."""
    audit = audit_page(browser, mini_site + "no-figure.html", expect_figure=True)
    assert audit.problems == ["source has a figure or image but no image rendered in the article"]


@pytest.mark.site
def test_external_requests_are_blocked_not_failed(browser: Browser, mini_site: str) -> None:
    """Non-local requests are aborted and listed, not counted as failures."""
    audit = audit_page(browser, mini_site + "external.html")
    assert audit.problems == []
    assert audit.blocked == ["https://example.org/remote.png"]


@pytest.mark.site
def test_known_theme_error_is_ignored(browser: Browser, mini_site: str) -> None:
    """The documented stock-theme error (duplicate THEBE_JS_URL) is not a failure."""
    assert audit_page(browser, mini_site + "theme-bug.html").problems == []
