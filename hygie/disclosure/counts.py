# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Counts shown outside the release path (a view's people and rows): rounded and thresholded like released counts.

A count of people or rows describes data as much as a released cell does: a project narrowed to seven people must not
read "7" on its view. ``shown_count`` rounds to the nearest multiple of the rounding base and withholds (``None``)
anything under the disclosure threshold, zero aside (an empty view says nothing about anyone)."""

from __future__ import annotations


def shown_count(n: int, threshold: int, base: int) -> int | None:
    """``n`` as it may be shown: 0 stays 0; a count under ``threshold``, or one that rounds under it, is ``None``;
    else the nearest multiple of ``base`` (halves up)."""
    if n < 0:
        raise ValueError("a count is never negative")
    if n == 0:
        return 0
    base = max(1, base)
    rounded = ((2 * n + base) // (2 * base)) * base
    if n < threshold or rounded < threshold:
        return None
    return rounded
