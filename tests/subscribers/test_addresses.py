"""The fast path for everyday addresses agrees with email-validator, always."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.subscribers.addresses import _fast, normalize

LOCAL_CHARS = "abcXYZ019.!#$%&'*+/=?^_`{|}~-"
DOMAIN_CHARS = "abcXYZ019-."
shaped = st.builds(lambda local, domain: f"{local}@{domain}",
                   st.text(LOCAL_CHARS, min_size=0, max_size=70),
                   st.text(DOMAIN_CHARS, min_size=0, max_size=70))


@settings(max_examples=1000, deadline=None)
@given(address=st.one_of(shaped, st.emails(), st.text(max_size=40)))
@example("a..b@example.com")
@example(".a@example.com")
@example("a@-example.com")
@example("a@example.c0m")
@example("a@example.123")
@example("a@x.local")
@example("a@xn--bcher-kva.example")
@example("a" * 65 + "@example.com")
@example("a@" + "b" * 64 + ".com")
def test_fast_path_accepts_only_what_email_validator_accepts(address: str) -> None:
    fast = _fast(address)
    if fast is None:
        return
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AssertionError(f"fast path accepted {address!r}; email-validator: {exc}") from exc
    assert fast == (address, (valid.ascii_email or valid.normalized).lower())


@pytest.mark.parametrize(("address", "message"), [
    ("", "empty email address"),
    ("a@example.com\r\nBcc: b@example.com", "line break"),
    ("Ada Lovelace <ada@example.com>", "looks like a name and an address"),
    ("jürgen@@example.com", "not a valid email address"),
    ("a@b.test", "special-use"),
])
def test_refused_addresses(address: str, message: str) -> None:
    with pytest.raises(SubscriberError, match=message):
        normalize(address)


def test_check_dns_uses_the_full_validator() -> None:
    # This machine has no outside network: every DNS lookup fails, so the domain is refused.
    with pytest.raises(SubscriberError, match="not a valid email address"):
        normalize("someone@example.com", check_dns=True)


def test_an_internationalized_local_part_is_accepted_and_stored_as_typed() -> None:
    """RFC 6531 addresses (2 of Substack's and 2 of Curated's real rows): accepted, stored
    in NFC at the ASCII domain, one row whatever the case (sent only with SMTPUTF8)."""
    assert normalize("Jürgen@Bücher.example") == ("Jürgen@xn--bcher-kva.example",
                                                  "jürgen@xn--bcher-kva.example")
    decomposed = "ju\u0308rgen@example.com"  # ü as u + combining diaeresis
    assert normalize(decomposed)[1] == normalize("jürgen@example.com")[1]
