#!/usr/bin/env bash
# The emulated aarch64 board (L1): QEMU TCG `virt` with EL2, running KVM and platvmm.
#
#   ci/board.sh build
#       setup-host check, Debian packages, vfio modules, platvmm (static aarch64), L2 and L1
#       initramfs. Everything is cached under target/board; a second run redoes only what
#       changed. PLATVMM_BIN=FILE uses that binary instead of building platvmm.
#   ci/board.sh run SCENARIO [--log FILE] [--timeout S] [--append "L1 KERNEL ARGS"] [-- QEMU ARGS]
#       Boots the board with platvmm.scenario=SCENARIO (tests/integration/scenarios/*.sh, or
#       "shell"), prints its SCENARIO-RESULT line and exits 0 only on PASS. shell and demo get
#       the terminal; other scenarios only write the log (default target/board/run/NAME.log).
#
# Per-scenario board settings live in tests/integration/host/SCENARIO.sh (optional), sourced
# here before boot: it may append to QEMU_ARGS and L1_APPEND, use RUN_DIR (a fresh scratch
# dir) for disk images or a monitor socket, and define host_during (run in the background
# while the board runs) and host_after (run after it; non-zero status fails the scenario).
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

TARGET=aarch64-unknown-linux-gnu

build() {
    "$ROOT/ci/setup-host.sh"
    "$ROOT/resources/fetch-debian.sh"
    "$ROOT/resources/fetch-debian.sh" bpo
    "$ROOT/resources/vfio/build.sh"
    "$ROOT/resources/vfio/build.sh" bpo
    "$ROOT/resources/drivers/build.sh"
    "$ROOT/resources/qemu/build.sh"
    if [ -z "${PLATVMM_BIN:-}" ]; then
        step "cargo build --release --target $TARGET (platvmm)"
        # --target even on an aarch64 host: the +crt-static rustflags of .cargo/config.toml
        # then apply to platvmm only, not to build scripts and proc-macros (which cannot be
        # static).
        (cd "$ROOT" && cargo build --release --target "$TARGET" --bin platvmm)
        export PLATVMM_BIN=$ROOT/target/$TARGET/release/platvmm
    fi
    "$ROOT/resources/l2/build.sh"
    "$ROOT/resources/l1/build.sh"
    "$ROOT/resources/l1/build.sh" bpo
    step "board built"
}

# Seconds (2 decimals) between two `date +%s.%N` values.
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# For host files whose board's UART1 goes to "unix:$RUN_DIR/uart1.sock" (use_board NAME
# CHARDEV): uart_peer_start serves it with tests/integration/host/uart-peer.py (started before
# QEMU, which connects to it); uart_peer_check N (in host_after) stops the peer and fails
# unless it answered at least N lines.
uart_peer_start() {
    python3 "$ROOT/tests/integration/host/uart-peer.py" "$RUN_DIR/uart1.sock" "$RUN_DIR/uart1.log" &
    UART_PEER=$!
    local _
    for _ in $(seq 50); do [ -S "$RUN_DIR/uart1.sock" ] && return 0; sleep 0.1; done
    die "tests/integration/host/uart-peer.py did not create $RUN_DIR/uart1.sock"
}
uart_peer_check() {
    local lines
    kill "$UART_PEER" 2>/dev/null
    lines=$(grep -c '^platvmm-uart [0-9]* [0-9a-f]*$' "$RUN_DIR/uart1.log" 2>/dev/null)
    [ "${lines:-0}" -ge "$1" ] || { echo "the UART peer answered ${lines:-0} lines (want $1: what L1 and L2 sent)"; return 1; }
    echo "host: the UART peer answered $lines lines (of $1 L1 and L2 sent)"
}

