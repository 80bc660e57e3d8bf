# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The production deployment of deploy/, tried: PostgreSQL with the roles of deploy/postgresql (migrations as the
owner, everything else as the least-privileged application role), two `hygie serve` processes over that one
database, and Debian's nginx with deploy/nginx/hygie.conf in front of them on loopback, over TLS with a throwaway
certificate. Checked through the proxy: sessions, sign-in limits and analysis jobs behave as one server; the proxy's
X-Forwarded-For is believed and a client's forged one is not; the application role cannot touch the audit tables'
guards; the systemd units of deploy/systemd pass `systemd-analyze verify` and start commands that exist.

One deployment for the whole module (it takes a few seconds to build); the tests run in file order."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from hygie.analysis import worker
from hygie.analysis.models import AnalysisJob
from hygie.audit import AuditEvent
from hygie.governance.accounts import CONSOLE, Accounts
from hygie.governance.acts import act
from hygie.governance.models import Project
from hygie.hub import Hub
from hygie.keys import CustodyLocked
from hygie.keys.local import read_key_file
from tests import postgres
from tests.conftest import make_settings
from tests.portal.world import PASSWORD, STAFF, World, small_delivery  # noqa: F401  (fixture)
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HYGIE = Path(sys.executable).parent / "hygie"
"""The `hygie` command of this environment (the units name /opt/hygie/venv/bin/hygie)."""
AGGREGATE = {"group_by": ["sex"], "measures": ["people", "events"]}
PATIENCE = 300
"""Seconds before a wait (a server starting, a job finishing, a checkpoint) is declared failed: generous, as the
machine may be loaded; no assertion depends on how fast anything is."""
DIRECT = httpx.Client(timeout=PATIENCE)
"""Requests straight to one server process (not through the proxy)."""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def psql(url: dict[str, str], user: str, dbname: str, script: Path) -> None:
    binary = postgres._binary("psql")
    assert binary, "psql not found: scripts/test installs Debian's postgresql"
    done = subprocess.run(
        [binary, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url["host"], "-p", url["port"], "-U", user,
         "-d", dbname, "-f", str(script)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, f"{script.name}: {done.stderr}"


def certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway authority and a certificate for 127.0.0.1 and localhost signed by it."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("Hygie test authority", None, ca_key, ca_key, True)
    leaf = build("localhost", ca.subject, key, ca_key, False)
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "fullchain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp / "privkey.pem").write_bytes(private)
    (tmp / "privkey.pem").chmod(0o600)
    return tmp / "ca.pem", tmp / "fullchain.pem", tmp / "privkey.pem"


def site_config(tmp: Path, backends: list[int], http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """deploy/nginx/hygie.conf with this test's ports, certificate and log substituted (each substitution must
    happen, so the test follows the file)."""
    text = (DEPLOY / "nginx" / "hygie.conf").read_text()
    replacements = [
        ("server 127.0.0.1:8001 ", f"server 127.0.0.1:{backends[0]} "),
        ("server 127.0.0.1:8002 ", f"server 127.0.0.1:{backends[1]} "),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("/etc/ssl/hygie/fullchain.pem", str(cert)),
        ("/etc/ssl/hygie/privkey.pem", str(key)),
        ("access_log /var/log/nginx/hygie.access.log hygie;", f"access_log {tmp}/access.log upstreams;"),
    ]
    for old, new in replacements:
        assert old in text, f"deploy/nginx/hygie.conf no longer has {old!r}"
        text = text.replace(old, new)
    return re.sub(r"^\s*listen \[::\].*$", "", text, flags=re.MULTILINE)  # no IPv6 in every container


def start_nginx(tmp: Path, site: str) -> subprocess.Popen[bytes]:
    """nginx as any user: its own prefix, pid, logs and temporary paths under ``tmp``."""
    binary = nginx_binary()
    assert binary, "nginx not found: scripts/test installs Debian's nginx"
    (tmp / "hygie.conf").write_text(site)
    temps = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
{temps}
    # Which upstream answered each request: the test checks that both servers took part.
    log_format upstreams '$remote_addr $upstream_addr $status $request_method $uri';
    include {tmp}/hygie.conf;
}}
"""
    )
    check = subprocess.run([binary, "-t", "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
    return subprocess.Popen([binary, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")])


def as_credential(secret: Path, directory: Path) -> Path:
    """``secret`` as systemd hands it with ``LoadCredential=``: a copy in the service's credentials directory, mode
    0400 plus an ACL entry for the service's user, which ``stat`` shows as mode 0440 (the ACL's mask in the group
    bits). Without systemd as PID 1 (and without setfacl here), the mode ``stat`` shows is reproduced."""
    directory.mkdir(mode=0o500)
    copy = directory / secret.name
    shutil.copyfile(secret, copy)
    copy.chmod(0o440)
    return copy


def wait_until_up(url: str, process: subprocess.Popen[bytes], **client: Any) -> None:
    deadline = time.monotonic() + PATIENCE
    while True:
        assert process.poll() is None, f"{url}: the process exited ({process.returncode})"
        try:
            if httpx.get(url, timeout=2, **client).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {PATIENCE} s"
        time.sleep(0.1)


@dataclass
class Deployment:
    tmp: Path
    env: dict[str, str]
    pg: dict[str, str]
    backends: list[str]
    proxy: str
    tls: ssl.SSLContext
    world: World
    hub: Hub
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        """A client of the proxy over HTTPS from a loopback address of its own (127.0.0.0/8 is all local)."""
        transport = httpx.HTTPTransport(verify=self.tls, local_address=source)
        return httpx.Client(base_url=self.proxy, transport=transport, timeout=PATIENCE)

    def upstreams(self) -> list[str]:
        return [line.split()[1] for line in (self.tmp / "nginx" / "access.log").read_text().splitlines()]

    def connect(self, user: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=self.pg["host"], port=self.pg["port"], user=user, dbname="hygie")


@pytest.fixture(scope="module")
def deployment(
    postgres_cluster: str,
    small_delivery: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("deployment")
    pg = dict(p.split("=", 1) for p in postgres_cluster.split("?", 1)[1].split("&"))
    # As the operator does: roles and database (superuser), hub and migrations (owner), grants (owner).
    psql(pg, "postgres", "postgres", DEPLOY / "postgresql" / "roles.sql")
    owner_url = f"postgresql+psycopg://hygie_owner@/hygie?host={pg['host']}&port={pg['port']}"
    app_url = f"postgresql+psycopg://hygie@/hygie?host={pg['host']}&port={pg['port']}"
    data_dir, key_file = tmp / "data", tmp / "master.key"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIE_")} | {
        "HYGIE_DATA_DIR": str(data_dir),
        "HYGIE_KEY_FILE": str(key_file),
        "HYGIE_PASSWORD_MEMORY_KIB": "1024",
        "HYGIE_PASSWORD_ITERATIONS": "1",
        "HYGIE_ANALYSIS_VISIBLE_QUANTUM_SECONDS": "0",
        # Long enough that the test never races the wait it checks (no timing-sensitive assertion).
        "HYGIE_LOGIN_BACKOFF_SECONDS": "600",
    }
    subprocess.run([HYGIE, "keys", "new-key-file", str(key_file)], env=env, check=True, capture_output=True)
    subprocess.run([HYGIE, "init"], env=env | {"HYGIE_DATABASE_URL": owner_url}, check=True, capture_output=True)
    psql(pg, "hygie_owner", "hygie", DEPLOY / "postgresql" / "grants.sql")
    env["HYGIE_DATABASE_URL"] = app_url  # from here on, everything runs as the application role
    ingested = subprocess.run([HYGIE, "ingest", str(small_delivery)], env=env, capture_output=True, text=True)
    assert ingested.returncode == 0, ingested.stderr

    settings = make_settings(data_dir, database_url=app_url, key_file=key_file, key_passphrase=None)
    hub = Hub.open(settings)
    world = World(hub, cast(Any, None), small_delivery)
    with act(hub, CONSOLE, "test.setup") as session:
        accounts = Accounts(session, hub.custody, hub.settings)
        for name, role in STAFF.items():
            created = accounts.create(CONSOLE, username=name, role=role, password=PASSWORD, organisation="Test")
            world.ids[name] = created.account.id
            world.secrets[name] = accounts.totp_secret(created.account)

    ports = [free_port(), free_port()]
    # As the units: the proxy, and only it, is believed; checkpoints, alerts and sweep in one background process;
    # the key handed as a systemd credential (see test_a_systemd_credential_is_a_private_enough_key_file).
    credential = as_credential(key_file, tmp / "credentials")
    unit_env = env | {"CREDENTIALS_DIRECTORY": str(credential.parent), "HYGIE_KEY_FILE": str(credential)}
    serve_env = unit_env | {
        "HYGIE_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "HYGIE_SERVE_BACKGROUND_TASKS": "false",
        "HYGIE_ANALYSIS_RECOVERY_SECONDS": "1",
    }  # fmt: skip  (a dead process's jobs, at once)
    processes = [subprocess.Popen([HYGIE, "serve", "--port", str(p)], env=serve_env) for p in ports]
    background = subprocess.Popen([HYGIE, "background"], env=unit_env)
    backends = [f"http://127.0.0.1:{p}" for p in ports]
    (tmp / "nginx").mkdir()
    ca, cert, key = certificate(tmp)
    http_port, https_port = free_port(), free_port()
    nginx = start_nginx(tmp / "nginx", site_config(tmp / "nginx", ports, http_port, https_port, cert, key))
    processes += [nginx, background]
    tls = ssl.create_default_context(cafile=str(ca))
    deployment = Deployment(tmp, env, pg, backends, f"https://127.0.0.1:{https_port}", tls, world, hub, processes)
    try:
        for url, process in zip(backends, processes, strict=False):
            wait_until_up(f"{url}/healthz", process)
        wait_until_up(f"{deployment.proxy}/healthz", nginx, verify=tls)
        world.client = cast(Any, deployment.client())
        yield deployment
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                process.kill()
        hub.close()


def test_tls_proxy_spreads_requests_and_a_session_holds_on_both_servers(deployment: Deployment) -> None:
    d, w = deployment, deployment.world
    plain = httpx.get(d.proxy.replace("https", "http").rsplit(":", 1)[0] + ":" + _http_port(d), timeout=10)
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
    r = w.client.get("/healthz")
    assert r.status_code == 200 and "max-age" in r.headers["strict-transport-security"]
    with pytest.raises(httpx.ConnectError):  # an unknown authority is refused: TLS is checked, not just present
        httpx.get(f"{d.proxy}/healthz", timeout=10)
    token = w.login("researcher1")  # through the proxy: one server opens the session
    for _ in range(4):  # round robin: the next requests alternate between both servers
        r = w.client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["username"] == "researcher1", r.text
    assert len(set(d.upstreams()[-5:])) == 2, d.upstreams()
    # Directly: a session opened on one server is valid on the other, and closing it on one closes it on both.
    r = DIRECT.post(f"{d.backends[0]}/auth/login",
                   json={"username": "reviewer3", "password": PASSWORD, "totp": w.code("reviewer3")})  # fmt: skip
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    assert DIRECT.get(f"{d.backends[1]}/me", headers=bearer).json()["username"] == "reviewer3"
    assert DIRECT.post(f"{d.backends[1]}/auth/logout", headers=bearer).status_code in (200, 204)
    assert DIRECT.get(f"{d.backends[0]}/me", headers=bearer).status_code == 401


def _http_port(d: Deployment) -> str:
    text = (d.tmp / "nginx" / "hygie.conf").read_text()
    return re.findall(r"listen 127\.0\.0\.1:(\d+);", text)[0]


def test_sign_in_limit_counts_across_servers_and_the_proxys_forwarded_address_only(deployment: Deployment) -> None:
    d, w = deployment, deployment.world
    wrong = {"username": "researcher2", "password": "not the password at all"}
    before = len(d.upstreams())
    with d.client("127.0.0.2") as attacker:
        answers = []
        for i in range(6):  # each with a forged X-Forwarded-For of its own: all count against 127.0.0.2
            r = attacker.post("/auth/login", json=wrong, headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
            answers.append(r.status_code)
    # five free failures (login_free_failures), spread over both servers, then the pair must wait
    assert answers == [401] * 5 + [429], answers
    assert len(set(d.upstreams()[before:])) == 2, d.upstreams()[before:]
    # The proxy's X-Forwarded-For is believed: another client address is a source of its own, not throttled,
    # though both reach the servers from the same TCP peer (nginx, 127.0.0.1).
    with d.client("127.0.0.3") as holder:
        assert holder.post("/auth/login", json=wrong).status_code == 401
        right = {"username": "researcher2", "password": PASSWORD, "totp": w.code("researcher2")}
        assert holder.post("/auth/login", json=right).status_code == 200
    # A server reached directly (peer 127.0.0.1, a trusted proxy address) believes X-Forwarded-For: that is why
    # the servers listen on loopback only and nginx sets the header rather than appending to the client's.


def test_a_job_submitted_through_one_server_is_followed_through_the_other(deployment: Deployment) -> None:
    d, w = deployment, deployment.world
    pid = w.active_project()  # through the proxy (view built by whichever server took the second approval)
    bearer = w.headers("researcher1")
    r = DIRECT.post(f"{d.backends[0]}/projects/{pid}/analyses/aggregate", json=AGGREGATE, headers=bearer)
    assert r.status_code == 200, r.text
    job = r.json()
    deadline = time.monotonic() + PATIENCE
    while job["status"] in ("queued", "running"):  # followed on the other server, which did not run it
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        r = DIRECT.get(f"{d.backends[1]}/projects/{pid}/analyses/{job['id']}", headers=bearer)
        assert r.status_code == 200, r.text
        job = r.json()
    assert job["status"] == "released", job
    r = DIRECT.get(f"{d.backends[1]}/projects/{pid}/analyses/{job['id']}/release", headers=bearer)
    assert r.status_code == 200 and r.json()["rows"], r.text
    # And the list of the project's jobs is the same whichever server answers.
    lists = [DIRECT.get(f"{b}/projects/{pid}/analyses", headers=bearer).json() for b in d.backends]
    assert lists[0] == lists[1] and len(lists[0]) >= 1


def _left_job(hub: Hub, status: str, *, ready: bool, holder: worker.Workers | None = None) -> int:
    """A job as a server process that died (or, with ``holder``, a live one) left it."""
    from hygie.analysis.spec import AggregateSpec

    now = dt.datetime.now(dt.UTC)
    with hub.session() as session:
        project = session.scalars(select(Project).where(Project.status == "active").order_by(Project.id.desc())).first()
        assert project is not None
        text = AggregateSpec.model_validate(AGGREGATE).model_dump_json(by_alias=True, exclude_none=True)
        started = now if status == "running" else None
        job = AnalysisJob(project_id=project.id, author_id=project.requester_id, kind="aggregate", text=text,
                          status=status, submitted_at=now - dt.timedelta(minutes=1),
                          queued_at=now if ready else None, started_at=started)  # fmt: skip
        session.add(job)
        session.flush()
        if holder is not None:  # held before anyone can see it: the live servers' recovery runs every second
            holder.hold(job.id)
        session.commit()
        return job.id


def _settled(hub: Hub, job_id: int) -> AnalysisJob:
    deadline = time.monotonic() + PATIENCE
    while True:
        with hub.session() as session:
            job = session.get(AnalysisJob, job_id)
            assert job is not None
            if job.status not in ("queued", "running"):
                return job
        assert time.monotonic() < deadline, job_id
        time.sleep(0.2)


def test_the_queue_is_the_hubs_a_job_a_dead_process_left_ready_is_run_by_a_live_one(deployment: Deployment) -> None:
    """Jobs are one queue in the database: a job accepted and checked by a process that died before running it is
    claimed by a live server and released; a job that was running when its process died is failed by a live
    server's recovery (never run again: it may be what killed its process), on the record."""
    hub = deployment.hub
    ready = _left_job(hub, "queued", ready=True)
    ran = _settled(hub, ready)
    assert ran.status == "succeeded" and ran.error is None, (ran.status, ran.error)
    left_running = _left_job(hub, "running", ready=True)
    failed = _settled(hub, left_running)
    assert (failed.status, failed.error) == ("failed", worker.RESTARTED)
    with hub.session() as session:
        stops = session.scalars(select(AuditEvent).where(AuditEvent.object == f"analysis:{left_running}")).all()
        assert [(e.action, e.detail.get("stopped")) for e in stops] == [("analysis.run", "restart")]


