# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
# The dt-schema toolchain shared by ci/dt-validate.sh and ci/corpus.sh. Sourced (after
# ci/lib.sh), not run: dtschema_setup installs or reuses, under $CACHE/dtschema,
#   - dtschema $DTSCHEMA_VERSION in a venv (--system-site-packages: Debian's python3-libfdt),
#     put first on PATH;
#   - the bindings and the arm64 board trees of Debian's linux-source-6.12 (bookworm-backports;
#     ci/setup-host.sh adds the suite) in $DT_SRC: its bindings are YAML for everything we
#     generate, SEC (CAAM) included, which 6.1's are not;
#   - the processed schemas, $DT_SCHEMA;
# and host_dtb compiles a board tree like the kernel does.
DT_OUT=$CACHE/dtschema
DT_SRC=$DT_OUT/linux
DT_SCHEMA=$DT_OUT/schema.json
LSRC_PKG=linux-source-6.12
DTSCHEMA_VERSION="2024.11"
# The arm64 vendor directories extracted (ci/corpus.sh's boards are in them); the bindings and
# include/dt-bindings always are. Changing the list changes the stamp: an old cache re-extracts
# (from the cached .deb: no new download).
DT_VENDORS=(allwinner amlogic freescale marvell mediatek nvidia renesas rockchip socionext ti xilinx)
# What those #include from the 32-bit tree (<arm/...>, as the kernel's include-prefixes allow).
DT_ARM_DIRS=(socionext)

dtschema_setup() {
    mkdir -p "$DT_OUT"
    if [ ! -x "$DT_OUT/venv/bin/dt-validate" ] ||
       [ "$(cat "$DT_OUT/venv/.version" 2>/dev/null)" != "$DTSCHEMA_VERSION" ]; then
        step "installing dtschema $DTSCHEMA_VERSION (venv)"
        rm -rf "$DT_OUT/venv"
        /usr/bin/python3 -m venv --system-site-packages "$DT_OUT/venv"
        "$DT_OUT/venv/bin/pip" install -q "dtschema==$DTSCHEMA_VERSION"
        echo "$DTSCHEMA_VERSION" >"$DT_OUT/venv/.version"
    fi
    export PATH=$DT_OUT/venv/bin:$PATH

    local stamp="$LSRC_PKG ${DT_VENDORS[*]} arm:${DT_ARM_DIRS[*]}"
    if [ ! -f "$DT_SRC/.stamp" ] || [ "$(cat "$DT_SRC/.stamp")" != "$stamp" ]; then
        mkdir -p "$DT_OUT/deb"
        if ! compgen -G "$DT_OUT/deb/${LSRC_PKG}_*.deb" >/dev/null; then
            step "downloading $LSRC_PKG"
            rm -rf "$DT_OUT/deb" && mkdir -p "$DT_OUT/deb"
            (cd "$DT_OUT/deb" && apt-get download -q $LSRC_PKG 2>/dev/null) ||
                { local sudo_apt=""; [ "$(id -u)" = 0 ] || sudo_apt=sudo
                  $sudo_apt apt-get update -q >/dev/null
                  (cd "$DT_OUT/deb" && apt-get download -q $LSRC_PKG); }
        fi
        step "extracting bindings and arm64 board trees (${DT_VENDORS[*]})"
        rm -rf "$DT_SRC" && mkdir -p "$DT_SRC"
        local dirs=() v
        for v in "${DT_VENDORS[@]}"; do dirs+=("*/arch/arm64/boot/dts/$v"); done
        for v in "${DT_ARM_DIRS[@]}"; do dirs+=("*/arch/arm/boot/dts/$v"); done
        dpkg-deb --fsys-tarfile "$DT_OUT"/deb/"${LSRC_PKG}"_*.deb |
            tar -xO --wildcards './usr/src/linux-source-*.tar.xz' |
            tar -xJ -C "$DT_SRC" --strip-components=1 --wildcards \
                '*/Documentation/devicetree/bindings' '*/include/dt-bindings' \
                '*/include/uapi/linux/input-event-codes.h' "${dirs[@]}"
        # The kernel's scripts/dtc/include-prefixes.
        mkdir -p "$DT_SRC/include-prefixes"
        ln -s ../arch/arm/boot/dts "$DT_SRC/include-prefixes/arm"
        ln -s ../arch/arm64/boot/dts "$DT_SRC/include-prefixes/arm64"
        echo "$stamp" >"$DT_SRC/.stamp"
    fi
    if [ ! -f "$DT_SCHEMA" ] || [ "$DT_SRC/.stamp" -nt "$DT_SCHEMA" ] ||
       [ "$DT_OUT/venv/.version" -nt "$DT_SCHEMA" ]; then
        step "processing the binding schemas (dt-mk-schema)"
        dt-mk-schema -j "$DT_SRC/Documentation/devicetree/bindings" >"$DT_SCHEMA.tmp"
        mv "$DT_SCHEMA.tmp" "$DT_SCHEMA"
    fi
}

# host_dtb DTS [OUTDIR]: the upstream board tree DTS (relative to arch/arm64/boot/dts),
# preprocessed and compiled like the kernel does; prints the DTB's path.
host_dtb() {
    local dts=$DT_SRC/arch/arm64/boot/dts/$1 out
    out=${2:-$DT_OUT}/$(basename "$1" .dts).dtb
    gcc -E -nostdinc -undef -D__DTS__ -x assembler-with-cpp -I "$DT_SRC/include" \
        -I "$DT_SRC/include-prefixes" -I "$(dirname "$dts")" -o "$out.pre" "$dts" &&
        dtc -q -I dts -O dtb -o "$out" "$out.pre" &&
        echo "$out"
}
