# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Spark reads what pyarrow wrote and pyarrow reads what Spark wrote: the same encrypted Parquet, keys in custody.

Attacks: a job without a grant, with a closed grant's token, with a grant not naming the key, a custody that refuses
to unwrap, a glob or a directory instead of catalogued files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from hygie.audit.events import AuditEvent
from hygie.hub import Hub
from hygie.keys import WAREHOUSE_KEY, UnwrapFailed
from tests.warehouse.conftest import files_of

pytestmark = pytest.mark.spark

RANDOM_FIELDS = {"wrappedDEK", "keyEncryptionKeyID", "wrappedKEK"}


def key_material(path: Path) -> dict[str, Any]:
    """The footer's key material (JSON, stored in clear in the file crypto metadata)."""
    found = re.findall(rb'\{"[^{}]*"masterKeyID"[^{}]*\}', path.read_bytes())
    assert len(found) == 1
    return dict(json.loads(found[0]))


def spark_events(hub: Hub) -> list[AuditEvent]:
    with hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "custody.spark")))


def test_both_directions_same_rows_same_format(spark, spark_hub: Hub, tmp_path: Path) -> None:
    from hygie.warehouse.spark import custody_grant, read_parquet, write_parquet

    files = files_of(spark_hub, "ER_PRS_F")
    with spark_hub.session() as session:
        expected = spark_hub.warehouse.dataset(session, "ER_PRS_F").to_table()
    before = len(spark_events(spark_hub))
    with custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as grant:
        df = read_parquet(spark, grant, files)  # written by pyarrow at ingestion
        got = df.select("BEN_NIR_PSA", "PRS_PAI_MNT", "EXE_SOI_DTD").toArrow()
        written = write_parquet(df, grant, tmp_path / "out", master_key=WAREHOUSE_KEY)
        assert grant.unwraps.get(WAREHOUSE_KEY, 0) >= 1 and grant.wraps.get(WAREHOUSE_KEY, 0) >= 1
    assert got.num_rows == expected.num_rows > 1000
    assert sorted(got.column("BEN_NIR_PSA").to_pylist()) == sorted(expected.column("BEN_NIR_PSA").to_pylist())
    assert pc.sum(got.column("PRS_PAI_MNT")).as_py() == pytest.approx(pc.sum(expected.column("PRS_PAI_MNT")).as_py())

    # pyarrow (the warehouse's own reader, through custody) reads Spark's files: same rows, same values.
    back = spark_hub.warehouse.dataset_of(written).to_table()
    assert back.num_rows == expected.num_rows
    assert sorted(back.column("BEN_NIR_PSA").to_pylist()) == sorted(expected.column("BEN_NIR_PSA").to_pylist())
    assert back.column("EXE_SOI_DTD").type == expected.column("EXE_SOI_DTD").type

    # Same format: the same key material fields (uniform, encrypted footer, double wrapping, internal storage).
    ours, theirs = key_material(files[0]), key_material(written[0])
    assert {k: v for k, v in ours.items() if k not in RANDOM_FIELDS} == {
        k: v for k, v in theirs.items() if k not in RANDOM_FIELDS
    }
    assert theirs["doubleWrapping"] is True and theirs["masterKeyID"] == WAREHOUSE_KEY
    with pytest.raises(OSError):  # encrypted footer: nothing readable without custody
        pq.read_table(written[0])

    events = spark_events(spark_hub)[before:]
    assert len(events) == 1 and events[0].outcome == "ok"
    assert events[0].detail["unwraps"][WAREHOUSE_KEY] >= 1 and events[0].detail["wraps"][WAREHOUSE_KEY] >= 1


def test_no_grant_closed_grant_or_other_key_reads_nothing(spark, spark_hub: Hub) -> None:
    from hygie.warehouse.spark import CustodyRefused, custody_grant, read_parquet

    files = files_of(spark_hub, "ER_PRS_F")[:2]
    plain = ["file://" + str(f) for f in files]
    with pytest.raises(Exception, match="no custody grant"):
        spark.read.parquet(*plain).count()  # no token at all
    with custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as grant:
        token = grant.token
    with pytest.raises(Exception, match="refused"):  # a token is worth nothing once its grant is closed
        spark.read.option("parquet.encryption.key.access.token", token).parquet(*plain).count()
    with custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as grant:
        # A server other than the channel (wrong certificate) gets nothing: the client pins the channel's.
        impostor = spark.read.options(**grant.options(), **{"hygie.custody.tls.sha256": "00" * 32})
        with pytest.raises(Exception, match="unreachable"):
            impostor.parquet(*plain).count()
        assert grant.unwraps == {}
    with (
        pytest.raises(CustodyRefused, match="nothing was released"),
        custody_grant(spark_hub, ["identity-vault"], actor="test") as grant,
    ):
        read_parquet(spark, grant, files).count()
    assert spark_events(spark_hub)[-1].outcome == "denied"


