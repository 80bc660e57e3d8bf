# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The ``hygie`` command line."""

from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# Only what every command and `hygie --help` need is imported here; each command imports the rest where it runs,
# and the sub-CLIs are imported when their name is used (hygie/cli_lazy.py): `hygie --help` stays instant.
# tests/test_startup.py fails if importing this module pulls in SQLAlchemy, pydantic, DuckDB, FastAPI...
from hygie.cli_lazy import add_lazy_typer, lazy_typer
from hygie.console import err
from hygie.console import fail as _fail
from hygie.console import open_hub as _open_hub

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from hygie.config import Settings
    from hygie.hub import Hub

app = lazy_typer(help="Hygie: a sovereign platform for national health-insurance data.", no_args_is_help=True)
warehouse_app = typer.Typer(help="Inspect the warehouse (counts only, never values).", no_args_is_help=True)
keys_app = typer.Typer(help="Key custody.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts: bootstrap a hub, create staff, enrol citizens.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (read-only here; decisions are taken through the API).", no_args_is_help=True)
app.add_typer(warehouse_app, name="warehouse")
app.add_typer(keys_app, name="keys")
app.add_typer(accounts_app, name="accounts")
add_lazy_typer(app, "audit", "hygie.audit.cli:audit_app", "The tamper-evident audit log: verify, checkpoints, proofs.")
app.add_typer(projects_app, name="projects")
add_lazy_typer(
    app,
    "analysis",
    "hygie.analysis.cli:analysis_app",
    "Analyses: submit to a project, follow jobs, download released outputs.",
)
add_lazy_typer(
    app, "breach", "hygie.breach.cli:breach_app", "Breach response: import a leaked file, match, notify (counts only)."
)
add_lazy_typer(
    app,
    "citizen-index",
    "hygie.governance.citizen_index_cli:citizen_index_app",
    "The index behind citizens' reads: reimbursements and who used my data.",
)
add_lazy_typer(app, "vault", "hygie.identity.pivot_cli:vault_app", "The identity vault's derived indexes.")
add_lazy_typer(
    app,
    "witness",
    "hygie.audit.witness_cli:witness_app",
    "Run a transparency-log witness (C2SP tlog-witness) that cosigns checkpoints.",
)
add_lazy_typer(
    app,
    "outbox",
    "hygie.governance.letters_cli:outbox_app",
    "Citizens' letters by post: list the outbox, print it for the mail room.",
)
add_lazy_typer(
    app,
    "control",
    "hygie.control.cli:control_app",
    "Control of spending: leads found by rules, with their evidence; the improper-payment rate.",
)


def get_settings() -> Settings:
    """The settings (imported here, not at module top: pydantic is not needed to print help)."""
    from hygie.config import get_settings as settings

    return settings()


DEMO_PASSPHRASE = "hygie-demo-passphrase-not-for-production"  # noqa: S105  (demo only, said aloud)


def _progress(console: Console, disable: bool = False) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
    )


def _record(hub: Hub, action: str, **fields: Any) -> None:
    """Put a console act on the record before its result is shown."""
    from hygie.audit import record_now

    record_now(hub.session, actor="console", action=action, **fields)


@app.callback()
def main() -> None:
    from hygie.logging import configure

    configure(os.environ.get("HYGIE_LOG_LEVEL", "WARNING"))


def _backup_commands() -> None:
    from hygie.backup.commands import backup, restore

    app.command("backup")(backup)
    app.command("restore")(restore)


_backup_commands()


