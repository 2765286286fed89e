# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# virt with an SMMUv3, L1's PL031 behind it: VFIO's TYPE1 IOMMU instead of no-IOMMU.
use_board virt-smmuv3
