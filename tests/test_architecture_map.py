"""docs/ARCHITECTURE.md is the map of the code: every module of device/ and trainer/ must be on it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_architecture_page_names_every_module():
    page = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    modules = [p for package in ("device", "trainer") for p in (REPO / package).rglob("*.py")
               if p.name != "__init__.py"]
    assert len(modules) > 50
    missing = sorted(str(p.relative_to(REPO)) for p in modules if f"`{p.name}`" not in page)
    assert not missing, f"docs/ARCHITECTURE.md does not name: {', '.join(missing)}"
