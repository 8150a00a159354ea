"""The README's screenshots of the archive site, taken in Debian's Chromium (headless).

    python benchmarks/site_screenshots.py            # writes docs/site-*.png

A library of 30 days of 200 papers (the real papers of examples/arxiv-categories-dev.jsonl,
tagged and summarized by the offline backend, as bench_site.py makes them), its site served
from 127.0.0.1, then: a day's page, a search on the front page, and a day's page at a phone's
width (390 px).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_site import fill, source  # noqa: E402

from agent.site import update_site  # noqa: E402
from agent.store import Library  # noqa: E402
from tests.browser import chromium, serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    from playwright.sync_api import expect

    rows, notes = source()
    args.out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        home, site = Path(scratch) / "home", Path(scratch) / "site"
        first = dt.date.today() - dt.timedelta(days=32)
        fill(home, 30, first, rows, notes)
        with Library.open(home) as lib:
            update_site(lib, site)
        day = sorted((site / "days").glob("*.html"))[-1].name
        with serve(site) as base, chromium() as browser:
            # name, page, viewport, a search to type, whether to scroll to the papers
            shots = [
                ("site-day.png", f"days/{day}", {"width": 1000, "height": 900}, None, False),
                (
                    "site-search.png",
                    "index.html",
                    {"width": 1000, "height": 760},
                    "diffusion",
                    False,
                ),
                ("site-phone.png", f"days/{day}", {"width": 390, "height": 844}, None, True),
            ]
            for name, page_name, viewport, query, scroll in shots:
                context = browser.new_context(viewport=viewport, device_scale_factor=1)
                page = context.new_page()
                page.goto(base + page_name)
                if scroll:  # the papers themselves, below the top picks
                    page.locator("section[data-group]").first.evaluate(
                        "s => { s.scrollIntoView(); window.scrollBy(0, -12); }"
                    )
                if query:
                    page.get_by_role("searchbox").fill(query)
                    status = page.locator("[data-status]")
                    expect(status).to_have_text(re.compile(r"match(es)?\.$"))
                page.screenshot(path=str(args.out / name))
                context.close()
                size = (args.out / name).stat().st_size
                print(f"{args.out / name}: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
