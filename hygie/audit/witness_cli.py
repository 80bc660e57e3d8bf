# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie witness``: run a tlog witness (c2sp.org/tlog-witness) for one or more logs, without a hub.

Meant for an outside institution (a data protection authority, a court registry): nothing here opens a hub,
a database or key custody. The witness key lives in a file of its own; the store is one JSON file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

witness_app = typer.Typer(help="Run a transparency-log witness (C2SP tlog-witness) that cosigns checkpoints.")

KeyFile = Annotated[Path, typer.Option(help="The witness's Ed25519 key (created, mode 0600, if absent).")]
Name = Annotated[str, typer.Option(help="The witness's name (a schema-less URL, e.g. witness.cnil.example/w1).")]


@witness_app.command()
def key(name: Name, key_file: KeyFile) -> None:
    """Print the witness's cosigner verifier key (creating the key if absent): give it to the logs you witness."""
    from hygie.audit.note import cosigner_key
    from hygie.audit.witness_server import load_or_create_key

    private = load_or_create_key(key_file, name)
    print(cosigner_key(name, private.public_key().public_bytes_raw()))


@witness_app.command()
def serve(
    name: Name,
    key_file: KeyFile,
    store: Annotated[Path, typer.Option(help="JSON file of the latest cosigned checkpoint per log.")],
    log: Annotated[
        list[str],
        typer.Option(help="A log's note verifier key (name+hash+key; its name is its origin). Repeat per log."),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8470,
    prefix: Annotated[str, typer.Option(help="Submission prefix of POST <prefix>/add-checkpoint.")] = "",
) -> None:
    """Serve POST <prefix>/add-checkpoint until interrupted."""
    import uvicorn

    from hygie.audit.note import NoteError, parse_verifier_key
    from hygie.audit.witness_server import CheckpointStore, Witness, create_app, load_or_create_key

    try:
        logs = {parse_verifier_key(v)[0]: v for v in log}
        private = load_or_create_key(key_file, name)
    except (NoteError, ValueError) as exc:
        print(f"error: {exc}")
        raise typer.Exit(2) from None
    witness = Witness(name, private, logs, CheckpointStore(store))
    print(f"witness {witness.verifier_key} on http://{host}:{port}{prefix}/add-checkpoint for {len(logs)} log(s)")
    # No X-Forwarded-For believed (uvicorn's default trusts any peer on 127.0.0.1): the client is the TCP peer.
    uvicorn.run(create_app(witness, prefix.rstrip("/")), host=host, port=port, log_level="info", proxy_headers=False)