# versal_ospi_node DTB: QEMU models the Versal's OSPI controller (Cadence QSPI, registers at
# 0xf1010000, the 512 MiB AHB window at 0xc0000000, SPI 124) with a Micron MT35XU01G on each
# chip select, but its tree has no node for it. Added as the cdns,qspi-nor binding describes
# one, with the peripheral timings its flash child must carry, and a 1-bit bus. The plain
# "cdns,qspi-nor" compatible, not Versal's "xlnx,versal-ospi-1.0" before it: that variant
# needs power-domains and reads through the platform firmware's OSPI mux call, and QEMU's
# machine has no firmware (none of its other nodes has power-domains either). Its reference
# clock is the tree's 125 MHz fixed clock, as the UARTs'.
versal_ospi_node() {
    local dtb=$1 o=/spi@f1010000 clk
    clk=$(fdtget -t x "$dtb" /clk125 phandle) || die "QEMU's versal-virt tree has no /clk125"
    fdtput -c "$dtb" $o "$o/flash@0"
    fdtput -t s "$dtb" $o compatible cdns,qspi-nor
    fdtput -t x "$dtb" $o reg 0 0xf1010000 0 0x10000 0 0xc0000000 0 0x20000000
    fdtput -t x "$dtb" $o interrupts 0 0x7c 4
    fdtput -t x "$dtb" $o clocks "$clk"
    fdtput -t u "$dtb" $o cdns,fifo-depth 256
    fdtput -t u "$dtb" $o cdns,fifo-width 4
    fdtput -t x "$dtb" $o cdns,trigger-address 0xc0000000
    fdtput -t u "$dtb" $o num-cs 1
    fdtput -t u "$dtb" $o '#address-cells' 1
    fdtput -t u "$dtb" $o '#size-cells' 0
    fdtput -t s "$dtb" "$o/flash@0" compatible jedec,spi-nor
    fdtput -t u "$dtb" "$o/flash@0" reg 0
    fdtput -t u "$dtb" "$o/flash@0" spi-max-frequency 20000000
    fdtput -t u "$dtb" "$o/flash@0" cdns,read-delay 0
    fdtput -t u "$dtb" "$o/flash@0" cdns,tshsl-ns 0
    fdtput -t u "$dtb" "$o/flash@0" cdns,tsd2d-ns 0
    fdtput -t u "$dtb" "$o/flash@0" cdns,tchsh-ns 1
    fdtput -t u "$dtb" "$o/flash@0" cdns,tslch-ns 1
}

