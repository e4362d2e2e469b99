"""Every internal link and resource reference of the built site resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from .checks import check_internal_links

pytestmark = [pytest.mark.slow, pytest.mark.site]


def test_internal_links_resolve(site_dir: Path) -> None:
    """Each internal href/src names an existing file, and each #fragment an existing id."""
    problems = check_internal_links(site_dir)
    if problems:
        pytest.fail(f"{len(problems)} broken internal link(s) in {site_dir}:\n" + "\n".join(problems), pytrace=False)
