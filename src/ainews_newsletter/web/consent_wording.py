"""Which consent wording a sign-up form showed: a short hash of the rendered form page's
visible text (what a reader reads: headings, paragraphs, labels, the button), computed once
per app at its first sign-up (signup_form.SignUpForm.wording). Tags, attributes (the
per-copy CSRF value, form time, nonce), styles and scripts are left out, so every copy of a
page has the same hash, and an operator who edits the wording of
templates/web/subscribe.html or embed.html gets a new one."""

from __future__ import annotations

from html.parser import HTMLParser

from ainews_newsletter.subscribers.consent_records import text_hash


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skipping = 0  # inside <style>, <script>, <title> or <head>
        self.body: list[str] = []
        self.main: list[str] = []
        self.in_main = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head", "title"):
            self.skipping += 1
        elif tag == "main":
            self.in_main += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self.skipping = max(0, self.skipping - 1)
        elif tag == "main":
            self.in_main = max(0, self.in_main - 1)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.body.append(data)
            if self.in_main:
                self.main.append(data)


def visible_text(html: str) -> str:
    """The page's visible words: its <main> when it has one (our page: the site's footer
    is not part of what the reader agrees to), else its whole body (/embed)."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.main or parser.body).split())


def wording_hash(html: bytes | memoryview) -> str:
    return text_hash(visible_text(bytes(html).decode("utf-8", "replace")))
