# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The NIR (French social security number): structure and control key.

15 characters: sex(1) year(2) month(2) département(2) commune(3) order(3) key(2), where
key = 97 - (first 13 digits mod 97) and Corsica's 2A/2B count as 19/18. python-stdnum does the checking;
this module adds what stdnum does not offer (computing a key, splitting the fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stdnum.exceptions import ValidationError
from stdnum.fr import nir as stdnum_nir

NIR_LENGTH = 15


class InvalidNIR(ValueError):
    """A NIR that fails validation. The message never contains the NIR itself."""


def _numeric(first13: str) -> int:
    return int(first13.upper().replace("2A", "19").replace("2B", "18"))


def nir_key(first13: str) -> str:
    """The two-digit control key of the first 13 characters of a NIR."""
    if len(first13) != 13:
        raise InvalidNIR("a NIR without its key has 13 characters")
    try:
        value = _numeric(first13)
    except ValueError:
        raise InvalidNIR("a NIR holds digits only, apart from 2A/2B for Corsica") from None
    return f"{97 - value % 97:02d}"


def validate_nir(nir: str) -> str:
    """Return the NIR in canonical form (no spaces, upper case) or raise :class:`InvalidNIR`.

    The reason names the part that is wrong and never echoes the value.
    """
    compact = stdnum_nir.compact(nir)
    if len(compact) != NIR_LENGTH:
        raise InvalidNIR(f"a NIR has {NIR_LENGTH} characters (found {len(compact)})")
    try:
        return str(stdnum_nir.validate(compact))
    except ValidationError as exc:
        kind = type(exc).__name__
        reason = {
            "InvalidChecksum": "the control key does not match the first 13 digits",
            "InvalidFormat": "the NIR holds characters other than digits (and 2A/2B for Corsica)",
            "InvalidLength": f"a NIR has {NIR_LENGTH} characters",
            "InvalidComponent": "a part of the NIR (sex, month or département) is impossible",
        }.get(kind, "the NIR is not valid")
        raise InvalidNIR(reason) from None


def is_valid_nir(nir: str) -> bool:
    try:
        validate_nir(nir)
    except InvalidNIR:
        return False
    return True


@dataclass(frozen=True)
class NIRParts:
    sex: str
    year: str
    month: str
    department: str
    commune: str
    order: str
    key: str


def split_nir(nir: str) -> NIRParts:
    nir = validate_nir(nir)
    return NIRParts(nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:15])


_NIR_FORM = r"^[0-9]{5}([0-9]{2}|2A|2B)[0-9]{8}$"


def valid_nirs(nirs: Any) -> Any:
    """Vectorised NIR check over an Arrow string array: true where the NIR is valid, null where missing.

    The same rules as ``stdnum.fr.nir.validate`` (form, Corsica, control key), in a few Arrow kernels, so a
    delivery of millions of rows is checked without a Python call per NIR; tests hold the two in agreement.
    Unlike stdnum it does not strip spaces or fold case: a delivered NIR is exactly 15 characters.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    form = pc.match_substring_regex(nirs, _NIR_FORM)
    safe = pc.if_else(form, nirs, pa.scalar("000000000000000"))
    digits = pc.replace_substring(pc.replace_substring(pc.utf8_slice_codeunits(safe, 0, 13), "2A", "19"), "2B", "18")
    body = pc.cast(digits, pa.int64())
    key = pc.cast(pc.utf8_slice_codeunits(safe, 13, 15), pa.int64())
    expected = pc.subtract(97, pc.subtract(body, pc.multiply(pc.divide(body, 97), 97)))
    return pc.and_(form, pc.equal(key, expected))
