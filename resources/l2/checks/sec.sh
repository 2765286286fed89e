# shellcheck shell=sh
# check "sec": the caam controller driver probes against platvmm's emulated SEC controller
# page (no job rings: no emulator models CAAM). Proof: the driver's identity and queue lines,
# the device bound to the caam driver, and a live read through the page via debugfs.
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
[ "$rings" = "rings=0 qi=1" ] || fail "expected 'job rings = 0, qi = 1', got '${rings:-nothing}'"
[ -e "/sys/bus/platform/drivers/caam/$dev" ] || fail "$dev is not bound to the caam driver"

mount -t debugfs none /sys/kernel/debug 2>/dev/null
fs=$(cat "/sys/kernel/debug/$dev/ctl/fault_status" 2>/dev/null)
detail "fault_status=${fs:-unreadable}"
[ "$fs" = 1024 ] || fail "debugfs fault_status (CSTA read through the emulated page) is '$fs', expected 1024"