def test_a_server_never_fails_the_jobs_another_live_server_holds(deployment: Deployment) -> None:
    """Recovery of orphans (a server's start, and every HYGIE_ANALYSIS_RECOVERY_SECONDS) skips the jobs a live
    process holds by its advisory lock; once the holder lets go without finishing them (it died), they are orphans
    and are failed, on the record."""
    hub = deployment.hub
    holder = worker.Workers(hub, threads=0)  # "another process" (its own connection), running no jobs itself
    try:
        job_id = _left_job(hub, "queued", ready=False, holder=holder)  # still being checked by its holder
        assert worker.recover_orphans(hub) == 0
        with hub.session() as session:
            assert session.get(AnalysisJob, job_id).status == "queued"  # type: ignore[union-attr]
        holder.let_go(job_id)  # as if the holder died
    finally:
        holder.shutdown()
    job = _settled(hub, job_id)  # by a live server's recovery, or by this one
    worker.recover_orphans(hub)
    assert (job.status, job.error) == ("failed", worker.RESTARTED)


AUDIT_TABLES = ("audit_event", "audit_leaf", "audit_node", "audit_checkpoint", "audit_signing_key")


def test_the_application_role_cannot_touch_the_audit_tables_or_their_guards(deployment: Deployment) -> None:
    d = deployment
    refusals = []
    for table in AUDIT_TABLES:
        for statement in (
            f"DROP TRIGGER {table}_append_only ON {table}",
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
            f"ALTER TABLE {table} ADD COLUMN forged text",
            f"TRUNCATE {table}",
            f"DELETE FROM {table}",
        ):
            with d.connect("hygie") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            refusals.append(statement)
        with d.connect("hygie") as conn:
            column = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (table,),
            ).fetchone()
            assert column is not None, table
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                # granted (LOCK ... IN SHARE MODE needs it), refused by the trigger, which the role cannot drop
                conn.execute(f"UPDATE {table} SET {column[0]} = {column[0]}")
    for statement in (
        "SET session_replication_role = replica",  # would silence every trigger: superuser only
        "DROP TABLE alembic_version",
        "UPDATE alembic_version SET version_num = version_num",
        "CREATE TABLE forged (id int)",
        "DROP FUNCTION hygie_append_only() CASCADE",
    ):
        with d.connect("hygie") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # The migration role can (here in a transaction rolled back): it owns the schema.
    with d.connect("hygie_owner") as conn:
        conn.execute("DROP TRIGGER audit_event_append_only ON audit_event")
        conn.rollback()
    # The background process (the servers run none) checkpoints what the journey recorded, and stops cleanly.
    background = d.processes[-1]
    with d.connect("hygie") as conn:
        events = conn.execute("SELECT count(*) FROM audit_event").fetchone()
        deadline = time.monotonic() + PATIENCE
        while (conn.execute("SELECT max(size) FROM audit_checkpoint").fetchone() or (0,))[0] < (events or (0,))[0]:
            assert time.monotonic() < deadline and background.poll() is None, "no checkpoint of the journey"
            time.sleep(0.2)
    background.terminate()
    assert background.wait(timeout=PATIENCE) == 0
    # The journey above ran as the application role, and the record it left verifies.
    verified = subprocess.run([HYGIE, "audit", "verify"], env=d.env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr


def test_a_systemd_credential_is_a_private_enough_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    key = tmp_path / "master.key"
    subprocess.run([HYGIE, "keys", "new-key-file", str(key)], check=True, capture_output=True)
    credential = as_credential(key, tmp_path / "credentials")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(CustodyLocked, match="mode 0440"):  # group-readable anywhere else
        read_key_file(credential, data_dir)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credential.parent))
    assert read_key_file(credential, data_dir) == read_key_file(key, data_dir)
    credential.chmod(0o444)  # readable by others: refused even there
    with pytest.raises(CustodyLocked, match="mode 0444"):
        read_key_file(credential, data_dir)
    elsewhere = tmp_path / "elsewhere.key"  # only the credentials directory itself is trusted so
    shutil.copyfile(key, elsewhere)
    elsewhere.chmod(0o440)
    with pytest.raises(CustodyLocked, match="mode 0440"):
        read_key_file(elsewhere, data_dir)


