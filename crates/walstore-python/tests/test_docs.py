"""Every ```python block of README.md and docs/PYTHON.md runs verbatim, each in a fresh
interpreter in an empty directory (the blocks create their stores there)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

DOCS = ["README.md", "docs/PYTHON.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks():
    for doc in DOCS:
        text = (REPO / doc).read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            yield pytest.param(match.group(1), id=f"{doc}:{line}")


def test_the_docs_have_python_blocks():
    found = {param.id.split(":")[0] for param in blocks()}
    assert found == set(DOCS)


@pytest.mark.parametrize("code", list(blocks()))
def test_a_python_block_of_the_docs_runs_verbatim(code: str, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