class RefusingCustody:
    """The hub's custody, except that it refuses every unwrap (an HSM saying no)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def unwrap(self, name: str, wrapped: bytes, context: bytes = b"") -> bytes:
        raise UnwrapFailed("refused by policy")


def test_a_custody_refusing_to_unwrap_fails_the_job_clearly(spark, spark_hub: Hub) -> None:
    from hygie.warehouse.spark import CustodyRefused, collect_checked, custody_grant, read_parquet

    files = files_of(spark_hub, "ER_PHA_F")
    released: list[Any] = []
    refusing = RefusingCustody(spark_hub.custody)
    with (
        pytest.raises(CustodyRefused) as refused,
        custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test", custody=refusing) as g,
    ):
        released += collect_checked(g, read_parquet(spark, g, files).groupBy().count())
    assert released == []
    message = str(refused.value)
    assert "refused" in message and "UnwrapFailed" in message and "nothing was released" in message
    event = spark_events(spark_hub)[-1]
    assert event.outcome == "denied" and event.detail["unwraps"] == {} and event.detail["refusals"] >= 1


def test_only_catalogued_files_never_a_directory_or_a_glob(spark, spark_hub: Hub) -> None:
    from hygie.warehouse.spark import custody_grant, read_parquet

    files = files_of(spark_hub, "ER_PRS_F")
    with custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as grant:
        with pytest.raises(FileNotFoundError, match="catalog"):
            read_parquet(spark, grant, [files[0].parent])
        with pytest.raises(ValueError, match="expand"):
            read_parquet(spark, grant, [files[0].parent / "*.parquet"])
        with pytest.raises(ValueError, match="no files"):
            read_parquet(spark, grant, [])


def test_the_custody_channel_answers_only_an_open_grant_for_its_keys(spark_hub: Hub) -> None:
    """The channel itself, without Spark: wrong or no token, a key outside the grant, malformed requests."""
    import base64
    import ssl

    import httpx

    from hygie.warehouse.spark import CustodyRefused, _the_channel, custody_grant

    channel = _the_channel("127.0.0.1")
    kek = bytes(range(16))

    pinned = ssl.create_default_context(cadata=channel.cert_pem.decode())

    def post(op: str, token: str, body: bytes) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{channel.url}/{op}", content=body, headers=headers, timeout=10, verify=pinned)

    with pytest.raises(httpx.ConnectError):  # TLS only, with the channel's own certificate
        httpx.post(f"{channel.url}/unwrap", content=b"x", timeout=10)

    with pytest.raises(CustodyRefused), custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as grant:
        wrapped = post("wrap", grant.token, b"warehouse\n" + base64.b64encode(kek))
        assert wrapped.status_code == 200
        unwrapped = post("unwrap", grant.token, b"warehouse\n" + wrapped.text.encode())
        assert unwrapped.status_code == 200 and base64.b64decode(unwrapped.text) == kek
        assert post("unwrap", "", b"warehouse\n" + wrapped.text.encode()).status_code == 401
        assert post("unwrap", grant.token[:-1] + "x", b"warehouse\n" + wrapped.text.encode()).status_code == 401
        assert post("unwrap", grant.token, b"identity-vault\n" + wrapped.text.encode()).status_code == 403
        assert post("unwrap", grant.token, b"no newline").status_code == 400
        assert post("unwrap", grant.token, b"warehouse\n!!not base64!!").status_code == 400
        assert post("destroy", grant.token, b"warehouse\n").status_code == 404
        tampered = base64.b64decode(wrapped.text)
        tampered = tampered[:-1] + bytes([tampered[-1] ^ 1])
        body = b"warehouse\n" + base64.b64encode(tampered)
        assert post("unwrap", grant.token, body).status_code == 403  # custody's authentication fails
        assert grant.unwraps == {WAREHOUSE_KEY: 1} and len(grant.refusals) == 2
        token = grant.token
    assert post("unwrap", token, b"warehouse\n" + wrapped.text.encode()).status_code == 401  # closed grant
