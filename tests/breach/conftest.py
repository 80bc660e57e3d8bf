from __future__ import annotations

from tests.portal.conftest import postgres_template, shared_world, sqlite_template, world  # noqa: F401  (fixtures)
from tests.portal.world import small_delivery  # noqa: F401  (fixture)
