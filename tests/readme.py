"""The README's sections, for tests that check its examples still run against the code."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_section(title: str) -> str:
    """The text of the top-level section whose heading starts ``## {title}``, to the next one."""
    text = README.read_text(encoding="utf-8")
    marker = f"\n## {title}"
    start = text.index(marker)
    end = text.find("\n## ", start + len(marker))
    return text[start:] if end == -1 else text[start:end]