@app.command()
def init() -> None:
    """Create a hub in HYGIE_DATA_DIR (default ./hygie-data): keystore, database, warehouse."""
    from hygie.hub import Hub
    from hygie.keys import CustodyLocked

    settings = get_settings()
    try:
        hub = Hub.init(settings)
    except CustodyLocked as exc:
        raise _fail(str(exc)) from None
    _record(hub, "hub.init")
    hub.close()
    err.print(f"hub ready in {settings.data_dir.resolve()}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the delivery batches into.")],
    people: Annotated[int, typer.Option(min=1, help="Number of beneficiaries.")] = 20_000,
    years: Annotated[int, typer.Option(min=1, max=20, help="Years of care.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 1,
    start_year: Annotated[int, typer.Option(help="First year of care.")] = 2023,
    anomalies: Annotated[
        list[str] | None,
        typer.Option(
            "--anomaly",
            help="Inject a known anomaly, KIND=RATE (after_death, volume, duplicate, outlier, outlier_combined, "
            "paper; 'all' for every kind at its default rate); repeatable. Needs --truth.",
        ),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Where to write what was injected (outside the delivery folder).")
    ] = None,
) -> None:
    """Generate synthetic national claims as delivery batches (SNDS-shaped CSV + manifest)."""
    from hygie.synth import generate
    from hygie.synth.anomalies import AnomalyError, parse_rates

    try:
        rates = parse_rates(anomalies or [])
    except AnomalyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--anomaly") from None
    if rates and truth is None:
        raise typer.BadParameter("injected anomalies need --truth (a file outside the delivery)", param_hint="--truth")

    with _progress(err) as bar:
        task = bar.add_task("synthetic people", total=people)
        summary = generate(
            out,
            people=people,
            years=years,
            seed=seed,
            start_year=start_year,
            progress=lambda done, _total: bar.update(task, completed=done),
        )
    err.print(f"{summary.people} people ({summary.deaths} deaths), {len(summary.batches)} batches in {out}")
    for table, rows in summary.rows.items():
        err.print(f"  {table}: {rows:,} rows")
    if rates and truth is not None:
        from hygie.synth.anomalies import inject

        try:
            injected = inject(out, truth, seed=seed, rates=rates)
        except AnomalyError as exc:
            raise typer.BadParameter(str(exc), param_hint="--truth") from None
        counts = ", ".join(f"{kind} {n}" for kind, n in injected.counts.items())
        err.print(f"injected anomalies ({counts}); truth in {injected.truth}")


@app.command()
def ingest(
    batch_dirs: Annotated[list[Path], typer.Argument(help="Batch folders, or folders of batch folders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")] = False,
) -> None:
    """Check, pseudonymise and store delivery batches: each batch is accepted whole or rejected whole."""
    from hygie.ingest.pipeline import expand_batches, ingest_batches, planned_rows

    settings = get_settings()
    hub = _open_hub(settings)
    batches = expand_batches(batch_dirs)
    try:
        with _progress(err, disable=as_json and not sys.stderr.isatty()) as bar:
            total = bar.add_task("rows", total=sum(planned_rows(b) for b in batches) or None)
            results = ingest_batches(
                hub,
                batches,
                progress=lambda n: bar.advance(total, n),
                starting=lambda batch: bar.update(total, description=batch.name),
            )
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps({"batches": [r.as_dict() for r in results]}, ensure_ascii=False, indent=1))
    else:
        for r in results:
            colour = {"accepted": "green", "duplicate": "yellow", "rejected": "red"}[r.status]
            rows = sum(r.rows.values())
            err.print(f"[{colour}]{r.status}[/] {r.batch_id or r.batch_dir.name}: {rows:,} rows")
            for e in r.errors:
                err.print(f"    {e}", markup=False, highlight=False)
            if r.errors_not_shown:
                err.print(f"    … and {r.errors_not_shown} more errors")
            if r.note:
                err.print(f"    {r.note}")
    if any(r.status == "rejected" for r in results):
        raise typer.Exit(1)


