# shellcheck shell=sh
# check "demo": a short scripted look around, for ci/demo.sh when nobody is at the terminal:
# the guest and the host devices platvmm handed it.
# Sourced by /init, which provides detail and fail.
for cmd in "uname -a" "nproc" "head -n 3 /proc/meminfo" "ls /proc/device-tree" \
           "cat /sys/class/rtc/rtc0/name" "cat /sys/class/rtc/rtc0/date" "cat /sys/class/rtc/rtc0/time" \
           "modprobe qemu_fw_cfg" "ls /sys/firmware/qemu_fw_cfg/by_name/etc" "grep -e pl031 -e CPU0 /proc/interrupts"; do
    echo "L2 demo \$ $cmd"
    $cmd || fail "'$cmd' failed"
done
detail "$(nproc) CPUs, $(uname -r), rtc $(cat /sys/class/rtc/rtc0/time)"
