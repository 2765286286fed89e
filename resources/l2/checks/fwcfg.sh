# shellcheck shell=sh
# check "fwcfg": a passed-through QEMU fw-cfg (0x18-byte region, trapped by platvmm).
#   1. Before any driver: select key 0 and read the "QEMU" signature byte by byte (1-byte
#      data register reads, a 2-byte selector write: exact widths through pread/pwrite).
#   2. One read and one write just past the region, inside the same guest page: the read must
#      return 0 (platvmm counts both as dropped; the scenario checks the count is 2).
#   3. qemu_fw_cfg probes it and the host's opt/platvmm/greeting file reads back.
# Sourced by /init, which provides arg, expect, detail and fail.

node=""
for n in /proc/device-tree/fw-cfg@*; do [ -d "$n" ] && node=$n; done
if [ -z "$node" ]; then
    fail "no fw-cfg node in the guest device tree"
    return 0
fi
base=$((0x${node##*@}))
detail "node=${node##*/}"

devmem $((base + 8)) 16 0
sig=""
for _ in 1 2 3 4; do
    b=$(devmem "$base" 8)
    # shellcheck disable=SC2059 # the format is the octal escape of the byte just read
    sig="$sig$(printf "\\$(printf '%03o' "$b")")"
done
detail "signature=$sig"
[ "$sig" = QEMU ] || fail "fw-cfg signature reads '$sig', expected QEMU"

oob=$(devmem $((base + 0x100)) 32)
devmem $((base + 0x104)) 32 0xdeadbeef
detail "past_end_read=$oob"
[ "$((oob))" = 0 ] || fail "a read past the 0x18-byte region returned $oob, expected 0"

modprobe qemu_fw_cfg || fail "modprobe qemu_fw_cfg failed"
fw=/sys/firmware/qemu_fw_cfg
[ -f $fw/rev ] || { fail "qemu_fw_cfg did not probe (no $fw/rev)"; return 0; }
detail "rev=$(cat $fw/rev)"
greeting=$(cat $fw/by_name/opt/platvmm/greeting/raw 2>/dev/null)
detail "greeting=$greeting"
[ "$greeting" = hello-from-the-host ] || fail "opt/platvmm/greeting reads '$greeting'"
# The driver only uses fw-cfg DMA to write etc/vmcoreinfo; the board has none, so no DMA.
[ -e $fw/by_name/etc/vmcoreinfo ] && fail "etc/vmcoreinfo present: the driver would use DMA"
return 0
