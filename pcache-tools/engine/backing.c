/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backing device: a block device or a regular file.  Two descriptors:
 * a buffered one for reads, odd-sized writes and fdatasync, and an O_DIRECT
 * one for aligned writeback, which keeps gigabytes of written-back data out
 * of the page cache.  Exclusive use as the kernel's (O_EXCL on block
 * devices, an advisory lock on files, the same way pcm_dev_open does).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

/* O_DIRECT alignment: what statx reports, else the logical block size, else a page. */
static uint32_t dio_align(int fd, bool block)
{
	struct statx sx;
	int lbs = 0;

	if (!statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) && (sx.stx_mask & STATX_DIOALIGN) &&
	    sx.stx_dio_offset_align) {
		uint32_t a = sx.stx_dio_offset_align;

		return sx.stx_dio_mem_align > a ? sx.stx_dio_mem_align : a;
	}
	if (block && !ioctl(fd, BLKSSZGET, &lbs) && lbs > 0)
		return (uint32_t)lbs;
	return 4096;
}

static int bk_size(struct pce_backing *b, const struct stat *st)
{
	if (!b->block) {
		b->size = (uint64_t)st->st_size;
		return 0;
	}
	return ioctl(b->fd, BLKGETSIZE64, &b->size) ? -errno : 0;
}

/* The O_DIRECT descriptor; its absence only costs speed. */
static void bk_open_direct(struct pce_backing *b, unsigned flags)
{
	if (flags & (PCE_NO_DIRECT | PCE_RDONLY))
		return;
	/* no O_EXCL: the buffered descriptor already holds the device */
	b->dfd = open(b->path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (b->dfd >= 0)
		b->dio_align = dio_align(b->dfd, b->block);
}

int pce_bk_open(struct pce_backing *b, const char *path, unsigned flags)
{
	bool ro = flags & PCE_RDONLY, excl = !(flags & PCE_NO_EXCL);
	int oflags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;
	int rc;

	memset(b, 0, sizeof(*b));
	b->fd = b->dfd = -1;
	b->path = strdup(path);
	if (!b->path)
		return -ENOMEM;
	if (stat(path, &st))
		return -errno;
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return -ENODEV;
	b->block = S_ISBLK(st.st_mode);
	b->fd = open(path, oflags | (b->block && excl ? O_EXCL : 0));
	if (b->fd < 0)
		return -errno;
	if (!b->block && excl && flock(b->fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB))
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	rc = bk_size(b, &st);
	if (rc)
		return rc;
	bk_open_direct(b, flags);
	return 0;
}

void pce_bk_close(struct pce_backing *b)
{
	if (b->dfd >= 0)
		close(b->dfd);
	if (b->fd >= 0)
		close(b->fd);
	free(b->path);
	b->fd = b->dfd = -1;
	b->path = NULL;
}

int pce_bk_read(struct pce_backing *b, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(b->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;   /* inside the device by the callers' checks */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static bool iov_aligned(const struct iovec *iov, int n, uint64_t off, uint32_t a)
{
	if (off % a)
		return false;
	for (int i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % a || iov[i].iov_len % a)
			return false;
	return true;
}

/* One pwritev, or the test hook; bytes written or -errno. */
static long bk_pwritev(struct pce_backing *b, int fd, const struct iovec *iov, int n,
		       uint64_t off)
{
	long r;

	if (b->wfn)
		return b->wfn(fd, iov, n, off, b->warg);
	do
		r = pwritev(fd, iov, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* Advances iov past done bytes (short writes); returns the new entry count. */
static int iov_advance(struct iovec *iov, int n, size_t done, struct iovec **first)
{
	int i = 0;

	while (i < n && done >= iov[i].iov_len)
		done -= iov[i++].iov_len;
	if (i < n) {
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + done;
		iov[i].iov_len -= done;
	}
	*first = iov + i;
	return n - i;
}

static int bk_write_all(struct pce_backing *b, int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		long r = bk_pwritev(b, fd, iov, n, off);

		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		off += (uint64_t)r;
		n = iov_advance(iov, n, (size_t)r, &iov);
	}
	return 0;
}

int pce_bk_writev(struct pce_backing *b, const struct iovec *iov, int n, uint64_t off)
{
	struct iovec local[IOV_MAX];
	int rc;

	if (n <= 0 || n > IOV_MAX)
		return -EINVAL;
	memcpy(local, iov, (size_t)n * sizeof(*iov));
	if (b->dfd >= 0 && !__atomic_load_n(&b->direct_broken, __ATOMIC_RELAXED) &&
	    iov_aligned(iov, n, off, b->dio_align)) {
		rc = bk_write_all(b, b->dfd, local, n, off);
		if (rc != -EINVAL)
			return rc;
		/* the file system refused O_DIRECT after all: buffered from now on */
		__atomic_store_n(&b->direct_broken, true, __ATOMIC_RELAXED);
		memcpy(local, iov, (size_t)n * sizeof(*iov));
	}
	return bk_write_all(b, b->fd, local, n, off);
}

int pce_bk_sync(struct pce_backing *b)
{
	if (b->sfn)
		b->sfn(b->sarg);
	/* also flushes the device cache behind earlier O_DIRECT writes */
	return fdatasync(b->fd) ? -errno : 0;
}
