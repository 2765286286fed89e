# The devices of the QEMU resources/qemu/build.sh builds: the i.MX 8M Plus EVK and what a
# scenario attaches to its buses (an I2C EEPROM, a SPI NOR flash, a USB disk).
CONFIG_FSL_IMX8MP_EVK=y
CONFIG_AT24C=y
CONFIG_SSI_M25P80=y
CONFIG_USB_STORAGE_CLASSIC=y
