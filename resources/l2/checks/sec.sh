# shellcheck shell=sh
# check "sec": the caam controller driver probes against platvmm's emulated SEC controller
# page. Proof: the driver's identity and queue lines, the device bound to the caam driver, and
# a live read through the page via debugfs.
#   platvmm.sec_rings=N   job rings passed through (default 0: the emulated board has none).
#                         With N > 0 (real NXP hardware, ci/hw-test.sh) each must bind to
#                         caam_jr, and the caam hwrng must produce random bytes: RNG
#                         descriptors executed by a real job ring, with DMA to guest memory.
# Sourced by /init, which provides arg, expect, detail and fail.
node=""
for n in /proc/device-tree/crypto@*; do [ -d "$n" ] && node=${n##*/}; done
[ -n "$node" ] || { fail "no crypto@ node in the guest device tree"; return 0; }
dev=${node#crypto@}.crypto
detail "node=$node"

modprobe caam || fail "modprobe caam failed"
modprobe caam_jr 2>/dev/null
id=$(dmesg | sed -n "s/.*caam $dev: device ID = \(0x[0-9a-f]*\) (Era \([0-9]*\)).*/\1 era=\2/p" | tail -1)
rings=$(dmesg | sed -n "s/.*caam $dev: job rings = \([0-9]*\), qi = \([0-9]*\).*/rings=\1 qi=\2/p" | tail -1)
detail "id=${id:-none} ${rings:-no-rings-line}"
[ -n "$id" ] || fail "the caam driver printed no device ID for $dev: $(dmesg | grep -i caam | tail -3 | tr '\n' ' ')"
want=$(arg platvmm.sec_rings); want=${want:-0}
[ "$rings" = "rings=$want qi=1" ] || fail "expected 'job rings = $want, qi = 1', got '${rings:-nothing}'"
[ -e "/sys/bus/platform/drivers/caam/$dev" ] || fail "$dev is not bound to the caam driver"

mount -t debugfs none /sys/kernel/debug 2>/dev/null
fs=$(cat "/sys/kernel/debug/$dev/ctl/fault_status" 2>/dev/null)
detail "fault_status=${fs:-unreadable}"
[ "$fs" = 1024 ] || fail "debugfs fault_status (CSTA read through the emulated page) is '$fs', expected 1024"

# Job rings bound to caam_jr.
jr_bound() {
    _n=0
    for _j in /sys/bus/platform/drivers/caam_jr/*.jr; do [ -e "$_j" ] && _n=$((_n + 1)); done
    echo $_n
}

if [ "$want" -gt 0 ]; then
    i=0
    while [ "$(jr_bound)" -lt "$want" ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
    bound=$(jr_bound)
    detail "jr_bound=$bound"
    [ "$bound" = "$want" ] || fail "$bound of $want job rings bound to caam_jr"
    rng=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
    detail "hwrng=${rng:-none}"
    case $rng in *caam*) ;; *) fail "the caam hwrng is not the current hwrng ('$rng')" ;; esac
    bytes=$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
    detail "hwrng_bytes=$((${#bytes} / 2))"
    if [ ${#bytes} != 64 ] || [ "$bytes" = "$(printf '%064d' 0)" ]; then
        fail "/dev/hwrng gave '${bytes}' (32 non-zero bytes expected)"
    fi
fi
