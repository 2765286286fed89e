# shellcheck shell=sh
# check "tpm": a passed-through memory-mapped TPM 2.0 (tcg,tpm-tis-mmio) through tpm_tis
# (upstream, built from Debian's source by resources/drivers/build.sh). L2 extends PCR 16 of
# the SHA-256 bank with platvmm.tpm_digest=HEX (32 bytes) by a raw TPM2_PCR_Extend on
# /dev/tpm0, then reads the PCR back through the driver's sysfs: it must be
# SHA256(old value || digest). Reports pcr16_old= and pcr16_new= (L1 then reads the same
# TPM's PCR 16 itself).
# Sourced by /init, which provides arg, expect, detail and fail.
digest=$(arg platvmm.tpm_digest)
[ ${#digest} = 64 ] || { fail "platvmm.tpm_digest='$digest': want 64 hex digits"; return 0; }
# hex_to_bin HEX: the bytes HEX spells.
hex_to_bin() {
    _h=$1
    while [ -n "$_h" ]; do
        # shellcheck disable=SC2059 # the format is the byte
        printf "\\$(printf %03o "0x${_h%"${_h#??}"}")"
        _h=${_h#??}
    done
}
modprobe tpm_tis || { fail "cannot load tpm_tis"; return 0; }
i=0
while [ ! -c /dev/tpm0 ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
[ -c /dev/tpm0 ] || { fail "tpm_tis registered no /dev/tpm0"; return 0; }
pcr=/sys/class/tpm/tpm0/pcr-sha256/16
old=$(tr 'A-F' 'a-f' <"$pcr")
[ ${#old} = 64 ] || { fail "no SHA-256 PCR 16 in sysfs ('$old')"; return 0; }
# TPM2_PCR_Extend: ST_SESSIONS, 65 bytes, TPM_CC_PCR_Extend, PCR 16, a password session
# (TPM_RS_PW, empty), one digest, TPM_ALG_SHA256.
hex_to_bin "80020000004100000182000000100000000940000009000000000000000001000b$digest" >/tmp/extend.bin
exec 3<>/dev/tpm0
cat /tmp/extend.bin >&3
resp=$(dd bs=64 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d ' \n')
exec 3<&-
[ "$(echo "$resp" | cut -c13-20)" = 00000000 ] || { fail "TPM2_PCR_Extend answered '$resp'"; return 0; }
new=$(tr 'A-F' 'a-f' <"$pcr")
want=$(hex_to_bin "$old$digest" | sha256sum | cut -d' ' -f1)
[ "$new" = "$want" ] || fail "PCR 16 reads $new after the extend, SHA256(old || digest) is $want"
detail "pcr16_old=$old pcr16_new=$new"
