# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie analysis``: a thin client of the HTTP API (the server checks, runs, protects and records everything).

The token comes from ``HYGIE_TOKEN`` (a session or a data token of the project), the server from ``--server`` or
``HYGIE_SERVER``; nothing is read from the hub directly, so the client works from a researcher's own machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

analysis_app = typer.Typer(help="Analyses: submit to a project, follow jobs, download released outputs.",
                           no_args_is_help=True)  # fmt: skip

Server = Annotated[str, typer.Option("--server", envvar="HYGIE_SERVER", help="Base URL of the Hygie API.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
UNFINISHED = ("queued", "running")


def client(server: str) -> httpx.Client:
    """An authenticated client; tests replace this to talk to an in-process app."""
    token = os.environ.get("HYGIE_TOKEN")
    if not token:
        raise typer.BadParameter("set HYGIE_TOKEN to a token from POST /auth/login or POST /me/tokens")
    return httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=600)


def _call(server: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    http = client(server)
    try:
        response = http.request(method, path, **kwargs)
    finally:
        http.close()
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        typer.echo(f"error {response.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return response


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
        job = _call(server, "POST", f"/projects/{project}/analyses/aggregate", json=body).json()
    else:
        assert sql is not None
        job = _call(server, "POST", f"/projects/{project}/analyses/sql", json={"sql": sql.read_text("utf-8")}).json()
    while wait and job["status"] in UNFINISHED:
        time.sleep(poll)
        job = _call(server, "GET", f"/projects/{project}/analyses/{job['id']}").json()
    _print(job)
    if job["status"] == "refused":  # withheld is no error: an output awaiting checkers shows so too
        raise typer.Exit(1)


@analysis_app.command("jobs")
def jobs(project: Annotated[int, typer.Option("--project")], server: Server = DEFAULT_SERVER) -> None:
    """The project's analyses, newest first."""
    for job in _call(server, "GET", f"/projects/{project}/analyses").json():
        typer.echo(f"{job['id']:>6}  {job['kind']:<9}  {job['status']:<9}  {job['submitted_at']}")


@analysis_app.command("show")
def show(
    job: Annotated[int, typer.Argument()],
    project: Annotated[int, typer.Option("--project")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """One analysis, and its released output when there is one."""
    data = _call(server, "GET", f"/projects/{project}/analyses/{job}").json()
    _print(data)
    if data["status"] == "released":
        _print(_call(server, "GET", f"/projects/{project}/analyses/{job}/release").json()["rows"])


@analysis_app.command("download")
def download(
    job: Annotated[int, typer.Argument()],
    project: Annotated[int, typer.Option("--project")],
    format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output).")] = None,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Download a released output."""
    response = _call(server, "GET", f"/projects/{project}/analyses/{job}/download", params={"format": format})
    if out is None:
        sys.stdout.buffer.write(response.content)
    else:
        out.write_bytes(response.content)
        typer.echo(f"wrote {len(response.content)} bytes to {out}")
