# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The State's brand only where it belongs: the DSFR licence reserves the Marianne block and "République
française" to services of the French State, so a hub shows them only when its operator declares one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hygie.hub import Hub
from hygie.portal.app import create_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub.init(make_settings(tmp_path_factory.mktemp("brand") / "hub"))
    yield h
    h.close()


def _home(hub: Hub, **overrides: object) -> str:
    settings = hub.settings.model_copy(update=overrides)
    original, hub.settings = hub.settings, settings
    try:
        with TestClient(create_app(hub)) as client:
            response = client.get("/")
            assert response.status_code == 200
            return response.text
    finally:
        hub.settings = original


def test_a_hub_that_is_not_a_state_service_shows_its_controller_not_the_marianne(hub: Hub) -> None:
    page = _home(hub, portal_controller_name="Caisse mutuelle de l'Ouest")
    assert "République" not in page
    assert "fr-logo" not in page
    assert "Caisse mutuelle de l&#39;Ouest" in page


def test_a_declared_state_service_shows_the_state_block(hub: Hub) -> None:
    page = _home(hub, portal_state_service=True)
    assert page.count('<p class="fr-logo">République<br>française</p>') == 2  # header and footer
