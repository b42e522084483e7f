"""The error hierarchy. Every user mistake is an AinewsError whose message a user can act on;
the CLI prints it on one line and exits 1. Anything else is a bug and keeps its traceback."""


class AinewsError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, unreachable server)."""


class ConfigError(AinewsError):
    """The configuration file or environment has an unknown key or a bad value."""


class PostError(AinewsError):
    """A post file cannot be read: names the file and the field."""


class SelectionError(AinewsError):
    """A date window cannot be parsed or holds nothing to send."""


class RenderError(AinewsError):
    """A template is missing or fails to render."""


class SubscriberError(AinewsError):
    """A subscriber address or subscriber file is invalid, or a subscriber is unknown."""


class DeliveryError(AinewsError):
    """The transport cannot be reached or refuses the whole send."""


class FeedbackError(AinewsError):
    """A returned mail cannot be read (not mail, too big) or the bounce mailbox cannot be
    reached (connection, certificate, login, folder): names the file or the server."""
