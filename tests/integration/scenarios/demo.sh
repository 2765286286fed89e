#!/bin/sh
# scenario demo: a complete VM for a person to look at (ci/demo.sh): L2 with 2 vCPUs and
# 256 MiB, its root filesystem on a virtio-blk disk, a virtio-net interface on L1's tap0
# (vhost-net; L1 is 10.0.2.1, L2 10.0.2.2), vsock (L2 is CID 3; L1 runs an echo server on
# port 5000), virtio-rng, and L1's PL031 RTC and fw-cfg passed through; its shell on the
# console. First `platvmm inspect` shows what platvmm sees of the RTC. With
# platvmm.demo=script on L1's command line (no terminal), L2 runs its scripted "demo" check
# instead and powers off by itself.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh

extra=""
case " $(cat /proc/cmdline) " in
    *" platvmm.demo=script "*) extra="platvmm.check=demo" ;;
esac
vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind the PL031 to vfio-amba"; exit 1; }
vfio_bind platform 9020000.fw-cfg vfio-platform || { reason "cannot bind fw-cfg"; exit 1; }
gunzip -c /l2/rootfs.ext4.gz >/tmp/root.ext4 || { reason "cannot unpack the root image"; exit 1; }
{ tunctl -t tap0 >/dev/null && ip addr add 10.0.2.1/24 dev tap0 && ip link set tap0 up; } ||
    { reason "cannot create tap0"; exit 1; }
vsock-echo server 5000 >/tmp/echo.txt 2>&1 &
echo "demo: \$ platvmm inspect /sys/bus/amba/devices/9010000.pl031"
"$PLATVMM" inspect /sys/bus/amba/devices/9010000.pl031 || { reason "inspect failed"; exit 1; }
echo "demo: booting L2 (2 vCPUs, 256 MiB, root on virtio-blk, virtio-net, vsock, rng) with the PL031 and fw-cfg passed through;"
echo "demo: try: df -h /; ping -c 3 10.0.2.1; vsock-echo client 2 5000 10 64; cat /sys/class/rtc/rtc0/time;"
echo "demo:      modprobe qemu_fw_cfg; ls /sys/firmware/qemu_fw_cfg/by_name"
echo "demo: power L2 off with 'poweroff -f' in its shell"
"$PLATVMM" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --cpus 2 --memory 256M --stats \
    --disk /tmp/root.ext4 --net tap=tap0 --vsock cid=3 --rng \
    --vfio-platform /sys/bus/amba/devices/9010000.pl031 \
    --vfio-platform /sys/bus/platform/devices/9020000.fw-cfg \
    --cmdline "console=ttyS0 earlycon panic=-1 root=/dev/vda platvmm.ip=10.0.2.2/24 platvmm.modules=vmw_vsock_virtio_transport,virtio_rng $extra"
rc=$?
echo "demo: platvmm exited with $rc"
[ $rc = 0 ] || reason "platvmm exited with $rc"
exit $rc
