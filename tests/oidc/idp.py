# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A real OpenID Connect provider for the tests: panva's certified ``oidc-provider`` (npm), run by node on loopback.

``tests/oidc/provider/`` holds the provider script and its locked npm dependencies; :func:`ensure_installed` runs
``npm ci`` there when ``node_modules`` is missing (a clean clone). Test identities are passed in a temporary JSON
file (never committed): each is a login name, an assurance level the identity holds, and the claims the provider
vouches for (the FranceConnect identity pivot).
"""

from __future__ import annotations

import fcntl
import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serving import free_port

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
START_TIMEOUT_SECONDS = 60


def ensure_installed() -> None:
    """Install the locked provider (``npm ci``) once; skip only where node itself is absent (CI has it)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the test OpenID provider (apt-get install nodejs npm)")
    installed = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if installed.exists():
        return
    # The suite runs in several pytest-xdist workers: one installs while the others wait, so two `npm ci` never
    # remove each other's node_modules.
    with open(PROVIDER_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed.exists():
            return
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"npm ci of the test OpenID provider failed:\n{done.stderr[-2000:]}")


def pivot_claims(person: dict[str, str]) -> dict[str, str]:
    """The claims a FranceConnect-style provider gives for a delivered beneficiary (from the clear delivery)."""
    nir = person["BEN_NIR"]
    abroad = nir[5:7] == "99"
    return {
        "given_name": person["PRENOM"],
        "family_name": person["NOM"],
        "birthdate": person["DATE_NAISSANCE"],
        "gender": "male" if nir[0] == "1" else "female",
        "birthplace": "" if abroad else nir[5:10],
        "birthcountry": "99" + nir[7:10] if abroad else "99100",
    }


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    secret_file: Path


@contextmanager
def running_provider(tmp: Path, redirect_uri: str, identities: dict[str, dict[str, Any]]) -> Iterator[Provider]:
    """Start the provider on a free loopback port; yields once it listens, stops it afterwards."""
    ensure_installed()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(32)
    config = tmp / "provider.json"
    config.write_text(json.dumps({
        "issuer": issuer,
        "port": port,
        "client": {"client_id": "hygie-test", "client_secret": secret, "redirect_uris": [redirect_uri]},
        "identities": identities,
    }))  # fmt: skip
    secret_file = tmp / "client-secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    errors = (tmp / "provider.stderr").open("w")
    process = subprocess.Popen(
        ["node", str(PROVIDER_DIR / "provider.mjs"), str(config)],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    ready = threading.Event()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith("ready "):
                ready.set()

    threading.Thread(target=read, name="oidc-provider-stdout", daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT_SECONDS):
            process.kill()
            process.wait(timeout=10)
            err = (tmp / "provider.stderr").read_text()
            pytest.fail(f"the test OpenID provider did not start: {''.join(output)} {err[-2000:]}")
        yield Provider(issuer, "hygie-test", secret_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        errors.close()
