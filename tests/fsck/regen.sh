#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/fsck/regen.sh BUILD_DIR [CASE...]
#
# Rewrites tests/fsck/CASE/expect.1 and expect.2 (every case, or the ones named) from the
# output of BUILD_DIR/pcache; `make fsck-expect` runs it.  Review the change with
# `git diff tests/fsck`: a changed transcript is a changed user interface.
exec bash "$(dirname "$0")/run.sh" --regen "$@"
