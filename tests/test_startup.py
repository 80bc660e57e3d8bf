# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The command line starts at once: importing it, and printing its help, import none of the platform's heavy
libraries (they load where a command runs), and its lazily imported sub-CLIs behave as if added eagerly; opening a
hub whose database is up to date does not import Alembic.

Presence of modules, never time: timings belong to benchmarks/startup.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from typer.main import get_command
from typer.testing import CliRunner

import hygie.db
from hygie.cli import app
from hygie.cli_lazy import LazyGroup
from hygie.db import _script_heads

HEAVY = (
    "duckdb", "pyarrow", "pyspark", "fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg", "numpy", "scipy",
    "pandas", "sqlglot", "authlib", "httpx", "pydantic", "pydantic_settings", "structlog", "cryptography",
    "argon2", "prometheus_client", "hygie.config", "hygie.hub", "hygie.db", "hygie.audit", "hygie.governance",
)  # fmt: skip


def heavy_after(code: str) -> list[str]:
    """The heavy modules loaded in a fresh interpreter after running ``code`` (printed as the last line)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_and_printing_its_help_load_nothing_heavy() -> None:
    assert heavy_after("import hygie.cli") == []
    help_then_probe = (
        "from hygie.cli import app\n"
        "try:\n    app(['--help'], prog_name='hygie')\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code"
    )
    assert heavy_after(help_then_probe) == []


def test_lazy_sub_apps_list_their_own_help_and_run_as_if_added_eagerly() -> None:
    group = get_command(app)
    assert isinstance(group, LazyGroup)
    lazy = group.lazy_sub_apps
    assert {"audit", "analysis", "breach", "citizen-index", "vault", "witness", "outbox"} <= set(lazy)
    runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that no help line wraps
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0
    for name, sub in lazy.items():
        sub_app = sub.load()
        # The line shown by `hygie --help` is the sub-app's own help (no drift when one changes).
        assert sub.help == sub_app.info.help, name
        assert f" {name} " in listing.output and sub.help in listing.output
        # Resolving the name builds the real group, with every command of the sub-app.
        shown = runner.invoke(app, [name, "--help"])
        assert shown.exit_code == 0, shown.output
        assert sub.help in shown.output
        for command in sub_app.registered_commands:
            command_name = command.name or (command.callback.__name__.replace("_", "-") if command.callback else "")
            assert command_name in shown.output, (name, command_name)
    # Listing order: the registration order, lazy and eager sub-apps interleaved as declared in hygie/cli.py.
    names = list(group.list_commands(None))  # type: ignore[arg-type]  (the listing does not read the context)
    assert names.index("accounts") < names.index("audit") < names.index("projects") < names.index("analysis")
    # A walk of the command tree through `commands` (tests/portal/test_recording.py) sees every lazy sub-command.
    fresh = get_command(app)
    walked = {f"{name} {sub}" for name, command in fresh.commands.items() if hasattr(command, "commands")
              for sub in command.commands}  # type: ignore[attr-defined]  # fmt: skip
    assert {"audit verify", "breach import", "vault rebuild-pivot", "outbox print", "witness serve"} <= walked
    # A typo is still answered with the names it resembles, lazy ones included.
    typo = runner.invoke(app, ["audti"])
    assert typo.exit_code != 0 and "audit" in typo.output


def test_a_database_at_the_scripts_heads_opens_without_alembic(tmp_path: Path) -> None:
    """Opening a hub migrates its database; once it is at the heads, that costs no import of Alembic (0.4 s)."""
    config = Config()
    config.set_main_option("script_location", str(Path(hygie.db.__file__).parent / "migrations"))
    versions = Path(hygie.db.__file__).parent / "migrations" / "versions"
    assert _script_heads(versions) == set(ScriptDirectory.from_config(config).get_heads())

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate_then_probe = (
        "import sys\nfrom sqlalchemy import create_engine, inspect\nfrom hygie.db import migrate\n"
        f"engine = create_engine({url!r})\nmigrate(engine)\n"
        "print('alembic' in sys.modules, sorted(inspect(engine).get_table_names()))"
    )

    def run() -> tuple[bool, list[str]]:
        out = subprocess.run([sys.executable, "-c", migrate_then_probe], capture_output=True, text=True, check=True)
        alembic, tables = out.stdout.strip().splitlines()[-1].split(" ", 1)
        return alembic == "True", ast.literal_eval(tables)

    alembic, tables = run()  # a new database: Alembic builds the schema
    assert alembic and "audit_event" in tables and "alembic_version" in tables
    assert run() == (False, tables)  # at the heads: nothing to run, the same schema, and no Alembic


def test_postgres_driver_errors_are_still_classified_though_not_imported_at_start() -> None:
    """The portal's fault classifier no longer imports psycopg at start (SQLite never needs it); once the driver is
    loaded, its errors are told apart as before: the store failing (503) or the request's own fault."""
    import psycopg
    from sqlalchemy import exc as sa

    from hygie.portal.resilience.classes import Dependency
    from hygie.portal.resilience.faults import dependency_of

    assert dependency_of(psycopg.OperationalError("server closed the connection")) is Dependency.DATABASE
    assert dependency_of(psycopg.errors.AdminShutdown("terminating connection")) is Dependency.DATABASE
    assert dependency_of(psycopg.errors.UniqueViolation("duplicate key")) is None
    wrapped = sa.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))
    assert dependency_of(wrapped) is None
    refused = ValueError("refused")
    refused.__context__ = psycopg.errors.NumericValueOutOfRange("out of range")
    refused.__context__.__context__ = psycopg.OperationalError("gone")  # before it: the request's fault wins
    assert dependency_of(refused) is None
