/*
 * spiread DEV BYTES: reads the first BYTES bytes of a SPI NOR flash through the spidev DEV
 * (/dev/spidevB.C) with READ (0x03) commands and 3-byte addresses, CHUNK data bytes each, one
 * full-duplex transfer per command (the command and address go out first, the data comes
 * back behind them), and writes them to stdout. Each transfer is 128 bytes at most: QEMU's
 * Cadence SPI model returns only the first transmit FIFO's worth (128 bytes) of a longer
 * transfer right, which is why spi-nor's own reads fail on it. Prints what went wrong to
 * stderr and exits 1 on an error. Static, for L1 (the baseline with its own driver) and L2.
 */
#include <fcntl.h>
#include <linux/spi/spidev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define XFER 128
#define HEADER 4
#define CHUNK (XFER - HEADER)

/* One READ of `len` (<= CHUNK) bytes at `addr` into `out`. */
static int read_chunk(int fd, uint32_t addr, uint8_t *out, size_t len)
{
	uint8_t tx[XFER] = { 0x03, addr >> 16, addr >> 8, addr };
	uint8_t rx[XFER];
	struct spi_ioc_transfer t;

	memset(&t, 0, sizeof(t));
	t.tx_buf = (uintptr_t)tx;
	t.rx_buf = (uintptr_t)rx;
	t.len = HEADER + len;
	t.speed_hz = 1000000;
	t.bits_per_word = 8;
	if (ioctl(fd, SPI_IOC_MESSAGE(1), &t) < 0) {
		fprintf(stderr, "spiread: SPI_IOC_MESSAGE at 0x%06x: %m\n", addr);
		return -1;
	}
	memcpy(out, rx + HEADER, len);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t mode = SPI_MODE_0, buf[CHUNK];
	long total;
	int fd;

	if (argc != 3 || (total = strtol(argv[2], NULL, 0)) <= 0 || total > (1 << 24)) {
		fprintf(stderr, "usage: spiread /dev/spidevB.C BYTES (1..16 MiB)\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "spiread: %s: %m\n", argv[1]);
		return 1;
	}
	if (ioctl(fd, SPI_IOC_WR_MODE, &mode) < 0) {
		fprintf(stderr, "spiread: SPI_IOC_WR_MODE: %m\n");
		return 1;
	}
	for (long done = 0; done < total;) {
		size_t len = total - done < CHUNK ? total - done : CHUNK;

		if (read_chunk(fd, done, buf, len) < 0)
			return 1;
		if (fwrite(buf, 1, len, stdout) != len) {
			fprintf(stderr, "spiread: write to stdout failed\n");
			return 1;
		}
		done += len;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
