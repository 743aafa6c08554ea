/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reads and writes (§6.3, §6.6, §9.4).
 *
 * A read is cut at 4 MiB windows; in each, the window's extents are walked
 * under its shard lock: current extents are copied from the cache, holes and
 * stale extents (their segment was reclaimed, so their data is on the
 * backing device) are read from the backing device after the lock is
 * dropped.  As in the kernel, data CRCs are not checked on reads.
 *
 * A write is cut into keys at windows and segment ends; each key's data is
 * placed at this CPU's data head and made durable before the key enters the
 * index and its open kset (§6.8 rule 1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* Ranges to read from the backing device once the shard lock is dropped. */
struct holes {
	struct pce_range *v;
	size_t n, cap;
	struct pce_range local[16];
};

static int hole_add(struct holes *h, uint64_t off, uint64_t len)
{
	if (h->n && h->v[h->n - 1].off + h->v[h->n - 1].len == off) {
		h->v[h->n - 1].len += len;
		return 0;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap * 2;
		struct pce_range *v = malloc(cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		memcpy(v, h->v, h->n * sizeof(*v));
		if (h->v != h->local)
			free(h->v);
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = (struct pce_range){ .off = off, .len = len };
	return 0;
}

/* Current data for the kernel: not EMPTY and not stale (§6.6, §8.3). */
static bool extent_live(const struct pce *e, const struct pcm_extent *t)
{
	return !(t->flags & PCM_EXT_EMPTY) && t->seg_gen >= e->c->gen[t->cseg];
}

/* Under the shard lock: copies hits into buf, notes holes. */
static int window_collect(struct pce *e, const struct pcm_index *idx, uint64_t off,
			  uint8_t *buf, uint64_t len, struct holes *h)
{
	uint64_t x = off, end = off + len;
	int rc = 0;

	while (x < end && !rc) {
		const struct pcm_extent *t = pcm_index_lookup_ge(idx, x);
		uint64_t next = t && t->off < end ? t->off : end, n;

		if (next > x) {
			rc = hole_add(h, x, next - x);
			x = next;
			continue;
		}
		n = pce_min(t->off + t->len, end) - x;
		if (extent_live(e, t))
			rc = pcm_dev_read(e->cdev, pce_data_off(e, t->cseg,
					  t->seg_off + (uint32_t)(x - t->off)), buf + (x - off), n);
		else
			rc = hole_add(h, x, n);
		x += n;
	}
	return rc;
}

static int read_window(struct pce *e, uint64_t off, uint8_t *buf, uint64_t len)
{
	struct pce_shard *s = pce_shard_of(e, off);
	struct holes h = { .cap = 16 };
	int rc;

	h.v = h.local;
	pthread_mutex_lock(&s->lock);
	rc = window_collect(e, s->idx, off, buf, len, &h);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < h.n && !rc; i++)
		rc = pce_bk_read(&e->bk, h.v[i].off, buf + (h.v[i].off - off), h.v[i].len);
	if (h.v != h.local)
		free(h.v);
	return rc;
}

int pce_read(struct pce *e, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;

	if (off > e->bk.size || len > e->bk.size - off)
		return -EINVAL;
	while (len) {
		uint64_t n = pce_min(len, PCE_WINDOW - (off & (PCE_WINDOW - 1)));
		int rc = read_window(e, off, p, n);

		if (rc)
			return rc;
		off += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* The data of one key, durable before its key exists (§6.8 rule 1). */
static int data_put(struct pce *e, struct pcm_pos at, const uint8_t *src, uint32_t n)
{
	uint64_t off = pce_data_off(e, at.cseg, at.seg_off);
	int rc = pcm_dev_write(e->cdev, off, src, n);

	if (!rc && pce_persisting(e))
		rc = pcm_dev_persist(e->cdev, off, n);
	return rc;
}

/* One key: at most to the window end, shortened at the data head's segment end. */
static int write_piece(struct pce *e, uint64_t off, const uint8_t *src, size_t len, bool fua,
		       uint32_t *done)
{
	uint32_t n = (uint32_t)pce_min(len, PCE_WINDOW - (off & (PCE_WINDOW - 1)));
	struct pcm_key k = { .off = off };
	struct pcm_pos at;
	uint64_t gen;
	bool added = false;
	int rc = pce_head_reserve(e, &n, &at, &gen);

	if (rc)
		return rc;
	rc = data_put(e, at, src, n);
	k.len = n;
	k.cseg = at.cseg;
	k.seg_off = at.seg_off;
	k.seg_gen = gen;
	/* the kernel computes it over the cache copy: the same bytes */
	k.data_crc = e->c->data_crc ? pcm_kcrc(src, n) : 0;
	if (!rc)
		rc = pce_oks_add(e, &k, fua, &added);
	if (!added && pce_ref_put(e, at.cseg))
		pce_seg_reclaim(e, at.cseg);
	*done = n;
	return rc;
}

int pce_write(struct pce *e, uint64_t off, const void *buf, size_t len, bool fua)
{
	const uint8_t *p = buf;

	if (!e->a)
		return -EROFS;
	if (off % PCM_SECTOR || len % PCM_SECTOR || off > e->bk.size || len > e->bk.size - off)
		return -EINVAL;
	while (len) {
		uint32_t n = 0;
		int rc = write_piece(e, off, p, len, fua, &n);

		if (rc == -ENOSPC)
			rc = pce_make_room(e);   /* the kernel waits for GC; we run it */
		else if (!rc) {
			off += n;
			p += n;
			len -= n;
		}
		if (rc)
			return rc;
	}
	return 0;
}

int pce_flush(struct pce *e)
{
	return e->a ? pce_oks_flush_all(e) : 0;
}
