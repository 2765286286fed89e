#!/bin/sh
# scenario boot: platvmm boots L2 with 1 and then 2 vCPUs and 256 MiB; L2's "boot" check
# verifies the CPUs and memory it sees, and the guest's power-off must end platvmm with 0.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0

for n in 1 2; do
    run_l2 "boot-cpus$n" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --cpus "$n" --memory 256M \
        --cmdline "console=ttyS0 earlycon panic=-1 platvmm.check=boot platvmm.expect_cpus=$n platvmm.expect_mem_mib=256"
    timing "cpus=$n start->L2-INIT=${L2_T_INIT}s start->exit=${L2_T_EXIT}s exit=$L2_RC $L2_RSS"
    result=$(l2_result)
    if [ "$L2_RC" != 0 ]; then
        reason "cpus=$n: platvmm exited with $L2_RC${result:+ ($result)}"; status=1
    elif [ "${result#L2-RESULT: PASS}" = "$result" ]; then
        reason "cpus=$n: ${result:-no L2-RESULT line from the guest}"; status=1
    fi
done
exit $status
