"""The ``hygie`` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hygie.config import Settings, get_settings
from hygie.logging import configure

app = typer.Typer(help="Hygie: a sovereign platform for national health-insurance data.", no_args_is_help=True)
warehouse_app = typer.Typer(help="Inspect the warehouse (counts only, never values).", no_args_is_help=True)
keys_app = typer.Typer(help="Key custody.", no_args_is_help=True)
app.add_typer(warehouse_app, name="warehouse")
app.add_typer(keys_app, name="keys")

err = Console(stderr=True)
DEMO_PASSPHRASE = "hygie-demo-passphrase-not-for-production"  # noqa: S105  (demo only, said aloud)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _progress(console: Console, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
    )


def _open_hub(settings: Settings):  # type: ignore[no-untyped-def]
    from hygie.hub import Hub, HubNotInitialised
    from hygie.keys import CustodyLocked

    try:
        return Hub.open(settings)
    except (HubNotInitialised, CustodyLocked) as exc:
        raise _fail(str(exc)) from None


@app.callback()
def main() -> None:
    configure(os.environ.get("HYGIE_LOG_LEVEL", "WARNING"))


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
    hub.close()
    err.print(f"hub ready in {settings.data_dir.resolve()}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the delivery batches into.")],
    people: Annotated[int, typer.Option(min=1, help="Number of beneficiaries.")] = 20_000,
    years: Annotated[int, typer.Option(min=1, max=20, help="Years of care.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 1,
    start_year: Annotated[int, typer.Option(help="First year of care.")] = 2023,
) -> None:
    """Generate synthetic national claims as delivery batches (SNDS-shaped CSV + manifest)."""
    from hygie.synth import generate

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


@app.command()
def ingest(
    batch_dirs: Annotated[list[Path], typer.Argument(help="Batch folders, or folders of batch folders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")] = False,
) -> None:
    """Check, pseudonymise and store delivery batches: each batch is accepted whole or rejected whole."""
    from hygie.ingest.pipeline import expand_batches, ingest_batch, planned_rows

    settings = get_settings()
    hub = _open_hub(settings)
    batches = expand_batches(batch_dirs)
    results = []
    try:
        with _progress(err, disable=as_json and not sys.stderr.isatty()) as bar:
            total = bar.add_task("rows", total=sum(planned_rows(b) for b in batches) or None)
            for batch in batches:
                bar.update(total, description=batch.name)
                results.append(ingest_batch(hub, batch, progress=lambda n: bar.advance(total, n)))
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
    from hygie.warehouse.stats import collect

    hub = _open_hub(get_settings())
    try:
        stats = collect(hub)
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
    from hygie.keys import open_custody

    custody = open_custody(get_settings())
    table = Table("name", "purpose", "current", "versions", "destroyed")
    for k in custody.all_keys():
        table.add_row(
            k.name, str(k.purpose), str(k.current_version), str(list(k.versions)), str(list(k.destroyed_versions))
        )
    Console().print(table)


@keys_app.command("rotate")
def keys_rotate(name: str) -> None:
    """Add a new version of a key and make it current (older versions still decrypt)."""
    from hygie.keys import HUB_PSEUDONYM_KEY, VAULT_INDEX_KEY, KeyNotFound, open_custody

    if name in {HUB_PSEUDONYM_KEY, VAULT_INDEX_KEY}:
        raise _fail(
            f"{name} keys every stored pseudonym or vault index: rotating it needs a re-pseudonymisation of the "
            "warehouse and vault, which this version does not have yet; nothing was changed"
        )
    try:
        info = open_custody(get_settings()).rotate(name)
    except KeyNotFound as exc:
        raise _fail(str(exc)) from None
    err.print(f"{name}: version {info.current_version} is now current")


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
def demo(
    people: Annotated[int, typer.Option(help="Synthetic people.")] = 20_000,
    years: Annotated[int, typer.Option(help="Years of care.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    out: Annotated[Path, typer.Option(help="Where to write the synthetic deliveries.")] = Path("demo-deliveries"),
) -> None:
    """The whole platform on synthetic national data: init, synth, ingest, stats."""
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


if __name__ == "__main__":
    app()
