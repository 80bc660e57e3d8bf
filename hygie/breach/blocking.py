"""The blocking index: how a leaked row without a usable NIR finds its few candidates in a large vault.

For each vault person it stores keyed blocking keys, HMAC(breach-blocking key, birth date + a name initial)
for the initial of the family name and of the first name (so a row with first and last names swapped lands
in the same block), and HMAC(birth date + postcode). A row computes the same keys from its own values and
decrypts only the people in its blocks (a dozen or so in a national vault), never the whole vault. Without
the key in custody the index says nothing: the birth date and initials cannot be brute-forced from it.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hygie.breach.models import BreachBlockKey, BreachBlockState
from hygie.breach.normalise import fold, initial, postcode
from hygie.identity.vault import IdentityVault
from hygie.keys import KeyCustody, KeyPurpose

BLOCKING_KEY = "breach-blocking"
"""Keys the blocking index (HMAC-SHA-256, truncated to 128 bits)."""
KEY_BYTES = 16
_BATCH = 20_000


def block_messages(birth_date: str, names: list[str], post: str | None) -> list[bytes]:
    """The blocking messages of a person or row: one per name initial, one for the postcode."""
    out = {f"hygie/breach-block/v1|n|{birth_date}|{initial(n)}".encode() for n in names if initial(n)}
    if post:
        out.add(f"hygie/breach-block/v1|p|{birth_date}|{post}".encode())
    return sorted(out)


def block_keys(custody: KeyCustody, messages: list[bytes]) -> list[bytes]:
    return [m[:KEY_BYTES] for m in custody.mac(BLOCKING_KEY, messages)] if messages else []


def refresh(session: Session, custody: KeyCustody, vault: IdentityVault) -> int:
    """Add the blocking keys of vault records added since the last refresh; returns how many records were read.

    The caller commits. Re-delivered people get the keys of their new record as well (a superset is harmless:
    candidates are decrypted from their newest record anyway).
    """
    custody.ensure(BLOCKING_KEY, KeyPurpose.PSEUDONYM)
    state = session.scalars(select(BreachBlockState).with_for_update()).first()
    if state is None:
        state = BreachBlockState(id=1, last_identity_id=0)
        session.add(state)
        session.flush()
    read = 0
    while True:
        records = vault.records(state.last_identity_id, _BATCH)
        if not records:
            break
        messages: list[bytes] = []
        owners: list[bytes] = []
        for _, person_index, identity in records:
            names = [fold(identity.last_name), *fold(identity.first_name).split()[:1]]
            for m in block_messages(identity.birth_date, names, postcode(identity.postcode or "")):
                messages.append(m)
                owners.append(person_index)
        keys = block_keys(custody, messages)
        rows = [{"block": k, "person_index": p} for k, p in zip(keys, owners, strict=True)]
        session.connection().execute(insert(BreachBlockKey.__table__), rows)  # type: ignore[arg-type]
        state.last_identity_id = records[-1][0]
        read += len(records)
    session.flush()
    return read


def candidates(session: Session, keys: list[bytes]) -> dict[bytes, set[bytes]]:
    """For each blocking key, the blind indexes of the people in that block."""
    out: dict[bytes, set[bytes]] = defaultdict(set)
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for block, person_index in session.execute(
            select(BreachBlockKey.block, BreachBlockKey.person_index).where(BreachBlockKey.block.in_(chunk))
        ):
            out[block].add(person_index)
    return out
