"""Headless Chromium (Debian's ``chromium``, driven by Playwright) for the browser tests, and their screenshots.

Screenshots land in ``test-artifacts/screenshots/``; with ``DAGNOSTICS_DOCS_SCREENSHOTS=1`` the ones the docs show
are also copied into ``docs/images/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium_page(width: int = 1440, height: int = 900) -> Iterator:
    """A fresh page; fails the test on a page error raised by DAGnostics' own scripts."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            page.screenshot(path=str(SCREENSHOTS / "last.png"))
            browser.close()
        assert not [e for e in errors if "dagnostics" in e.lower()], errors


def screenshot(page, name: str, docs_name: str | None = None) -> Path:
    """Save a screenshot; with ``DAGNOSTICS_DOCS_SCREENSHOTS=1`` also publish it as ``docs/images/<docs_name>``."""
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    if docs_name and os.environ.get("DAGNOSTICS_DOCS_SCREENSHOTS") == "1":
        publish(path, DOCS_IMAGES / docs_name)
    return path


def publish(source: Path, target: Path) -> None:
    """Copy a screenshot into the docs as a 256-colour PNG (a third of the size) when Pillow is installed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(source, target)
        return
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256).save(target, optimize=True)