@warehouse_app.command("stats")
def warehouse_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Row counts per table, identities in the vault, batches and files (no values)."""
    from rich.console import Console
    from rich.table import Table

    from hygie.warehouse.stats import collect

    hub = _open_hub(get_settings())
    try:
        stats = collect(hub)
        _record(hub, "warehouse.stats")
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps(stats, indent=1))
        return
    table = Table("table", "rows", title="Hygie warehouse")
    for name, rows in stats["tables"].items():  # type: ignore[attr-defined]
        table.add_row(name, f"{rows:,}")
    Console().print(table)
    Console().print(
        f"identities in the vault: {stats['identities']:,}; batches: {stats['batches']}; "
        f"files: {stats['files']} ({stats['bytes']:,} bytes, all encrypted)"
    )


@warehouse_app.command("verify")
def warehouse_verify() -> None:
    """Check that every catalogued Parquet file is present and unaltered (SHA-256 against the catalog)."""
    hub = _open_hub(get_settings())
    try:
        with hub.session() as session:
            problems = hub.warehouse.verify(session)
        _record(hub, "warehouse.verify", outcome="ok" if not problems else "failed", detail={"problems": len(problems)})
    finally:
        hub.close()
    for problem in problems:
        err.print(f"[red]{problem}[/]")
    if problems:
        raise typer.Exit(1)
    err.print("every catalogued file is present and unaltered")


@keys_app.command("list")
def keys_list() -> None:
    """The keys in custody: name, purpose, versions (never material)."""
    from rich.console import Console
    from rich.table import Table

    hub = _open_hub(get_settings())
    custody = hub.custody
    try:
        _record(hub, "key.list")
    finally:
        hub.close()
    table = Table("name", "purpose", "current", "versions", "destroyed")
    for k in custody.all_keys():
        table.add_row(
            k.name, str(k.purpose), str(k.current_version), str(list(k.versions)), str(list(k.destroyed_versions))
        )
    Console().print(table)


@keys_app.command("rotate")
def keys_rotate(name: str) -> None:
    """Add a new version of a key and make it current (older versions still decrypt); for hub-pseudonym, also
    re-pseudonymise the warehouse, membership files and citizen index under it (resumes after a crash)."""
    from hygie.keys import HUB_PSEUDONYM_KEY, KeyNotFound

    if name == HUB_PSEUDONYM_KEY:
        _rotate_hub_pseudonym()
        return
    hub = _open_hub(get_settings())
    try:
        refusal = _not_rotatable(hub, name)
        if refusal is not None:
            _record(hub, "key.rotate", object=f"key:{name}", outcome="denied", detail={"reason": refusal[0]})
            raise _fail(f"{name}: {refusal[1]}; nothing was changed")
        info = hub.custody.rotate(name)
    except KeyNotFound as exc:
        _record(hub, "key.rotate", object=f"key:{name}", outcome="failed", detail={"reason": "no such key"})
        raise _fail(str(exc)) from None
    else:
        _record(hub, "key.rotate", object=f"key:{name}", detail={"version": info.current_version})
    finally:
        hub.close()
    err.print(f"{name}: version {info.current_version} is now current")


ROTATES_SAFELY = frozenset({"citizen-index", "throttle", "control-contact"})
"""PSEUDONYM keys whose readers know every version (citizen-index: each index row names its version; rebuild with
`hygie citizen-index rebuild --from-scratch` to drop the old) or that key nothing kept (rate limits, a control run's
contact rings)."""


def _not_rotatable(hub: Hub, name: str) -> tuple[str, str] | None:
    """Why rotating ``name`` on its own would break what it keys, or None. A WRAP key rotates safely (every live
    version still unwraps); a PSEUDONYM key whose MACs are stored and looked up under the current version does not:
    the stored ones would silently stop matching (an objector back in a live view's queries, a project's released
    tables re-noised, people no longer found)."""
    from hygie.keys import VAULT_INDEX_KEY, KeyPurpose

    info = hub.custody.info(name)  # KeyNotFound for an unknown name
    if info.purpose is not KeyPurpose.PSEUDONYM or name in ROTATES_SAFELY:
        return None
    if name == VAULT_INDEX_KEY:
        return "needs re-indexing", (
            "it keys every blind index of the vault and of the tables that find a person by it: rotating it needs a "
            "re-indexing this version does not have"
        )
    if name.startswith("project-"):
        return "project key", (
            "a project's pseudonyms and record keys stay the same for the project's life (its views, the noise of "
            "its released tables and its opt-out filtering depend on them); they end with the project"
        )
    return "stored MACs", (
        "values keyed with it are stored and looked up under its current version (identity pivots, breach "
        "blocking keys, letter codes, the metadata seal): a new version would stop them matching"
    )


def _rotate_hub_pseudonym() -> None:
    """Re-pseudonymise the hub under a new version of its pseudonym key (hygie.governance.pseudonym_rotation)."""
    from rich.progress import Progress

    from hygie.governance.pseudonym_rotation import RotationError, rotate

    hub = _open_hub(get_settings())
    try:
        with Progress(console=err, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(f"{stage}: files", total=total)
                bar.update(tasks[stage], completed=done, total=total)

            result = rotate(hub, actor="console", progress=progress)
    except RotationError as exc:
        _record(hub, "key.pseudonym.rotate", outcome="failed", detail={"reason": str(exc)[:200]})
        raise _fail(str(exc)) from None
    except Exception as exc:
        # Recorded by kind only (a driver's message may quote a value); running the command again resumes.
        _record(hub, "key.pseudonym.rotate", outcome="failed", detail={"reason": type(exc).__name__})
        raise _fail(
            f"the rotation stopped ({type(exc).__name__}); nothing readers see changed unless it had switched: "
            "run `hygie keys rotate hub-pseudonym` again to go on"
        ) from exc
    finally:
        hub.close()
    if result.from_version == result.to_version:
        err.print(f"the rotation to version {result.to_version} had switched before it stopped: it is now finished")
    else:
        err.print(
            f"hub-pseudonym: version {result.to_version} is now active ({result.warehouse_files} warehouse files "
            f"and {result.membership_files} membership files re-pseudonymised for {result.people} people, "
            f"{result.seconds:.1f} s); the citizen index was rebuilt"
        )
    if result.views_on_older_versions:
        err.print(
            f"{result.views_on_older_versions} ready project views were built through an older version, which stays "
            "in custody for them; once they are rebuilt or closed, destroy it: "
            f"`hygie keys destroy hub-pseudonym --version {result.from_version}`"
        )


LOCAL_SHREDDING_LIMIT = (
    "with the local keystore, a copy of keys/keystore.json taken before now (a backup, a stolen disk) still "
    "holds this key, sealed under the same master key: rotate the master key (`hygie keys rotate-master`) so that "
    "old copies need the old passphrase or key file, and destroy those; only the PKCS#11 backend (an HSM) makes "
    "destruction hold against every copy"
)


@keys_app.command("destroy")
def keys_destroy(
    name: str,
    version: Annotated[int | None, typer.Option(help="Destroy only this version (default: every version).")] = None,
) -> None:
    """Destroy a key (every version, or one): irreversible crypto-shredding of what it protects."""
    from hygie.keys import HUB_PSEUDONYM_KEY, VAULT_INDEX_KEY, VAULT_KEY, WAREHOUSE_KEY, KeyNotFound

    hub = _open_hub(get_settings())
    try:
        if name in {WAREHOUSE_KEY, VAULT_KEY, HUB_PSEUDONYM_KEY, VAULT_INDEX_KEY} and version is None:
            _record(hub, "key.destroy", object=f"key:{name}", outcome="denied", detail={"reason": "hub key"})
            raise _fail(f"{name} is one of the hub's own keys: destroying it would shred the whole hub; nothing done")
        guard: AbstractContextManager[None] = nullcontext()
        if name == HUB_PSEUDONYM_KEY and version is not None:
            from hygie.governance.pseudonym_rotation import rotation_lock, versions_in_use

            guard = rotation_lock(hub)  # no rotation adds its version between the check and the destroy
        try:
            with guard:
                if name == HUB_PSEUDONYM_KEY and version is not None:
                    with hub.session() as session:
                        needed = version in versions_in_use(session)
                    if needed:
                        _record(hub, "key.destroy", object=f"key:{name}", outcome="denied", detail={"reason": "in use"})
                        raise _fail(
                            f"version {version} of {name} is still needed (the active version, a rotation's target, "
                            "or the version a ready project view was built through); nothing done"
                        )
                info = hub.custody.destroy(name, version)
        except KeyNotFound as exc:
            _record(hub, "key.destroy", object=f"key:{name}", outcome="failed", detail={"reason": "no such key"})
            raise _fail(str(exc)) from None
        _record(
            hub,
            "key.destroy",
            object=f"key:{name}",
            detail={"version": version, "backend": hub.settings.key_backend, "live": info.current_version},
        )
    finally:
        hub.close()
    err.print(f"{name}: {'version ' + str(version) if version else 'every version'} destroyed")
    if hub.settings.key_backend == "pkcs11":
        err.print("the token's KEK was rotated and the old one destroyed: no earlier copy of the keystore opens it")
    else:
        err.print(f"[yellow]limit:[/] {LOCAL_SHREDDING_LIMIT}")


@keys_app.command("rotate-master")
def keys_rotate_master(
    new_key_file: Annotated[
        Path | None, typer.Option(help="Local keystore: the new master key file (mode 0600, outside the data dir).")
    ] = None,
) -> None:
    """Rotate the master key: every live key re-wrapped, no data touched (HSM: a new KEK in the token; local
    keystore: a new passphrase from HYGIE_NEW_KEY_PASSPHRASE, or --new-key-file)."""
    from rich.progress import Progress

    from hygie.keys import CustodyLocked
    from hygie.keys.rotation import rotate_master

    settings = get_settings()
    hub = _open_hub(settings)
    new_passphrase = os.environ.get("HYGIE_NEW_KEY_PASSPHRASE") or None
    try:
        if settings.key_backend != "pkcs11" and not new_passphrase and new_key_file is None:
            _record(hub, "key.master.rotate", outcome="failed", detail={"reason": "no new master key"})
            raise _fail("give the new master key: HYGIE_NEW_KEY_PASSPHRASE, or --new-key-file PATH; nothing changed")
        _record(hub, "key.master.rotate.start", detail={"backend": settings.key_backend})
        try:
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("re-wrapping keys", total=None)
                result = rotate_master(
                    hub.custody,
                    new_passphrase=new_passphrase,
                    new_key_file=new_key_file,
                    data_dir=settings.data_dir,
                    kdf=(settings.kdf_memory_kib, settings.kdf_iterations, settings.kdf_lanes),
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        except CustodyLocked as exc:
            _record(hub, "key.master.rotate", outcome="failed", detail={"reason": str(exc)[:200]})
            raise _fail(str(exc)) from None
        _record(
            hub,
            "key.master.rotate",
            detail={
                "backend": result.backend,
                "keys_rewrapped": result.keys_rewrapped,
                "kek_generation": result.new_generation,
                "seconds": round(result.seconds, 3),
            },
        )
    finally:
        hub.close()
    err.print(f"master key rotated: {result.keys_rewrapped} key versions re-wrapped in {result.seconds:.1f} s")
    if result.backend == "local":
        err.print(
            "set HYGIE_KEY_PASSPHRASE (or HYGIE_KEY_FILE) to the new master key before the next start; copies of "
            "the keystore taken before now still open with the old one"
        )


@keys_app.command("new-key-file")
def keys_new_key_file(path: Path) -> None:
    """Write a new random master key file (mode 0600); keep it apart from the data dir."""
    from hygie.keys.local import write_key_file

    try:
        write_key_file(path)
    except FileExistsError:
        raise _fail(f"{path} exists; a key file is never overwritten") from None
    err.print(f"wrote {path}; set HYGIE_KEY_FILE={path} before `hygie init`")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (PostgreSQL only: SQLite serves one process). With more than "
            "one, the background tasks run once, in this supervising process.",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from hygie.portal.app import create_app
    from hygie.portal.resilience import uvicorn_options

    settings = get_settings()
    if workers > 1 and not settings.database.startswith("postgresql"):
        # A process starting later would take the jobs another one runs for orphans (hygie/analysis/worker.py).
        raise _fail("--workers above 1 needs PostgreSQL (HYGIE_DATABASE_URL): SQLite serves one process")
    if workers > 1 and settings.metrics_port is not None:
        # Each process has its own metrics, on a port of its own: one `hygie serve` unit per port instead.
        raise _fail("--workers above 1 cannot share HYGIE_METRICS_PORT; run one `hygie serve` per port instead")
    hub = _open_hub(settings)
    _record(hub, "service.start", detail={"host": host, "port": port, "workers": workers})
    err.print(f"Hygie API on http://{host}:{port}/docs" + (f" ({workers} processes)" if workers > 1 else ""))
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(hub.settings),
        **proxy_options(hub.settings),
    )
    if workers == 1:
        try:
            uvicorn.run(create_app(hub), **options)
        finally:
            hub.close()
        return
    stop_background = None
    if settings.serve_background_tasks:  # once for the hub, here; the server processes leave them to this one
        from hygie.portal.background import start_background

        stop_background = start_background(hub)
    os.environ["HYGIE_SERVE_BACKGROUND_TASKS"] = "false"  # read by each server process as it starts
    try:
        uvicorn.run("hygie.portal.app:app_from_environment", factory=True, workers=workers, **options)
    finally:
        if stop_background is not None:
            stop_background()
        hub.close()


@app.command()
def background() -> None:
    """Run the hub's background tasks without serving: audit checkpoints and witnesses, DPO alerts, the end of
    projects past their term (for `hygie serve` processes started with HYGIE_SERVE_BACKGROUND_TASKS=false)."""
    import signal
    import threading

    from hygie.portal.background import start_background

    hub = _open_hub(get_settings())
    _record(hub, "service.start", detail={"background": True})
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stop = start_background(hub)
    err.print("Hygie background tasks running (checkpoints, alerts, project sweep); SIGTERM stops them")
    try:
        stopping.wait()
    finally:
        stop()  # a last checkpoint for whatever was recorded until now
        hub.close()


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-For/-Proto: off unless ``forwarded_allow_ips`` names the reverse proxies
    to believe. uvicorn's default believes any peer on 127.0.0.1, so behind a same-host TCP pass-through every
    client would choose its own source address, and every per-source limit would fall."""
    if not settings.forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


