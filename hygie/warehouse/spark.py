# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Apache Spark over the warehouse's encrypted Parquet, with every key kept in custody.

Spark reads and writes the same files as pyarrow (:mod:`hygie.warehouse.encryption`): Parquet modular encryption
through parquet-mr's ``PropertiesDrivenCryptoFactory``, uniform encryption (footer and every column) under one
master key, encrypted footer, double wrapping (data keys under key-encryption keys, KEKs under the master key),
key material inside the files, default KMS instance. Master-key operations go to ``HygieKmsClient``
(``java/HygieKmsClient.java``, compiled here with the JDK against the jars pyspark ships) which asks custody to
wrap or unwrap a KEK over the **custody channel**: an HTTPS server in this (the driver's) process, on loopback
by default, whose ephemeral self-signed certificate the KMS client pins by its SHA-256 fingerprint.

Each job runs inside a :func:`custody_grant`: a random token, valid until the grant closes, for the master keys
it names only. The token travels to the JVMs as the job's ``parquet.encryption.key.access.token`` (Spark redacts
it from its UI and event log); it authorises calls to the live channel and decrypts nothing, so it is worth
nothing offline or once the grant is closed. No master key, project key or data key is ever in Spark's
configuration, logs or UI: custody wraps and unwraps KEKs, and the KEKs and data keys live only in the JVMs'
memory. Every wrap and unwrap is counted per master key and recorded in the audit log when the grant closes
(one ``custody.spark`` event; refusals too, with outcome ``denied``).

Files always come from the catalog (warehouse ``FileRow`` rows, ``ProjectView`` entries): readers take explicit
file paths, never a directory to list. Shuffle and spill files are encrypted by Spark (``spark.io.encryption``).

