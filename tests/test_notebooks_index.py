"""The notebooks index: every notebook listed in notebooks/README.md exists, and every
notebook in notebooks/ is listed there."""

from __future__ import annotations

import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LINK = re.compile(r"\]\(([^)\s]+\.ipynb)\)")


def listed() -> set[str]:
    return set(LINK.findall((NOTEBOOKS / "README.md").read_text(encoding="utf-8")))


def present() -> set[str]:
    return {path.name for path in NOTEBOOKS.glob("*.ipynb")}


def test_every_listed_notebook_exists() -> None:
    """A link in the index never points at a missing notebook."""
    assert listed() - present() == set()


def test_every_notebook_is_listed_in_the_index() -> None:
    """A notebook added to notebooks/ appears in the index too."""
    assert present() - listed() == set()


def test_notebooks_are_stored_with_outputs_and_no_figure_reprs() -> None:
    """Committed notebooks carry their charts, and no `<Figure ...>` text in place of one."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no chart"
        text = json.dumps(outputs)
        assert "<Figure size" not in text and "<Axes" not in text, path.name