def _password(value: str | None, label: str) -> str:
    if value:
        return value
    return str(typer.prompt(f"password for {label}", hide_input=True, confirmation_prompt=True))


def _print_totp(username: str, uri: str | None) -> None:
    if uri:
        err.print(f"  {username}: second factor (add to an authenticator app, shown once):")
        typer.echo(f"  {uri}")


@accounts_app.command("bootstrap")
def accounts_bootstrap(
    operator: Annotated[str, typer.Option(help="Username of the first operator.")],
    dpo: Annotated[str, typer.Option(help="Username of the first data protection officer.")],
    operator_password: Annotated[
        str | None, typer.Option(envvar="HYGIE_OPERATOR_PASSWORD", help="Prompted for when not given.")
    ] = None,
    dpo_password: Annotated[
        str | None, typer.Option(envvar="HYGIE_DPO_PASSWORD", help="Prompted for when not given.")
    ] = None,
) -> None:
    """Create the first operator and the first DPO of a new hub (refused once any staff account exists)."""
    from sqlalchemy import func, select

    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.errors import Conflict, GovernanceError
    from hygie.governance.models import Account
    from hygie.governance.policy import Role

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "account.bootstrap") as session:
            staff = session.scalar(select(func.count()).select_from(Account).where(Account.role != "citizen"))
            if staff:
                raise Conflict(
                    "this hub already has staff accounts; create more through the DPO (API) or `accounts create`"
                )
            accounts = Accounts(session, hub.custody, hub.settings)
            made = [
                accounts.create(CONSOLE, username=operator, role=Role.OPERATOR,
                                password=_password(operator_password, operator)),
                accounts.create(CONSOLE, username=dpo, role=Role.DPO, password=_password(dpo_password, dpo)),
            ]  # fmt: skip
    except GovernanceError as exc:
        raise _fail(exc.message) from None
    finally:
        hub.close()
    for created in made:
        err.print(f"created {created.account.role} {created.account.username} (account {created.account.id})")
        _print_totp(created.account.username, created.totp_uri)


