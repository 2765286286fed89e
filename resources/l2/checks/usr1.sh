# shellcheck shell=sh
# check "usr1": asks L1 to send platvmm SIGUSR1 (the "L2-SIGNAL-USR1" line), then waits. Used
# by the sandbox scenario, where platvmm must stop the guest on that signal (its
# --test-denied-syscall makes a syscall the sandbox denies): this check ending at all fails.
# Sourced by /init, which provides arg, expect, detail and fail.
say "L2-SIGNAL-USR1 sandbox"
sleep 30
fail "platvmm was still running 30 s after SIGUSR1"
