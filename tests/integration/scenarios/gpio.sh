#!/bin/sh
# scenario gpio: L1's PL061 (AMBA) passed through; a per-device overlay gives its guest node
# a phandle and --dt-overlay adds a gpio-keys node on line 3. The host presses the power
# button through the QEMU monitor; L2's gpio-keys must take the interrupt.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=9030000.pl061

vfio_bind amba $DEV vfio-amba || { reason "cannot bind $DEV to vfio-amba"; exit 1; }
RUST_LOG=info run_l2 gpio --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform "/sys/bus/amba/devices/$DEV,overlay=/overlays/pl061-phandle.dtb" \
    --dt-overlay /overlays/gpio-keys.dtb \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=gpio"
l2_passed || status=1
grep -q "platvmm stats: device $DEV trapped_reads=0 trapped_writes=0 " "$L2_LOG" ||
    { reason "unexpected counters: $(grep "platvmm stats: device" "$L2_LOG")"; status=1; }
exit $status