@accounts_app.command("create")
def accounts_create(
    username: str,
    role: Annotated[str, typer.Option(help="researcher, reviewer, dpo, operator or auditor.")],
    organisation: Annotated[str | None, typer.Option(help="The person's organisation.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="HYGIE_NEW_PASSWORD", help="Prompted for if neither it nor --email is given.")
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            help="The holder's work e-mail address: instead of a password, mail them a one-time enrolment code "
            "(the console then never sees their credentials)."
        ),
    ] = None,
) -> None:
    """Create a staff account at the console (recorded as a console act)."""
    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.errors import GovernanceError
    from hygie.governance.policy import Role

    if role not in {r.value for r in Role} - {"citizen"}:
        raise _fail(f"unknown staff role {role!r}; citizens enrol with `accounts enrol-citizen`")
    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "account.create") as session:
            created = Accounts(session, hub.custody, hub.settings).create(
                CONSOLE, username=username, role=Role(role), organisation=organisation, email=email,
                password=None if email and not password else _password(password, username),
            )  # fmt: skip
    except GovernanceError as exc:
        raise _fail(exc.message) from None
    finally:
        hub.close()
    err.print(f"created {role} {username} (account {created.account.id}, {created.account.status})")
    _print_totp(username, created.totp_uri)
    _print_mail(created.enrolment_mail, created.account.id)


