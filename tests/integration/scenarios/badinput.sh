#!/bin/sh
# scenario badinput: on the real board, bad input to platvmm gets one line naming the
# problem (and the fix), a non-zero status, no panic, and leaves the host device usable.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
PL031=/sys/bus/amba/devices/9010000.pl031
BASE="--kernel $L2_KERNEL --initramfs $L2_INITRAMFS"

# expect_error NAME STATUS NEEDLE ARGS...: platvmm must fail with STATUS, print exactly one
# line on stderr containing NEEDLE, and not panic.
expect_error() {
    name=$1 want=$2 needle=$3; shift 3
    "$PLATVMM" "$@" </dev/null >/tmp/bad.out 2>/tmp/bad.err; rc=$?
    err=$(cat /tmp/bad.err)
    echo "badinput: $name: status $rc: $err"
    [ "$rc" = "$want" ] || { reason "$name: status $rc, expected $want"; status=1; }
    [ "$(wc -l </tmp/bad.err)" = 1 ] || { reason "$name: stderr is not one line: $err"; status=1; }
    case $err in *panicked*) reason "$name: panic"; status=1 ;; esac
    case $err in *"$needle"*) ;; *) reason "$name: '$needle' not in: $err"; status=1 ;; esac
}

# shellcheck disable=SC2086 # BASE is split on purpose
{
expect_error "not bound to vfio" 1 "is bound to rtc-pl031, not to vfio-amba: bind it with" \
    $BASE --vfio-platform $PL031 --memory 128M
expect_error "no such device" 1 "no such device" $BASE --vfio-platform /sys/bus/amba/devices/nope
expect_error "bad option" 2 "unknown option 'irq'" $BASE --vfio-platform "$PL031,irq=7"
expect_error "too many vCPUs" 1 "--cpus 500 is more than" $BASE --cpus 500
expect_error "memory too large" 1 "too large" $BASE --memory 4096G
expect_error "compressed kernel" 1 "gzip-compressed: decompress it first" --kernel /l2/initramfs.cpio.gz
expect_error "not a kernel" 1 "not an arm64 Image" --kernel /scenarios/badinput.sh
# Files that are not regular files: each used to hang (read forever, or block in open).
expect_error "kernel is a character device" 1 "it is a character device, not a regular file" \
    --kernel /dev/zero
mkfifo /tmp/bad.fifo
expect_error "initramfs is a FIFO" 1 "it is a FIFO, not a regular file" \
    --kernel "$L2_KERNEL" --initramfs /tmp/bad.fifo
expect_error "overlay is a character device" 1 "--dt-overlay /dev/zero: it is a character device" \
    $BASE --dt-overlay /dev/zero
: >/tmp/bad.empty
expect_error "empty initramfs" 1 "the file is empty" --kernel "$L2_KERNEL" --initramfs /tmp/bad.empty
# A kernel cut short (an interrupted copy) used to boot garbage.
head -c 4000000 "$L2_KERNEL" >/tmp/bad.Image
expect_error "truncated kernel" 1 "kernel is truncated: its PE sections end at byte" --kernel /tmp/bad.Image
expect_error "oversize command line" 1 "an arm64 kernel keeps at most 2047" \
    $BASE --cmdline "$(printf '%3000s' '' | tr ' ' x)"
# A guest that resets before its first console byte used to end with status 3 and nothing on
# stderr. This one is 80 bytes: an arm64 header whose code0 branches to `PSCI SYSTEM_RESET`.
printf '\020\000\000\024\000\000\000\000\000\000\000\000\000\000\000\000\000\020\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\101\122\115\144\000\000\000\000\040\001\200\122\000\200\260\162\002\000\000\324\000\000\000\024' >/tmp/reset.Image
head -c 4016 /dev/zero >>/tmp/reset.Image
expect_error "silent reset" 3 "the guest reset before writing anything to the console" \
    --kernel /tmp/reset.Image --memory 64M
}

# The device is still the host's and works.
[ "$(basename "$(readlink $PL031/driver)")" = rtc-pl031 ] ||
    { reason "the PL031 is no longer bound to rtc-pl031"; status=1; }
cat $PL031/rtc/rtc*/since_epoch >/dev/null || { reason "rtc-pl031 unreadable"; status=1; }

# The fix platvmm printed, run as printed, makes the device usable.
# shellcheck disable=SC2086,SC2016 # BASE is split on purpose; the backquotes are literal
fix=$("$PLATVMM" $BASE --vfio-platform $PL031 2>&1 </dev/null | sed -n 's/.*bind it with `\(.*\)`.*/\1/p')
echo "badinput: running the suggested fix: $fix"
sh -c "$fix" || { reason "the suggested fix failed: $fix"; status=1; }
[ "$(basename "$(readlink $PL031/driver)")" = vfio-amba ] ||
    { reason "after the suggested fix the PL031 is not bound to vfio-amba"; status=1; }

# A virtio option that fails once the PL031's group is open: the group must be let go.
# shellcheck disable=SC2086
expect_error "net on a non-tap interface" 1 "lo is a network interface but not a tap" \
    $BASE --vfio-platform $PL031 --net tap=lo
"$PLATVMM" inspect $PL031 >/tmp/bad.inspect 2>&1 ||
    { reason "after the failed start the PL031's group is not free: $(tail -1 /tmp/bad.inspect)"; status=1; }

# The same device twice.
# shellcheck disable=SC2086
expect_error "device given twice" 1 "is given twice" $BASE --vfio-platform $PL031 --vfio-platform $PL031
exit $status
