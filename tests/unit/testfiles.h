/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * testfiles.h - scratch files for the unit tests that run the engine on image
 * files: a sparse temporary file, random content, whole-file reads and writes.
 * Static, like tap.h, so each test program stays standalone.
 */
#ifndef PCM_TEST_FILES_H
#define PCM_TEST_FILES_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

/* A sparse file of size bytes named PROG.NAME.XXXXXX; its path in path. */
static inline int tmpfile_of(char *path, size_t len, const char *prog, const char *name,
			     uint64_t size)
{
	const char *d = getenv("TMPDIR");
	int fd;

	/* tmpfs by default: msync and fdatasync there cost no disk I/O */
	if (!d || !*d)
		d = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	snprintf(path, len, "%s/%s.%s.XXXXXX", d, prog, name);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		close(fd);
		return -errno;
	}
	return close(fd);
}

/* n bytes from tap_rand(). */
static inline void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = tap_rand();

		memcpy(p + i, &x, n - i < 8 ? n - i : 8);
	}
}

/* The first len bytes of path, read or written in one call. */
static inline int file_io(const char *path, uint8_t *buf, uint64_t len, bool write)
{
	int fd = open(path, write ? O_WRONLY : O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write ? pwrite(fd, buf, len, 0) : pread(fd, buf, len, 0);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

#endif
