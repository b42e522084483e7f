"""Render time per issue, by stage, against a naive per-recipient render, in one run.

    python benchmarks/render.py [--runs 10] [--recipients 1000]

Stages (median of --runs renders of the sample week): Jinja2 template, MJML compile, CSS
inlining (css-inline), plain text. Then the cost of an issue for --recipients readers:
  ours:  render once, then `personalize` (a string replace) per recipient
  naive: the whole render per recipient (what a tool that renders per reader pays; measured
         on a sample of recipients and scaled)
The ratio naive/ours is printed. premailer (the inliner before issue 32, if installed) is
timed on the same HTML as a reference for the inlining stage."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ainews_newsletter.config import load_config  # noqa: E402
from ainews_newsletter.models import Window  # noqa: E402
from ainews_newsletter.pipeline.issue import render_selection, select_posts  # noqa: E402
from ainews_newsletter.render.digest import (  # noqa: E402
    HTML_TEMPLATE,
    RenderOptions,
    compose_issue,
    issue_context,
)
from ainews_newsletter.render.environment import make_environment, render_template  # noqa: E402
from ainews_newsletter.render.mjml import mjml_to_html  # noqa: E402

NAIVE_SAMPLE = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--recipients", type=int, default=1000)
    args = parser.parse_args()

    config = load_config(REPO / "config.toml", environ={},
                         overrides={"storage": {"url": "sqlite:///:memory:"}})
    selection = select_posts(config, Window(week="2026-W47"))
    cold: dict[str, float] = {}
    started = time.perf_counter()
    render_selection(config, selection, timings=cold)  # first render: imports, caches
    cold_total = time.perf_counter() - started
    stage_runs: dict[str, list[float]] = {}
    totals: list[float] = []
    for _ in range(args.runs):
        timings: dict[str, float] = {}
        started = time.perf_counter()
        rendered = render_selection(config, selection, timings=timings)
        totals.append(time.perf_counter() - started)
        for stage, seconds in timings.items():
            stage_runs.setdefault(stage, []).append(seconds)

    print(f"sample week 2026-W47: {rendered.post_count} posts, HTML {rendered.html_bytes:,} "
          f"bytes, text {rendered.text_bytes:,} bytes; median of {args.runs} renders")
    print("| stage | first render, ms | warm median, ms |\n| --- | ---: | ---: |")
    for stage, runs in stage_runs.items():
        print(f"| {stage} | {cold[stage] * 1000:.1f} | {statistics.median(runs) * 1000:.1f} |")
    per_issue = statistics.median(totals)
    print(f"| whole render | {cold_total * 1000:.1f} | {per_issue * 1000:.1f} |")

    started = time.perf_counter()
    for index in range(args.recipients):
        rendered.personalize(f"https://ainews.example/unsubscribe/token-{index}")
    personalize = time.perf_counter() - started
    ours = per_issue + personalize

    started = time.perf_counter()
    for _ in range(NAIVE_SAMPLE):
        render_selection(config, selection)
    naive = (time.perf_counter() - started) / NAIVE_SAMPLE * args.recipients
    print(f"\n{args.recipients:,} recipients: ours (render once + personalize each) "
          f"{ours:.2f} s; naive per-recipient render {naive:.1f} s "
          f"(from {NAIVE_SAMPLE} renders); ratio naive/ours = {naive / ours:.0f}x")

    try:
        import logging

        import premailer  # the inliner before issue 32, as a reference (pip install premailer)
    except ImportError:
        print("premailer not installed: no inliner comparison")
        return
    issue = compose_issue(selection.period, selection.posts, config.newsletter.name)
    context = issue_context(issue, config.newsletter, RenderOptions(), "https://u.invalid/x")
    compiled = mjml_to_html(render_template(make_environment(config.templates_dir),
                                            HTML_TEMPLATE, context))
    runs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        premailer.Premailer(compiled, keep_style_tags=True, strip_important=False,
                            remove_classes=False, disable_validation=True,
                            allow_network=False,
                            cssutils_logging_level=logging.CRITICAL).transform()
        runs.append(time.perf_counter() - started)
    css_inline_ms = statistics.median(stage_runs["inline"]) * 1000
    premailer_ms = statistics.median(runs) * 1000
    print(f"inlining: css-inline (ours) {css_inline_ms:.1f} ms, premailer {premailer_ms:.1f} "
          f"ms (ratio {premailer_ms / css_inline_ms:.0f}x)")

if __name__ == "__main__":
    main()