run() {
    [ $# -ge 1 ] || usage
    local name=$1; shift
    local log="" timeout=600 extra_append=() extra_qemu=()
    while [ $# -gt 0 ]; do
        case $1 in
            --log) log=$2; shift 2 ;;
            --timeout) timeout=$2; shift 2 ;;
            --append) extra_append+=("$2"); shift 2 ;;
            --) shift; extra_qemu=("$@"); break ;;
            *) usage ;;
        esac
    done
    case $name in
        shell) ;;
        *) [ -f "$ROOT/tests/integration/scenarios/$name.sh" ] ||
               die "unknown scenario '$name' (no tests/integration/scenarios/$name.sh)" ;;
    esac
    if [ ! -f "$CACHE/debian.env" ] || [ ! -f "$CACHE/l1/initramfs.cpio" ] ||
       [ ! -f "$CACHE/debian-bpo.env" ] || [ ! -f "$CACHE/l1-bpo/initramfs.cpio" ] ||
       [ ! -f "$CACHE/qemu.env" ]; then
        die "board not built: run ci/board.sh build"
    fi
    # shellcheck source=/dev/null
    . "$CACHE/debian.env"

    RUN_DIR=$CACHE/run/$name
    rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
    log=${log:-$CACHE/run/$name.log}
    mkdir -p "$(dirname "$log")"
    : >"$log"

    # The QEMU binary: the installed one, but for boards that need another (use_board).
    QEMU=qemu-system-aarch64
    # -cpu max,pauth=off: pointer-auth emulation triples TCG's cost. -nic none: QEMU 7.2
    # would look for efi-virtio.rom. gic-version=3: KVM's vGICv3 in L1.
    # shellcheck disable=SC2054 # commas inside QEMU option values
    QEMU_ARGS=(-M virt,virtualization=on,gic-version=3 -cpu max,pauth=off -smp 2 -m 2G
               -nographic -nic none -kernel "$VMLINUZ" -initrd "$CACHE/l1/initramfs.cpio")
    # A bound gpio-pl061 leaves its IRQ unrequestable for VFIO after unbinding: keep the
    # driver from binding at all.
    L1_APPEND=(console=ttyAMA0 initcall_blacklist=pl061_gpio_driver_init "platvmm.scenario=$name")
    if [ "$(uname -m)" = aarch64 ]; then QEMU_ARGS+=(-accel tcg); fi

    # use_board NAME [CHARDEV] (from a scenario's host file): another emulated board instead
    # of virt; CHARDEV (a QEMU -serial value) is where imx8mp's UART1 goes (default null).
    use_board() {
        local dtb=$CACHE/boards/$1.dtb
        mkdir -p "$CACHE/boards"
        # shellcheck disable=SC2054 # commas inside QEMU option values
        case $1 in
            zcu102)
                # Cortex-A53s and a GIC-400: KVM in L1 runs with a vGICv2. The tree is ours.
                dtc -q -I dts -O dtb -o "$dtb" "$ROOT/resources/boards/$1.dts" ||
                    die "cannot compile $1.dts"
                QEMU_ARGS=(-M xlnx-zcu102,virtualization=on -cpu cortex-a53 -smp 2 -m 2G
                           -nographic -kernel "$VMLINUZ" -initrd "$CACHE/l1/initramfs.cpio"
                           -dtb "$dtb")
                L1_APPEND=(console=ttyPS0,115200 "platvmm.scenario=$name") ;;
            versal)
                # QEMU's own tree, edited: its dwc3 wrapper becomes a simple-bus (so the child
                # becomes a platform device; the Xilinx glue needs resets QEMU lacks) and the
                # child generic-xhci (QEMU models the xHCI block, not the whole DWC3 core).
                QEMU_ARGS=(-M xlnx-versal-virt -cpu cortex-a72 -smp 4 -m 2G -nographic
                           -kernel "$VMLINUZ" -initrd "$CACHE/l1/initramfs.cpio")
                qemu-system-aarch64 "${QEMU_ARGS[@]}" -machine "dumpdtb=$dtb" >/dev/null 2>&1 ||
                    die "cannot dump the versal-virt device tree"
                fdtput -t s "$dtb" /usb@ff9d0000 compatible simple-bus
                fdtput -t s "$dtb" /usb@ff9d0000/dwc3@fe200000 compatible generic-xhci
                versal_ospi_node "$dtb"
                QEMU_ARGS+=(-dtb "$dtb")
                L1_APPEND=(console=ttyAMA0 "platvmm.scenario=$name") ;;
            virt-smmuv3)
                # virt with its SMMUv3, and L1's PL031 described behind it the way the
                # arm,smmu-v3 binding says (iommus = <&smmu SID>, one cell): Linux attaches
                # the device to the SMMU, so it gets a real IOMMU group and VFIO runs TYPE1.
                # QEMU's SMMU translates only PCI DMA, which the PL031 never does. SID 0xff00
                # is inside the SMMU's 16 bits and used by no PCI device (bus 0xff).
                QEMU_ARGS=(-M virt,virtualization=on,gic-version=3,iommu=smmuv3 -cpu max,pauth=off
                           -smp 2 -m 2G -nographic -nic none -kernel "$VMLINUZ"
                           -initrd "$CACHE/l1/initramfs.cpio")
                qemu-system-aarch64 "${QEMU_ARGS[@]}" -machine "dumpdtb=$dtb" >/dev/null 2>&1 ||
                    die "cannot dump the virt device tree"
                local smmu
                smmu=$(fdtget -t x "$dtb" /smmuv3@9050000 phandle) ||
                    die "QEMU's virt tree has no /smmuv3@9050000"
                fdtput -t x "$dtb" /pl031@9010000 iommus "$smmu" 0xff00
                QEMU_ARGS+=(-dtb "$dtb") ;;
            imx8mp)
                # NXP's i.MX 8M Plus EVK (QEMU >= 10). L1 runs bookworm-backports' 6.12 (the
                # 6.1 kernel predates parts of this SoC's support) on its own upstream
                # imx8mp-evk.dtb, unchanged: clocks come from the CCM, power domains from the
                # GPC, resets from the SRC, as on the board. Serial ports: UART1 (the one
                # scenarios pass through) goes to ARGS' chardev (default null), UART2 is the
                # console.
                # QEMU >= 10.0.3: resources/qemu/build.sh builds it when the installed one
                # is older.
                QEMU=$(sed -n 's/^QEMU_IMX8MP=//p' "$CACHE/qemu.env")
                qemu_imx8mp_virq "$QEMU" ||
                    die "$QEMU is not QEMU >= 10.0.3 (imx8mp-evk's virtual interrupts): run ci/board.sh build"
                local bpo_image krel
                bpo_image=$(sed -n 's/^VMLINUZ=//p' "$CACHE/debian-bpo.env")
                krel=$(sed -n 's/^KREL=//p' "$CACHE/debian-bpo.env")
                dtb=$(sed -n 's/^DEB_ROOT=//p' "$CACHE/debian-bpo.env")/usr/lib/linux-image-$krel/freescale/imx8mp-evk.dtb
                [ -f "$dtb" ] || die "no imx8mp-evk.dtb in linux-image-$krel"
                QEMU_ARGS=(-M imx8mp-evk -smp 2 -m 2G -display none -monitor none
                           -serial "${2:-null}" -serial stdio -kernel "$bpo_image"
                           -initrd "$CACHE/l1-bpo/initramfs.cpio" -dtb "$dtb")
                L1_APPEND=(console=ttymxc1,115200 "platvmm.scenario=$name") ;;
            *) die "unknown board $1" ;;
        esac
        if [ "$(uname -m)" = aarch64 ]; then QEMU_ARGS+=(-accel tcg); fi
    }

    local hostfile=$ROOT/tests/integration/host/$name.sh
    unset -f host_during host_after
    # shellcheck source=/dev/null
    [ -f "$hostfile" ] && . "$hostfile"
    L1_APPEND+=("${extra_append[@]}")
    QEMU_ARGS+=(-append "${L1_APPEND[*]}" "${extra_qemu[@]}")

    local interactive=0
    case $name in shell|demo) interactive=1 ;; esac

    step "booting the board: scenario $name (log: $log, timeout ${timeout}s)"
    local t0 rc=0 watcher during=""
    t0=$(date +%s.%N)
    # Notes the wall time at which L1's /init announces itself.
    ( for _ in $(seq $((timeout * 10))); do
          if grep -q L1-INIT "$log" 2>/dev/null; then date +%s.%N >"$RUN_DIR/t-l1-init"; exit; fi
          sleep 0.1
      done ) &
    watcher=$!
    if declare -F host_during >/dev/null; then host_during & during=$!; fi

    if [ $interactive = 1 ]; then
        # --foreground: QEMU keeps the terminal (^A x, ^C to the guest) when it is one.
        set +e
        timeout --foreground -k 10 "$timeout" "$QEMU" "${QEMU_ARGS[@]}" 2>&1 | tee -a "$log"
        rc=${PIPESTATUS[0]}
        set -e
    else
        timeout -k 10 "$timeout" "$QEMU" "${QEMU_ARGS[@]}" </dev/null >>"$log" 2>&1 || rc=$?
    fi
    local t1; t1=$(date +%s.%N)
    kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true
    if [ -n "$during" ]; then kill "$during" 2>/dev/null || true; wait "$during" 2>/dev/null || true; fi

    local result
    result=$(tr -d '\r' <"$log" | sed -n 's/.*\(SCENARIO-RESULT: .*\)/\1/p' | tail -1)
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        result="SCENARIO-RESULT: $name FAIL timeout after ${timeout}s${result:+ (last: $result)}"
    elif [ -z "$result" ]; then
        result="SCENARIO-RESULT: $name FAIL no SCENARIO-RESULT line (qemu exit status $rc)"
    fi
    if declare -F host_after >/dev/null && [ "$result" = "SCENARIO-RESULT: $name PASS" ]; then
        local why
        if ! why=$(host_after 2>&1); then
            result="SCENARIO-RESULT: $name FAIL host check: $(tail -1 <<<"$why")"
        fi
        [ -z "$why" ] || echo "$why" >>"$log"
    fi

    # Timings: board power-on -> L1 /init (wall clock, and the L1 kernel's own uptime), the
    # whole run, and what the scenario reported.
    local boot="?" up
    [ -f "$RUN_DIR/t-l1-init" ] && boot=$(delta "$t0" "$(cat "$RUN_DIR/t-l1-init")")
    up=$(tr -d '\r' <"$log" | sed -n 's/.*L1-INIT uptime=\([0-9.]*\)s.*/\1/p' | head -1)
    echo "TIMING board power-on->L1-/init=${boot}s (L1 kernel uptime ${up:-?}s) total=$(delta "$t0" "$t1")s"
    tr -d '\r' <"$log" | sed -n 's/^\(\[[ 0-9.]*\] \)\{0,1\}\(TIMING .*\)/\2/p'
    echo "$result"
    [ "$result" = "SCENARIO-RESULT: $name PASS" ]
}

case ${1:-} in
    build) shift; [ $# = 0 ] || usage; build ;;
    run) shift; run "$@" ;;
    *) usage ;;
esac
