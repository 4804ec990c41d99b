"""Screenshots of the browser tests, saved under tests/screenshots/ (git-ignored)."""

from __future__ import annotations

from pathlib import Path

SHOTS = Path(__file__).resolve().parents[1] / "screenshots"


def shoot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
