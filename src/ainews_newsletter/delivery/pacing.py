"""How fast a send may go and when it must pause: one rate limit shared by every connection
(a relay's per-second rate and hourly quota) and the watch on refusals that stops a send
the server keeps turning down."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.models import DeliveryState, SendOutcome, counted

StopRequested = Callable[[], bool]
HOUR = 3600.0


class SendPaused(DeliveryError):
    """Too many refusals in a row: the send stops with the remaining rows still queued."""


class ErrorWatch:
    """The share of refused messages over the last `window` (deferred or failed)."""

    def __init__(self, threshold: float, window: int) -> None:
        self.threshold = threshold
        self.recent: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, outcome: SendOutcome) -> None:
        with self._lock:
            self.recent.append(outcome.state is not DeliveryState.SENT)
            refused = sum(self.recent)
        if len(self.recent) == self.recent.maxlen and refused >= self.threshold * len(
                self.recent):
            raise SendPaused(f"paused: {refused} of the last "
                             f"{counted(len(self.recent), 'message')} were "
                             f"refused (last reply: {outcome.code} {outcome.reply[:120]}); "
                             "check the mail server")


    def reset(self) -> None:
        """Forget what was counted: a relay taken out of use starts afresh when it comes
        back (its old refusals would trip it again at the first message)."""
        with self._lock:
            self.recent.clear()


class RateLimiter:
    """One limit shared by every connection: messages at least 1/rate_per_second apart, and
    at most max_per_hour in any hour (a relay's quota). Monotonic clock: immune to NTP jumps.
    `clock` and `sleep` are injectable so tests need not wait an hour."""

    def __init__(self, rate_per_second: float, max_per_hour: int = 0,
                 clock_: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self.max_per_hour = max_per_hour
        self._clock, self._sleep = clock_, sleep
        self._next = clock_()
        self._sent: deque[float] = deque()  # send times within the last hour
        self._lock = threading.Lock()

    @property
    def limits(self) -> bool:
        return bool(self.interval or self.max_per_hour)

    def _delay(self, reserve: bool = True) -> float:
        """Seconds to wait before the next message may go; 0 means it may go now, and then
        (with `reserve`) the slot is taken."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - HOUR:
            self._sent.popleft()
        if self.max_per_hour and len(self._sent) >= self.max_per_hour:
            return self._sent[0] + HOUR - now
        if self.interval and self._next > now:
            return self._next - now
        if reserve:
            self._next = max(now, self._next) + self.interval
            if self.max_per_hour:
                self._sent.append(now)
        return 0.0

    def try_acquire(self) -> bool:
        """Take a slot only if one is free now (never waits)."""
        if not self.limits:  # every slot is free (the worker-process sender asks per message)
            return True
        with self._lock:
            return self._delay() <= 0

    def take_within_quota(self) -> bool:
        """Take a slot, waiting out the per-second rate (short) but never the hourly quota:
        False, taking nothing, when the quota is used up. One check under the lock, so
        connections racing for the last slot cannot all pass and then wait an hour."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - HOUR:
                    self._sent.popleft()
                if self.max_per_hour and len(self._sent) >= self.max_per_hour:
                    return False
                delay = self._delay()
            if delay <= 0:
                return True
            self._sleep(min(delay, 1.0))

    def seconds_to_wait(self) -> float:
        """How long until a slot is free, taking nothing (0: free now)."""
        with self._lock:
            return max(0.0, self._delay(reserve=False))

    def wait(self, stop: StopRequested | None = None) -> bool:
        """Block until a message may go; False if `stop` was requested while waiting (an
        hourly quota can mean a long wait, and SIGTERM must not wait for it)."""
        while True:
            with self._lock:
                delay = self._delay()
            if delay <= 0:
                return True
            if stop is not None and stop():
                return False
            self._sleep(min(delay, 1.0))
