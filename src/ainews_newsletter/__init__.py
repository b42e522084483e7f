"""ainews-newsletter: a weekly AI-news digest, selected by date, rendered once, sent over SMTP."""

__version__ = "0.1.0"
