/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device access.  Regular files and devdax are mapped through libpmem2 (so
 * persistence is pmem2's persist function); fsdax block devices are opened
 * O_EXCL for writing (the kernel holds them exclusively while dm-pcache runs)
 * and read with pread, since a block device mapping is not DAX.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <dirent.h>
#include <unistd.h>

#include "overlay.h"
#include "pcachemeta.h"

struct pcm_dev {
	char *path;
	int fd;
	unsigned flags;
	enum pcm_dev_kind kind;
	uint64_t size;
	struct pmem2_map *map;
	uint8_t *base;
	pmem2_persist_fn persist;
	struct pcm_overlay *ov;     /* overlay device: writes stay in memory */
};

static __thread char dev_errmsg[256];

const char *pcm_dev_errmsg(void)
{
	return dev_errmsg;
}

static void set_errmsg(const char *what)
{
	snprintf(dev_errmsg, sizeof(dev_errmsg), "%s", what ? what : "");
}

/* A block device with holders (dm targets stacked on it) is in use by the kernel. */
static int block_has_holders(dev_t rdev)
{
	char path[128];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major(rdev), minor(rdev));
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			set_errmsg(e->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static int dev_map(struct pcm_dev *dev)
{
	struct pmem2_config *cfg = NULL;
	struct pmem2_source *src = NULL;
	int rc;

	rc = pmem2_config_new(&cfg);
	if (!rc)
		rc = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	if (!rc && !(dev->flags & PCM_DEV_RDWR))
		rc = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
	if (!rc)
		rc = pmem2_source_from_fd(&src, dev->fd);
	if (!rc)
		rc = pmem2_map_new(&dev->map, cfg, src);
	if (rc) {
		set_errmsg(pmem2_errormsg());
		/* pmem2 returns -errno, or its own codes far below -4096 */
		rc = (rc < 0 && rc > -4096) ? rc : -EINVAL;
	} else {
		dev->base = pmem2_map_get_address(dev->map);
		dev->persist = pmem2_get_persist_fn(dev->map);
		if (pmem2_map_get_size(dev->map) < dev->size)
			dev->size = pmem2_map_get_size(dev->map);
	}
	if (src)
		pmem2_source_delete(&src);
	if (cfg)
		pmem2_config_delete(&cfg);
	return rc;
}

static int dev_identify(struct pcm_dev *dev, const struct stat *st)
{
	if (S_ISREG(st->st_mode)) {
		dev->kind = PCM_DEV_FILE;
		dev->size = (uint64_t)st->st_size;
	} else if (S_ISBLK(st->st_mode)) {
		dev->kind = PCM_DEV_BLOCK;
		if (ioctl(dev->fd, BLKGETSIZE64, &dev->size))
			return -errno;
		if ((dev->flags & PCM_DEV_EXCL) && block_has_holders(st->st_rdev))
			return -EBUSY;
	} else if (S_ISCHR(st->st_mode)) {
		dev->kind = PCM_DEV_DAX;
		dev->size = 0;   /* from the mapping */
	} else {
		return -ENODEV;
	}
	return 0;
}

int pcm_dev_open(const char *path, unsigned flags, struct pcm_dev **out)
{
	struct pcm_dev *dev = calloc(1, sizeof(*dev));
	struct stat st;
	int oflags = (flags & PCM_DEV_RDWR) ? O_RDWR : O_RDONLY;
	int rc;

	set_errmsg("");
	if (!dev)
		return -ENOMEM;
	dev->fd = -1;
	dev->flags = flags;
	dev->path = strdup(path);
	if (!dev->path) {
		rc = -ENOMEM;
		goto fail;
	}
	if (stat(path, &st)) {
		rc = -errno;
		goto fail;
	}
	if (S_ISBLK(st.st_mode) && (flags & PCM_DEV_EXCL))
		oflags |= O_EXCL;
	dev->fd = open(path, oflags | O_CLOEXEC);
	if (dev->fd < 0) {
		rc = -errno;
		goto fail;
	}
	/* Files and devdax: an advisory lock keeps two writers of ours apart. */
	if ((flags & PCM_DEV_EXCL) && !S_ISBLK(st.st_mode) &&
	    flock(dev->fd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	rc = dev_identify(dev, &st);
	if (rc)
		goto fail;
	if (dev->kind != PCM_DEV_BLOCK && !(flags & PCM_DEV_NOMAP) && dev->size != 0) {
		rc = dev_map(dev);
		if (rc)
			goto fail;
	} else if (dev->kind == PCM_DEV_DAX) {
		rc = dev_map(dev);
		if (rc)
			goto fail;
		dev->size = pmem2_map_get_size(dev->map);
	}
	*out = dev;
	return 0;
fail:
	pcm_dev_close(dev);
	return rc;
}

void pcm_dev_close(struct pcm_dev *dev)
{
	if (!dev)
		return;
	ov_free(dev->ov);
	if (dev->map)
		pmem2_map_delete(&dev->map);
	if (dev->fd >= 0)
		close(dev->fd);
	free(dev->path);
	free(dev);
}

uint64_t pcm_dev_size(const struct pcm_dev *dev)
{
	return dev->size;
}

enum pcm_dev_kind pcm_dev_kind(const struct pcm_dev *dev)
{
	return dev->kind;
}

const char *pcm_dev_path(const struct pcm_dev *dev)
{
	return dev->path;
}

bool pcm_dev_writable(const struct pcm_dev *dev)
{
	return dev->flags & PCM_DEV_RDWR;
}

static int range_ok(const struct pcm_dev *dev, uint64_t off, uint64_t len)
{
	return off <= dev->size && len <= dev->size - off;
}

int pcm_dev_read(struct pcm_dev *dev, uint64_t off, void *buf, size_t len)
{
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return ov_read(dev->ov, off, buf, len);
	if (dev->base) {
		memcpy(buf, dev->base + off, len);
		return 0;
	}
	while (len) {
		ssize_t n = pread(dev->fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf = (uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pcm_dev_write(struct pcm_dev *dev, uint64_t off, const void *buf, size_t len)
{
	if (!(dev->flags & PCM_DEV_RDWR))
		return -EROFS;
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return ov_write(dev->ov, off, buf, len);
	if (dev->base) {
		memcpy(dev->base + off, buf, len);
		return 0;
	}
	while (len) {
		ssize_t n = pwrite(dev->fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf = (const uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pcm_dev_zero(struct pcm_dev *dev, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (!(dev->flags & PCM_DEV_RDWR))
		return -EROFS;
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return ov_write(dev->ov, off, NULL, len);
	if (dev->base) {
		memset(dev->base + off, 0, len);
		return 0;
	}
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = pcm_dev_write(dev, off, zeros, n);

		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

int pcm_dev_persist(struct pcm_dev *dev, uint64_t off, uint64_t len)
{
	if (!(dev->flags & PCM_DEV_RDWR))
		return -EROFS;
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return 0;
	if (dev->base) {
		dev->persist(dev->base + off, len);
		return 0;
	}
	return fdatasync(dev->fd) ? -errno : 0;
}

const void *pcm_dev_ptr(struct pcm_dev *dev, uint64_t off, size_t len)
{
	if (!dev->base || !range_ok(dev, off, len))
		return NULL;
	return dev->base + off;
}

int pcm_dev_overlay(struct pcm_dev *base, struct pcm_dev **out)
{
	struct pcm_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return -ENOMEM;
	dev->fd = -1;
	dev->flags = PCM_DEV_RDWR;
	dev->kind = base->kind;
	dev->size = base->size;
	dev->path = strdup(base->path);
	dev->ov = ov_new(base);
	if (!dev->path || !dev->ov) {
		pcm_dev_close(dev);
		return -ENOMEM;
	}
	*out = dev;
	return 0;
}

const struct pcm_ov_write *pcm_dev_overlay_writes(const struct pcm_dev *dev, uint64_t *n)
{
	*n = 0;
	return dev->ov ? ov_writes(dev->ov, n) : NULL;
}