def _print_mail(status: str | None, account_id: int) -> None:
    if status == "sent":
        err.print("  enrolment code mailed to the holder")
    elif status == "failed":
        err.print(f"  the mail server refused the enrolment mail; retry: hygie accounts resend-enrolment {account_id}")


@accounts_app.command("confirm")
def accounts_confirm(account_id: int) -> None:
    """Confirm, as the second person, the creation of a staff account made through the API. The holder's
    work e-mail address is read from standard input (as the organisation's directory lists it); it must match."""
    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.errors import GovernanceError

    email = typer.prompt("holder's work e-mail") if sys.stdin.isatty() else sys.stdin.readline().strip()
    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "account.confirm", object=f"account:{account_id}") as session:
            done = Accounts(session, hub.custody, hub.settings).confirm(CONSOLE, account_id, email=email)
    except GovernanceError as exc:
        raise _fail(exc.message) from None
    finally:
        hub.close()
    err.print(f"confirmed account {account_id}")
    _print_mail(done.enrolment_mail, account_id)


@accounts_app.command("resend-enrolment")
def accounts_resend_enrolment(account_id: int) -> None:
    """Mail a new enrolment code to the holder of an account waiting for enrolment (the old one stops working)."""
    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.errors import GovernanceError

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "account.enrolment_mail", object=f"account:{account_id}") as session:
            done = Accounts(session, hub.custody, hub.settings).resend_enrolment(CONSOLE, account_id)
    except GovernanceError as exc:
        raise _fail(exc.message) from None
    finally:
        hub.close()
    _print_mail(done.enrolment_mail, account_id)


