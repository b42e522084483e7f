"""The verdict of one check, as `ainews doctor` prints it and --json returns it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str  # spf, dkim, dmarc, bounce-mx, smtp, message
    status: Status
    detail: str  # what was found, one or two sentences
    fix: str = ""  # for anything not passing: exactly what to do (a record to paste)

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "fix": self.fix}
