#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario tools: the list -> bind -> run -> unbind flow on the real board. `platvmm list`
# shows L1's PL031 as needing bind (with its handler and the exact command), `platvmm bind`
# makes it ready, a VM started from a --config file passes the rtc check, `platvmm unbind`
# gives it back to rtc-pl031, which reads L1's time. Both commands are idempotent.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
PL=/sys/bus/amba/devices/9010000.pl031

t0=$(now)
"$PLATVMM" list >/tmp/list.txt 2>&1 || { reason "platvmm list failed: $(cat /tmp/list.txt)"; status=1; }
t1=$(now)
timing "list: $(grep -c '^[^ ]' /tmp/list.txt) devices in $(elapsed "$t0" "$t1")s"
cat /tmp/list.txt
grep -q '^9010000.pl031 \[amba\] driver=rtc-pl031 group=none compatible=arm,pl031;arm,primecell regions=1 mapped/0 trapped irqs=1 level/0 edge handler=generic: needs bind$' /tmp/list.txt ||
    { reason "list does not show the PL031 as needing bind with the generic handler"; status=1; }
grep -q "^    platvmm bind --noiommu $PL\$" /tmp/list.txt ||
    { reason "list does not give the bind command for the PL031"; status=1; }
grep -q '^    note: vfio-amba is marked for removal in Linux 6.18' /tmp/list.txt ||
    { reason "list does not note vfio-amba's removal for the AMBA device"; status=1; }
"$PLATVMM" list --json >/tmp/list.json || { reason "list --json failed"; status=1; }
grep -q '"verdict": "needs-bind"' /tmp/list.json || { reason "list --json lacks the needs-bind verdict"; status=1; }

# Without --noiommu, bind refuses (and changes nothing); with it, warns and binds.
if "$PLATVMM" bind $PL 2>/tmp/bind.err; then reason "bind without --noiommu succeeded"; status=1; fi
grep -q "rerun with --noiommu" /tmp/bind.err || { reason "bind's refusal: $(cat /tmp/bind.err)"; status=1; }
"$PLATVMM" bind --noiommu $PL 2>/tmp/bind.err || { reason "bind failed: $(cat /tmp/bind.err)"; status=1; }
cat /tmp/bind.err
grep -q "WARNING: 9010000.pl031 is bound in VFIO's no-IOMMU mode" /tmp/bind.err ||
    { reason "bind did not warn about no-IOMMU mode"; status=1; }
grep -q "note: vfio-amba is marked for removal in Linux 6.18" /tmp/bind.err ||
    { reason "bind did not note vfio-amba's removal"; status=1; }
[ "$(basename "$(readlink $PL/driver)")" = vfio-amba ] || { reason "after bind the PL031 is not on vfio-amba"; status=1; }
"$PLATVMM" bind --noiommu $PL 2>/tmp/bind.err && grep -q "already bound to vfio-amba" /tmp/bind.err ||
    { reason "a second bind is not a no-op: $(cat /tmp/bind.err)"; status=1; }
"$PLATVMM" list | grep -q '^9010000.pl031 \[amba\] driver=vfio-amba group=[0-9]* .*handler=generic: ready$' ||
    { reason "after bind, list does not show the PL031 ready"; status=1; }

cat >/tmp/vm.toml <<TOML
# A VM from a config file: the same keys as the long options.
kernel = "$L2_KERNEL"
initramfs = "$L2_INITRAMFS"
memory = "256M"
cmdline = "console=ttyS0 panic=-1 platvmm.check=rtc"
vfio-platform = ["$PL"]
TOML
RUST_LOG=info run_l2 tools --config /tmp/vm.toml
l2_passed || status=1
l2_log_has "9010000.pl031: region 0 (0x1000 bytes, read,write,mmap) at guest 0x40000000, mapped" \
    "the PL031 mapped from the config's vfio-platform" || status=1

"$PLATVMM" unbind $PL 2>/tmp/unbind.err || { reason "unbind failed: $(cat /tmp/unbind.err)"; status=1; }
cat /tmp/unbind.err
grep -q "9010000.pl031: given back to rtc-pl031" /tmp/unbind.err || { reason "unbind said: $(cat /tmp/unbind.err)"; status=1; }
t=$(cat $PL/rtc/rtc*/since_epoch 2>/dev/null)
d=$(( $(date +%s) - ${t:-0} ))
echo "tools: after unbind rtc-pl031 reads $t (L1 clock - RTC = ${d}s)"
if [ -z "$t" ] || [ "$d" -lt -5 ] || [ "$d" -gt 5 ]; then reason "after unbind rtc-pl031 reads '$t'"; status=1; fi
"$PLATVMM" unbind $PL 2>/tmp/unbind.err && grep -q "nothing to do" /tmp/unbind.err ||
    { reason "a second unbind is not a no-op: $(cat /tmp/unbind.err)"; status=1; }
exit $status
