"""The curated public API: ``jobsim.__all__`` and the README's table agree."""

from __future__ import annotations

import re
from pathlib import Path

import jobsim

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_api_table_matches_dunder_all() -> None:
    text = README.read_text()
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([A-Za-z_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(names) == sorted(jobsim.__all__)


def test_every_public_name_exists_and_has_a_docstring() -> None:
    for name in jobsim.__all__:
        obj = getattr(jobsim, name)
        if callable(obj):
            assert obj.__doc__, name


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert "bash scripts/demo.sh" in block and "bash scripts/test.sh" in block
    assert "scripts/test.sh" in (README.parent / ".ci" / "run").read_text()