@accounts_app.command("enrol-citizen")
def accounts_enrol_citizen(
    username: str,
    last_name: Annotated[str, typer.Option(help="Family name as held by the insurer.")],
    birth_date: Annotated[str, typer.Option(help="YYYY-MM-DD.")],
    password: Annotated[
        str | None, typer.Option(envvar="HYGIE_NEW_PASSWORD", help="Prompted for if not given.")
    ] = None,
) -> None:
    """The insurer's counter: enrol a citizen whose identity an agent checked in person (an identity document),
    against the identity vault. Not reachable over HTTP, where a citizen asks for an activation letter by post. The
    NIR is read from standard input (never an argument, so it stays out of shell history and process lists)."""
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.citizens import Citizens
    from hygie.governance.errors import GovernanceError

    nir = typer.prompt("NIR", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline().strip()
    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "citizen.enrol") as session:
            created = Citizens(hub, session).enrol(
                nir=nir, last_name=last_name, birth_date=birth_date, username=username,
                password=_password(password, username),
            )  # fmt: skip
    except GovernanceError as exc:
        raise _fail(exc.message) from None
    finally:
        hub.close()
    err.print(f"enrolled citizen {username} (account {created.account.id})")


@accounts_app.command("list")
def accounts_list() -> None:
    """Staff accounts: id, username, role, organisation, standing (citizens are not listed)."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from hygie.audit import record
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.models import Account

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "account.list") as session:
            rows = session.scalars(select(Account).where(Account.role != "citizen").order_by(Account.id)).all()
            record(session, actor=CONSOLE.ref, action="account.list", detail={"count": len(rows)})
    finally:
        hub.close()
    table = Table("id", "username", "role", "organisation", "standing", "created by", "confirmed by")
    for a in rows:
        table.add_row(str(a.id), a.username, a.role, a.organisation or "", "disabled" if a.disabled else a.status,
                      a.created_by, a.confirmed_by or "")  # fmt: skip
    Console().print(table)


@accounts_app.command("disable")
def accounts_disable(account_id: int) -> None:
    """Disable an account (its sessions and tokens stop working at once)."""
    _set_disabled(account_id, True)


@accounts_app.command("enable")
def accounts_enable(account_id: int) -> None:
    """Enable an account again and clear its lock."""
    _set_disabled(account_id, False)


def _set_disabled(account_id: int, disabled: bool) -> None:
    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.errors import GovernanceError

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "account.disable" if disabled else "account.enable") as session:
            Accounts(session, hub.custody, hub.settings).set_disabled(CONSOLE, account_id, disabled)
    except GovernanceError as exc:
        raise _fail(exc.message) from None
    finally:
        hub.close()
    err.print(f"account {account_id} {'disabled' if disabled else 'enabled'}")


@projects_app.command("list")
def projects_list() -> None:
    """Projects: id, title, purpose, status, expiry (requests only, never data)."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from hygie.audit import record
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.models import Project

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "project.list") as session:
            rows = session.scalars(select(Project).order_by(Project.id)).all()
            record(session, actor=CONSOLE.ref, action="project.list", detail={"count": len(rows)})
    finally:
        hub.close()
    table = Table("id", "title", "purpose", "status", "expires")
    for p in rows:
        table.add_row(str(p.id), p.title, p.purpose, p.status, p.expires_at.date().isoformat() if p.expires_at else "")
    Console().print(table)


