# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The mmc scenario's board: the emulated ZCU102 with a random SD card in SDHCI1, hugepages,
# the card's md5 and a token L2 writes (checked in the image afterwards). 32 MiB: this
# scenario proves the SCMI clocks, not the card's throughput (the mmc scenario's 128 MiB read
# twice on each side took 80 s of its run at 4.7 MB/s).
SD_MIB=32
# shellcheck source=tests/integration/host/mmc.sh
. "$ROOT/tests/integration/host/mmc.sh"
# The second VM reads the card's first 16 MiB (what the first VM's token at 16 MiB leaves
# alone) on each of its two boots.
L1_APPEND+=("platvmm.sd16_md5=$(head -c 16777216 "$RUN_DIR/sd.img" | md5sum | cut -d' ' -f1)")
