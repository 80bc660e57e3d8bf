# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Imports every module that declares tables, so Alembic sees the whole schema."""

from hygie.analysis import models as _analysis  # noqa: F401
from hygie.audit import events as _audit_events  # noqa: F401
from hygie.breach import models as _breach  # noqa: F401
from hygie.control import leads as _control_leads  # noqa: F401
from hygie.control import lifting as _control_lifting  # noqa: F401
from hygie.control import sample as _control_sample  # noqa: F401
from hygie.governance import citizen_index as _citizen_index  # noqa: F401
from hygie.governance import letters as _letters  # noqa: F401
from hygie.governance import limits as _limits  # noqa: F401
from hygie.governance import models as _governance  # noqa: F401
from hygie.governance import oidc as _oidc  # noqa: F401
from hygie.governance import privacy as _privacy  # noqa: F401
from hygie.identity import pivot as _pivot  # noqa: F401
from hygie.identity import pseudonym as _pseudonym  # noqa: F401
from hygie.identity import vault as _vault  # noqa: F401
from hygie.warehouse import catalog as _catalog  # noqa: F401
