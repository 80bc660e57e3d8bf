# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Hygie: a sovereign platform for national health-insurance data."""

import os as _os

# Arrow allocates its arrays with mimalloc, which by default decommits freed memory (MADV_DONTNEED) about a second
# after it is freed: every chunk of an ingestion then faulted its arrays in again, zeroed page by page, and the
# default ingestion benchmark spent 4 to 6 s more in 43 s (docs/benchmarks.md, 2026-12-05 afternoon). Handed back
# with MADV_FREE instead, the pages are reused while the process needs them and the kernel still takes them when
# memory is short. (Turning off mimalloc's transparent huge pages too made a view build 3 to 4 s faster in
# 23 s, but the analyses, which scan views held in memory, up to a tenth slower: kept on.) mimalloc reads its
# options once, when pyarrow is first loaded, so this is set here, before any module of Hygie can load it; an
# operator's own value is kept.
_os.environ.setdefault("MIMALLOC_PURGE_DECOMMITS", "0")
