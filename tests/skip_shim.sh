#!/bin/sh
# tests/skip_shim.sh WHAT — stands in for a program meson did not find at
# configure time (tests/meson.build), so every test that needs it is still
# registered and reports SKIP (exit 77) instead of vanishing from the run.
# Any further arguments (the test's own) are ignored.
echo "SKIP: $1 was not found when the build was configured: this test cannot run"
exit 77
