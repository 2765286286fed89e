# shellcheck shell=sh
# check "demo": a short scripted look around, for ci/demo.sh when nobody is at the terminal:
# the guest, the host devices platvmm handed it, and its virtio root disk, network (L1 at
# 10.0.2.1), host channel (vsock: L1's echo server at CID 2, port 5000) and entropy source.
# Sourced by /init, which provides detail and fail.
# /init loaded vmw_vsock_virtio_transport and virtio_rng (platvmm.modules): wait for CID 3.
i=0
while [ "$(vsock-echo cid 2>/dev/null)" != 3 ] && [ $i -lt 80 ]; do sleep 0.25; i=$((i + 1)); done
for cmd in "uname -a" "nproc" "head -n 3 /proc/meminfo" "ls /proc/device-tree" \
           "cat /sys/class/rtc/rtc0/name" "cat /sys/class/rtc/rtc0/date" "cat /sys/class/rtc/rtc0/time" \
           "modprobe qemu_fw_cfg" "ls /sys/firmware/qemu_fw_cfg/by_name/etc" "grep -e pl031 -e virtio -e CPU0 /proc/interrupts" \
           "df -h /" "ip addr show eth0" "ping -c 3 10.0.2.1" "vsock-echo client 2 5000 20 64" \
           "cat /sys/class/misc/hw_random/rng_current"; do
    echo "L2 demo \$ $cmd"
    $cmd || fail "'$cmd' failed"
done
detail "$(nproc) CPUs, $(uname -r), rtc $(cat /sys/class/rtc/rtc0/time), root $(awk '$2 == "/" { print $1 }' /proc/mounts)"
