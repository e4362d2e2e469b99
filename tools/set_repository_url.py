"""Write the book's repository address into `_config.yml` (its one place) and turn the repository buttons on.

Run by the GitHub Pages workflow with the address of the repository it runs in, so a fork publishes with its own
links and nobody types the address in:

    python tools/set_repository_url.py https://github.com/OWNER/REPO [path/to/_config.yml]

Plain text edits (no YAML library), so it runs before any environment exists and keeps the file's comments.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

URL = re.compile(r"^https://[A-Za-z0-9.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def set_repository_url(config: Path, url: str) -> str:
    """The text of ``config`` with ``repository.url`` set to ``url`` and the repository and issue buttons on."""
    if not URL.match(url):
        raise ValueError(f"{url!r} is not a repository address like https://github.com/OWNER/REPO.")
    text = config.read_text()
    block = re.compile(r'(^repository:\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*)("[^"\n]*"|[^\n#]*)', re.MULTILINE)
    if not block.search(text):
        raise ValueError(f"{config} has no `repository:` section with a `url:` key to fill in.")
    text = block.sub(lambda m: f'{m.group(1)}"{url}"', text, count=1)
    for button in ("use_repository_button", "use_issues_button"):
        text, n = re.subn(rf"^([ \t]+{button}:[ \t]*)\w+", rf"\g<1>true", text, count=1, flags=re.MULTILINE)
        if not n:
            raise ValueError(f"{config} has no `html.{button}` key to turn on.")
    return text


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    config = Path(argv[1] if len(argv) == 2 else Path(__file__).resolve().parents[1] / "_config.yml")
    try:
        config.write_text(set_repository_url(config, argv[0]))
    except (OSError, ValueError) as err:
        print(f"set_repository_url: {err}", file=sys.stderr)
        return 2
    print(f"{config}: repository.url = {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
