# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Days as integers (days since 1970-01-01, numpy's datetime64[D] epoch) so that calendars vectorise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

MONDAY, SATURDAY, SUNDAY = 0, 5, 6

# Seasonal pull on acute care (GP contacts and what follows them): winter epidemics, the August holiday lull.
ACUTE_SEASON = np.array([1.38, 1.30, 1.12, 1.00, 0.92, 0.85, 0.74, 0.58, 0.92, 1.02, 1.10, 1.32])
# Relative activity of doctors' offices by weekday (Monday first): Saturday mornings, Sunday on-call only.
OFFICE_WEEK = np.array([1.12, 1.0, 1.0, 0.95, 1.0, 0.32, 0.02])


def day_number(d: date) -> int:
    return int(np.datetime64(d, "D").astype(np.int64))


def year_start(year: int) -> int:
    return day_number(date(year, 1, 1))


def weekday(days: IntArray) -> IntArray:
    """0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def month_index(days: IntArray) -> IntArray:
    """Months since 1970-01 of each day."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def month_of_year(days: IntArray) -> IntArray:
    """1..12."""
    return month_index(days) % 12 + 1


def year_of(days: IntArray) -> IntArray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def iso_strings(first: int, last: int) -> npt.NDArray[np.object_]:
    """ISO dates of every day from ``first`` to ``last`` inclusive, as an object array to index into."""
    days = np.arange(first, last + 1).astype("datetime64[D]")
    return np.array(days.astype(str).tolist(), dtype=object)


@dataclass(frozen=True)
class Period:
    """The care period: ``years`` calendar years from January 1st of ``start_year``.

    Flows (deliveries) are monthly over the same months; the last day of the last month is the extract's
    cut-off: nothing in the output is later, so claims still in the pipe at that date are simply absent, as in
    a real extract.
    """

    start_year: int
    years: int

    @property
    def start(self) -> int:
        return day_number(date(self.start_year, 1, 1))

    @property
    def end(self) -> int:
        """First day after the period (exclusive)."""
        return day_number(date(self.start_year + self.years, 1, 1))

    @property
    def cutoff(self) -> int:
        """Last day of the last flow month (inclusive)."""
        return self.end - 1

    @property
    def days(self) -> int:
        return self.end - self.start

    @property
    def first_month(self) -> int:
        """Months since 1970-01 of the first flow month."""
        return (self.start_year - 1970) * 12

    @property
    def months(self) -> int:
        return self.years * 12

    def month_label(self, month: int) -> str:
        """ "YYYY-MM" of a month counted since 1970-01."""
        return f"{1970 + month // 12:04d}-{month % 12 + 1:02d}"

    def office_day_weights(self) -> npt.NDArray[np.float64]:
        """Relative chance that an acute doctor contact falls on each day of the period."""
        days = np.arange(self.start, self.end, dtype=np.int64)
        weights: npt.NDArray[np.float64] = ACUTE_SEASON[month_of_year(days) - 1] * OFFICE_WEEK[weekday(days)]
        return weights