@projects_app.command("sweep")
def projects_sweep() -> None:
    """End every project whose term has passed: its key and view are destroyed."""
    from hygie.audit import record
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.projects import Projects

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "project.sweep") as session:
            ended = Projects(hub, session).expire_due(CONSOLE)
            record(session, actor=CONSOLE.ref, action="project.sweep", detail={"ended": ended})
    finally:
        hub.close()
    err.print(f"{len(ended)} project(s) expired: {ended}" if ended else "no project has passed its term")


@projects_app.command("budget-check")
def projects_budget_check() -> None:
    """Rebuild every privacy budget from the audit log alone and compare it with the ledger; exit 1 on a difference
    (a balance changed by hand, a budget without its opening event)."""
    from sqlalchemy import select

    from hygie.audit import Outcome, record
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.privacy import PrivacyBudget, check_replay

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "project.budget_check") as session:
            problems = check_replay(session)
            budgets = len(session.scalars(select(PrivacyBudget.id)).all())
            record(session, actor=CONSOLE.ref, action="project.budget_check",
                   outcome=Outcome.FAILED if problems else Outcome.OK,
                   detail={"budgets": budgets, "problems": len(problems)})  # fmt: skip
    finally:
        hub.close()
    if problems:
        raise _fail("the privacy ledger differs from its replay from the audit log:\n" + "\n".join(problems), 1)
    err.print(f"{budgets} privacy budget(s): the ledger matches its replay from the audit log")


@app.command()
def demo(
    people: Annotated[int, typer.Option(help="Synthetic people.")] = 20_000,
    years: Annotated[int, typer.Option(help="Years of care.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    out: Annotated[Path, typer.Option(help="Where to write the synthetic deliveries.")] = Path("demo-deliveries"),
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the portal at the end.")] = True,
    port: Annotated[int, typer.Option(help="Port of the portal.")] = 8000,
) -> None:
    """The whole platform on synthetic national data: init, synth, ingest, stats, demo accounts and a reviewed
    project, then the portal on localhost."""
    from rich.console import Console
    from rich.table import Table

    if not os.environ.get("HYGIE_KEY_PASSPHRASE") and not os.environ.get("HYGIE_KEY_FILE"):
        os.environ["HYGIE_KEY_PASSPHRASE"] = DEMO_PASSPHRASE
        err.print("[yellow]demo:[/] using a built-in demo passphrase; never do this with real data")
    init()
    if not any(out.glob("*/manifest.json")):
        synth(out=out, people=people, years=years, seed=seed, start_year=2023)
    else:
        err.print(f"reusing the deliveries already in {out}")
    try:
        ingest([out], as_json=False)
    except typer.Exit as exc:
        if exc.exit_code:
            raise
    warehouse_stats(as_json=False)
    from hygie.demo import DEMO_PASSWORD, set_up

    hub = _open_hub(get_settings())
    try:
        report = set_up(hub, out)
        _record(hub, "demo.setup", detail={"project": report.project_id})
    finally:
        hub.close()
    if report.approval_to_view_seconds is not None:
        err.print(
            f"demo project {report.project_id}: second approval to a queryable view in "
            f"{report.approval_to_view_seconds:.1f} s ({report.view_people:,} people)"
        )
    if report.breach_people is not None:
        err.print(
            f"demo breach: {report.breach_people} people notified (citoyen1 among them); the anonymous check at "
            "/verification-fuite answers yes for the NIRs at the top of the demo's IR_BEN_R.csv"
        )
    table = Table("account", "role", title=f"Demo accounts (password: {DEMO_PASSWORD})")
    for username, role in report.accounts.items():
        table.add_row(username, role)
    Console(stderr=True).print(table)
    err.print("staff sign in with a second factor: `hygie demo-code USERNAME` prints a current code (demo hubs only)")
    if serve_after:
        serve(host="127.0.0.1", port=port)


@app.command("demo-code")
def demo_code(username: str) -> None:
    """Print a current second-factor code of a demo staff account (only on a hub made by `hygie demo`)."""
    from hygie.demo import current_code

    hub = _open_hub(get_settings())
    try:
        code = current_code(hub, username)
        _record(hub, "demo.code", object=f"username:{username}")
    except LookupError as exc:
        _record(hub, "demo.code", outcome="denied", detail={"reason": "not a demo hub or not a demo account"})
        raise _fail(str(exc)) from None
    finally:
        hub.close()
    typer.echo(code)


if __name__ == "__main__":
    app()
