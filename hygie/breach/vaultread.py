"""Reading many vault records at once, for matching a leak: the newest record of each of a set of people,
and every record added since a given row (to build the blocking index incrementally).

It extends :class:`hygie.identity.vault.IdentityVault` rather than reimplementing its record format, so
sealing, AAD and decoding stay in one place.
"""

from __future__ import annotations

from sqlalchemy import func, select

from hygie.identity.vault import Identity, IdentityRow, IdentityVault, _decode

_CHUNK = 500  # bounded IN lists: both drivers cap bound parameters


class VaultReader(IdentityVault):
    def _open(self, row: IdentityRow) -> Identity:
        aad = self._aad(row.person_index, row.key_id)
        return _decode(self._key(row.key_id).decrypt(row.nonce, row.sealed, aad))

    def identities_of(self, person_indexes: list[bytes]) -> dict[bytes, Identity]:
        """The current identity of each given person (one decryption each); people not in the vault are absent."""
        out: dict[bytes, Identity] = {}
        wanted = list(dict.fromkeys(person_indexes))
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            newest = (
                select(func.max(IdentityRow.id))
                .where(IdentityRow.person_index.in_(chunk))
                .group_by(IdentityRow.person_index)
            )
            for row in self._session.scalars(select(IdentityRow).where(IdentityRow.id.in_(newest))):
                out[row.person_index] = self._open(row)
        return out

    def records_since(self, after_id: int, limit: int) -> list[tuple[int, bytes, Identity]]:
        rows = self._session.scalars(
            select(IdentityRow).where(IdentityRow.id > after_id).order_by(IdentityRow.id).limit(limit)
        ).all()
        return [(r.id, r.person_index, self._open(r)) for r in rows]
