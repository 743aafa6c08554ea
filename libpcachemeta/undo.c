/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Undo files (doc/undo.md): before a range of the device is overwritten, its old
 * bytes are appended to the file and made durable.  The header binds the file to
 * the device (size and superblock), so it cannot be applied to another one.
 *
 * header (128 bytes): "PCMUNDO1", u32 version 1, u32 flags (1 = finished),
 *   u64 device size, 24 bytes superblock before, 24 bytes after, u64 records,
 *   u64 end, u32 records crc (kcrc of the file's bytes [128, end)), zeros,
 *   u32 crc (kcrc of bytes [0, 124)) at 124.  records, end and records crc are
 *   set with the finished flag: they make a finished file whole or refused.
 * record: u32 "PCUR", u32 len, u64 device offset, u32 kcrc(old data), u32 kcrc(new
 *   data), old data.  Undo checks that each range still holds what the repair
 *   wrote before putting the old bytes back (a superblock alone does not tell
 *   two caches of one size apart).
 *
 * Applying validates the whole file and plays the undo on an overlay first: the
 * device is written only when every record and every range checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le.h"
#include "pcachemeta.h"

#define UNDO_MAGIC "PCMUNDO1"
#define REC_MAGIC 0x52554350u   /* "PCUR" */
#define HDR_SIZE 128u
#define REC_SIZE 24u
#define F_FINISHED 1u

/* header fields */
#define H_FLAGS 12
#define H_SIZE 16
#define H_SB_BEFORE 24
#define H_SB_AFTER 48
#define H_RECORDS 72
#define H_END 80
#define H_RCRC 88
#define H_CRC 124

struct pcm_undo {
	int fd;
	uint8_t hdr[HDR_SIZE];
	uint64_t records;   /* complete records appended */
	uint64_t end;       /* where the next one goes */
	uint32_t rcrc;      /* kcrc of the file's bytes [HDR_SIZE, end) */
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

/* 0, or -EBADMSG when the file ends before len bytes. */
static int read_all(int fd, void *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EBADMSG;
		buf = (uint8_t *)buf + n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int hdr_write(struct pcm_undo *u)
{
	put_le32(u->hdr + H_CRC, pcm_kcrc(u->hdr, H_CRC));
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
	u->end = HDR_SIZE;
	u->rcrc = PCM_CRC_SEED;
	memcpy(u->hdr, UNDO_MAGIC, 8);
	put_le32(u->hdr + 8, 1);
	put_le64(u->hdr + H_SIZE, pcm_dev_size(dev));
	rc = pcm_dev_read(dev, PCM_SB_OFF, u->hdr + H_SB_BEFORE, PCM_SB_SIZE);
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
	uint8_t *rec;
	int rc;

	if (len > UINT32_MAX)
		return -EINVAL;
	rec = malloc(REC_SIZE + len);
	if (!rec)
		return -ENOMEM;
	rc = pcm_dev_read(dev, off, rec + REC_SIZE, len);
	if (!rc) {
		put_le32(rec, REC_MAGIC);
		put_le32(rec + 4, (uint32_t)len);
		put_le64(rec + 8, off);
		put_le32(rec + 16, pcm_kcrc(rec + REC_SIZE, len));
		put_le32(rec + 20, pcm_kcrc(new_data, len));
		/* one write, after the last complete record (a failed one is cut off below) */
		rc = write_all(u->fd, rec, REC_SIZE + len, (off_t)u->end);
	}
	if (!rc && fdatasync(u->fd))
		rc = -errno;
	if (!rc) {
		u->rcrc = pcm_crc32c(u->rcrc, rec, REC_SIZE + len);
		u->end += REC_SIZE + len;
		u->records++;
	} else if (ftruncate(u->fd, (off_t)u->end)) {
		/* the torn record stays after the last complete one: it is ignored */
	}
	free(rec);
	return rc;
}

int pcm_undo_finish(struct pcm_undo *u, struct pcm_dev *dev)
{
	int rc = pcm_dev_read(dev, PCM_SB_OFF, u->hdr + H_SB_AFTER, PCM_SB_SIZE);

	put_le32(u->hdr + H_FLAGS, F_FINISHED);
	put_le64(u->hdr + H_RECORDS, u->records);
	put_le64(u->hdr + H_END, u->end);
	put_le32(u->hdr + H_RCRC, u->rcrc);
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

/* ---- applying ---- */

struct urec { uint64_t off; uint32_t len; uint32_t old_crc, new_crc; off_t at; };

struct uidx {
	struct urec *v;
	uint64_t n, cap;
};

static int idx_add(struct uidx *x, const uint8_t rec[REC_SIZE], off_t at)
{
	if (x->n == x->cap) {
		uint64_t cap = x->cap ? x->cap * 2 : 64;
		struct urec *nv = realloc(x->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		x->v = nv;
		x->cap = cap;
	}
	x->v[x->n++] = (struct urec){ get_le64(rec + 8), get_le32(rec + 4), get_le32(rec + 16),
				      get_le32(rec + 20), at };
	return 0;
}

/* kcrc-style CRC of the file's bytes [off, off+len), continuing from seed. */
static int file_crc(int fd, off_t off, uint64_t len, uint32_t seed, uint32_t *crc)
{
	uint8_t buf[65536];

	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		int rc = read_all(fd, buf, n, off);

		if (rc)
			return rc;
		seed = pcm_crc32c(seed, buf, n);
		off += (off_t)n;
		len -= n;
	}
	*crc = seed;
	return 0;
}

/*
 * Lists the records and checks every one of them before anything is written
 * (-EBADMSG: damaged).  [HDR_SIZE, end) is what a finished header vouches for:
 * exactly `records` records whose bytes match the records crc, each with its old
 * data matching its old crc.  After end (all of an unfinished file) come records
 * whose write may have been cut by a crash: the first one that runs past the end
 * of the file, has a wrong magic, or (being the last) fails its old crc, was torn
 * before its device write started, and ends the list.
 */
static int undo_index(int fd, const uint8_t *hdr, struct uidx *x)
{
	struct stat st;
	uint8_t rec[REC_SIZE];
	bool finished = get_le32(hdr + H_FLAGS) & F_FINISHED;
	uint64_t end = finished ? get_le64(hdr + H_END) : 0, size;
	uint64_t covered_n = 0;
	off_t at = HDR_SIZE;
	uint32_t crc;
	int rc;

	if (fstat(fd, &st))
		return -errno;
	size = (uint64_t)st.st_size;
	if (finished) {
		/* a header written by pcache-tools before end was recorded has 0 there */
		if (end && (end < HDR_SIZE || end > size))
			return -EBADMSG;
		if (end && (rc = file_crc(fd, HDR_SIZE, end - HDR_SIZE, PCM_CRC_SEED, &crc)))
			return rc;
		if (end && crc != get_le32(hdr + H_RCRC))
			return -EBADMSG;
	}
	while ((uint64_t)at + REC_SIZE <= size) {
		bool covered = (uint64_t)at < end;

		rc = read_all(fd, rec, REC_SIZE, at);
		if (rc)
			return rc;
		uint64_t next = (uint64_t)at + REC_SIZE + get_le32(rec + 4);

		if (get_le32(rec) != REC_MAGIC || next > (covered ? end : size)) {
			if (covered)
				return -EBADMSG;
			break;   /* torn by a crash: its device write never started */
		}
		rc = file_crc(fd, at + (off_t)REC_SIZE, get_le32(rec + 4), PCM_CRC_SEED, &crc);
		if (rc)
			return rc;
		if (crc != get_le32(rec + 16)) {
			if (covered || next != size)
				return -EBADMSG;
			break;   /* the last record, torn */
		}
		rc = idx_add(x, rec, at);
		if (rc)
			return rc;
		covered_n += covered;
		at = (off_t)next;
	}
	/* cut inside a record, or records missing or added under the header's crc */
	if ((uint64_t)at < end || (end && covered_n != get_le64(hdr + H_RECORDS)))
		return -EBADMSG;
	return 0;
}

/* Reads and checks the header: -EBADMSG when it is not an undo file's, or damaged. */
static int undo_header(int fd, uint8_t hdr[HDR_SIZE])
{
	int rc = read_all(fd, hdr, HDR_SIZE, 0);

	if (rc)
		return rc;
	if (memcmp(hdr, UNDO_MAGIC, 8) || get_le32(hdr + H_CRC) != pcm_kcrc(hdr, H_CRC))
		return -EBADMSG;
	return 0;
}

/* -ESTALE when the header is not bound to dev as it is now (size, superblock). */
static int undo_bound(const uint8_t *hdr, struct pcm_dev *dev)
{
	uint8_t sb[PCM_SB_SIZE];
	int rc;

	if (get_le64(hdr + H_SIZE) != pcm_dev_size(dev))
		return -ESTALE;
	rc = pcm_dev_read(dev, PCM_SB_OFF, sb, sizeof(sb));
	if (rc)
		return rc;
	if (memcmp(sb, hdr + H_SB_BEFORE, PCM_SB_SIZE) &&
	    (!(get_le32(hdr + H_FLAGS) & F_FINISHED) || memcmp(sb, hdr + H_SB_AFTER, PCM_SB_SIZE)))
		return -ESTALE;
	return 0;
}

/*
 * Plays the records newest first on ov: each range must hold what the repair wrote
 * there (-ESTALE), then gets its old bytes back.
 */
static int undo_play(int fd, const struct uidx *x, struct pcm_dev *ov)
{
	int rc = 0;

	for (uint64_t i = x->n; !rc && i-- > 0;) {
		const struct urec *r = &x->v[i];
		uint8_t *data = malloc(r->len ? r->len : 1);
		uint32_t crc;

		if (!data)
			return -ENOMEM;
		rc = read_all(fd, data, r->len, r->at + (off_t)REC_SIZE);
		if (!rc && pcm_kcrc(data, r->len) != r->old_crc)
			rc = -EBADMSG;   /* FILE changed since it was checked */
		if (!rc && (r->off > pcm_dev_size(ov) || r->len > pcm_dev_size(ov) - r->off))
			rc = -EBADMSG;
		if (!rc)
			rc = pcm_dev_crc(ov, r->off, r->len, PCM_CRC_SEED, &crc);
		if (!rc && crc != r->new_crc)
			rc = -ESTALE;
		if (!rc)
			rc = pcm_dev_write(ov, r->off, data, r->len);
		free(data);
	}
	return rc;
}

int pcm_undo_apply(const char *path, struct pcm_dev *dev, uint64_t *ranges)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	uint8_t hdr[HDR_SIZE];
	struct uidx x = { 0 };
	struct pcm_dev *ov = NULL;
	const struct pcm_ov_write *w;
	uint64_t n = 0;

	if (ranges)
		*ranges = 0;
	if (fd < 0)
		return -errno;
	rc = undo_header(fd, hdr);
	if (!rc)
		rc = undo_index(fd, hdr, &x);
	if (!rc)
		rc = undo_bound(hdr, dev);
	if (!rc)
		rc = pcm_dev_overlay(dev, &ov);
	if (!rc)
		rc = undo_play(fd, &x, ov);
	/* every check passed: the same writes, in the same order, on the device */
	w = rc ? NULL : pcm_dev_overlay_writes(ov, &n);
	for (uint64_t i = 0; !rc && i < n; i++) {
		rc = pcm_dev_write(dev, w[i].off, w[i].data, w[i].len);
		if (!rc)
			rc = pcm_dev_persist(dev, w[i].off, w[i].len);
	}
	if (!rc && ranges)
		*ranges = x.n;
	pcm_dev_close(ov);
	free(x.v);
	close(fd);
	return rc;
}
