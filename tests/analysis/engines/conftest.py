# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The spec suite runs on every engine over one small hub (tests/warehouse's Spark hub, ingested once)."""

from tests.warehouse.conftest import spark_hub  # noqa: F401  (fixture)
