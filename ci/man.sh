#!/usr/bin/env bash
# Generates platvmm's man page and shell completions from its clap definitions, into
# target/man/platvmm.1 and target/completions/, and checks they describe the real options.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo build --quiet --bin platvmm
bin=target/debug/platvmm
mkdir -p target/man target/completions
"$bin" man >target/man/platvmm.1
"$bin" completions bash >target/completions/platvmm.bash
"$bin" completions zsh >target/completions/_platvmm
"$bin" completions fish >target/completions/platvmm.fish
grep -q '^\.TH platvmm 1' target/man/platvmm.1 || die "the man page has no .TH header"
for opt in vfio-platform seccomp config user; do
    roff=$(printf -- '--%s' "$opt" | sed 's/-/\\-/g')  # roff escapes every dash
    grep -qF -- "$roff" target/man/platvmm.1 || die "the man page lacks --$opt"
    grep -q -- "--$opt" target/completions/platvmm.bash || die "the bash completions lack --$opt"
done
bash -n target/completions/platvmm.bash || die "the bash completions do not parse"
if command -v man >/dev/null; then
    MANWIDTH=100 man -l target/man/platvmm.1 >/dev/null 2>&1 || die "man cannot render the page"
fi
step "man page ($(wc -l <target/man/platvmm.1) lines) and completions (bash, zsh, fish) in target/"
