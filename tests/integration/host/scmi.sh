# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The mmc scenario's board: the emulated ZCU102 with a random SD card in SDHCI1, hugepages,
# the card's md5 and a token L2 writes (checked in the image afterwards).
# shellcheck source=tests/integration/host/mmc.sh
. "$ROOT/tests/integration/host/mmc.sh"
