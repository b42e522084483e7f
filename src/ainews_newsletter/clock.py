"""The one place that asks the system for the time. Tests replace it with `use_clock`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


_current: Clock = _system_clock


def now() -> datetime:
    """The current time, aware, in UTC."""
    value = _current()
    if value.tzinfo is None:
        raise ValueError("clock returned a naive datetime; clocks must return aware UTC times")
    return value.astimezone(UTC)


@contextmanager
def use_clock(clock: Clock) -> Iterator[None]:
    """Temporarily replace the clock (tests, and replaying a past schedule)."""
    global _current
    previous = _current
    _current = clock
    try:
        yield
    finally:
        _current = previous


def frozen(at: datetime) -> Clock:
    """A clock that always returns `at`."""
    return lambda: at
