"""What `ainews web snippet` prints for the operator to paste into their own site: a plain
HTML form posting to base_url/subscribe (it works without JavaScript), with the honeypot
field and an optional script that signs up without leaving the page; or the <iframe> of
our /embed page.

A pasted form is static: it cannot carry a fresh signed form time or a puzzle, so it relies
on the honeypot, [web] allowed_origins, the limits and double opt-in (bots.py)."""

from __future__ import annotations

from html import escape

from ainews_newsletter.config import Config
from ainews_newsletter.web.bots import HONEYPOT_FIELD

# The same CSS as our pages' honeypot: off-screen, so bots that skip hidden inputs fill it.
OFF_SCREEN = "position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden"

FORM = """\
<!-- Sign-up form for {name}, made by `ainews web snippet`: it posts to
     {action}, which takes it from the sites in [web] allowed_origins only. -->
<form id="ainews-signup" method="post" action="{action}">
  <label for="ainews-email">Email</label>
  <input id="ainews-email" name="email" type="email" required autocomplete="email">
  <label for="ainews-name">Name (optional)</label>
  <input id="ainews-name" name="name" type="text" maxlength="200" autocomplete="name">
  <!-- Left empty by people, who never see it; bots fill it in. Keep it as it is. -->
  <div aria-hidden="true" style="{off_screen}">
    <label for="ainews-{honeypot}">Leave this field empty</label>
    <input id="ainews-{honeypot}" name="{honeypot}" type="text" value="" tabindex="-1" \
autocomplete="off">
  </div>
  <button type="submit">Subscribe</button>
  <p role="status"></p>
</form>
<!-- Optional: sign up without leaving the page. Without this script (or without
     JavaScript) the form still works: the reader then lands on {landing}. -->
<script>
(function () {{
  var form = document.getElementById("ainews-signup");
  var status = form.querySelector("[role=status]");
  form.addEventListener("submit", function (event) {{
    event.preventDefault();
    var fields = {{}};
    new FormData(form).forEach(function (value, key) {{ fields[key] = value; }});
    fetch(form.action, {{method: "POST", headers: {{"Content-Type": "application/json"}},
                        body: JSON.stringify(fields)}})
      .then(function (response) {{
        return response.json().then(function (body) {{
          status.textContent = response.ok
            ? "Thank you! Check your inbox: the subscription starts when you follow " +
              "the link we sent."
            : body.error;
          if (response.ok) {{ form.reset(); }}
        }});
      }})
      .catch(function () {{ form.submit(); }});  // unreachable, or not allowed: post it
  }});
}})();
</script>
"""

IFRAME = """\
<!-- Sign-up form for {name}, made by `ainews web snippet --iframe`: the page
     {src}, which only the sites in [web] allowed_origins may frame. -->
<iframe src="{src}" title="Subscribe to {name}" width="100%" height="340" \
style="border:0;max-width:480px" loading="lazy"></iframe>
"""


def form_snippet(config: Config) -> str:
    base = config.newsletter.base_url
    after = config.web.after_subscribe_url
    landing = f"the page {after}" if after else f"our thank-you page at {base}"
    return FORM.format(name=escape(config.newsletter.name), action=escape(f"{base}/subscribe"),
                       honeypot=HONEYPOT_FIELD, off_screen=OFF_SCREEN,
                       landing=escape(landing))


def iframe_snippet(config: Config) -> str:
    return IFRAME.format(name=escape(config.newsletter.name),
                         src=escape(f"{config.newsletter.base_url}/embed"))
