"""Checks on a built HTML site, shared by the site tests and their own fast tests.

Two families:

* static link checks (stdlib only): every internal ``href``/``src`` of every
  ``.html`` file must point at an existing file, and every ``#fragment`` into
  an HTML page must name an ``id`` in that page;
* browser checks: open one page in headless Chromium (Debian's package, driven
  by Playwright) and collect HTTP errors, failed local requests, console
  errors, uncaught exceptions, broken images and missing figures.

Every check returns a list of human-readable problems instead of raising, so
the tests can report all of them in one assertion.
"""

from __future__ import annotations

import http.server
import posixpath
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import yaml

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Request, Response, Route, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# JavaScript errors that every Jupyter Book 1.0.4 site raises whatever its
# content, with the reason each one is harmless; matched as substrings.
KNOWN_THEME_ERRORS: dict[str, str] = {
    "Identifier 'THEBE_JS_URL' has already been declared": (
        "sphinx-thebe 0.3.1 adds its inline config <script> through app.add_js_file after the "
        "HTML builder is set up, and Sphinx 7.4 then emits it twice; thebe stays unused"
    ),
}
# Fixes for JavaScript errors that come from the book's configuration.
CONFIG_HINTS: dict[str, str] = {
    "Got invalid theme mode: .": (
        "set `sphinx: config: html_context: default_mode: light` (or dark/auto) in _config.yml; "
        "without it a first visit has no colour mode"
    ),
}
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst", ".myst", ".txt")

# Attributes that carry a URL, per tag. ``srcset`` is handled separately.
_URL_ATTRS: dict[str, tuple[str, ...]] = {
    "a": ("href",),
    "area": ("href",),
    "link": ("href",),
    "img": ("src",),
    "script": ("src",),
    "iframe": ("src",),
    "embed": ("src",),
    "source": ("src",),
    "track": ("src",),
    "audio": ("src",),
    "video": ("src", "poster"),
    "object": ("data",),
}
_EXTERNAL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SRCSET_TAGS = ("img", "source")

# A page "has a figure" when its source has a figure/image directive, a
# Markdown image, a raw <img>, or a notebook output holding an image.
_FIGURE_SOURCE = re.compile(
    r"\{(?:figure|image|glue:figure)\}"
    r"|!\[[^\]]*\]\([^)]+\)"
    r"|<img\b"
    r"|^\.\. (?:figure|image)::"
    r'|"image/(?:png|jpeg|svg\+xml)"',
    re.MULTILINE,
)


# --------------------------------------------------------------------------
# Table of contents
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TocPage:
    """One page of the book's table of contents."""

    docname: str  # source path relative to the book root, without suffix
    source: Path  # the source file (.md, .ipynb, ...)

    @property
    def html(self) -> str:
        """Path of the built page relative to the site root."""
        return f"{self.docname}.html"

    @property
    def has_figure(self) -> bool:
        """Whether the source contains a figure directive or an image."""
        return bool(_FIGURE_SOURCE.search(self.source.read_text(encoding="utf-8")))


def _strip_suffix(name: str) -> str:
    for suffix in SOURCE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _find_source(book_dir: Path, docname: str) -> Path:
    for suffix in SOURCE_SUFFIXES:
        candidate = book_dir / f"{docname}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"_toc.yml names {docname!r} but no source file exists for it in {book_dir}")


def _glob_docnames(book_dir: Path, pattern: str) -> list[str]:
    found = {
        _strip_suffix(path.relative_to(book_dir).as_posix())
        for suffix in SOURCE_SUFFIXES
        for path in book_dir.glob(f"{pattern}{suffix}")
        if path.is_file()
    }
    return sorted(found)


def _walk_toc(node: object, book_dir: Path) -> Iterator[str]:
    """Yield docnames of a jb-book toc subtree in reading order."""
    if isinstance(node, list):
        for item in node:
            yield from _walk_toc(item, book_dir)
        return
    if not isinstance(node, dict):
        return
    if "file" in node:
        yield _strip_suffix(str(node["file"]))
    if "glob" in node:
        yield from _glob_docnames(book_dir, str(node["glob"]))
    for key in ("parts", "chapters", "sections", "subtrees", "entries"):
        if key in node:
            yield from _walk_toc(node[key], book_dir)


