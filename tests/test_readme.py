"""README.md runs as written, and the project's documents link only to files in the repository.

Each ```python block of README.md is run as a script of its own, in a fresh interpreter, in a
folder laid out like ``examples/iris`` (its ``schema.py`` and ``data/``), as a reader following
the README would run it. A block preceded by the line ``<!-- needs Azure credentials -->`` is
skipped; none is today, and a new one should be made runnable locally instead if it can.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pytest

from support import ROOT
from support.iris import EXAMPLE

README = ROOT / "README.md"
DOCUMENTS = (README, ROOT / "CONTRIBUTING.md", ROOT / "docs" / "architecture.md")
NEEDS_AZURE = "<!-- needs Azure credentials -->"
TIMEOUT = 180  # seconds per block: the training block compiles numba kernels on a cold cache

_FENCE = re.compile(r"^(`{3,})([^\n`]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
_INLINE_LINK = re.compile(r"\]\(\s*(?:<([^>\n]+)>|([^)\s]+))(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # https:, mailto:, //host


class Block(NamedTuple):
    """One ```python block of README.md: its code, where it starts, whether it needs Azure."""

    code: str
    line: int
    needs_azure: bool


def python_blocks(text: str) -> list[Block]:
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(2).strip().split(" ")[0].lower() not in ("python", "py"):
            continue
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(3), line, before == NEEDS_AZURE))
    return blocks


def link_targets(text: str) -> list[str]:
    """Every link target outside code: inline, reference-style and HTML ``href``/``src``."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    inline = [bracketed or bare for bracketed, bare in _INLINE_LINK.findall(prose)]
    return inline + _REFERENCE_LINK.findall(prose) + _HTML_LINK.findall(prose)


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_its_python_examples() -> None:
    assert len(BLOCKS) >= 3  # the schema, training and serving steps of "The whole path"
    assert any("serve_http" in b.code for b in BLOCKS)


@pytest.mark.integration
@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_python_block_runs_as_shown(block: Block, tmp_path: Path) -> None:
    if block.needs_azure:
        pytest.skip(f"README.md line {block.line} is marked as needing Azure credentials")
    shutil.copy(EXAMPLE / "schema.py", tmp_path / "schema.py")
    shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    script = tmp_path / "readme_block.py"
    script.write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_URI", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"README.md block at line {block.line} exited {result.returncode}:\n{result.stderr}"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_do_not_point_outside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "DESIGN.md" not in text


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_in_the_repository(document: Path) -> None:
    broken = []
    for target in link_targets(document.read_text(encoding="utf-8")):
        if _EXTERNAL.match(target) or target.startswith("#"):
            continue
        path = (document.parent / unquote(target.split("#", 1)[0])).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"


def test_link_extraction_sees_every_link_form() -> None:
    text = (
        "[a](a.md) [b](<b c.md> 'title') ![img](img.png) [ext](https://x.org/y) [top](#top)\n"
        "`[not](code.md)`\n\n```\n[not](fenced.md)\n```\n\n[ref]: ref.md\n"
        '<a href="html.md">html</a>\n'
    )
    assert link_targets(text) == [
        "a.md",
        "b c.md",
        "img.png",
        "https://x.org/y",
        "#top",
        "ref.md",
        "html.md",
    ]
