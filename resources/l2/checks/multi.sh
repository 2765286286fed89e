# shellcheck shell=sh
# check "multi": several passed-through devices in one guest: the rtc and fwcfg checks, each
# finding its own device in the guest tree.
# Sourced by /init, which provides arg, expect, detail and fail.
# shellcheck source=resources/l2/checks/rtc.sh
. /checks/rtc.sh
# shellcheck source=resources/l2/checks/fwcfg.sh
. /checks/fwcfg.sh
