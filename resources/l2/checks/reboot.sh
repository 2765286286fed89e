# shellcheck shell=sh
# check "reboot": what must work after every reboot in place (run once per boot; with
# platvmm.after=reboot /init then reboots unless the host presses the power button):
#   - the passed-through PL031: an alarm 2 s ahead raises exactly one interrupt;
#   - the virtio disk reads whole with the host's md5 (platvmm.disk_md5).
# Sourced by /init, which provides arg, expect, detail and fail.
want_md5=$(arg platvmm.disk_md5)
rtcdev=$(rtc_of pl031)
[ -n "$rtcdev" ] || { fail "no pl031 RTC"; return 0; }
c0=$(irq_count rtc-pl031)
echo 0 >"$rtcdev/wakealarm"; echo +2 >"$rtcdev/wakealarm"
i=0
while [ -n "$(cat "$rtcdev/wakealarm")" ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
c1=$(irq_count rtc-pl031)
detail "alarm_irqs=$((c1 - c0))"
[ "$((c1 - c0))" = 1 ] || fail "the PL031 alarm raised $((c1 - c0)) interrupts (1 expected)"
modprobe virtio_mmio 2>/dev/null; modprobe virtio_blk 2>/dev/null
i=0
while [ ! -b /dev/vda ] && [ $i -lt 80 ]; do sleep 0.25; i=$((i + 1)); done
m=$(md5sum /dev/vda 2>/dev/null | cut -d' ' -f1)
if [ "$m" = "$want_md5" ]; then detail "disk_md5=ok"; else fail "the disk's md5 is '$m', the host's is $want_md5"; fi
