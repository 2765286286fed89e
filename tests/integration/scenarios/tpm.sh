#!/bin/sh
# scenario tpm: a TPM 2.0 behind a memory-mapped TIS (QEMU's tpm-tis-device on virt's platform
# bus, tcg,tpm-tis-mmio, backed by the host's swtpm), nested in L1's tree under the
# platform bus's simple-bus with ranges. L1's own tpm_tis (upstream, built from Debian's
# source: Debian's arm64 config leaves it out) reads PCR 16 first; then the TPM goes to L2 with
# no option, whose tpm_tis extends PCR 16 with a random digest by a raw TPM2_PCR_Extend and
# reads back SHA256(old || digest); then L1 takes the TPM back and reads the same value: the
# extend reached the TPM, and the device is rebindable after platvmm.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=c000000.tpm_tis
PCR=/sys/class/tpm/tpm0/pcr-sha256/16
l1_pcr16() {
    _i=0
    while [ ! -e $PCR ] && [ $_i -lt 40 ]; do sleep 0.25; _i=$((_i + 1)); done
    tr 'A-F' 'a-f' <$PCR 2>/dev/null
}
modprobe tpm_tis || { reason "L1 cannot load tpm_tis"; exit 1; }
before=$(l1_pcr16)
[ ${#before} = 64 ] || { reason "L1's own tpm_tis shows no SHA-256 PCR 16 ('$before')"; exit 1; }
echo "$SCENARIO: L1 reads PCR 16 = $before"
rmmod tpm_tis || { reason "cannot unload L1's tpm_tis to free $DEV"; exit 1; }
vfio_bind platform $DEV vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
digest=$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)
RUST_LOG=info run_l2 tpm --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=tpm platvmm.tpm_digest=$digest"
l2_passed || status=1
l2_new=$(l2_result | sed -n 's/.*pcr16_new=\([0-9a-f]*\).*/\1/p')
l2_old=$(l2_result | sed -n 's/.*pcr16_old=\([0-9a-f]*\).*/\1/p')
[ "$l2_old" = "$before" ] || { reason "L2 read PCR 16 as '$l2_old', L1 as $before"; status=1; }
# L1 takes the TPM back from vfio-platform and reads what L2 left in it.
echo >"/sys/bus/platform/devices/$DEV/driver_override"
echo $DEV >/sys/bus/platform/drivers/vfio-platform/unbind
modprobe tpm_tis
after=$(l1_pcr16)
echo "$SCENARIO: L1 reads PCR 16 = $after after L2"
if [ -z "$l2_new" ] || [ "$after" != "$l2_new" ]; then
    reason "L1 reads PCR 16 as '$after' after L2, L2 left '$l2_new'"; status=1
fi
l2_log_has "$DEV: guest node by the generic handler" "the TPM node by the generic handler" || status=1
exit $status
