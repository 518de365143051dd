"""Headless Chromium for the browser tests and the README's screenshots of the explorer.

Not part of the package: the page needs no browser to be written, only to be looked at. The tests import
this module (pytest puts tests/ on sys.path); `python tests/browser_tools.py PAGE.html OUT.png` saves a PNG.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from charnn.errors import CharnnError

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """A Chromium or Chrome executable from the system ($CHARNN_CHROMIUM first), or None."""
    import shutil

    candidates = [
        os.environ.get("CHARNN_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    for candidate in candidates:
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    hash_state: str = "",
    width: int = 1280,
    height: int = 800,
    hover: int | None = None,
    view: str | None = None,
    live_text: str | None = None,
) -> None:
    """Open a page in headless Chromium from disk and save a PNG (the README's docs/explorer*.png)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise CharnnError(
            "screenshots need the playwright package: pip install playwright "
            "(its browser download is not needed: the system's chromium is used)"
        ) from None
    if not Path(html_path).is_file():
        raise CharnnError(f"'{html_path}' does not exist; write one with charnn probe ... --html {html_path}")
    executable = find_chromium()
    if executable is None:
        raise CharnnError("no chromium found (install Debian's 'chromium' or set CHARNN_CHROMIUM)")
    with open_page(executable, html_path, width, height, hash_state, ready_seconds=60) as (page, _):
        if live_text is not None:  # run the page's own model on this text first
            page.fill("#live-text", live_text)
            page.click("#live-run")
            page.wait_for_function("() => charnnExplorer.state.source === 'your text'", timeout=120_000)
        if view is not None:
            page.click(f"#view-tabs button[data-view='{view}']")
        if hover is not None:
            target = page.locator("#text > span").nth(hover)
            target.scroll_into_view_if_needed()
            target.hover()
            page.wait_for_selector("#tip.show")
        page.screenshot(path=str(png_path))


@contextlib.contextmanager
def open_page(
    executable: str,
    path: str | Path,
    width: int = 1200,
    height: int = 800,
    hash_state: str = "",
    ready_seconds: float = 30,
):
    """A page opened from disk in headless Chromium, ready: (page, problems). Every request that is not file:
    is refused and counted as a problem, as are console errors and warnings and uncaught exceptions. A page
    that is not ready in ready_seconds is one CharnnError with what it logged."""
    import tempfile

    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    url = Path(path).resolve().as_uri() + (f"#{hash_state}" if hash_state else "")
    with tempfile.TemporaryDirectory(prefix="charnn-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            context.route(
                "**/*",
                lambda route: (
                    (problems.append(f"request {route.request.url}"), route.abort())
                    if not route.request.url.startswith(("file:", "blob:"))
                    else route.continue_()
                ),
            )
            page = context.new_page()
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            try:
                page.wait_for_selector("body[data-ready='true']", timeout=ready_seconds * 1000)
            except Exception:  # playwright's timeout: say what the page said instead
                raise CharnnError(
                    f"'{path}' did not become ready in {ready_seconds:g} s: {'; '.join(problems) or 'no error logged'}"
                ) from None
            yield page, problems
        finally:
            context.close()


def main(argv: list[str] | None = None) -> int:
    """python tests/browser_tools.py REPORT.html OUT.png [--unit 1:23:c] [--feature NAME] [--hover N]."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python tests/browser_tools.py",
        description="Save a PNG of an explorer page in headless Chromium (for docs/explorer.png)",
    )
    parser.add_argument("page", help="a page written by charnn probe --html")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--unit", help="LAYER:UNIT:STATE to show (default: the page's first flagged unit)")
    parser.add_argument("--feature", help="feature to underline and plot")
    parser.add_argument("--c-scale", choices=("centred", "max", "tanh"), help="colour scale of c (default: centred)")
    parser.add_argument("--hover", type=int, help="hover the character at this position, showing the tooltip")
    parser.add_argument("--at", type=int, help="scroll the text to this position")
    parser.add_argument(
        "--view", choices=("plots", "internals", "layer", "event"), help="the view above the text (default: plots)"
    )
    parser.add_argument("--order", metavar="FEATURE", help="the layer overview's rows by this feature's held-out score")
    parser.add_argument(
        "--live-text", metavar="FILE", help="run the page's live model on this file's text before the screenshot"
    )
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args(argv)
    if args.at is None:
        args.at = args.hover
    state = "&".join(
        f"{key}={value}"
        for key, value in (
            ("u", args.unit),
            ("f", args.feature),
            ("c", args.c_scale),
            ("at", args.at),
            ("o", args.order),
        )
        if value is not None
    )
    try:
        live_text = Path(args.live_text).read_text(encoding="utf-8") if args.live_text else None
        screenshot(args.page, args.png, state, args.width, args.height, args.hover, args.view, live_text)
    except (CharnnError, OSError) as err:
        print(
            f"browser_tools: {getattr(err, 'filename', None) and f'cannot read {err.filename}: {err.strerror}' or err}",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {args.png} ({Path(args.png).stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
