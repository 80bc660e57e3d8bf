# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Code to data: analyses run inside the platform on a project's view, and nothing leaves but what disclosure
control and, where needed, two output checkers let out. See docs/analysis.md."""
