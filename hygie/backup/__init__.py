# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Backup and restore of a whole hub: metadata database, warehouse, data dir files and wrapped keys.

See docs/operations.md, "Backup and restore". The archive is one encrypted file (:mod:`hygie.backup.archive`)
holding a tar stream whose last member is ``manifest.json`` (SHA-256 and size of every other member).
"""
