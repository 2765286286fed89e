/*
 * vsock-echo: round trips over AF_VSOCK, for platvmm's vsock scenario.
 *
 *   vsock-echo server PORT [COUNT]      echoes each connection until EOF, one at a time;
 *                                       with COUNT, exits 0 after COUNT connections
 *   vsock-echo client CID PORT N SIZE   N round trips of SIZE bytes, each checked
 *   vsock-echo cid                      prints this machine's local CID
 *
 * The client retries its connect for up to 120 s (the other side may still be booting), then
 * prints "vsock-echo round_trips=N size=S mean_us=X median_us=Y p99_us=Z ok=1" and exits 0
 * only if every reply matched what it sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int full(int fd, unsigned char *b, size_t n, int wr)
{
	for (size_t d = 0; d < n;) {
		ssize_t r = wr ? write(fd, b + d, n - d) : read(fd, b + d, n - d);
		if (r <= 0)
			return -1;
		d += (size_t)r;
	}
	return 0;
}

static int server(unsigned port, int count)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY };
	int ls = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4)) {
		perror("vsock-echo: listen");
		return 1;
	}
	printf("vsock-echo: listening on port %u\n", port);
	fflush(stdout);
	for (int served = 0; count == 0 || served < count; served++) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) {
			perror("vsock-echo: accept");
			return 1;
		}
		unsigned char buf[4096];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (full(fd, buf, (size_t)n, 1))
				break;
		close(fd);
	}
	return 0;
}

static int client(unsigned cid, unsigned port, int n, size_t size)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = cid };
	double deadline = now_us() + 120e6;
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	while (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (now_us() > deadline) {
			fprintf(stderr, "vsock-echo: connect to %u:%u: %s\n", cid, port, strerror(errno));
			return 1;
		}
		if (fd >= 0)
			close(fd);
		fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		usleep(100000);
	}
	unsigned char *out = malloc(size), *in = malloc(size);
	double *lat = malloc(sizeof(double) * (size_t)n), sum = 0;
	for (int i = 0; i < n; i++) {
		for (size_t k = 0; k < size; k++)
			out[k] = (unsigned char)(i * 31 + k);
		double t0 = now_us();
		if (full(fd, out, size, 1) || full(fd, in, size, 0)) {
			fprintf(stderr, "vsock-echo: connection lost at round trip %d\n", i);
			return 1;
		}
		lat[i] = now_us() - t0;
		sum += lat[i];
		if (memcmp(in, out, size)) {
			fprintf(stderr, "vsock-echo: round trip %d came back different\n", i);
			return 1;
		}
	}
	qsort(lat, (size_t)n, sizeof(double), cmp);
	printf("vsock-echo round_trips=%d size=%zu mean_us=%.0f median_us=%.0f p99_us=%.0f ok=1\n",
	       n, size, sum / n, lat[n / 2], lat[(n * 99) / 100]);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "server"))
		return server((unsigned)atoi(argv[2]), argc == 4 ? atoi(argv[3]) : 0);
	if (argc == 6 && !strcmp(argv[1], "client"))
		return client((unsigned)strtoul(argv[2], NULL, 0), (unsigned)atoi(argv[3]),
			      atoi(argv[4]), (size_t)atoi(argv[5]));
	if (argc == 2 && !strcmp(argv[1], "cid")) {
		unsigned cid;
		int fd = open("/dev/vsock", O_RDONLY);
		if (fd < 0 || ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid)) {
			perror("vsock-echo: /dev/vsock");
			return 1;
		}
		printf("%u\n", cid);
		return 0;
	}
	fprintf(stderr, "usage: vsock-echo server PORT [COUNT] | client CID PORT N SIZE | cid\n");
	return 2;
}
