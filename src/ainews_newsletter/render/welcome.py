"""The welcome mail ([subscribers] welcome), rendered once like the digest: Jinja2 → MJML →
inlined HTML, and a plain-text part, with the reader's name, address and unsubscribe URL as
placeholders that `RenderedWelcome.personalize` fills per reader. A template may say "Hello
Ada," or just "Hello,": the mail is rendered once for readers with a name and once for
those without, in each reader language present (the environment's), never once per reader.

The templates are the operator's to edit, found like the digest's (environment.py):
welcome.mjml.j2, welcome.txt.j2 and welcome_subject.txt.j2."""

from __future__ import annotations

import secrets

import jinja2

from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.errors import RenderError
from ainews_newsletter.models import RenderedIssue, RenderedWelcome
from ainews_newsletter.render.digest import archive_url
from ainews_newsletter.render.environment import (
    compile_template,
    render_template,
    text_from_html,
)
from ainews_newsletter.render.localized import period_label
from ainews_newsletter.render.mjml import inline_css, mjml_to_html
from ainews_newsletter.render.plain import text_of_mail
from ainews_newsletter.render.text import tidy
from ainews_newsletter.translations import SOURCE

HTML_TEMPLATE = "welcome.mjml.j2"
TEXT_TEMPLATE = "welcome.txt.j2"
SUBJECT_TEMPLATE = "welcome_subject.txt.j2"
TEMPLATES = (HTML_TEMPLATE, TEXT_TEMPLATE, SUBJECT_TEMPLATE)


def compile_welcome(environment: jinja2.Environment) -> None:
    """Load the three templates now: a broken override stops `serve` (or the import) at
    start with its file and line, not at a reader's first welcome."""
    for name in TEMPLATES:
        compile_template(environment, name)


def _latest_context(newsletter: NewsletterConfig, latest: RenderedIssue | None,
                    language: str) -> dict[str, str] | None:
    if latest is None:
        return None
    return {"subject": latest.subject, "preheader": latest.preheader,
            "date_label": period_label(latest.period, language),
            "archive_url": archive_url(newsletter.base_url, latest.period)}


def render_welcome(environment: jinja2.Environment, newsletter: NewsletterConfig,
                   tagline: str, named: bool,
                   latest: RenderedIssue | None = None) -> RenderedWelcome:
    """The welcome for readers with a name (`named`: reader.name is a placeholder) or
    without one (reader.name is ""). `latest`: the latest sent issue, named in the mail
    ([subscribers] welcome_with_latest_issue), or None. The language is the
    environment's (make_environment)."""
    token = secrets.token_hex(12)
    unsubscribe = f"https://unsubscribe.invalid/{token}"
    # Letters, digits and dashes: unchanged by HTML escaping, MJML and the CSS inliner.
    name = f"ainews-reader-name-{token}"
    address = f"ainews-reader-email-{token}"
    context = {
        "newsletter": {"name": newsletter.name, "base_url": newsletter.base_url,
                       "postal_address": newsletter.postal_address},
        "tagline": tagline,
        "reader": {"name": name if named else "", "email": address},
        "archive_url": f"{newsletter.base_url}/issues/",
        "latest_issue": _latest_context(newsletter, latest,
                                        str(environment.globals.get("language", SOURCE))),
        "unsubscribe_url": unsubscribe,
    }
    html = inline_css(mjml_to_html(render_template(environment, HTML_TEMPLATE, context)))
    if text_from_html(environment, HTML_TEMPLATE, TEXT_TEMPLATE):
        text = text_of_mail(html)
    else:
        text = tidy(render_template(environment, TEXT_TEMPLATE, context))
    subject = render_template(environment, SUBJECT_TEMPLATE, context)
    if unsubscribe not in html or unsubscribe not in text:
        raise RenderError("the welcome templates must contain the unsubscribe link "
                          "({{ unsubscribe_url }}) in both the HTML and the text part")
    return RenderedWelcome(subject=subject, html=html, text=text,
                           unsubscribe_placeholder=unsubscribe, name_placeholder=name,
                           email_placeholder=address)
