"""The fast path for everyday addresses agrees with email-validator, always."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ainews_newsletter.config import is_test_domain
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.subscribers.addresses import _plain_refusal, normalize, plain_form

LOCAL_CHARS = "abcXYZ019.!#$%&'*+/=?^_`{|}~-"
DOMAIN_CHARS = "abcXYZ019-."
shaped = st.builds(lambda local, domain: f"{local}@{domain}",
                   st.text(LOCAL_CHARS, min_size=0, max_size=70),
                   st.text(DOMAIN_CHARS, min_size=0, max_size=70))


@settings(max_examples=1000, deadline=None)
@given(address=st.one_of(shaped, st.emails(), st.text(max_size=40)), allow_test=st.booleans())
@example(address="a..b@example.com", allow_test=False)
@example(address=".a@example.com", allow_test=False)
@example(address="a@-example.com", allow_test=False)
@example(address="a@example.c0m", allow_test=False)
@example(address="a@example.123", allow_test=False)
@example(address="a@x.local", allow_test=False)
@example(address="a@mail.test", allow_test=False)
@example(address="a@test", allow_test=False)
@example(address="a@xn--bcher-kva.example", allow_test=False)
@example(address="a" * 65 + "@example.com", allow_test=False)
@example(address="a@" + "b" * 64 + ".com", allow_test=False)
@example(address="a@mail.test", allow_test=True)
@example(address="a@test", allow_test=True)
def test_fast_path_accepts_only_what_email_validator_accepts(address: str,
                                                             allow_test: bool) -> None:
    fast = plain_form(address, allow_test)
    if fast is None:
        return
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False,
                               test_environment=allow_test)
    except EmailNotValidError as exc:
        raise AssertionError(f"fast path accepted {address!r}; email-validator: {exc}") from exc
    assert fast == (address, (valid.ascii_email or valid.normalized).lower())


@settings(max_examples=1000, deadline=None)
@given(address=st.one_of(shaped, st.emails(), st.text(max_size=12),
                         st.text("a@.b ", max_size=8)), allow_test=st.booleans())
@example(address="a", allow_test=False)
@example(address="@", allow_test=False)
@example(address="a@", allow_test=False)
@example(address="@b.c", allow_test=False)
@example(address="a@b", allow_test=False)
@example(address="a@localhost", allow_test=False)
@example(address="a@test", allow_test=False)
@example(address="a@test", allow_test=True)
@example(address='"a@"', allow_test=False)
@example(address="a@b@c", allow_test=False)
@example(address="a@b²", allow_test=False)
@example(address="a\uff20b.com", allow_test=False)  # a full-width "@"
@example(address="a\ufe6bb.com", allow_test=False)  # a small "@"
@example(address="a@" + "b" * 64, allow_test=False)
@example(address="a@" + "b" * 300, allow_test=False)
def test_quick_refusals_are_email_validators_own(address: str, allow_test: bool) -> None:
    """What `_plain_refusal` refuses, email-validator refuses in the same words (as
    normalize() asks it: the test environment for .test domains only)."""
    # What normalize() settles before asking: blanks, line breaks, "Name <address>".
    assume(address and address == address.strip()
           and not any(sign in address for sign in "\r\n<>"))
    refused = _plain_refusal(address, allow_test)
    if refused is None:
        return
    testing = allow_test and is_test_domain(address.rpartition("@")[2])
    with pytest.raises(EmailNotValidError) as caught:
        validate_email(address, check_deliverability=False, allow_smtputf8=True,
                       test_environment=testing)
    assert str(caught.value) == refused


def test_a_file_of_junk_values_never_reaches_email_validator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import email_validator

    def spy(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("email-validator was asked")

    monkeypatch.setattr(email_validator, "validate_email", spy)
    from ainews_newsletter.subscribers import addresses

    addresses._validator.cache_clear()
    try:
        for junk, words in [("a", "must have an @-sign"), ("@", "something before"),
                            ("x@", "something after"), ("x@y", "should have a period")]:
            with pytest.raises(SubscriberError, match=words):
                normalize(junk)
    finally:
        addresses._validator.cache_clear()


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


@settings(max_examples=1000, deadline=None)
@given(address=st.one_of(shaped, st.emails(), st.text(max_size=40)), allow_test=st.booleans())
@example(address=" a@example.com", allow_test=False)
@example(address="a@example.com\n", allow_test=False)
@example(address="", allow_test=False)
def test_plain_form_answers_as_normalize_or_not_at_all(address: str, allow_test: bool) -> None:
    """formats._plain_rows asks `plain_form` first and `normalize` only when it has no
    answer: its answer must be normalize's, for a trimmed address (what a cell holds)."""
    fast = plain_form(address, allow_test)
    if fast is None:
        return
    assert address == address.strip()
    assert fast == normalize(address, allow_test=allow_test)