def toc_pages(book_dir: Path, toc_file: Path | None = None) -> list[TocPage]:
    """Parse a Jupyter Book ``_toc.yml`` (``format: jb-book``) into its pages.

    ``root`` comes first, then every ``file:`` and ``glob:`` entry of
    ``parts``/``chapters``/``sections`` in order; globs are resolved against
    ``book_dir``, suffixes stripped and duplicates dropped. ``url:`` entries
    are external and skipped.
    """
    toc_file = toc_file or book_dir / "_toc.yml"
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{toc_file}: not a Jupyter Book toc (no 'root:' key)")
    docnames = [_strip_suffix(str(toc["root"]))]
    docnames += _walk_toc({key: value for key, value in toc.items() if key != "root"}, book_dir)
    unique = list(dict.fromkeys(docnames))
    return [TocPage(name, _find_source(book_dir, name)) for name in unique]


# --------------------------------------------------------------------------
# Static link check
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One URL found in an HTML file."""

    tag: str
    attr: str
    url: str
    line: int


@dataclass
class ParsedPage:
    """The ids defined in an HTML page and the URLs it references."""

    ids: set[str] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        line = self.getpos()[0]
        if "id" in values:
            self.page.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.page.ids.add(values["name"])
        for attr in _URL_ATTRS.get(tag, ()):
            if attr in values:
                self.page.links.append(Link(tag, attr, values[attr].strip(), line))
        if tag in _SRCSET_TAGS and "srcset" in values:
            for candidate in values["srcset"].split(","):
                url = candidate.strip().split(" ")[0]
                if url:
                    self.page.links.append(Link(tag, "srcset", url, line))

    handle_startendtag = handle_starttag


def parse_html(path: Path) -> ParsedPage:
    """Collect the ids and URL attributes of one HTML file."""
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser.page


def is_internal(url: str) -> bool:
    """True for relative or root-relative URLs worth checking.

    External schemes (``http:``, ``https:``, ``mailto:``, ``javascript:``,
    ``data:``, ...), protocol-relative ``//host`` URLs, empty URLs and a bare
    ``#`` are not checked.
    """
    if not url or url == "#" or url.startswith("//"):
        return False
    return not _EXTERNAL_SCHEME.match(url)


def check_internal_links(site_dir: Path) -> list[str]:
    """Check every internal link of every ``.html`` file under ``site_dir``.

    Returns one ``"page:line -> problem"`` string per broken link: a target
    file that does not exist (or escapes the site), or a ``#fragment`` into an
    HTML page that has no element with that ``id``. Same-page fragments
    (``href="#x"``) are checked too.
    """
    site_dir = site_dir.resolve()
    parsed: dict[Path, ParsedPage] = {}

    def parsed_page(path: Path) -> ParsedPage:
        if path not in parsed:
            parsed[path] = parse_html(path)
        return parsed[path]

    problems: list[str] = []
    for page_path in sorted(site_dir.rglob("*.html")):
        # The themes copy Jinja template fragments (webpack-macros.html,
        # sbt-webpack-macros.html) into _static/ verbatim; their
        # "{{ pathto(...) }}" URLs are not links of any served page.
        if page_path.relative_to(site_dir).parts[0] == "_static":
            continue
        page_rel = page_path.relative_to(site_dir).as_posix()
        for link in parsed_page(page_path).links:
            if not is_internal(link.url):
                continue
            problem = _check_link(site_dir, page_path, link.url, parsed_page)
            if problem:
                problems.append(f"{page_rel}:{link.line} -> <{link.tag} {link.attr}={link.url!r}>: {problem}")
    return problems


def _check_link(site_dir: Path, page_path: Path, url: str, parsed_page: Callable[[Path], ParsedPage]) -> str | None:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if not path:
        target = page_path
    elif path.startswith("/"):
        target = site_dir / path.lstrip("/")
    else:
        target = page_path.parent / path
    target = Path(posixpath.normpath(target.as_posix()))
    if not target.is_relative_to(site_dir):
        return "points outside the built site"
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"missing file {target.relative_to(site_dir).as_posix()}"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in parsed_page(target).ids:
        return f"no id {fragment!r} in {target.relative_to(site_dir).as_posix()}"
    return None


# --------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Drop the per-request log lines."""


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        """Ignore clients that hang up early; report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 on a free port; yields the base URL ending in ``/``."""
    server = _QuietServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, name="site-http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------
# Browser check
# --------------------------------------------------------------------------


