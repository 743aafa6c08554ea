/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rangecopy: the kernel suite's read-back of chosen byte ranges of a device, in one
 * process (a dd per range costs a fork and exec each, which the emulated guest makes
 * slow).  Runs in the qemu guest with the host's libraries, as pcache does.
 *
 *   rangecopy SRC DST SHIFT LIMIT_S < RANGES
 *
 * RANGES: lines `START LEN` in bytes, multiples of 4096.  Each range of SRC is read
 * with O_DIRECT (through the target, not the guest's page cache; a file system without
 * O_DIRECT, such as tmpfs for the host's tests, is read without) and written to DST at
 * START + SHIFT; all-zero 4 KiB blocks are not written, so a sparse DST stays sparse.
 * Exit 0 with `ok N` (ranges copied), 1 with `fail START LEN: reason`, 2 with `hang`
 * when LIMIT_S seconds have passed (checked between pieces of 1 MiB).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PIECE (1u << 20)
#define BLOCK 4096u

static int usage(void)
{
	fprintf(stderr, "usage: rangecopy SRC DST SHIFT LIMIT_S < RANGES\n");
	return 16;
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Writes the non-zero 4 KiB blocks of buf (n bytes, read from pos) to dst at pos + shift. */
static int put(int dst, const unsigned char *buf, size_t n, uint64_t at)
{
	for (size_t b = 0; b < n; b += BLOCK) {
		size_t m = n - b < BLOCK ? n - b : BLOCK;

		if (all_zero(buf + b, m))
			continue;
		if (pwrite(dst, buf + b, m, (off_t)(at + b)) != (ssize_t)m)
			return -1;
	}
	return 0;
}

static int copy_range(int src, int dst, uint64_t start, uint64_t len, uint64_t shift,
		      unsigned char *buf, time_t deadline)
{
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < PIECE ? (size_t)(len - done) : PIECE;
		ssize_t got;

		if (time(NULL) > deadline)
			return 2;
		got = pread(src, buf, n, (off_t)(start + done));
		if (got != (ssize_t)n) {
			printf("fail %" PRIu64 " %" PRIu64 ": read: %s\n", start, len,
			       got < 0 ? strerror(errno) : "short read");
			return 1;
		}
		if (put(dst, buf, n, start + done + shift)) {
			printf("fail %" PRIu64 " %" PRIu64 ": write: %s\n", start, len, strerror(errno));
			return 1;
		}
		done += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t start, len, shift, count = 0;
	unsigned char *buf;
	time_t deadline;
	int src, dst, rc = 0;

	if (argc != 5)
		return usage();
	shift = strtoull(argv[3], NULL, 0);
	deadline = time(NULL) + strtol(argv[4], NULL, 0);
	src = open(argv[1], O_RDONLY | O_DIRECT);
	if (src < 0 && errno == EINVAL)
		src = open(argv[1], O_RDONLY);
	dst = open(argv[2], O_WRONLY);
	if (src < 0 || dst < 0 || posix_memalign((void **)&buf, BLOCK, PIECE)) {
		printf("fail 0 0: open: %s\n", strerror(errno));
		return 1;
	}
	while (!rc && scanf("%" SCNu64 " %" SCNu64, &start, &len) == 2) {
		if (start % BLOCK || len % BLOCK) {
			printf("fail %" PRIu64 " %" PRIu64 ": not 4 KiB aligned\n", start, len);
			rc = 1;
			break;
		}
		rc = copy_range(src, dst, start, len, shift, buf, deadline);
		count += !rc;
	}
	if (rc == 2)
		printf("hang\n");
	else if (!rc && fsync(dst))
		rc = 1, printf("fail 0 0: fsync: %s\n", strerror(errno));
	else if (!rc)
		printf("ok %" PRIu64 "\n", count);
	free(buf);
	close(src);
	close(dst);
	return rc;
}
