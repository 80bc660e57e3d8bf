# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Hygie: a sovereign platform for national health-insurance data."""

import os as _os

# Arrow allocates its arrays with mimalloc, which by default decommits freed memory (MADV_DONTNEED) about a
# second after it is freed: each chunk of an ingestion then faulted its arrays in again, zeroed page by page, and
# the default benchmark spent 4 to 5 s more of system time and wall clock in a 43 s run (docs/benchmarks.md,
# 2026-12-05). Handed back with MADV_FREE instead, the pages are reused while the process needs them and the
# kernel still takes them when memory is short. mimalloc reads this once, when pyarrow is first loaded, so it is
# set here, before any module of Hygie can load it; an operator's own value is kept.
_os.environ.setdefault("MIMALLOC_PURGE_DECOMMITS", "0")
