#!/usr/bin/env bash
# Set-up and the whole test suite: installs Debian dependencies, then builds every module (the JNI
# library included) and runs the tests with the pinned Maven from the wrapper.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec ./mvnw -B -ntp "$@" install
