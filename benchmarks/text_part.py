"""The plain-text part's cost: html2text (render/plain.py) against the flattening it replaced
(every tag stripped, whitespace collapsed, textwrap at 72), in one run, alternating A B A B.

    python benchmarks/text_part.py [--runs 3] [--repeat 20]

Cases: the sample week's five posts in full (text_part = "full"), and hostile shapes the
sanitizer lets through (1,999 nested quotes around 5,000 paragraphs, 20,000 links, 200,000
characters of Japanese, a 1,000,000-character line of code, `<ol start>` of 4,000 digits).
Prints min / median / max seconds of --runs, each the sum of --repeat conversions, and the
ratio html2text / flattening (the medians)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ainews_newsletter.config import load_config  # noqa: E402
from ainews_newsletter.models import Window  # noqa: E402
from ainews_newsletter.pipeline.issue import select_posts  # noqa: E402
from ainews_newsletter.posts.text import sanitize_html, sanitized_to_plain  # noqa: E402
from ainews_newsletter.render.plain import html_to_text  # noqa: E402


def flattened(fragment: str) -> str:
    """The peer: what the text part did before (posts/text.py + the `wrap` filter)."""
    return textwrap.fill(sanitized_to_plain(fragment), width=72, break_long_words=False,
                         break_on_hyphens=False)


def through_html2text(fragment: str) -> str:
    return html_to_text(fragment).with_references()


def cases() -> dict[str, list[str]]:
    config = load_config(REPO / "config.toml", environ={},
                         overrides={"storage": {"url": "sqlite:///:memory:"}})
    sample = [post.body_html for post in select_posts(config, Window(week="2026-W47")).posts]
    return {
        "sample week, 5 posts in full": sample,
        "1,999 nested quotes x 5,000 paragraphs": [sanitize_html(
            "<blockquote>" * 1_999 + "<p>quoted line</p>" * 5_000 + "</blockquote>" * 1_999)],
        "20,000 links": [sanitize_html(" ".join(
            f'<a href="https://x.example/{n}">link {n}</a>' for n in range(20_000)))],
        "200,000 characters of Japanese": [sanitize_html("<p>" + "日本語の文章" * 33_334 +
                                                         "</p>")],
        "a 1,000,000-character line of code": [sanitize_html(
            "<pre><code>" + "\u00e9" * 1_000_000 + "</code></pre>")],
        "<ol start> of 4,000 digits": [sanitize_html(
            '<ol start="' + "9" * 4_000 + '"><li>' + "word " * 2_000 + "</li></ol>")],
    }


def timed(convert: Callable[[str], str], fragments: list[str], repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        for fragment in fragments:
            convert(fragment)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, fragments in cases().items():
        repeat = args.repeat if name.startswith("sample") else 1
        ours: list[float] = []
        peer: list[float] = []
        for _ in range(args.runs):  # A B A B
            ours.append(timed(through_html2text, fragments, repeat))
            peer.append(timed(flattened, fragments, repeat))
        shown = " / ".join(f"{value:.3f}" for value in (min(ours), statistics.median(ours),
                                                         max(ours)))
        shown_peer = " / ".join(f"{value:.3f}" for value in (
            min(peer), statistics.median(peer), max(peer)))
        print(f"{name} (x{repeat}): html2text {shown} s, flattening {shown_peer} s, "
              f"ratio {statistics.median(ours) / statistics.median(peer):.1f}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
