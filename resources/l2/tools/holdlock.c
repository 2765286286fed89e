/*
 * holdlock: holds a flock(2) lock on FILE for SECONDS (busybox has no flock), for platvmm's
 * rootdisk scenario: exclusive, or shared with -s. Prints "locked" once it holds the lock;
 * the lock goes with the process (kill it to release the lock early).
 *
 *   holdlock [-s] FILE SECONDS
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int op = LOCK_EX;
	if (argc == 4 && !strcmp(argv[1], "-s")) {
		op = LOCK_SH;
		argv++;
		argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: holdlock [-s] FILE SECONDS\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0 || flock(fd, op)) {
		perror("holdlock");
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	sleep((unsigned)atoi(argv[2]));
	return 0;
}
