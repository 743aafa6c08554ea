/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Undo files: before a range of the device is overwritten, its old bytes are
 * appended to the file and made durable.  The header binds the file to the
 * device (size and superblock), so it cannot be applied to another one.
 *
 * header (128 bytes): "PCMUNDO1", u32 version 1, u32 flags (1 = finished),
 *   u64 device size, 24 bytes superblock before, 24 bytes after, ..., u32 crc
 *   (kcrc of bytes [0, 124)) at 124.
 * record: u32 "PCUR", u32 len, u64 device offset, u32 kcrc(old data), u32 kcrc(new
 *   data), old data.  Undo checks that each range still holds what the repair
 *   wrote before putting the old bytes back (a superblock alone does not tell
 *   two caches of one size apart).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "le.h"
#include "pcachemeta.h"

#define UNDO_MAGIC "PCMUNDO1"
#define REC_MAGIC 0x52554350u   /* "PCUR" */
#define HDR_SIZE 128u

struct pcm_undo {
	int fd;
	uint8_t hdr[HDR_SIZE];
};

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf = (const uint8_t *)buf + n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int hdr_write(struct pcm_undo *u)
{
	put_le32(u->hdr + 124, pcm_kcrc(u->hdr, 124));
	int rc = write_all(u->fd, u->hdr, HDR_SIZE, 0);

	return rc ? rc : (fdatasync(u->fd) ? -errno : 0);
}

int pcm_undo_create(const char *path, struct pcm_dev *dev, struct pcm_undo **out)
{
	struct pcm_undo *u = calloc(1, sizeof(*u));
	int rc;

	if (!u)
		return -ENOMEM;
	u->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (u->fd < 0) {
		rc = -errno;
		free(u);
		return rc;
	}
	memcpy(u->hdr, UNDO_MAGIC, 8);
	put_le32(u->hdr + 8, 1);
	put_le64(u->hdr + 16, pcm_dev_size(dev));
	rc = pcm_dev_read(dev, PCM_SB_OFF, u->hdr + 24, PCM_SB_SIZE);
	if (!rc)
		rc = hdr_write(u);
	if (rc) {
		pcm_undo_close(u);
		unlink(path);
		return rc;
	}
	*out = u;
	return 0;
}

int pcm_undo_save(struct pcm_undo *u, struct pcm_dev *dev, uint64_t off, size_t len,
		  const void *new_data)
{
	uint8_t rec[24];
	uint8_t *data = malloc(len ? len : 1);
	off_t end = lseek(u->fd, 0, SEEK_END);
	int rc;

	if (!data)
		return -ENOMEM;
	rc = end < 0 ? -errno : pcm_dev_read(dev, off, data, len);
	if (!rc) {
		memset(rec, 0, sizeof(rec));
		put_le32(rec, REC_MAGIC);
		put_le32(rec + 4, (uint32_t)len);
		put_le64(rec + 8, off);
		put_le32(rec + 16, pcm_kcrc(data, len));
		put_le32(rec + 20, pcm_kcrc(new_data, len));
		rc = write_all(u->fd, rec, sizeof(rec), end);
	}
	if (!rc)
		rc = write_all(u->fd, data, len, end + (off_t)sizeof(rec));
	if (!rc && fdatasync(u->fd))
		rc = -errno;
	free(data);
	return rc;
}

int pcm_undo_finish(struct pcm_undo *u, struct pcm_dev *dev)
{
	int rc = pcm_dev_read(dev, PCM_SB_OFF, u->hdr + 48, PCM_SB_SIZE);

	put_le32(u->hdr + 12, 1);
	return rc ? rc : hdr_write(u);
}

void pcm_undo_close(struct pcm_undo *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

struct urec { uint64_t off; uint32_t len; off_t at; };

/* Reads and checks the header; -ESTALE if it is not bound to dev as it is now. */
static int undo_open(int fd, struct pcm_dev *dev)
{
	uint8_t hdr[HDR_SIZE], sb[PCM_SB_SIZE];
	int rc;

	if (pread(fd, hdr, HDR_SIZE, 0) != HDR_SIZE || memcmp(hdr, UNDO_MAGIC, 8) ||
	    get_le32(hdr + 124) != pcm_kcrc(hdr, 124))
		return -EBADMSG;
	rc = pcm_dev_read(dev, PCM_SB_OFF, sb, sizeof(sb));
	if (rc)
		return rc;
	if (get_le64(hdr + 16) != pcm_dev_size(dev))
		return -ESTALE;
	if (memcmp(sb, hdr + 24, PCM_SB_SIZE) &&
	    (!(get_le32(hdr + 12) & 1) || memcmp(sb, hdr + 48, PCM_SB_SIZE)))
		return -ESTALE;
	return 0;
}

static int undo_index(int fd, struct urec **out, uint64_t *n)
{
	struct urec *v = NULL;
	uint64_t cap = 0;
	off_t at = HDR_SIZE, size = lseek(fd, 0, SEEK_END);
	uint8_t rec[24];

	*n = 0;
	while (pread(fd, rec, sizeof(rec), at) == (ssize_t)sizeof(rec)) {
		/* a record torn by a crash was never followed by its device write */
		if (get_le32(rec) != REC_MAGIC ||
		    at + (off_t)sizeof(rec) + (off_t)get_le32(rec + 4) > size)
			break;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct urec *nv = realloc(v, cap * sizeof(*nv));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[(*n)++] = (struct urec){ get_le64(rec + 8), get_le32(rec + 4), at };
		at += (off_t)sizeof(rec) + get_le32(rec + 4);
	}
	*out = v;
	return 0;
}

/* The range must hold what the repair wrote there, or this is not its device. */
static int still_written(struct pcm_dev *dev, const struct urec *r, uint32_t crc)
{
	uint8_t *now = malloc(r->len ? r->len : 1);
	int rc = now ? pcm_dev_read(dev, r->off, now, r->len) : -ENOMEM;

	if (!rc && pcm_kcrc(now, r->len) != crc)
		rc = -ESTALE;
	free(now);
	return rc;
}

int pcm_undo_apply(const char *path, struct pcm_dev *dev, uint64_t *ranges)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	struct urec *v = NULL;
	uint64_t n = 0;

	if (fd < 0)
		return -errno;
	rc = undo_open(fd, dev);
	if (!rc)
		rc = undo_index(fd, &v, &n);
	for (uint64_t i = n; !rc && i-- > 0;) {
		uint8_t *data = malloc(v[i].len ? v[i].len : 1), rec[24];

		if (!data) {
			rc = -ENOMEM;
			break;
		}
		if (pread(fd, rec, sizeof(rec), v[i].at) != (ssize_t)sizeof(rec) ||
		    pread(fd, data, v[i].len, v[i].at + 24) != (ssize_t)v[i].len ||
		    get_le32(rec + 16) != pcm_kcrc(data, v[i].len))
			rc = -EBADMSG;
		if (!rc)
			rc = still_written(dev, &v[i], get_le32(rec + 20));
		if (!rc)
			rc = pcm_dev_write(dev, v[i].off, data, v[i].len);
		if (!rc)
			rc = pcm_dev_persist(dev, v[i].off, v[i].len);
		free(data);
	}
	if (ranges)
		*ranges = n;
	free(v);
	close(fd);
	return rc;
}
