"""Sign-up forms on the operator's own site (docs/signup-forms.md): the form `ainews web
snippet` prints, pasted into a page of another local site, posting to a real `ainews serve`
in real Chromium, with JavaScript (fetch and JSON) and without (a plain form and a 303);
the /embed page in an <iframe>; a site not in [web] allowed_origins refused; the CORS
preflight and the JSON answers through the ASGI app."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser
from starlette.testclient import TestClient

from ainews_newsletter.cli.app import cli
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.web.public import create_public_app
from tests.conftest import REPO, Project, SmtpServer, smtp_env
from tests.render.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.web.signup_pages import (
    SECRET,
    another_site,
    page_around,
    post,
    serving,
    wait_for_mail,
)

BLOG = "https://blog.example"  # an allowed site, for the tests through the ASGI app
OURS = "https://news.example.org"  # the test project's base_url


def _snippet(project: Project, *args: str, **env: str) -> tuple[str, str]:
    result = project.run("web", "snippet", *args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


# -- in Chromium, against `ainews serve` ------------------------------------------------------

def test_another_sites_form_with_and_without_javascript(
        project: Project, smtp_server: SmtpServer, browser: Browser,  # noqa: F811
        tmp_path: Path) -> None:
    site_files = tmp_path / "blog"
    site_files.mkdir()
    (site_files / "thanks.html").write_text(page_around("<p>Thanks from the blog</p>",
                                                        "Thanks"), encoding="utf-8")
    with another_site(site_files) as blog:
        project.write_config(f'[web]\nallowed_origins = ["{blog}"]\n'
                             f'after_subscribe_url = "{blog}/thanks.html"\n')
        with serving(project, smtp_server) as served:
            snippet, warnings = _snippet(project, AINEWS_NEWSLETTER__BASE_URL=served.base)
            assert warnings == ""  # the list names the blog
            (site_files / "post.html").write_text(page_around(snippet), encoding="utf-8")

            # With JavaScript: the script posts JSON and the reader stays on the blog.
            with_js = browser.new_context()
            page = with_js.new_page()
            page.goto(f"{blog}/post.html")
            page.fill("#ainews-email", "script@example.com")
            page.fill("#ainews-name", "Sam Script")
            page.click("button[type=submit]")
            page.wait_for_selector("text=Thank you! Check your inbox")
            assert page.url == f"{blog}/post.html"
            with_js.close()
            wait_for_mail(smtp_server, "script@example.com")

            # Without JavaScript: a plain form post, 303 to after_subscribe_url.
            without_js = browser.new_context(java_script_enabled=False)
            page = without_js.new_page()
            page.goto(f"{blog}/post.html")
            page.fill("#ainews-email", "plain@example.com")
            page.click("button[type=submit]")
            page.wait_for_url(f"{blog}/thanks.html")
            assert "Thanks from the blog" in page.content()
            without_js.close()
            wait_for_mail(smtp_server, "plain@example.com")
    # Pending until confirmed: for a post from another site, double opt-in always.
    assert project.query("SELECT email, status, name FROM subscribers ORDER BY email") == [
        ("plain@example.com", "pending", None), ("script@example.com", "pending", "Sam Script")]
    assert "Traceback" not in served.log


def test_a_site_not_in_the_list_is_refused(
        project: Project, smtp_server: SmtpServer, browser: Browser,  # noqa: F811
        tmp_path: Path) -> None:
    allowed_files, other_files = tmp_path / "allowed", tmp_path / "other"
    allowed_files.mkdir()
    other_files.mkdir()
    with another_site(allowed_files) as allowed, \
            another_site(other_files, host="127.0.0.1") as other:
        project.write_config(f'[web]\nallowed_origins = ["{allowed}"]\n')
        with serving(project, smtp_server) as served:
            snippet, _ = _snippet(project, AINEWS_NEWSLETTER__BASE_URL=served.base)
            for folder in (allowed_files, other_files):
                (folder / "post.html").write_text(page_around(snippet), encoding="utf-8")
            for javascript in (False, True):
                context = browser.new_context(java_script_enabled=javascript)
                page = context.new_page()
                page.goto(f"{other}/post.html")
                page.fill("#ainews-email", f"refused-{javascript}@example.com")
                page.click("button[type=submit]")
                # With JavaScript the preflight is refused, the script falls back to
                # posting the form, and that is refused too.
                page.wait_for_selector("text=This form may not sign anyone up")
                context.close()
            # Origin missing, Referer naming another site or nothing at all: refused too.
            form = b"email=stranger%40example.com"
            plain = {"Content-Type": "application/x-www-form-urlencoded"}
            for headers in ({"Referer": "https://elsewhere.example/page"}, {},
                            {"Origin": "null"}, {"Origin": "https://elsewhere.example"}):
                status, _, _ = post(f"{served.base}/subscribe", form, {**plain, **headers})
                assert status == 403, headers
            # A browser that sends Referer only, from the allowed site: accepted.
            status, answered, _ = post(f"{served.base}/subscribe", b"email=ok%40example.com",
                                       {**plain, "Referer": f"{allowed}/post.html"})
            assert status == 200 and answered["access-control-allow-origin"] == allowed
            wait_for_mail(smtp_server, "ok@example.com")  # the mails of the refused would
            # have gone before this one, which was posted after them
    assert smtp_server.recipients() == ["ok@example.com"]
    assert project.query("SELECT email FROM subscribers") == [("ok@example.com",)]
    assert served.log.count("not in [web] allowed_origins") == 6


def test_the_iframe_embed_on_an_allowed_site_only(
        project: Project, smtp_server: SmtpServer, browser: Browser,  # noqa: F811
        tmp_path: Path) -> None:
    allowed_files, other_files = tmp_path / "allowed", tmp_path / "other"
    allowed_files.mkdir()
    other_files.mkdir()
    with another_site(allowed_files) as allowed, \
            another_site(other_files, host="127.0.0.1") as other:
        project.write_config(f'[web]\nallowed_origins = ["{allowed}"]\n')
        with serving(project, smtp_server) as served:
            iframe, _ = _snippet(project, "--iframe", AINEWS_NEWSLETTER__BASE_URL=served.base)
            assert f'src="{served.base}/embed"' in iframe
            for folder in (allowed_files, other_files):
                (folder / "post.html").write_text(page_around(iframe), encoding="utf-8")
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{allowed}/post.html")
            frame = page.frame_locator("iframe")
            frame.locator("#email").fill("framed@example.com")
            frame.locator("button[type=submit]").click()
            frame.locator("text=Check your inbox").wait_for()
            wait_for_mail(smtp_server, "framed@example.com")
            # Another site's frame stays empty: the browser refuses to show /embed there.
            page.goto(f"{other}/post.html")
            page.wait_for_load_state("load")
            [child] = page.main_frame.child_frames
            assert child.locator("#email").count() == 0
            context.close()
    assert project.query("SELECT email, status FROM subscribers") == [
        ("framed@example.com", "pending")]


# -- the snippet ----------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, dict[str, str]]] = []
        self.found: list[tuple[str, dict[str, str], list[dict[str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.found.append((tag, attributes, [a for _, a in self.open]))
        if tag not in ("input", "meta", "br"):
            self.open.append((tag, attributes))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def test_the_snippet_is_html_with_the_honeypot_hidden_by_css(project: Project) -> None:
    project.write_config('[web]\nallowed_origins = ["https://blog.example"]\n')
    snippet, warnings = _snippet(project)
    assert warnings == ""
    parser = _Tags()
    parser.feed(snippet)
    parser.close()
    assert parser.open == []  # every element closed
    [form] = [attrs for tag, attrs, _ in parser.found if tag == "form"]
    assert form["method"] == "post" and form["action"] == f"{OURS}/subscribe"
    inputs = {attrs["name"]: (attrs, parents) for tag, attrs, parents in parser.found
              if tag == "input"}
    assert set(inputs) == {"email", "name", "website"}
    honeypot, parents = inputs["website"]
    assert honeypot["type"] == "text" and honeypot["tabindex"] == "-1"
    style = parents[-1].get("style", "")
    assert "position:absolute" in style and "left:-10000px" in style
    assert parents[-1]["aria-hidden"] == "true"
    assert all(attrs.get("type") != "hidden" for attrs, _ in inputs.values())
    assert "fetch(form.action" in snippet and "application/json" in snippet


def test_the_snippet_warns_without_allowed_origins_and_knows_the_puzzle(
        project: Project) -> None:
    snippet, warnings = _snippet(project)
    assert "<form" in snippet
    assert warnings.count("\n") == 1 and "allowed_origins is empty" in warnings
    iframe, warnings = _snippet(project, "--iframe")
    assert iframe.startswith("<!--") and f'<iframe src="{OURS}/embed"' in iframe
    assert "allowed_origins is empty" in warnings
    refused = project.run("web", "snippet", env={"AINEWS_WEB__PROOF_OF_WORK": "true"})
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "--iframe" in refused.stderr
    assert "Traceback" not in refused.output


def test_the_documentation_shows_what_the_snippet_prints() -> None:
    """docs/signup-forms.md shows the output for the shipped config.toml: it must not rot."""
    page = (REPO / "docs" / "signup-forms.md").read_text(encoding="utf-8")
    shown = re.findall(r"```html\n(.*?)```", page, flags=re.DOTALL)
    env = {"AINEWS_WEB__ALLOWED_ORIGINS": '["https://blog.ainews.example"]'}
    printed = [CliRunner().invoke(cli, ["--config", str(REPO / "config.toml"), "web",
                                        "snippet", *args], env=env).stdout
               for args in ((), ("--iframe",))]
    assert shown == printed


# -- through the ASGI app: CORS, JSON, headers -----------------------------------------------

def _config(project: Project, server: SmtpServer, **web: object) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ,
                       overrides={"web": {"allowed_origins": [BLOG], **web}})


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url=OURS, follow_redirects=False)


@pytest.mark.clock
def test_the_preflight_answers_the_allowed_sites_only(project: Project,
                                                      smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}
    yes = client.options("/subscribe", headers={"Origin": BLOG, **asked})
    assert yes.status_code == 204
    assert yes.headers["access-control-allow-origin"] == BLOG
    assert yes.headers["access-control-allow-methods"] == "POST"
    assert yes.headers["access-control-allow-headers"].lower() == "content-type"
    assert yes.headers["vary"] == "Origin"
    for origin in ("https://evil.example", "null", "https://blog.example.evil.example"):
        no = client.options("/subscribe", headers={"Origin": origin, **asked})
        assert no.status_code == 403 and "access-control-allow-origin" not in no.headers
    assert client.options("/subscribe", headers={
        "Origin": BLOG, "Access-Control-Request-Method": "DELETE"}).status_code == 403


@pytest.mark.clock
def test_json_answers_the_same_for_every_address_and_errors_in_json(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server, signups_per_ip_per_hour=4)
    any_project.import_readers(1)  # reader000@example.com, already on the list
    client = _client(config)
    cross = {"Origin": BLOG}

    def sign_up(body: object, **headers: str) -> tuple[int, dict[str, str], Any]:
        answer = client.post("/subscribe", content=json.dumps(body),
                             headers={"Content-Type": "application/json", **cross, **headers})
        return answer.status_code, dict(answer.headers), answer.json()

    new = sign_up({"email": "new@example.com", "name": "New", "website": ""})
    known = sign_up({"email": "reader000@example.com"})
    assert new[0] == known[0] == 200 and new[2] == known[2] == {"status": "pending"}
    assert new[1]["access-control-allow-origin"] == BLOG and new[1]["vary"] == "Origin"
    assert new[1]["content-type"] == "application/json"
    assert sign_up({"email": "not an address"})[:3:2] == (
        400, {"error": "That does not look like an email address."})
    broken = client.post("/subscribe", content=b"{not json",
                         headers={"Content-Type": "application/json", **cross})
    assert broken.status_code == 400 and "error" in broken.json()
    assert broken.headers["access-control-allow-origin"] == BLOG
    assert sign_up(["a list"])[0] == 400
    deep = client.post("/subscribe", content=b"[" * 50_000,  # json.loads: RecursionError
                       headers={"Content-Type": "application/json", **cross})
    assert deep.status_code == 400 and "error" in deep.json()
    refused = sign_up({"email": "x@example.com"}, Origin="https://evil.example")
    assert refused[0] == 403 and "error" in refused[2]
    assert "access-control-allow-origin" not in refused[1]
    # The fourth sign-up this network may make (the refused and the unreadable do not
    # count: they were not sign-ups), and a fifth.
    limited = sign_up({"email": "late@example.com"})
    assert limited[0] == 200
    throttled = sign_up({"email": "later@example.com"})
    assert throttled[0] == 429 and "Too many" in throttled[2]["error"]
    assert throttled[1]["access-control-allow-origin"] == BLOG  # the script can read it
    assert sorted(smtp_server.recipients()) == ["late@example.com", "new@example.com"]
    assert sorted(any_project.query("SELECT email, status FROM subscribers")) == [
        ("late@example.com", "pending"), ("new@example.com", "pending"),
        ("reader000@example.com", "active")]


@pytest.mark.clock
def test_a_plain_form_from_an_allowed_site_lands_on_our_thank_you_page_or_theirs(
        project: Project, smtp_server: SmtpServer) -> None:
    ours = _client(_config(project, smtp_server)).post(
        "/subscribe", data={"email": "a@example.com"}, headers={"Origin": BLOG})
    assert ours.status_code == 200 and "Check your inbox" in ours.text
    theirs = _client(_config(project, smtp_server,
                             after_subscribe_url=f"{BLOG}/thanks")).post(
        "/subscribe", data={"email": "b@example.com"}, headers={"Origin": BLOG})
    assert theirs.status_code == 303 and theirs.headers["location"] == f"{BLOG}/thanks"
    mistyped = _client(_config(project, smtp_server)).post(
        "/subscribe", data={"email": "b@"}, headers={"Origin": BLOG})
    assert mistyped.status_code == 400 and 'value="b@"' in mistyped.text  # our form again
    assert sorted(smtp_server.recipients()) == ["a@example.com", "b@example.com"]


@pytest.mark.clock
def test_embed_may_be_framed_by_the_allowed_sites_and_our_page_by_nobody(
        project: Project, smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    embed = client.get("/embed")
    assert embed.status_code == 200 and 'name="form_time"' in embed.text
    policy = embed.headers["content-security-policy"]
    assert f"frame-ancestors {BLOG};" in policy and "form-action 'self'" in policy
    assert "script-src" not in policy  # no script without proof_of_work
    assert "x-frame-options" not in embed.headers
    assert embed.headers["referrer-policy"] == "same-origin"
    assert embed.headers["cache-control"] == "no-store"
    assert "set-cookie" not in embed.headers
    home = client.get("/")
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert home.headers["x-frame-options"] == "DENY"
    # No site listed: nobody may frame /embed either.
    alone = TestClient(create_public_app(load_config(
        project.config_path, environ={**smtp_env(smtp_server), "AINEWS_SECRET_KEY": SECRET})),
        base_url=OURS).get("/embed")
    assert "frame-ancestors 'none'" in alone.headers["content-security-policy"]


@pytest.mark.parametrize("origin, says", [
    ("https://blog.example/path", "no path"), ("blog.example", "not an origin"),
    ("ftp://blog.example", "not an origin"), ("https://user@blog.example", "not an origin"),
    ("https://blog.example:99999", "not an origin"), ("*", "not an origin")])
def test_allowed_origins_must_be_origins(project: Project, origin: str, says: str) -> None:
    project.write_config(f'[web]\nallowed_origins = ["{origin}"]\n')
    result = project.run("web", "snippet")
    assert result.exit_code == 1 and "web.allowed_origins" in result.stderr
    assert says in result.stderr and "Traceback" not in result.output


def test_allowed_origins_are_written_as_browsers_send_them(project: Project) -> None:
    project.write_config('[web]\nallowed_origins = ["HTTPS://Blog.Example:443/", '
                         '"http://[::1]:8080", "https://blog.example"]\n')
    config = load_config(project.config_path, environ={})
    assert config.web.allowed_origins == ["https://blog.example", "http://[::1]:8080"]


def test_a_bad_after_subscribe_url_is_refused(project: Project) -> None:
    project.write_config('[web]\nafter_subscribe_url = "/thanks"\n')
    with pytest.raises(ConfigError, match="after_subscribe_url"):
        load_config(project.config_path, environ={})
