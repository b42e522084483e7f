"""What every section model shares: the model base (unknown keys refused, frozen) and the
checks more than one section uses."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ainews_newsletter.config.address_shape import everyday_address


class Section(BaseModel):
    """One `[section]` of config.toml. Every field carries a `description`: the configuration
    reference in the documentation is generated from it (config/reference.py)."""

    # defer_build: a section's validator is built as part of Config's when the config is
    # loaded, not once more on its own at import, which start-up would pay for nothing.
    # A list's default is written `default=[]` (pydantic copies it for each instance), not
    # `default_factory=list`: pydantic reads a factory's signature, and a builtin's is
    # parsed with tokenize, whose first use compiles a regex every command would pay for.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True,
                              defer_build=True)


def check_address(value: str) -> str:
    """Syntax only; a .test address passes here and is refused by the loader unless
    [subscribers] allow_test_domains (one section cannot see another)."""
    everyday = everyday_address(value)
    if everyday is not None:
        return everyday
    # Imported here: email-validator is slow to import, and most configs never need it.
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(value, check_deliverability=False, allow_smtputf8=False,
                               test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return valid.ascii_email or valid.normalized


def is_test_domain(domain: str) -> bool:
    """Under `.test`, the name RFC 2606/6761 reserve for testing: staging only."""
    domain = domain.lower().rstrip(".")
    return domain == "test" or domain.endswith(".test")
