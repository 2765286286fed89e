/*
 * mmio-probe: times guest accesses to a physical address, for platvmm's fast-path scenario.
 *
 *   mmio-probe ADDR WIDTH COUNT [read|write]
 *
 * Maps the page of ADDR from /dev/mem and performs COUNT volatile accesses of WIDTH bytes
 * (1, 2, 4) at ADDR, then prints "mmio-probe addr=0x... width=W count=N ns_per_access=X".
 * Each access to a region platvmm maps is a plain load; to a trapped region it is one KVM
 * MMIO exit forwarded to the device; to an address nothing claims, a bare exit.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: mmio-probe ADDR WIDTH COUNT [read|write]\n");
		return 2;
	}
	uint64_t addr = strtoull(argv[1], NULL, 0);
	int width = atoi(argv[2]);
	long count = atol(argv[3]);
	int write = argc > 4 && strcmp(argv[4], "write") == 0;
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("/dev/mem");
		return 1;
	}
	uint64_t base = addr & ~(uint64_t)(page - 1);
	volatile uint8_t *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	p += addr - base;
	uint64_t sum = 0, t0 = now_ns();
	for (long i = 0; i < count; i++) {
		switch (width) {
		case 1: if (write) *p = 0; else sum += *p; break;
		case 2: if (write) *(volatile uint16_t *)p = 0; else sum += *(volatile uint16_t *)p; break;
		default: if (write) *(volatile uint32_t *)p = 0; else sum += *(volatile uint32_t *)p; break;
		}
	}
	uint64_t dt = now_ns() - t0;
	printf("mmio-probe addr=%#llx width=%d count=%ld ns_per_access=%llu sum=%llu\n",
	       (unsigned long long)addr, width, count,
	       (unsigned long long)(count ? dt / (uint64_t)count : 0), (unsigned long long)sum);
	return 0;
}
