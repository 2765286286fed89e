#!/bin/sh
# scenario boot: platvmm boots L2 with 1 and then 2 vCPUs and 256 MiB, then 1 vCPU with `quiet`;
# L2's "boot" check verifies the CPUs and memory it sees, and the guest's power-off must end
# platvmm with 0. Each run prints platvmm's own start-up cost (exec → vCPU 0's first KVM_RUN,
# by step) and its console exits, from --stats.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0

# boot_run NAME CPUS EXTRA-CMDLINE
boot_run() {
    run_l2 "$1" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --cpus "$2" --memory 256M --stats \
        --cmdline "console=ttyS0 earlycon panic=-1 $3 platvmm.check=boot platvmm.expect_cpus=$2 platvmm.expect_mem_mib=256"
    timing "$1 start->L2-INIT=${L2_T_INIT}s start->exit=${L2_T_EXIT}s exit=$L2_RC $L2_RSS"
    startup=$(tr -d '\r' <"$L2_LOG" | sed -n 's/^platvmm stats: startup //p' | tail -1)
    exits=$(tr -d '\r' <"$L2_LOG" | sed -n 's/^platvmm stats: vm exits //p' | tail -1)
    timing "$1 startup: $startup"
    timing "$1 exits: $exits"
    result=$(l2_result)
    if [ "$L2_RC" != 0 ]; then
        reason "$1: platvmm exited with $L2_RC${result:+ ($result)}"; status=1
    elif [ "${result#L2-RESULT: PASS}" = "$result" ]; then
        reason "$1: ${result:-no L2-RESULT line from the guest}"; status=1
    fi
    case $startup in
        *main-\>first_kvm_run=[0-9]*us*) ;;
        *) reason "$1: no start-up figure from --stats: '$startup'"; status=1 ;;
    esac
}

boot_run boot-cpus1 1 ""
boot_run boot-cpus2 2 ""
boot_run boot-quiet 1 quiet
exit $status
