/*
 * netblast: moves BYTES each way over one TCP connection and checks every byte, for
 * platvmm's net scenario.
 *
 *   netblast server PORT BYTES          (accepts one connection)
 *   netblast client HOST PORT BYTES
 *
 * The client sends BYTES of a deterministic stream (seed 1); the server checks each byte,
 * answers one byte, then sends BYTES of stream 2, which the client checks. Both print one
 * line: "netblast ROLE up_MBps=X down_MBps=Y bytes=N fnv_up=H fnv_down=H ok=1" (up: client
 * to server; fnv_*: FNV-1a over the stream's 8-byte words, computed by the sender on what it
 * sent and by the receiver on what arrived, after comparing each chunk with the expected
 * stream). Exit status 0 only if both streams arrived complete and intact.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Word `i` of stream `seed` (splitmix64): byte `off` of the stream is byte off % 8 of word
 * off / 8, little-endian. */
static uint64_t word(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Chunk `c` of the stream (CHUNK bytes from c * CHUNK, a multiple of 8), whole words. */
static void fill(uint64_t seed, uint64_t c, uint64_t *w, size_t n)
{
	for (size_t k = 0; k < (n + 7) / 8; k++)
		w[k] = word(seed, c * (CHUNK / 8) + k);
	if (n % 8) /* zero past the stream's end, as the receiver pads */
		w[n / 8] &= (1ull << (8 * (n % 8))) - 1;
}

/* FNV-1a over the stream's 8-byte words (a partial last word zero-padded). */
static uint64_t hash(uint64_t h, const uint64_t *w, size_t n)
{
	for (size_t k = 0; k < (n + 7) / 8; k++)
		h = (h ^ w[k]) * 0x100000001b3ull;
	return h;
}

static int send_stream(int fd, uint64_t seed, uint64_t bytes, uint64_t *h)
{
	static uint64_t buf[CHUNK / 8];
	*h = 0xcbf29ce484222325ull;
	for (uint64_t off = 0; off < bytes;) {
		size_t n = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
		fill(seed, off / CHUNK, buf, n);
		*h = hash(*h, buf, n);
		for (size_t w = 0; w < n;) {
			ssize_t r = write(fd, (unsigned char *)buf + w, n - w);
			if (r <= 0) {
				perror("netblast: write");
				return -1;
			}
			w += (size_t)r;
		}
		off += n;
	}
	return 0;
}

/* Receives `bytes` a chunk at a time, compares each chunk with stream `seed` and hashes what
 * arrived; -1 on a short or wrong stream. */
static int recv_stream(int fd, uint64_t seed, uint64_t bytes, uint64_t *h)
{
	static uint64_t buf[CHUNK / 8], want[CHUNK / 8];
	*h = 0xcbf29ce484222325ull;
	for (uint64_t off = 0; off < bytes;) {
		size_t n = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
		buf[(n - 1) / 8] = 0; /* the zero padding of a partial last word */
		for (size_t got = 0; got < n;) {
			ssize_t r = read(fd, (unsigned char *)buf + got, n - got);
			if (r <= 0) {
				fprintf(stderr, "netblast: stream ended at byte %llu of %llu\n",
					(unsigned long long)(off + got), (unsigned long long)bytes);
				return -1;
			}
			got += (size_t)r;
		}
		fill(seed, off / CHUNK, want, n);
		if (memcmp(buf, want, (n + 7) / 8 * 8) != 0) {
			fprintf(stderr, "netblast: wrong data in bytes %llu..%llu\n",
				(unsigned long long)off, (unsigned long long)(off + n));
			return -1;
		}
		*h = hash(*h, buf, n);
		off += n;
	}
	return 0;
}

static int report(const char *role, uint64_t bytes, double up, double down, uint64_t hu, uint64_t hd)
{
	printf("netblast %s up_MBps=%.1f down_MBps=%.1f bytes=%llu fnv_up=%016llx fnv_down=%016llx ok=1\n",
	       role, bytes / up / 1e6, bytes / down / 1e6, (unsigned long long)bytes,
	       (unsigned long long)hu, (unsigned long long)hd);
	return 0;
}

static int server(int port, uint64_t bytes)
{
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1)) {
		perror("netblast: listen");
		return 1;
	}
	int fd = accept(ls, NULL, NULL);
	if (fd < 0) {
		perror("netblast: accept");
		return 1;
	}
	uint64_t hu, hd;
	double t0 = now_s();
	if (recv_stream(fd, 1, bytes, &hu))
		return 1;
	double t1 = now_s();
	if (write(fd, "k", 1) != 1 || send_stream(fd, 2, bytes, &hd))
		return 1;
	shutdown(fd, SHUT_WR);
	char c;
	if (read(fd, &c, 1) != 1 || c != 'd') { /* the client got it all */
		fprintf(stderr, "netblast: no final ack from the client\n");
		return 1;
	}
	return report("server", bytes, t1 - t0, now_s() - t1, hu, hd);
}

static int client(const char *host, int port, uint64_t bytes)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "netblast: bad address %s\n", host);
		return 1;
	}
	for (int i = 0; connect(fd, (struct sockaddr *)&a, sizeof(a)); i++) {
		if (i == 100) {
			perror("netblast: connect");
			return 1;
		}
		close(fd);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		usleep(100000);
	}
	uint64_t hu, hd;
	char c;
	double t0 = now_s();
	if (send_stream(fd, 1, bytes, &hu))
		return 1;
	if (read(fd, &c, 1) != 1 || c != 'k') {
		fprintf(stderr, "netblast: no ack from the server\n");
		return 1;
	}
	double t1 = now_s();
	if (recv_stream(fd, 2, bytes, &hd))
		return 1;
	double t2 = now_s();
	if (write(fd, "d", 1) != 1)
		return 1;
	return report("client", bytes, t1 - t0, t2 - t1, hu, hd);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]), strtoull(argv[3], NULL, 0));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 0));
	fprintf(stderr, "usage: netblast server PORT BYTES | netblast client HOST PORT BYTES\n");
	return 2;
}
