"""The config's everyday addresses, judged without email-validator, get exactly what
email-validator gives the config's check; anything else is left to it."""

from __future__ import annotations

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ainews_newsletter.config.address_shape import SPECIAL_USE_BUT_TEST, everyday_address
from ainews_newsletter.config.base import check_address

LOCAL_CHARS = "abcXYZ019.!#$%&'*+/=?^_`{|}~-"
DOMAIN_CHARS = "abcXYZ019-."
shaped = st.builds(lambda local, domain: f"{local}@{domain}",
                   st.text(LOCAL_CHARS, min_size=0, max_size=70),
                   st.text(DOMAIN_CHARS, min_size=0, max_size=70))
special = st.builds(lambda local, name: f"{local}@{name}",
                    st.sampled_from(["a", "Digest"]),
                    st.sampled_from([*SPECIAL_USE_BUT_TEST, "test", "mail.test", "x.LOCAL",
                                     "onion.example", "example.arpa"]))


def _validated(address: str) -> str:
    valid = validate_email(address, check_deliverability=False, allow_smtputf8=False,
                           test_environment=True)
    return valid.ascii_email or valid.normalized


@settings(max_examples=1000, deadline=None)
@given(address=st.one_of(shaped, special, st.emails(), st.text(max_size=40)))
@example(address="a..b@example.com")
@example(address=".a@example.com")
@example(address="a@-example.com")
@example(address="a@example.c0m")
@example(address="a@example.123")
@example(address="a@x.local")
@example(address="a@mail.test")
@example(address="a@test")
@example(address="a@xn--bcher-kva.example")
@example(address="a@ab--cd.example")
@example(address="a" * 65 + "@example.com")
@example(address="a@" + "b" * 64 + ".com")
@example(address="Digest@News.Example.ORG")
def test_the_everyday_shape_gets_email_validators_result(address: str) -> None:
    fast = everyday_address(address)
    if fast is None:
        return
    try:
        expected = _validated(address)
    except EmailNotValidError as exc:
        raise AssertionError(f"accepted {address!r}; email-validator: {exc}") from exc
    assert fast == expected


def test_the_special_use_names_are_email_validators() -> None:
    """The copy, less the "test" its test environment allows, is email-validator's list:
    a new name there must be added here."""
    assert {*SPECIAL_USE_BUT_TEST, "test"} == set(email_validator.SPECIAL_USE_DOMAIN_NAMES)


@pytest.mark.parametrize(("address", "expected"), [
    ("Digest@News.Example.ORG", "Digest@news.example.org"),
    ("digest@bücher.example", "digest@xn--bcher-kva.example"),  # email-validator's answer
    ("a@mail.test", "a@mail.test"),  # the loader refuses .test unless allowed
])
def test_the_check_gives_the_normal_form(address: str, expected: str) -> None:
    assert check_address(address) == expected


@pytest.mark.parametrize("address", ["nobody", "a@localhost", "a@x.onion", "jürgen@example.com",
                                     "a@example"])
def test_the_check_refuses_what_email_validator_refuses(address: str) -> None:
    with pytest.raises(ValueError, match="is not a valid email address"):
        check_address(address)