@dataclass
class PageAudit:
    """What opening one page in Chromium revealed."""

    url: str
    problems: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # non-local requests, aborted
    figure_images: int = 0  # loaded <img> inside a <figure> in the article
    content_images: int = 0  # loaded <img> anywhere in the article


@contextmanager
def chromium(executable: Path = CHROMIUM) -> Iterator[Browser]:
    """Headless Chromium (Debian's binary, not Playwright's download).

    Playwright's ``launch`` gives the browser a fresh temporary user-data dir
    and removes it on close.
    """
    from playwright.sync_api import sync_playwright

    if not executable.exists():
        raise FileNotFoundError(f"{executable} not found: run tools/install_chromium.sh (needs root and apt)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _with_hint(text: str) -> str:
    hints = [hint for known, hint in CONFIG_HINTS.items() if known in text]
    return text + "".join(f" [hint: {hint}]" for hint in hints)


def is_known_theme_error(text: str) -> bool:
    """Whether a JavaScript error message is one of ``KNOWN_THEME_ERRORS``."""
    return any(known in text for known in KNOWN_THEME_ERRORS)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return True  # data:, blob:, about: never leave the machine
    return parts.hostname in LOCAL_HOSTS


# Loads every image eagerly (lazy ones would stay empty below the fold),
# waits for each to finish, then reports broken ones and counts the figures.
_IMAGES_JS = """
async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = "eager"; }
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  const ok = img => img.complete && img.naturalWidth > 0;
  const article = document.querySelector("article.bd-article") || document.querySelector("article")
    || document.querySelector("main") || document.body;
  const inArticle = Array.from(article.querySelectorAll("img"));
  return {
    broken: imgs.filter(img => !ok(img)).map(img => img.currentSrc || img.getAttribute("src") || "(no src)"),
    figures: inArticle.filter(img => img.closest("figure") && ok(img)).length,
    content: inArticle.filter(ok).length,
  };
}
"""

_CONTENT_JS = """
() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("article")
    || document.querySelector("main");
  if (!main) return 0;
  const box = main.getBoundingClientRect();
  return box.width > 0 && box.height > 0 ? main.innerText.trim().length : 0;
}
"""


def audit_page(
    browser: Browser,
    url: str,
    *,
    expect_figure: bool = False,
    screenshot: Path | None = None,
    timeout_ms: float = 30_000,
) -> PageAudit:
    """Open ``url`` and collect everything that went wrong while it rendered.

    Requests to non-local hosts are aborted and listed in ``blocked`` rather
    than counted as failures (console errors they cause are ignored too); the
    page must still show a visible ``<article>``/``<main>`` with text. A page
    served as a redirect (``<meta http-equiv="Refresh">``) is followed. Each
    page gets its own browser context, so it is judged as on a first visit
    (empty localStorage, cold cache).
    """
    audit = PageAudit(url)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()

    def route(route: Route) -> None:
        if _is_local(route.request.url):
            route.continue_()
        else:
            audit.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            audit.problems.append(f"HTTP {response.status} for {response.url}")

    def on_request_failed(request: Request) -> None:
        if _is_local(request.url):
            audit.problems.append(f"request failed ({request.failure}) for {request.url}")

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and where not in audit.blocked and not is_known_theme_error(message.text):
            located = message.text + (f" (at {where})" if where else "")
            audit.problems.append(f"console error: {_with_hint(located)}")

    def on_page_error(error: Exception) -> None:
        if not is_known_theme_error(str(error)):
            audit.problems.append(f"uncaught JavaScript error: {error}")

    page.route("**/*", route)
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        response = page.goto(url, wait_until="load", timeout=timeout_ms)
        if response is None:
            audit.problems.append("navigation returned no response")
        page.wait_for_selector("article, main", state="attached", timeout=timeout_ms)
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
        images = page.evaluate(_IMAGES_JS)
        audit.problems += [f"broken image (naturalWidth 0): {src}" for src in images["broken"] if _is_local(src)]
        audit.figure_images = images["figures"]
        audit.content_images = images["content"]
        if page.evaluate(_CONTENT_JS) == 0:
            audit.problems.append("page shows no visible <article>/<main> text")
        if expect_figure and audit.content_images == 0:
            audit.problems.append("source has a figure or image but no image rendered in the article")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    except Exception as error:  # a timeout or a crash is one more problem to report
        audit.problems.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    finally:
        context.close()
    return audit
