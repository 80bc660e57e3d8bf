# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Delivery errors: file, line, field and reason, never the offending value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class DeliveryError:
    file: str
    line: int | None
    """1-based line in the file (the header is line 1); None for an error about the whole file."""
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file + (f", line {self.line}" if self.line is not None else "")
        where += f", field {self.field}" if self.field else ""
        return f"{where}: {self.reason}"


@dataclass
class ErrorLog:
    """Collects errors up to a cap; beyond it only counts them, so a huge bad file stays cheap to report."""

    cap: int
    errors: list[DeliveryError] = field(default_factory=list)
    dropped: int = 0

    def add(self, file: str, line: int | None, field_name: str | None, reason: str) -> None:
        if len(self.errors) < self.cap:
            self.errors.append(DeliveryError(file, line, field_name, reason))
        else:
            self.dropped += 1

    def add_lines(self, file: str, lines: list[int], total: int, field_name: str | None, reason: str) -> None:
        """Record an error found on ``total`` rows, of which ``lines`` are the first few."""
        for line in lines:
            self.add(file, line, field_name, reason)
        self.dropped += max(0, total - len(lines))

    @property
    def room(self) -> int:
        return max(0, self.cap - len(self.errors))

    @property
    def total(self) -> int:
        return len(self.errors) + self.dropped

    def mark(self) -> tuple[int, int]:
        return len(self.errors), self.dropped

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget the errors recorded since ``mark`` (a file about to be re-checked more precisely)."""
        del self.errors[mark[0] :]
        self.dropped = mark[1]

    def __bool__(self) -> bool:
        return self.total > 0
