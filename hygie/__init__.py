# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Hygie: a sovereign platform for national health-insurance data."""

import os as _os

# Arrow allocates its arrays with mimalloc, which by default (1) decommits freed memory (MADV_DONTNEED) about a
# second after it is freed and (2) asks for transparent huge pages. Every chunk of an ingestion then faulted its
# arrays in again, zeroed page by page, and each fault in a huge-page area zeroed 2 MB: a fifth of a view build's
# CPU was the kernel clearing pages. With freed memory handed back lazily (MADV_FREE: reused while the process
# needs it, taken by the kernel when memory is short) and ordinary pages, the default ingestion benchmark ran 4 to
# 6 s faster in 43 s and a million-people view build 3 to 4 s faster in 23 s (docs/benchmarks.md, 2026-12-05).
# mimalloc reads its options once, when pyarrow is first loaded, so they are set here, before any module of Hygie
# can load it; an operator's own values are kept.
_os.environ.setdefault("MIMALLOC_PURGE_DECOMMITS", "0")
_os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")
