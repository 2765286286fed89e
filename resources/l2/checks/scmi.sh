# shellcheck shell=sh
# check "scmi": the guest's SCMI system controller (platvmm's, over the bcm2835 mailbox
# transport, all built into Debian's kernel) serves the passed device's clocks, then the
# device does real work with them (check "disk", sourced after).
#   platvmm.scmi_clocks=NAME:HZ,...  SCMI clocks L2's clock framework must have, at these rates
#   platvmm.scmi_hostile=1  before the disk check, post hostile messages into the channel through
#     /dev/mem (the cmdline needs iomem=relaxed: the mailbox driver holds its registers) and
#     check the platform's answers; the disk check after it shows the controller still serves
#   (and every argument of check "disk")
# Sourced by /init, which provides arg, expect, detail and fail.
mount -t debugfs none /sys/kernel/debug 2>/dev/null

# Posts one message as an agent would (channel busy, no completion interrupt: the guest's own
# driver is not waiting for one) and rings the doorbell; prints the channel status after.
#   scmi_post SHMEM DOORBELL LENGTH HEADER [PAYLOAD_WORD]
scmi_post() {
    devmem $(($1 + 0x10)) 32 0
    devmem $(($1 + 0x14)) 32 "$3"
    devmem $(($1 + 0x18)) 32 "$4"
    [ -z "${5:-}" ] || devmem $(($1 + 0x1c)) 32 "$5"
    devmem $(($1 + 0x04)) 32 0
    devmem "$2" 32 1
    echo $(($(devmem $(($1 + 0x04)) 32)))
}

# Hostile messages into platvmm's channel, each answered as the SCMI transport says, none
# stopping the VM. The window: the doorbell registers, the channel one page above them.
scmi_hostile() {
    mb=$(for d in /sys/bus/platform/devices/*.mailbox; do basename "$d" .mailbox; done | head -1)
    case $mb in ''|*[!0-9a-f]*) mb= ;; esac
    [ -n "$mb" ] || { fail "no mailbox device under /sys/bus/platform/devices"; return; }
    base=$((0x$mb)) shmem=$((0x$mb + 0x1000))
    # A length past the channel: refused, CHANNEL_ERROR | CHANNEL_FREE.
    st=$(scmi_post $shmem $((base + 0x20)) 0xffffffff 0)
    [ "$st" = 3 ] || fail "SCMI length 0xffffffff: channel status $st, want 3 (error, free)"
    # A protocol nobody serves (0xee): answered NOT_SUPPORTED (-1).
    st=$(scmi_post $shmem $((base + 0x20)) 4 $((0xee << 10)))
    rs=$(($(devmem $((shmem + 0x1c)) 32)))
    [ "$st:$rs" = "1:$((0xffffffff))" ] ||
        fail "SCMI protocol 0xee: channel status $st, reply status $rs; want 1 and NOT_SUPPORTED"
    # CLOCK_ATTRIBUTES of a clock the guest was not given (99): NOT_FOUND (-4).
    st=$(scmi_post $shmem $((base + 0x20)) 8 $((0x14 << 10 | 0x3)) 99)
    rs=$(($(devmem $((shmem + 0x1c)) 32)))
    [ "$st:$rs" = "1:$((0xfffffffc))" ] ||
        fail "SCMI clock 99: channel status $st, reply status $rs; want 1 and NOT_FOUND"
    # A write outside the registers and the channel: dropped (counted by platvmm).
    devmem $((base + 0x800)) 32 0xdeadbeef
    detail "scmi_hostile=3+1"
}
banner=$(dmesg | grep -o "SCMI Protocol v[0-9.]* '[^']*' Firmware version 0x[0-9a-f]*" | head -1)
[ -n "$banner" ] || fail "the arm-scmi driver did not talk to the platform (no 'SCMI Protocol' line): $(dmesg | grep -i -E 'scmi|mbox|mailbox' | tail -3 | tr '\n' ' ')"
detail "banner=$(echo "$banner" | tr ' ' '_')"
n=0
for c in $(arg platvmm.scmi_clocks | tr ',' ' '); do
    name=${c%%:*} hz=${c#*:}
    got=$(cat "/sys/kernel/debug/clk/$name/clk_rate" 2>/dev/null)
    [ "$got" = "$hz" ] || fail "SCMI clock $name: L2 reads '${got:-no such clock}', the host rate is $hz"
    n=$((n + 1))
done
detail "scmi_clocks_ok=$n"
# The consumers: the clocks the passed device enabled through SCMI.
enabled=$(awk '$1 ~ /^[a-z]/ && $2 > 0 { n++ } END { print n + 0 }' /sys/kernel/debug/clk/clk_summary)
detail "clocks_enabled=$enabled"
if [ "$(arg platvmm.scmi_hostile)" = 1 ]; then scmi_hostile; fi
# shellcheck source=resources/l2/checks/disk.sh
. /checks/disk.sh
