# shellcheck shell=bash # sourced by ci/board.sh
# The sandbox scenario runs the multi check: the same fw-cfg file as the fwcfg scenario.
# shellcheck source=tests/integration/host/fwcfg.sh
. "$ROOT/tests/integration/host/fwcfg.sh"
