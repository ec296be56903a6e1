#!/usr/bin/env bash
# Set-up and the main job: installs Debian dependencies, builds the jars (tests skipped), then runs
# the PD-disaggregated demo. Extra arguments go to `bin/mooncake4j demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
./mvnw -B -ntp -q -DskipTests install
exec bin/mooncake4j demo "$@"
