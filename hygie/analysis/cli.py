# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie analysis``: a thin client of the HTTP API (the server checks, runs, protects and records everything).

The token comes from ``HYGIE_TOKEN`` (a session or a data token of the project), the server from ``--server`` or
``HYGIE_SERVER``; nothing is read from the hub directly, so the client works from a researcher's own machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hygie.apiclient import DEFAULT_SERVER, Server, call

analysis_app = typer.Typer(help="Analyses: submit to a project, follow jobs, download released outputs.",
                           no_args_is_help=True)  # fmt: skip

UNFINISHED = ("queued", "running")


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@analysis_app.command("submit")
def submit(
    project: Annotated[int, typer.Option("--project", help="Project id.")],
    spec: Annotated[Path | None, typer.Option("--spec", help="An aggregate spec (JSON file).")] = None,
    sql: Annotated[Path | None, typer.Option("--sql", help="A DuckDB SELECT (text file).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Poll until the job has finished.")] = True,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between polls.")] = 1.0,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Submit an aggregate spec or a SQL query; the server queues it. With --wait (the default), polls until it
    has finished, then prints the job (its status, release, error)."""
    if (spec is None) == (sql is None):
        raise typer.BadParameter("give exactly one of --spec FILE or --sql FILE")
    if spec is not None:
        body = json.loads(spec.read_text(encoding="utf-8"))
        job = call(server, "POST", f"/projects/{project}/analyses/aggregate", json=body).json()
    else:
        assert sql is not None
        job = call(server, "POST", f"/projects/{project}/analyses/sql", json={"sql": sql.read_text("utf-8")}).json()
    while wait and job["status"] in UNFINISHED:
        time.sleep(poll)
        job = call(server, "GET", f"/projects/{project}/analyses/{job['id']}").json()
    _print(job)
    if job["status"] == "refused":  # withheld is no error: an output awaiting checkers shows so too
        raise typer.Exit(1)


@analysis_app.command("jobs")
def jobs(project: Annotated[int, typer.Option("--project")], server: Server = DEFAULT_SERVER) -> None:
    """The project's analyses, newest first."""
    for job in call(server, "GET", f"/projects/{project}/analyses").json():
        typer.echo(f"{job['id']:>6}  {job['kind']:<9}  {job['status']:<9}  {job['submitted_at']}")


@analysis_app.command("show")
def show(
    job: Annotated[int, typer.Argument()],
    project: Annotated[int, typer.Option("--project")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """One analysis, and its released output when there is one."""
    data = call(server, "GET", f"/projects/{project}/analyses/{job}").json()
    _print(data)
    if data["status"] == "released":
        _print(call(server, "GET", f"/projects/{project}/analyses/{job}/release").json()["rows"])


@analysis_app.command("download")
def download(
    job: Annotated[int, typer.Argument()],
    project: Annotated[int, typer.Option("--project")],
    format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output).")] = None,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Download a released output."""
    response = call(server, "GET", f"/projects/{project}/analyses/{job}/download", params={"format": format})
    if out is None:
        sys.stdout.buffer.write(response.content)
    else:
        out.write_bytes(response.content)
        typer.echo(f"wrote {len(response.content)} bytes to {out}")
