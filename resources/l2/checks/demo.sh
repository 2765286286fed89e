# shellcheck shell=sh
# check "demo": a short scripted look around, for ci/demo.sh when nobody is at the terminal.
# Sourced by /init, which provides detail and fail.
for cmd in "uname -a" "head -n 12 /proc/cpuinfo" "head -n 3 /proc/meminfo" "cat /proc/cmdline" \
           "ls /proc/device-tree"; do
    echo "L2 demo \$ $cmd"
    $cmd || fail "'$cmd' failed"
done
detail "$(nproc) CPUs, $(uname -r)"
