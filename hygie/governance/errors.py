# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Governance errors. Each says what was refused and why, in words a person can act on."""

from __future__ import annotations


class GovernanceError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.recorded = False
        """True once the refusal is on the record (so it is not recorded twice)."""


class Invalid(GovernanceError):
    """The request is malformed or breaks a policy rule (422)."""

    status = 422


class Unauthenticated(GovernanceError):
    """No valid session or token (401)."""

    status = 401


class Denied(GovernanceError):
    """The actor may not do this (403); always recorded."""

    status = 403


class NotFound(GovernanceError):
    status = 404


class Conflict(GovernanceError):
    """The object is not in a state that allows this (409)."""

    status = 409