Usage (S1's engine and the view builds use exactly this)::

    spark = spark_session(hub)
    with custody_grant(hub, [project_view_key(pid)], actor=actor, session=session) as grant:
        df = read_parquet(spark, grant, files)          # files: list[Path] from the catalog
        rows = df.groupBy(...).agg(...).collect()      # every action inside the grant
        write_parquet_file(df2, grant, target, master_key=project_view_key(pid))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hygie.audit import Outcome, record, record_now
from hygie.config import Settings
from hygie.hub import Hub
from hygie.keys import KeyCustody
from hygie.keys.custody import KeyError_
from hygie.locks import exclusive

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "HygieKmsClient.java"
KMS_CLIENT_CLASS = "org.hygie.kms.HygieKmsClient"
CRYPTO_FACTORY_CLASS = "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory"
TOKEN_PROPERTY = "parquet.encryption.key.access.token"  # noqa: S105  (a property name)
KEK_CONTEXT = b"parquet-kek"
"""Authenticated context of custody's wrap: the same as pyarrow's ``CustodyKmsClient``."""
CACHE_LIFETIME_SECONDS = 600
"""KEK cache lifetime in the JVMs, as pyarrow's (10 minutes)."""
JAR_CLASSPATH = (
    "parquet-hadoop-*.jar",
    "parquet-common-*.jar",
    "parquet-column-*.jar",
    "hadoop-client-api-*.jar",
)

log = logging.getLogger(__name__)


class SparkSetupError(Exception):
    """Spark cannot be started here (no JDK, no javac, the KMS client does not compile); says what to install."""


class CustodyRefused(Exception):
    """Custody refused a key operation a Spark job needed: the job failed and released nothing."""


# -- the KMS client jar --------------------------------------------------------------------------------------


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _java_tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).exists():
        return str(Path(home) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise SparkSetupError(
            f"{name} not found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless), "
            "or set JAVA_HOME; scripts/test installs it"
        )
    return found


def kms_jar() -> Path:
    """The compiled KMS client, built once per source version (cached under the environment, keyed by the
    source's hash, so a fresh machine compiles it on first use and an edited source is rebuilt)."""
    source = JAVA_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = Path(sys.prefix) / "share" / "hygie-spark"
    jar = cache / f"hygie-kms-{digest}.jar"
    if jar.exists():
        return jar
    cache.mkdir(parents=True, exist_ok=True)
    with exclusive(cache / "compile.lock"):
        if jar.exists():
            return jar
        jars = pyspark_home() / "jars"
        classpath = [str(p) for pattern in JAR_CLASSPATH for p in sorted(jars.glob(pattern))]
        with tempfile.TemporaryDirectory(prefix="hygie-kms-") as work:
            classes = Path(work) / "classes"
            classes.mkdir()
            result = subprocess.run(  # noqa: S603  (fixed tools, paths we chose)
                [
                    *(_java_tool("javac"), "--release", "17", "-nowarn", "-cp", os.pathsep.join(classpath)),
                    *("-d", str(classes), str(JAVA_SOURCE)),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise SparkSetupError(f"the KMS client does not compile:\n{result.stderr[-2000:]}")
            partial = Path(work) / "kms.jar"
            subprocess.run(  # noqa: S603
                [_java_tool("jar"), "cf", str(partial), "-C", str(classes), "."],
                capture_output=True,
                check=True,
            )
            os.replace(partial, jar) if partial.stat().st_dev == cache.stat().st_dev else shutil.move(partial, jar)
    return jar


# -- the custody channel --------------------------------------------------------------------------------------


@dataclass
class CustodyGrant:
    """One job's (or one build's) right to have custody wrap and unwrap KEKs under some master keys."""

    hub: Hub
    custody: KeyCustody
    keys: frozenset[str]
    token: str
    unwraps: dict[str, int] = field(default_factory=dict)
    wraps: dict[str, int] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    """Why custody refused (no key material, no token): shown to the caller when the job fails."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True

    def options(self) -> dict[str, str]:
        """Reader/writer options that bind a Spark job to this grant."""
        return {TOKEN_PROPERTY: self.token}

    def check(self) -> None:
        """Raise :class:`CustodyRefused` if custody refused anything in this grant."""
        with self.lock:
            refusals = list(self.refusals)
        if refusals:
            raise CustodyRefused(
                f"key custody refused {len(refusals)} key operation(s) this Spark job needed ({refusals[0]}); "
                "the job failed and nothing was released. Check that the keys exist and are not destroyed "
                "(`hygie keys list`), and that the job runs inside a custody grant naming them."
            )


class _Channel:
    """The HTTPS server of one process (TLS, pinned certificate); grants come and go, the server stays."""

    def __init__(self, host: str) -> None:
        self.grants: dict[str, CustodyGrant] = {}
        self.lock = threading.Lock()
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                status, body = channel.handle(self.path, self.headers.get("Authorization", ""), self._body())
                data = body.encode("ascii", "replace")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, 1 << 16))

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        context, self.cert_pem, self.fingerprint = _tls_context(host)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.url = f"https://{host}:{self.server.server_address[1]}"
        thread = threading.Thread(target=self.server.serve_forever, name="hygie-custody-channel", daemon=True)
        thread.start()

    def handle(self, path: str, authorization: str, body: bytes) -> tuple[int, str]:
        op = path.strip("/")
        if op not in ("wrap", "unwrap"):
            return 404, "unknown operation"
        token = authorization.removeprefix("Bearer ").strip()
        with self.lock:
            grant = self.grants.get(hashlib.sha256(token.encode()).hexdigest()) if token else None
        if grant is None or not grant.open:
            return 401, "no open custody grant for this token"
        try:
            name, payload = body.decode("ascii").split("\n", 1)
            raw = base64.b64decode(payload.strip(), validate=True)
        except (UnicodeDecodeError, ValueError, binascii.Error):
            return 400, "malformed request"
        if name not in grant.keys:
            with grant.lock:
                grant.refusals.append(f"master key {name!r} is not in the job's grant")
            return 403, "master key not granted to this job"
        try:
            if op == "wrap":
                result = grant.custody.wrap(name, raw, KEK_CONTEXT)
            else:
                result = grant.custody.unwrap(name, raw, KEK_CONTEXT)
        except KeyError_ as exc:
            with grant.lock:
                grant.refusals.append(f"{op} under {name!r}: {type(exc).__name__}")
            return 403, "custody refused"
        counter = grant.wraps if op == "wrap" else grant.unwraps
        with grant.lock:
            counter[name] = counter.get(name, 0) + 1
        return 200, base64.b64encode(result).decode("ascii")

    def add(self, grant: CustodyGrant) -> None:
        with self.lock:
            self.grants[hashlib.sha256(grant.token.encode()).hexdigest()] = grant

    def remove(self, grant: CustodyGrant) -> None:
        with self.lock:
            self.grants.pop(hashlib.sha256(grant.token.encode()).hexdigest(), None)
        grant.open = False


def _tls_context(host: str) -> tuple[ssl.SSLContext, bytes, str]:
    """A TLS server context with an ephemeral self-signed certificate (this process's lifetime): the KMS client
    pins its SHA-256 fingerprint (``hygie.custody.tls.sha256``), so the token and the KEKs never cross a socket in
    clear, even to executors on other nodes. Returns the context, the certificate (PEM) and its fingerprint."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hygie custody channel")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="hygie-channel-") as directory:  # 0700; removed at once
        cert_file, key_file = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return context, cert_pem, fingerprint


_channel: _Channel | None = None
_session: SparkSession | None = None
_work_dir: Path | None = None
_setup_lock = threading.Lock()


def _the_channel(host: str) -> _Channel:
    global _channel
    with _setup_lock:
        if _channel is None:
            _channel = _Channel(host)
        return _channel


@contextmanager
def custody_grant(
    hub: Hub,
    keys: Sequence[str],
    *,
    actor: str,
    session: Session | None = None,
    project_id: int | None = None,
    purpose: str | None = None,
    custody: KeyCustody | None = None,
) -> Iterator[CustodyGrant]:
    """Let Spark jobs run inside this block use custody for ``keys`` (master key names), and no other key.

    On exit the grant is revoked and one audit event records how many wraps and unwraps each key served (and
    any refusal): in ``session`` when given (it commits with the caller's act), else in a transaction of its own.
    A job that hit a refusal raises :class:`CustodyRefused` from the block, whatever Spark raised.
    """
    channel = _the_channel(hub.settings.spark_custody_host)
    grant = CustodyGrant(hub, custody or hub.custody, frozenset(keys), secrets.token_urlsafe(32))
    channel.add(grant)
    failure: BaseException | None = None
    try:
        yield grant
    except BaseException as exc:
        failure = exc
    finally:
        channel.remove(grant)
        _forget_token(grant.token)
        fields: dict[str, Any] = {
            "actor": actor,
            "action": "custody.spark",
            "object": "keys:" + ",".join(sorted(grant.keys)),
            "project_id": project_id,
            "purpose": purpose,
            "outcome": Outcome.DENIED if grant.refusals else Outcome.OK if failure is None else Outcome.FAILED,
            "detail": {
                "unwraps": dict(sorted(grant.unwraps.items())),
                "wraps": dict(sorted(grant.wraps.items())),
                "refusals": len(grant.refusals),
            },
        }
        if session is not None:
            record(session, **fields)
        else:
            record_now(hub.session, **fields)
    if grant.refusals:
        raise CustodyRefused(str(_refusal_message(grant))) from failure
    if failure is not None:
        raise failure


def _refusal_message(grant: CustodyGrant) -> str:
    try:
        grant.check()
    except CustodyRefused as exc:
        return str(exc)
    return ""


def _forget_token(token: str) -> None:
    """Drop the driver JVM's cached KEKs and KMS client for this token (executors' expire with the cache)."""
    if _session is None:
        return
    try:
        jvm = _session.sparkContext._jvm
        assert jvm is not None
        jvm.org.apache.parquet.crypto.keytools.KeyToolkit.removeCacheEntriesForToken(token)
    except Exception:  # noqa: S110  (the session may be stopping; the cache expires anyway)
        pass


# -- the session ------------------------------------------------------------------------------------------------


LOG4J2 = """\
# Hygie's Spark driver logging: warnings on the console, everything from INFO in driver.log (same directory).
# Quoted fragments are masked in messages and stack traces: Spark's errors quote the value that failed ("The value
# 'x' cannot be cast"), a value of a project's view that the people who read logs must never receive.
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
rootLogger.appenderRef.file.ref = file
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %replace{{%m%n%ex}}{{'[^'\\n]*'}}{{'(value)'}}
appender.console.layout.alwaysWriteExceptions = false
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %p %c: %replace{{%m%n%ex}}{{'[^'\\n]*'}}{{'(value)'}}
appender.file.layout.alwaysWriteExceptions = false
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
logger.parquet.name = org.apache.parquet
logger.parquet.level = info
"""


def work_dir() -> Path:
    """This process's private Spark directory (0700): driver.log, log4j2 configuration, local (spill) dirs."""
    global _work_dir
    if _work_dir is None:
        _work_dir = Path(tempfile.mkdtemp(prefix="hygie-spark-"))
        # Spill files and the driver's log go with the process: nothing of a job's data outlives it in /tmp.
        import atexit

        atexit.register(shutil.rmtree, _work_dir, ignore_errors=True)
    return _work_dir


def driver_log() -> Path:
    return work_dir() / "driver.log"


def spark_session(hub: Hub) -> SparkSession:
    """The process's Spark session, created on first use from ``hub.settings`` and reused afterwards.

    ``HYGIE_SPARK_MASTER`` (local[2] by default, or spark://host:7077), UI off unless ``HYGIE_SPARK_UI``, a few
    shuffle partitions, quiet console (full driver log in :func:`driver_log`), shuffle and spill encrypted,
    Parquet encryption through custody. Later calls return the same session whatever the hub: the custody a job
    uses is its grant's (:func:`custody_grant`), not the session's.
    """
    return start_spark(hub.settings)


def start_spark(settings: Settings) -> SparkSession:
    """:func:`spark_session` from settings alone (the tests' shared session starts without a hub)."""
    global _session
    with _setup_lock:
        if _session is not None:
            return _session
    jar = kms_jar()
    _java_tool("java")
    channel = _the_channel(settings.spark_custody_host)
    work = work_dir()
    (work / "log4j2.properties").write_text(LOG4J2.format(log=work / "driver.log"), encoding="utf-8")
    (work / "local").mkdir(exist_ok=True)
    java_options = f"-Dlog4j2.configurationFile=file:{work / 'log4j2.properties'}"
    conf: dict[str, str] = {
        "spark.master": settings.spark_master,
        "spark.app.name": "hygie",
        "spark.ui.enabled": str(settings.spark_ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.default.parallelism": str(settings.spark_shuffle_partitions),
        "spark.driver.memory": f"{settings.spark_driver_memory_mb}m",
        "spark.executor.memory": f"{settings.spark_executor_memory_mb}m",
        "spark.driver.extraClassPath": str(jar),
        "spark.executor.extraClassPath": str(jar),
        "spark.driver.extraJavaOptions": java_options,
        "spark.local.dir": str(work / "local"),
        "spark.io.encryption.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.log.structuredLogging.enabled": "false",
        "spark.hadoop.parquet.crypto.factory.class": CRYPTO_FACTORY_CLASS,
        "spark.hadoop.parquet.encryption.kms.client.class": KMS_CLIENT_CLASS,
        "spark.hadoop.parquet.encryption.cache.lifetime.seconds": str(CACHE_LIFETIME_SECONDS),
        "spark.hadoop.hygie.custody.url": channel.url,
        "spark.hadoop.hygie.custody.tls.sha256": channel.fingerprint,
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if settings.spark_master.startswith(("local", "spark://127.0.0.1:", "spark://localhost:")):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if settings.spark_auth_secret_file is not None:
        conf.update(rpc_security(settings.spark_auth_secret_file))
    if settings.spark_event_log_dir is not None:
        settings.spark_event_log_dir.mkdir(parents=True, exist_ok=True)
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = settings.spark_event_log_dir.as_uri()
        conf["spark.eventLog.compress"] = "false"  # plain JSON lines: auditable with grep
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    with _setup_lock:
        if _session is None:
            _session = builder.getOrCreate()
            _silence_query_context_loggers()
            _session.sparkContext.setLogLevel("WARN" if os.environ.get("HYGIE_SPARK_DEBUG") is None else "INFO")
        return _session


def _silence_query_context_loggers() -> None:
    """PySpark logs every SQL error it captures, with its message, to stderr through two loggers of its own (not
    propagated, so not Hygie's handlers): a runtime error's message quotes the value of the data that failed.
    Hygie turns the error into a refusal that shows no value; these copies are not written at all."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True


def rpc_security(secret_file: Path) -> dict[str, str]:
    """Spark settings that authenticate and encrypt its RPC with the shared secret in ``secret_file`` (the job
    options, hence a grant's token, then never cross the cluster's network in clear). Spark redacts the secret from
    its UI and event log; it is Spark's, not a custody key."""
    if secret_file.stat().st_mode & 0o077:
        raise SparkSetupError(f"{secret_file}: the cluster secret must be readable by its owner only (chmod 600)")
    secret = secret_file.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise SparkSetupError(f"{secret_file}: the cluster secret is too short (32 characters or more)")
    return {
        "spark.authenticate": "true",
        "spark.authenticate.secret": secret,
        "spark.network.crypto.enabled": "true",
    }


def stop_session() -> None:
    """Stop the process's session (the next :func:`spark_session` starts a new one)."""
    global _session
    with _setup_lock:
        if _session is not None:
            _session.stop()
            _session = None


# -- reading and writing ------------------------------------------------------------------------------------------


_GLOB = "*?[]{}\\"
"""Characters Spark's reader expands as a glob (a pattern would list a directory): refused in file paths."""


def read_parquet(spark: SparkSession, grant: CustodyGrant, files: Sequence[Path]) -> DataFrame:
    """The encrypted Parquet ``files`` (paths from the catalog: warehouse rows or a view's entries) as one
    DataFrame. Only regular files are accepted, so nothing is found by listing a directory."""
    if not files:
        raise ValueError("no files to read: pass the catalogued files (an empty table has none)")
    paths = []
    for f in files:
        path = Path(f)
        if any(c in str(path) for c in _GLOB):
            raise ValueError(
                f"{path.name}: a catalogued file name never holds {''.join(_GLOB)} (Spark would expand it)"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"{path.name}: not a catalogued file on disk; run `hygie warehouse verify` (files are read "
                "only from the catalog, never found by listing a directory)"
            )
        paths.append("file://" + str(path.resolve()))
    reader = spark.read.options(**grant.options(), recursiveFileLookup="false", mergeSchema="false")
    return reader.parquet(*paths)


def write_parquet(df: DataFrame, grant: CustodyGrant, directory: Path, *, master_key: str) -> list[Path]:
    """Write ``df`` encrypted under ``master_key`` (which the grant must name) into a new ``directory``, in the
    pyarrow writer's format; return the data files written (the caller catalogues them)."""
    if master_key not in grant.keys:
        raise ValueError(f"master key {master_key!r} is not in the custody grant of this write")
    if directory.exists():
        raise FileExistsError(f"{directory}: Spark writes into a new directory only")
    options = {
        **grant.options(),
        "parquet.encryption.uniform.key": master_key,
        "parquet.encryption.plaintext.footer": "false",
        "parquet.encryption.double.wrapping": "true",
        "parquet.encryption.key.material.store.internally": "true",
        "compression": "zstd",
    }
    try:
        df.write.options(**options).mode("errorifexists").parquet("file://" + str(directory.resolve()))
    except Exception as exc:
        grant.check()
        raise exc
    grant.check()
    written = sorted(p for p in directory.iterdir() if p.name.startswith("part-") and p.suffix == ".parquet")
    for extra in directory.iterdir():
        if extra not in written:
            extra.unlink()  # _SUCCESS and the checksum files Hadoop's local file system leaves
    return written


def write_parquet_file(df: DataFrame, grant: CustodyGrant, target: Path, *, master_key: str) -> Path:
    """Write ``df`` as ONE encrypted file at ``target`` (a view table), rows in the DataFrame's order."""
    staging = target.parent / f".spark-{target.stem}-{secrets.token_hex(4)}"
    try:
        files = write_parquet(df.coalesce(1), grant, staging, master_key=master_key)
        if len(files) != 1:
            raise RuntimeError(f"Spark wrote {len(files)} files for one view table; expected exactly one")
        os.replace(files[0], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def collect_checked(grant: CustodyGrant, df: DataFrame) -> list[Any]:
    """``df.collect()`` that turns a custody refusal inside Spark into :class:`CustodyRefused`."""
    try:
        rows = df.collect()
    except Exception:
        grant.check()
        raise
    grant.check()
    return rows


# -- a standalone cluster on this machine (tests, benchmark, docs/spark.md) ------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def standalone_cluster(
    workers: int = 2,
    *,
    cores: int = 1,
    memory_mb: int = 1024,
    timeout: float = 60.0,
    secret_file: Path | None = None,
) -> Iterator[str]:
    """Start a Spark standalone master and ``workers`` workers on loopback from pyspark's own installation
    (``bin/spark-class``: pip's pyspark ships no ``sbin/start-master.sh``); yield the master URL, stop them all.

    With ``secret_file`` (see :func:`rpc_security`), the daemons authenticate and encrypt their RPC with that
    secret, given to them in a 0600 properties file (never on a command line); the driver must then be started with
    ``HYGIE_SPARK_AUTH_SECRET_FILE`` naming the same file."""
    import time

    home = pyspark_home()
    spark_class = str(home / "bin" / "spark-class")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    env.setdefault("JAVA_HOME", str(Path(os.path.realpath(_java_tool("java"))).parent.parent))
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    logs = Path(tempfile.mkdtemp(prefix="hygie-spark-cluster-"))
    processes: list[subprocess.Popen[bytes]] = []
    properties: list[str] = []
    if secret_file is not None:
        props = logs / "spark-daemon.conf"
        props.touch(mode=0o600)
        props.write_text("".join(f"{k} {v}\n" for k, v in rpc_security(secret_file).items()), encoding="ascii")
        properties = ["--properties-file", str(props)]

    def start(name: str, *args: str) -> Path:
        log_path = logs / f"{name}.log"
        with log_path.open("wb") as out:
            processes.append(
                subprocess.Popen(  # noqa: S603  (pyspark's own launcher, our arguments)
                    [spark_class, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        return log_path

    def wait_for(log_path: Path, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while log_path.read_text(errors="replace").count(text) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SparkSetupError(f"the standalone cluster did not start; see {log_path}")
            time.sleep(0.2)

    try:
        master_log = start(
            "master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
            "--webui-port", str(_free_port()), *properties,
        )  # fmt: skip
        wait_for(master_log, "I have been elected leader")
        for i in range(workers):
            work = logs / f"worker-{i}"
            work.mkdir()
            start(
                f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
                "--memory", f"{memory_mb}m", "--webui-port", str(_free_port()), "--work-dir", str(work), *properties,
                url,
            )  # fmt: skip
        wait_for(master_log, "Registering worker", workers)
        yield url
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(logs, ignore_errors=True)