def test_systemd_units_verify_and_start_commands_that_exist(tmp_path: Path) -> None:
    # The settings file every unit reads names real settings, and no secret.
    from hygie.config import Settings

    for line in (DEPLOY / "hygie.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name = line.split("=", 1)[0]
            known = name == "HYGIE_LOG_LEVEL" or name[6:].lower() in Settings.model_fields  # (read by hygie.cli)
            assert name.startswith("HYGIE_") and known, line
            assert not re.search("PASSPHRASE|PASSWORD|SECRET|KEY_FILE", name), line
    analyse = shutil.which("systemd-analyze")
    assert analyse, "systemd-analyze not found (Debian package systemd)"
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert units
    help_text = subprocess.run([HYGIE, "--help"], capture_output=True, text=True, check=True).stdout
    for unit in units:
        text = unit.read_text()
        for line in re.findall(r"^ExecStart=(.*)$", text, flags=re.MULTILINE):
            command = line.split()
            assert command[0] == "/opt/hygie/venv/bin/hygie", line
            assert re.search(rf"│ {command[1]}\s", help_text), f"{unit.name}: `hygie {command[1]}` does not exist"
            sub = subprocess.run([HYGIE, command[1], "--help"], capture_output=True, text=True)
            assert sub.returncode == 0, sub.stderr
            for option in (c for c in command[2:] if c.startswith("--")):
                assert option in sub.stdout, f"{unit.name}: `hygie {command[1]}` has no {option}"
        for secret in ("PASSPHRASE", "PASSWORD", "SECRET"):
            assert not re.search(rf"^(Environment|ExecStart)=.*{secret}", text, flags=re.MULTILINE | re.I), unit
        assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text and "PrivateTmp=yes" in text
        assert re.search(r"^User=hygie$", text, flags=re.MULTILINE) and "ReadWritePaths=/var/lib/hygie" in text
        assert "LoadCredential=master.key:/etc/hygie/master.key" in text  # the key: a credential, never a setting
        # systemd-analyze checks that the binary exists: point it at this environment's, name an instance.
        name = unit.name.replace("@.", "@8001.")
        (tmp_path / name).write_text(text.replace("/opt/hygie/venv/bin/hygie", str(HYGIE)))
        checked = subprocess.run([analyse, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True)
        assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr
