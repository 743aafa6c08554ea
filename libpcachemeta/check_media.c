/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Check pass over the device's bad blocks (pcm_dev_badblocks): each one is
 * mapped onto the layout and reported as MEDIA_BADBLOCK once per structure it
 * touches: the superblock, a cache_info, key_tail or dirty_tail replica, a
 * segment's info or gen replica, a kset on the log (or the bytes the kernel
 * reads at a log position), the cached data of live extents (which logical
 * range, dirty or clean), the data of overwritten or stale keys, or space
 * nothing uses.
 *
 * The kernel reads metadata and ksets with machine-check-safe copies: a media
 * error there fails the load (§3.2, §6.4), as does one in key data
 * when DATA_CRC makes it verify every key at load.  Bad blocks anywhere else
 * do not change whether the cache loads, so they leave the verdict alone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"

#define MAX_MEDIA_REPORTS 10000u
#define KSET_READ PCM_KSET_SIZE_MAX     /* bytes the kernel reads at each log position */

enum mkind { MK_UNUSED, MK_WINDOW, MK_KEY, MK_EXTENT, MK_KSET, MK_RECORD };   /* priority */

struct mitem {
	uint64_t start, end;           /* device bytes */
	enum mkind kind;
	bool at_load;                  /* the kernel reads it when it loads the cache */
	bool free_space;               /* MK_UNUSED: data area the kernel may fill later */
	bool unknown;                  /* MK_UNUSED: a data area whose use is not known */
	bool dirty, stale;             /* MK_EXTENT / MK_KEY */
	uint64_t logical;              /* MK_EXTENT: logical offset of start */
	uint32_t cseg, seg_off;        /* MK_EXTENT / MK_KEY: position of start */
	uint32_t keys;                 /* MK_KSET: key count, UINT32_MAX for LAST */
	char where[64];
};

struct media {
	struct chk *k;
	const struct pcm_badblock *bb;
	size_t nbb;
	struct mitem *it;
	size_t n, cap;
	const struct pcm_cache *c;
	uint64_t reports;
	int err;
};

/* Adds an item when a bad block overlaps [start, end); NULL when none does (or no memory). */
static struct mitem *add(struct media *m, uint64_t start, uint64_t end, enum mkind kind,
			 bool at_load, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static struct mitem *add(struct media *m, uint64_t start, uint64_t end, enum mkind kind,
			 bool at_load, const char *fmt, ...)
{
	struct mitem *it;
	va_list ap;

	if (end <= start || !pcm_badblock_find(m->bb, m->nbb, start, end - start))
		return NULL;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct mitem *v = realloc(m->it, cap * sizeof(*v));

		if (!v) {
			m->err = -ENOMEM;
			return NULL;
		}
		m->it = v;
		m->cap = cap;
	}
	it = &m->it[m->n++];
	memset(it, 0, sizeof(*it));
	it->start = start;
	it->end = end;
	it->kind = kind;
	it->at_load = at_load;
	va_start(ap, fmt);
	vsnprintf(it->where, sizeof(it->where), fmt, ap);
	va_end(ap);
	return it;
}

static void add_fixed(struct media *m, uint64_t seg_end)
{
	static const struct {
		uint32_t from, to;
		enum mkind kind;
		const char *what;
	} fx[] = {
		{ 0, PCM_SB_OFF, MK_UNUSED, "area before the superblock" },
		{ PCM_SB_OFF, PCM_SB_OFF + PCM_SB_SIZE, MK_RECORD, "superblock" },
		{ PCM_SB_OFF + PCM_SB_SIZE, PCM_CACHE_INFO_OFF, MK_UNUSED, "superblock block" },
		{ PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SIZE, MK_RECORD,
		  "cache_info replica 0" },
		{ PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SIZE, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT,
		  MK_UNUSED, "cache_info replica 0 slot" },
		{ PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT,
		  PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT + PCM_CACHE_INFO_SIZE, MK_RECORD,
		  "cache_info replica 1" },
		{ PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT + PCM_CACHE_INFO_SIZE, PCM_CACHE_CTRL_OFF,
		  MK_UNUSED, "cache_info replica 1 slot" },
		{ PCM_KEY_TAIL_OFF, PCM_KEY_TAIL_OFF + PCM_POS_SIZE, MK_RECORD, "key_tail replica 0" },
		{ PCM_KEY_TAIL_OFF + PCM_POS_SIZE, PCM_KEY_TAIL_OFF + 2 * PCM_POS_SIZE, MK_RECORD,
		  "key_tail replica 1" },
		{ PCM_DIRTY_TAIL_OFF, PCM_DIRTY_TAIL_OFF + PCM_POS_SIZE, MK_RECORD,
		  "dirty_tail replica 0" },
		{ PCM_DIRTY_TAIL_OFF + PCM_POS_SIZE, PCM_DIRTY_TAIL_OFF + 2 * PCM_POS_SIZE, MK_RECORD,
		  "dirty_tail replica 1" },
		{ PCM_DIRTY_TAIL_OFF + 2 * PCM_POS_SIZE, PCM_META_END, MK_UNUSED, "cache ctrl area" },
	};
	uint64_t size = m->k->size;

	for (size_t i = 0; i < sizeof(fx) / sizeof(fx[0]); i++)
		add(m, fx[i].from, fx[i].to < size ? fx[i].to : size, fx[i].kind,
		    fx[i].kind == MK_RECORD, "%s", fx[i].what);
	add(m, seg_end, size, MK_UNUSED, false, "space after the last segment");
}

static void add_segment(struct media *m, uint32_t d, uint32_t cseg)
{
	static const struct {
		uint32_t from, to;
		enum mkind kind;
		const char *what;
	} sx[] = {
		{ 0, PCM_SEG_INFO_SIZE, MK_RECORD, "info replica 0" },
		{ PCM_SEG_INFO_SIZE, PCM_SEG_INFO_SLOT, MK_UNUSED, "metadata" },
		{ PCM_SEG_INFO_SLOT, PCM_SEG_INFO_SLOT + PCM_SEG_INFO_SIZE, MK_RECORD,
		  "info replica 1" },
		{ PCM_SEG_INFO_SLOT + PCM_SEG_INFO_SIZE, PCM_SEG_CTRL_OFF, MK_UNUSED, "metadata" },
		{ PCM_SEG_CTRL_OFF, PCM_SEG_CTRL_OFF + PCM_SEG_GEN_SIZE, MK_RECORD, "gen replica 0" },
		{ PCM_SEG_CTRL_OFF + PCM_SEG_GEN_SIZE, PCM_SEG_CTRL_OFF + 2 * PCM_SEG_GEN_SIZE,
		  MK_RECORD, "gen replica 1" },
		{ PCM_SEG_CTRL_OFF + 2 * PCM_SEG_GEN_SIZE, PCM_DATA_OFF, MK_UNUSED, "metadata" },
		{ PCM_DATA_OFF, PCM_SEG_SIZE, MK_UNUSED, "data area" },
	};
	uint64_t base = pcm_seg_base(d);
	bool member = cseg != UINT32_MAX, known = m->c != NULL;

	for (size_t i = 0; i < sizeof(sx) / sizeof(sx[0]); i++) {
		struct mitem *it;
		bool rec = sx[i].kind == MK_RECORD;

		if (member)
			it = add(m, base + sx[i].from, base + sx[i].to, sx[i].kind, rec,
				 "segment %u (device segment %u) %s", cseg, d, sx[i].what);
		else if (known)
			it = add(m, base + sx[i].from, base + sx[i].to, sx[i].kind, false,
				 "device segment %u %s (not in the cache)", d, sx[i].what);
		else   /* the chain could not be read: assume the kernel reads the records */
			it = add(m, base + sx[i].from, base + sx[i].to, sx[i].kind, rec,
				 "device segment %u %s", d, sx[i].what);
		if (it && sx[i].from == PCM_DATA_OFF) {
			it->free_space = member;
			it->unknown = !known;
		}
	}
}

static void add_segments(struct media *m, uint32_t seg_num)
{
	uint32_t *rev = NULL;
	int64_t last = -1;

	if (m->c) {
		rev = malloc((size_t)seg_num * sizeof(*rev));
		if (!rev) {
			m->err = -ENOMEM;
			return;
		}
		memset(rev, 0xff, (size_t)seg_num * sizeof(*rev));
		for (uint32_t i = 0; i < m->c->n_segs; i++)
			if (m->c->dseg[i] < seg_num && rev[m->c->dseg[i]] == UINT32_MAX)
				rev[m->c->dseg[i]] = i;
	}
	for (size_t b = 0; b < m->nbb; b++) {
		uint64_t lo = m->bb[b].off, hi = m->bb[b].off + m->bb[b].len - 1;

		if (hi < PCM_SEGMENTS_OFF)
			continue;
		lo = lo < PCM_SEGMENTS_OFF ? 0 : (lo - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE;
		hi = (hi - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE;
		for (uint64_t d = lo; d <= hi && d < seg_num; d++) {
			if ((int64_t)d <= last)
				continue;
			last = (int64_t)d;
			add_segment(m, (uint32_t)d, rev ? rev[d] : UINT32_MAX);
		}
	}
	free(rev);
}

/* ---- the log: ksets, what the kernel reads at each position, key data, live extents ---- */

static void add_window(struct media *m, struct pcm_pos p, const char *fmt)
{
	uint64_t off = pcm_pos_dev_off(m->c, p.cseg, p.seg_off);
	uint32_t avail = PCM_DATA_SIZE - p.seg_off;

	add(m, off, off + (avail < KSET_READ ? avail : KSET_READ), MK_WINDOW, true, fmt,
	    p.cseg, p.seg_off);
}

static int on_kset(const struct pcm_walk *w, void *arg)
{
	struct media *m = arg;
	uint64_t off = pcm_pos_dev_off(m->c, w->pos.cseg, w->pos.seg_off);
	bool last = w->hdr.flags & PCM_KSET_F_LAST;
	struct mitem *it;

	it = add(m, off, off + pcm_kset_size(&w->hdr), MK_KSET, true, "%skset %u:%u",
		 last ? "LAST " : "", w->pos.cseg, w->pos.seg_off);
	if (it)
		it->keys = last ? UINT32_MAX : w->hdr.key_num;
	add_window(m, w->pos, "log read at kset %u:%u");
	return m->err;
}

static int on_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *key,
		  enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct media *m = arg;
	uint64_t off;
	struct mitem *it;

	(void)dirty;
	if (v != PCM_KEY_OK && v != PCM_KEY_BAD_DATA_CRC && v != PCM_KEY_IO)
		return 0;   /* no data range to speak of */
	off = pcm_pos_dev_off(m->c, key->cseg, key->seg_off);
	it = add(m, off, off + key->len, MK_KEY, m->c->data_crc, "data of kset %u:%u key %u",
		 w->pos.cseg, w->pos.seg_off, i);
	if (it) {
		it->stale = stale;
		it->cseg = key->cseg;
		it->seg_off = key->seg_off;
	}
	return m->err;
}

static int on_extent(const struct pcm_extent *e, void *arg)
{
	struct media *m = arg;
	uint64_t off = pcm_pos_dev_off(m->c, e->cseg, e->seg_off);
	struct mitem *it = add(m, off, off + e->len, MK_EXTENT, m->c->data_crc,
			       "cached data at %u:%u", e->cseg, e->seg_off);

	if (it) {
		it->logical = e->off;
		it->dirty = e->flags & PCM_EXT_DIRTY;
		it->cseg = e->cseg;
		it->seg_off = e->seg_off;
	}
	return m->err;
}

static void add_log(struct media *m)
{
	struct pcm_replay_opts ro = { .keep_going = true, .on_key = on_key, .on_kset = on_kset,
				      .arg = m };
	struct pcm_replay *r = NULL;

	if (pcm_replay_run(m->c, &ro, &r))
		return;
	if (r->key_head.cseg < m->c->n_segs && r->key_head.seg_off < PCM_DATA_SIZE)
		add_window(m, r->key_head, "log end at %u:%u");
	pcm_index_foreach(r->idx, on_extent, m);
	pcm_replay_free(r);
}

/* ---- mapping each bad block onto the items ---- */

struct hit {
	size_t item;
	uint64_t first, end, bytes;
};

static void describe(const struct media *m, const struct pcm_badblock *b, const struct mitem *it,
		     const struct hit *h, char *buf, size_t len)
{
	int n = snprintf(buf, len, "bad block at %llu (%llu bytes): %llu bytes ",
			 (unsigned long long)b->off, (unsigned long long)b->len,
			 (unsigned long long)h->bytes);
	uint64_t lo;

	if (n < 0 || (size_t)n >= len)
		return;
	buf += n;
	len -= (size_t)n;
	switch (it->kind) {
	case MK_RECORD:
		snprintf(buf, len, "of it; %s", it->at_load ? "read at load: the load fails" :
			 "not read: the segment is not in the cache");
		break;
	case MK_KSET:
		if (it->keys == UINT32_MAX)
			snprintf(buf, len, "of it; read at load: the load fails");
		else
			snprintf(buf, len, "of it (%u keys); read at load: the load fails", it->keys);
		break;
	case MK_WINDOW:
		snprintf(buf, len, "of the %u the kernel reads at this log position; the load fails",
			 KSET_READ);
		break;
	case MK_EXTENT:
		lo = it->logical + (h->first - it->start);
		snprintf(buf, len, "of %s data, logical [%llu, %llu)%s; %s",
			 it->dirty ? "dirty" : "clean", (unsigned long long)lo,
			 (unsigned long long)(lo + (h->end - h->first)),
			 it->dirty ? " not written back" : "",
			 it->at_load ? "verified at load: the load fails" : "reading it fails");
		break;
	case MK_KEY:
		snprintf(buf, len, "of data of a%s key; %s", it->stale ? " stale" : "n overwritten",
			 it->at_load ? "verified at load: the load fails" : "not read");
		break;
	case MK_UNUSED:
		snprintf(buf, len, "%s", it->unknown ?
			 "of a data area whose use is unknown (the cache does not open)" :
			 it->free_space ?
			 "of free cache space; not read, but data cached there later may be lost" :
			 "the kernel does not use");
		break;
	}
	(void)m;
}

static void report_hit(struct media *m, const struct pcm_badblock *b, const struct hit *h)
{
	const struct mitem *it = &m->it[h->item];
	struct pcm_check_result *res = m->k->res;
	enum pcm_kernel_verdict v = res->verdict;
	char detail[160], where[64];
	uint64_t off = it->kind == MK_RECORD || it->kind == MK_KSET ? it->start : h->first;

	if (m->reports++ >= MAX_MEDIA_REPORTS)
		return;
	describe(m, b, it, h, detail, sizeof(detail));
	if (it->kind == MK_EXTENT || it->kind == MK_KEY)
		snprintf(where, sizeof(where), "%s at %u:%llu",
			 it->kind == MK_EXTENT ? "cached data" : "key data", it->cseg,
			 (unsigned long long)(it->seg_off + (h->first - it->start)));
	else
		snprintf(where, sizeof(where), "%s", it->where);
	chk_report(m->k, PCM_P_MEDIA_BADBLOCK, off, where, "%s", detail);
	if (!it->at_load)
		res->verdict = v;   /* the kernel loads as before: the verdict stays */
}

/* Item a takes byte x over item b: a higher kind, else the one starting nearer before x. */
static bool wins(const struct mitem *a, const struct mitem *b)
{
	return a->kind > b->kind || (a->kind == b->kind && a->start > b->start);
}

static size_t best_at(const struct media *m, uint64_t x)
{
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < m->n; i++)
		if (m->it[i].start <= x && x < m->it[i].end &&
		    (best == SIZE_MAX || wins(&m->it[i], &m->it[best])))
			best = i;
	return best;
}

static void map_badblock(struct media *m, const struct pcm_badblock *b)
{
	struct hit *h = NULL;
	size_t nh = 0, cap = 0;
	uint64_t x = b->off, e = b->off + b->len;

	while (x < e) {
		size_t i = best_at(m, x), j;
		uint64_t end = e;

		if (i == SIZE_MAX)
			break;   /* the items cover the whole device; not reached */
		if (m->it[i].end < end)
			end = m->it[i].end;
		for (j = 0; j < m->n; j++)
			if (m->it[j].start > x && m->it[j].start < end && wins(&m->it[j], &m->it[i]))
				end = m->it[j].start;
		for (j = 0; j < nh && h[j].item != i; j++)
			;
		if (j == nh) {
			if (nh == cap) {
				struct hit *v = realloc(h, (cap = cap ? 2 * cap : 8) * sizeof(*v));

				if (!v) {
					m->err = -ENOMEM;
					break;
				}
				h = v;
			}
			h[nh++] = (struct hit){ .item = i, .first = x };
		}
		h[j].end = end;
		h[j].bytes += end - x;
		x = end;
	}
	for (size_t j = 0; j < nh; j++)
		report_hit(m, b, &h[j]);
	free(h);
}

int chk_media(struct chk *k)
{
	struct media m = { .k = k };
	struct pcm_cache *c = NULL;
	uint32_t seg_num;
	int rc = pcm_dev_badblock_list(k->dev, &m.bb, &m.nbb);

	if (rc || !m.nbb)
		return rc;
	if (pcm_sb_check(&k->sb, k->size) == PCM_SB_OK) {
		seg_num = k->sb.seg_num;
	} else {
		seg_num = pcm_seg_num_for_size(k->size);
		if (seg_num > PCM_SEGS_MAX)
			seg_num = PCM_SEGS_MAX;
	}
	/* the chain and the log, as far as they can be read */
	if (pcm_cache_open_relaxed(k->dev, &c) == 0) {
		c->backing_size = k->o->backing_size;
		m.c = c;
	}
	add_fixed(&m, PCM_SEGMENTS_OFF + (uint64_t)seg_num * PCM_SEG_SIZE);
	add_segments(&m, seg_num);
	if (m.c && !m.err)
		add_log(&m);
	for (size_t b = 0; !m.err && b < m.nbb; b++)
		map_badblock(&m, &m.bb[b]);
	pcm_cache_close(c);
	free(m.it);
	return m.err;
}
