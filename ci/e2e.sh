#!/usr/bin/env bash
# End-to-end tests on the emulated board: builds it (cached), boots it once per scenario and
# prints "PASS NAME 23s" / "FAIL NAME 23s (reason)" per scenario, then, as the very last
# line, "e2e: N passed, M failed". Exits non-zero on any failure or unknown scenario name.
#   ci/e2e.sh [SCENARIO...]     (default: all of them, in the order below)
# Logs: target/e2e/SCENARIO.log (the board's serial console).
#   E2E_TIMEOUT=S    per-scenario board timeout (default 600)
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

# Scenario name -> tests/integration/scenarios/<file>.sh, in the order "all" runs them.
ALL=(l1 boot rtc fwcfg gpio dma sata usb ethernet mmc scmi zynqmp-periph versal-periph imx8mp tpm sec-dt multi fastpath lifecycle release badinput sandbox tools rootdisk net vsock iommu)
declare -A FILE=([l1]=l1-sanity [boot]=boot [rtc]=rtc [fwcfg]=fwcfg [release]=release [badinput]=badinput [multi]=multi [gpio]=gpio [fastpath]=fastpath [lifecycle]=lifecycle [dma]=dma [sata]=sata [usb]=usb [sec-dt]=sec-dt [ethernet]=ethernet [mmc]=mmc [scmi]=scmi [imx8mp]=imx8mp [zynqmp-periph]=zynqmp-periph [versal-periph]=versal-periph [tpm]=tpm [sandbox]=sandbox [tools]=tools [rootdisk]=rootdisk [net]=net [vsock]=vsock [iommu]=iommu)

LOGS=$ROOT/target/e2e
mkdir -p "$LOGS"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")

passed=0 failed=0
report() {  # STATUS NAME SECONDS [REASON]
    if [ "$1" = PASS ]; then passed=$((passed + 1)); echo "PASS $2 ${3}s"
    else failed=$((failed + 1)); echo "FAIL $2 ${3}s${4:+ ($4)}"; fi
}

built=1
step "e2e: building the board"
if ! "$ROOT/ci/board.sh" build; then built=0; fi

for name in "${names[@]}"; do
    file=${FILE[$name]:-}
    if [ -z "$file" ]; then
        report FAIL "$name" 0 "unknown scenario; known: ${ALL[*]}"
        continue
    fi
    if [ $built = 0 ]; then
        report FAIL "$name" 0 "board build failed"
        continue
    fi
    step "e2e: scenario $name"
    start=$(date +%s)
    out=$("$ROOT/ci/board.sh" run "$file" --log "$LOGS/$name.log" --timeout "${E2E_TIMEOUT:-600}" 2>&1) || true
    secs=$(( $(date +%s) - start ))
    result=$(grep '^SCENARIO-RESULT: ' <<<"$out" | tail -1)
    if [ "$result" = "SCENARIO-RESULT: $file PASS" ]; then
        report PASS "$name" "$secs"
    else
        reason=${result#SCENARIO-RESULT: "$file" FAIL }
        report FAIL "$name" "$secs" "${reason:-$(tail -1 <<<"$out")}"
        echo "---- last 40 lines of $LOGS/$name.log ----"
        tail -n 40 "$LOGS/$name.log" | tr -d '\r' | sed 's/^/    /'
        echo "----"
    fi
    grep '^TIMING ' <<<"$out" | sed 's/^/    /' || true
done

echo "e2e: $passed passed, $failed failed"
[ $failed = 0 ]
