/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Log repair.  A kset cannot be rewritten in place safely (a torn rewrite
 * fails its CRC and ends the log), so the damaged part of a log segment,
 * from the first kset that must change to the segment's end, is rebuilt in a
 * free segment and spliced in with one 24-byte LAST kset written over the
 * first changed kset.  Until that LAST is durable the old log stands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repair_int.h"

struct span { uint32_t cseg, seg_off, len; bool drop; uint64_t ord; };

struct lfix {
	struct rplan *r;
	struct pcm_cache *c;
	struct pcm_replay *rep;
	uint8_t *log_seg;          /* per cseg: on the log path */
	uint8_t *used;             /* per cseg: must not be taken for the rebuilt part */
	uint8_t *visited;          /* per cseg: on the log path up to the rebuilt segment */
	uint8_t *bad_hop;          /* per cseg: a LAST kset names it, but it holds data */
	uint64_t *alias_drop;      /* sorted ordinals of older aliasing keys */
	uint64_t nalias;
	struct span *spans;
	uint64_t nspans, capspans, ord;
	/* the rebuild */
	uint8_t *buf;
	uint32_t len;
	size_t cap;
	uint64_t kept_ksets, kept_keys, dropped, dropped_dirty, salvaged_ksets, lost_corrupt;
	uint64_t behind_ksets, behind_keys;  /* valid ksets behind damage, dropped without salvage */
	uint64_t slack, grown;     /* bytes the rebuilt part may grow by (split keys), and did */
	struct pcm_pos map_from[2];  /* dirty_tail old -> new, if it moves */
};

static int gather_kset(const struct pcm_walk *w, void *arg)
{
	struct lfix *f = arg;

	if (w->hdr.flags & PCM_KSET_F_LAST && w->hdr.key_num < f->c->n_segs)
		f->log_seg[w->hdr.key_num] = 1;
	return 0;
}

static int gather_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *k,
		      enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct lfix *f = arg;

	(void)w; (void)i; (void)dirty;
	f->ord++;
	if (v != PCM_KEY_OK || stale || (k->flags & PCM_KEY_F_EMPTY))
		return 0;
	if (f->nspans == f->capspans) {
		uint64_t cap = f->capspans ? f->capspans * 2 : 1024;
		struct span *s = realloc(f->spans, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		f->spans = s;
		f->capspans = cap;
	}
	f->spans[f->nspans++] = (struct span){ k->cseg, k->seg_off, k->len, false, f->ord };
	return 0;
}

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->cseg != y->cseg)
		return x->cseg < y->cseg ? -1 : 1;
	return x->seg_off < y->seg_off ? -1 : x->seg_off > y->seg_off;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Of two live keys sharing data space, the older lost its data to the newer:
 * every key overlapping a newer one is dropped (whether or not that one is).
 * Every overlapping pair counts, not only neighbours in seg_off order: a long
 * key can overlap several that do not overlap each other.
 */
static int find_aliases(struct lfix *f)
{
	if (f->nspans)
		qsort(f->spans, f->nspans, sizeof(*f->spans), cmp_span);
	f->alias_drop = malloc((f->nspans ? f->nspans : 1) * sizeof(uint64_t));
	if (!f->alias_drop)
		return -ENOMEM;
	for (uint64_t i = 0; i < f->nspans; i++) {
		struct span *a = &f->spans[i];
		uint64_t end = (uint64_t)a->seg_off + a->len;

		for (uint64_t j = i + 1; j < f->nspans && f->spans[j].cseg == a->cseg &&
		     f->spans[j].seg_off < end; j++)
			(a->ord < f->spans[j].ord ? a : &f->spans[j])->drop = true;
	}
	for (uint64_t i = 0; i < f->nspans; i++)
		if (f->spans[i].drop)
			f->alias_drop[f->nalias++] = f->spans[i].ord;
	qsort(f->alias_drop, f->nalias, sizeof(uint64_t), cmp_u64);
	return 0;
}

static bool alias_dropped(const struct lfix *f, uint64_t ord)
{
	return bsearch(&ord, f->alias_drop, f->nalias, sizeof(uint64_t), cmp_u64) != NULL;
}

/* What happens to a key: 0 keep (maybe fixed in *k), else the problem that drops it. */
static enum pcm_problem_code key_fate(const struct lfix *f, struct pcm_key *k, uint64_t ord)
{
	static const enum pcm_problem_code vc[] = {
		[PCM_KEY_BAD_LEN] = PCM_P_KEY_RANGE, [PCM_KEY_BAD_SEG] = PCM_P_KEY_SEG_RANGE,
		[PCM_KEY_BAD_SEG_OFF] = PCM_P_KEY_SEG_OFF,
		[PCM_KEY_BAD_DATA_CRC] = PCM_P_KEY_DATA_CRC, [PCM_KEY_IO] = PCM_P_KEY_IO,
	};
	enum pcm_key_verdict v = pcm_key_check(f->c, k, true);

	if (v != PCM_KEY_OK)
		return vc[v];
	if (k->flags & PCM_KEY_F_EMPTY)
		return PCM_P_KEY_EMPTY;
	if (k->seg_gen < f->c->gen[k->cseg])
		return PCM_P_KEY_STALE;
	if (f->log_seg[k->cseg])
		return PCM_P_LOG_DATA_OVERLAP;
	if (ord && alias_dropped(f, ord))
		return PCM_P_KEY_ALIAS;
	/* the kernel's keys are whole sectors (§6.3): which of the three fields is off
	 * cannot be told, so no sector-aligned key says where the data belongs */
	if (k->off % PCM_SECTOR)
		return PCM_P_KEY_SECTOR;
	if (k->len % PCM_SECTOR || k->seg_off % PCM_SECTOR)
		return PCM_P_KEY_UNALIGNED;
	if (k->seg_gen > f->c->gen[k->cseg])
		k->seg_gen = f->c->gen[k->cseg];
	k->flags &= PCM_KEY_F_CLEAN;
	k->reserved = 0;
	if (!f->c->data_crc)
		k->data_crc = 0;
	return 0;
}

/*
 * Room for need more bytes after f->len.  The buffer grows as the rebuild
 * goes: most rebuilds keep a few ksets, and a segment's worth each time
 * would cost more than the rebuild itself.
 */
static int buf_room(struct lfix *f, size_t need)
{
	size_t cap = f->cap ? f->cap : 16384;
	uint8_t *b;

	if ((size_t)f->len + need <= f->cap)
		return 0;
	while (cap < (size_t)f->len + need)
		cap *= 2;
	b = realloc(f->buf, cap);
	if (!b)
		return -ENOMEM;
	f->buf = b;
	f->cap = cap;
	return 0;
}

static void put_kset(struct lfix *f, const struct pcm_key *keys, unsigned n)
{
	struct pcm_kset_hdr h = { .key_num = n, .magic = PCM_KSET_MAGIC };
	uint8_t *at = f->buf + f->len;

	for (unsigned i = 0; i < n; i++)
		pcm_key_encode(&keys[i], at + PCM_KSET_HDR_SIZE + (size_t)i * PCM_KEY_SIZE);
	pcm_kset_hdr_encode(&h, at);
	pcm_record_seal(at, pcm_kset_size(&h));
	f->len += (uint32_t)pcm_kset_size(&h);
	f->kept_ksets++;
	f->kept_keys += n;
}

static void put_end(struct lfix *f, bool last, uint32_t next)
{
	struct pcm_kset_hdr h = { .key_num = next, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };

	memset(f->buf + f->len, 0, PCM_KSET_HDR_SIZE);
	if (last) {
		pcm_kset_hdr_encode(&h, f->buf + f->len);
		pcm_record_seal(f->buf + f->len, PCM_KSET_HDR_SIZE);
	}
}

/* Does the key cross a 4 MiB window of logical offset (or exceed one)? */
static bool key_crosses(const struct pcm_key *k)
{
	return k->len && (k->off >> PCM_WINDOW_SHIFT) !=
	       ((k->off + k->len - 1) >> PCM_WINDOW_SHIFT);
}

/* The keys kept so far for the kset being rebuilt; full ksets go out as they fill. */
struct kept {
	struct pcm_key k[PCM_KSET_KEYS_MAX];
	unsigned n;
};

static int kept_flush(struct lfix *f, struct kept *kp)
{
	if (!kp->n)
		return 0;
	if (buf_room(f, PCM_KSET_HDR_SIZE + (size_t)kp->n * PCM_KEY_SIZE))
		return -ENOMEM;
	put_kset(f, kp->k, kp->n);
	kp->n = 0;
	return 0;
}

static int keep(struct lfix *f, struct kept *kp, const struct pcm_key *k)
{
	int rc = kp->n == PCM_KSET_KEYS_MAX ? kept_flush(f, kp) : 0;

	if (!rc)
		kp->k[kp->n++] = *k;
	return rc;
}

/* kcrc of a key's data, read in pieces (a key may hold 16 MiB). */
static int data_crc_of(const struct lfix *f, const struct pcm_key *k, uint32_t *crc)
{
	uint8_t buf[65536];
	uint64_t at = pcm_pos_dev_off(f->c, k->cseg, k->seg_off);
	uint32_t c = PCM_CRC_SEED;

	for (uint32_t done = 0; done < k->len;) {
		uint32_t n = k->len - done < sizeof(buf) ? k->len - done : (uint32_t)sizeof(buf);
		int rc = pcm_dev_read(f->c->dev, at + done, buf, n);

		if (rc)
			return rc;
		c = pcm_crc32c(c, buf, n);
		done += n;
	}
	*crc = c;
	return 0;
}

/*
 * A key crossing a 4 MiB window (KEY_UNALIGNED) becomes the keys the kernel
 * makes of such a write (§6.3): one per window, on the same data, each with
 * its own data CRC.  Reads then see all of it, as writeback already did
 * (§12.11).  The rebuilt part moves from p to offset 0 of its new segment and
 * may grow by p's offset, no more (it must fit there): *kept false otherwise.
 */
static int keep_split(struct lfix *f, struct kept *kp, const struct pcm_key *k, bool *kept)
{
	uint64_t end = k->off + k->len, pieces = ((end - 1) >> PCM_WINDOW_SHIFT) -
		       (k->off >> PCM_WINDOW_SHIFT) + 1;
	uint64_t extra = (pieces - 1) * PCM_KEY_SIZE + PCM_KSET_HDR_SIZE;
	int rc = 0;

	*kept = f->grown + extra + PCM_KSET_HDR_SIZE <= f->slack;
	if (*kept)
		f->grown += extra;
	for (uint64_t at = k->off; *kept && !rc && at < end;) {
		uint64_t wend = ((at >> PCM_WINDOW_SHIFT) + 1) << PCM_WINDOW_SHIFT;
		struct pcm_key p = *k;

		p.off = at;
		p.len = (uint32_t)((wend < end ? wend : end) - at);
		p.seg_off = k->seg_off + (uint32_t)(at - k->off);
		rc = f->c->data_crc ? data_crc_of(f, &p, &p.data_crc) : 0;
		rc = rc ? rc : keep(f, kp, &p);
		at += p.len;
	}
	return rc;
}

static void drop(struct lfix *f, const struct pcm_key *k, bool dirty)
{
	f->dropped++;
	if (dirty && !(k->flags & PCM_KEY_F_CLEAN))
		f->dropped_dirty += k->len;
}

/* Keeps the keys of the kset at data that survive, counting the others as lost. */
static int rebuild_kset(struct lfix *f, const uint8_t *data, unsigned key_num, uint64_t *ord,
			bool dirty)
{
	struct kept kp = { .n = 0 };
	int rc = 0;

	for (unsigned i = 0; !rc && i < key_num; i++) {
		struct pcm_key k;
		bool kept = true;

		pcm_key_decode(data + PCM_KSET_HDR_SIZE + (size_t)i * PCM_KEY_SIZE, &k);
		++*ord;
		if (key_fate(f, &k, *ord)) {
			drop(f, &k, dirty);
			continue;
		}
		rc = key_crosses(&k) ? keep_split(f, &kp, &k, &kept) : keep(f, &kp, &k);
		if (!kept)
			drop(f, &k, dirty);
		else if (k.cseg < f->c->n_segs)
			f->used[k.cseg] = 1;
	}
	return rc ? rc : kept_flush(f, &kp);
}

struct rebuild {
	struct pcm_pos p;          /* first kset to change */
	uint64_t ord;              /* keys before p in log order */
	bool dirty;                /* dirty_tail met before p */
	bool last;                 /* the rebuilt part ends with a LAST kset */
	uint32_t next;
	bool move_dt;              /* dirty_tail lies after p in the segment */
	uint32_t dt_new;           /* its offset in the rebuilt part */
	bool move_tails;           /* p has no room for a kset header: the tails move */
};

/*
 * A salvage the rebuild may follow: forward in the same segment, or into a
 * segment not met on the way (so a chain of damaged LASTs cannot loop).
 */
static bool salvage_new(struct lfix *f, struct pcm_pos at, struct pcm_pos q)
{
	if (q.cseg == at.cseg)
		return q.seg_off > at.seg_off;
	if (q.cseg >= f->c->n_segs || f->visited[q.cseg])
		return false;
	f->visited[q.cseg] = 1;
	return true;
}

/*
 * Without salvage the log ends at damage as the kernel's does (§6.4): the valid
 * ksets from q on are dropped, and counted so that the plan can say what a
 * salvage would keep.
 */
static void drop_behind(struct lfix *f, struct pcm_pos q, bool dirty)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev;

	if (!w)
		return;
	pcm_walk_init(w, f->c, q);
	do {
		dirty = dirty || pcm_pos_eq(w->has_next ? w->next : w->pos, f->c->dirty_tail.pos);
		ev = pcm_walk_next(w);
		for (unsigned i = 0; ev == PCM_WALK_KSET && dirty && i < w->hdr.key_num; i++) {
			struct pcm_key k;

			pcm_walk_key(w, i, &k);
			if (!(k.flags & PCM_KEY_F_CLEAN))
				f->dropped_dirty += k.len;
		}
	} while (ev == PCM_WALK_KSET || w->stop == PCM_STOP_NONE);
	f->behind_ksets += w->ksets;
	f->behind_keys += w->keys;
	free(w);
}

/* Goes on at q (salvage, or our own torn splice at end, §13.4), or drops what follows. */
static int follow(struct lfix *f, struct pcm_pos end, struct pcm_pos q, bool dirty)
{
	struct pcm_pos t;

	if (!f->r->o->salvage && !pcm_walk_torn_splice(f->c, end, &t)) {
		drop_behind(f, q, dirty);
		return 0;
	}
	return 1;
}

/*
 * A LAST kset torn over a valid kset by a crash in a splice (§13.4), the other
 * way round from pcm_walk_salvage's: its flags landed, its crc and key_num did
 * not.  With the flags back to 0 the kset is whole: it is rebuilt as it was.
 * Returns its key count (0: not such a kset) or -errno.
 */
static int untorn_kset(struct lfix *f, struct pcm_pos at, struct rebuild *rb)
{
	uint8_t buf[PCM_KSET_SIZE_MAX];
	uint64_t off = pcm_pos_dev_off(f->c, at.cseg, at.seg_off);
	struct pcm_kset_hdr h;
	int rc;

	if (PCM_DATA_SIZE - at.seg_off < PCM_KSET_HDR_SIZE ||
	    pcm_dev_read(f->c->dev, off, buf, PCM_KSET_HDR_SIZE))
		return 0;
	pcm_kset_hdr_decode(buf, &h);
	if (h.magic != PCM_KSET_MAGIC || h.flags != PCM_KSET_F_LAST || !h.key_num ||
	    h.key_num > PCM_KSET_KEYS_MAX)
		return 0;
	h.flags = 0;
	if (pcm_kset_size(&h) > PCM_DATA_SIZE - at.seg_off ||
	    pcm_dev_read(f->c->dev, off, buf, pcm_kset_size(&h)))
		return 0;
	pcm_kset_hdr_encode(&h, buf);
	if (!pcm_record_crc_ok(buf, pcm_kset_size(&h)))
		return 0;
	rc = rebuild_kset(f, buf, h.key_num, &rb->ord, rb->dirty);
	return rc ? rc : (int)h.key_num;
}

/*
 * Where the rebuild walk goes on after a LAST kset or where it stopped: 1 and
 * q when valid ksets continue somewhere, 0 when the rebuilt part ends there.
 */
static int rebuild_past(struct lfix *f, struct rebuild *rb, struct pcm_walk *w,
			enum pcm_walk_event ev, struct pcm_pos *q)
{
	int n = ev == PCM_WALK_END && w->stop == PCM_STOP_CRC ? untorn_kset(f, w->pos, rb) : 0;

	if (n) {   /* a torn LAST over a kset, rebuilt as it was: on behind it */
		*q = (struct pcm_pos){ w->pos.cseg, w->pos.seg_off + PCM_KSET_HDR_SIZE +
				       PCM_KEY_SIZE * (uint32_t)(n > 0 ? n : 0) };
		return n;
	}
	if (ev == PCM_WALK_LAST && f->bad_hop[w->next.cseg]) {
		f->lost_corrupt++;   /* the LAST itself, and what it was written over */
		return pcm_walk_behind_last(f->c, w->pos, q) && follow(f, w->pos, *q, rb->dirty);
	}
	if (ev == PCM_WALK_END && w->stop != PCM_STOP_TERMINATOR) {
		f->lost_corrupt++;
		if (!pcm_walk_salvage(f->c, w->pos, q) || !salvage_new(f, w->pos, *q) ||
		    !follow(f, w->pos, *q, rb->dirty))
			return 0;
		f->used[q->cseg] = 1;   /* a LAST's target: never the new home */
		return 1;
	}
	if (ev == PCM_WALK_LAST && !f->visited[w->next.cseg]) {
		rb->last = true;
		rb->next = w->next.cseg;
	}
	if (ev == PCM_WALK_FAIL && w->stop == PCM_FAIL_OVERSIZE)
		f->lost_corrupt++;
	return 0;
}

/* Walks from p to the end of p's segment, rebuilding into f->buf. */
static int rebuild(struct lfix *f, struct rebuild *rb, struct pcm_walk *w)
{
	struct pcm_pos dt = f->c->dirty_tail.pos, q;
	bool dt_set = false;
	int rc = 0;

	pcm_walk_init(w, f->c, rb->p);
	while (rc >= 0) {
		struct pcm_pos at = w->has_next ? w->next : w->pos;
		enum pcm_walk_event ev;

		if (pcm_pos_eq(at, dt))
			rb->dirty = true;
		if (rb->move_dt && !dt_set && at.seg_off >= dt.seg_off) {
			rb->dt_new = f->len;
			dt_set = true;
		}
		ev = pcm_walk_next(w);
		if (ev == PCM_WALK_KSET) {
			rc = rebuild_kset(f, w->data, w->hdr.key_num, &rb->ord, rb->dirty);
			continue;
		}
		rc = rebuild_past(f, rb, w, ev, &q);
		if (rc <= 0)
			break;
		f->salvaged_ksets++;
		pcm_walk_init(w, f->c, q);
	}
	if (rc < 0)
		return rc;
	if (rb->move_dt && !dt_set)
		rb->dt_new = f->len;
	if (buf_room(f, PCM_KSET_HDR_SIZE))
		return -ENOMEM;
	put_end(f, rb->last, rb->next);
	return 0;
}

/* Does the current kset have to change (flags, no keys, no room, a key to drop or fix)? */
static bool kset_needs_change(struct lfix *f, const struct pcm_walk *w, uint64_t ord)
{
	const struct pcm_kset_hdr *h = &w->hdr;

	if (h->flags & PCM_KSET_F_LAST)
		return f->visited[h->key_num] || f->bad_hop[h->key_num];
	if (h->flags || h->key_num == 0 ||
	    PCM_DATA_SIZE - w->pos.seg_off - pcm_kset_size(h) < PCM_KSET_HDR_SIZE)
		return true;
	for (unsigned i = 0; i < h->key_num; i++) {
		struct pcm_key k, k2;
		uint8_t a[PCM_KEY_SIZE], b[PCM_KEY_SIZE];

		pcm_walk_key(w, i, &k);
		k2 = k;
		if (key_fate(f, &k2, ord + i + 1) || key_crosses(&k2))
			return true;
		pcm_key_encode(&k, a);
		pcm_key_encode(&k2, b);
		if (memcmp(a, b, sizeof(a)))
			return true;
	}
	return false;
}

/* Room for a kset header at p (only key_tail can lack it: a kset before p that
 * left no room is the first change itself). */
static bool has_room(struct pcm_pos p)
{
	return PCM_DATA_SIZE - p.seg_off >= PCM_KSET_HDR_SIZE;
}

/* Finds the first kset, in log order, that must change; false when none. */
static bool find_first_change(struct lfix *f, struct rebuild *rb, struct pcm_walk *w)
{
	struct pcm_pos dt = f->c->dirty_tail.pos;
	enum pcm_walk_event ev;

	pcm_walk_init(w, f->c, f->c->key_tail.pos);
	f->visited[f->c->key_tail.pos.cseg] = 1;
	for (;;) {
		struct pcm_pos at = w->has_next ? w->next : w->pos;

		if (pcm_pos_eq(at, dt))
			rb->dirty = true;
		ev = pcm_walk_next(w);
		rb->p = w->pos;
		if (ev == PCM_WALK_END)
			return w->stop != PCM_STOP_TERMINATOR || !has_room(w->pos);
		if (ev == PCM_WALK_FAIL)
			return true;
		if (kset_needs_change(f, w, rb->ord)) {
			if (pcm_pos_eq(w->pos, dt))
				rb->dirty = true;
			return true;
		}
		if (ev == PCM_WALK_LAST)
			f->visited[w->next.cseg] = 1;
		else
			rb->ord += w->hdr.key_num;
	}
}

/* Segments the rest of the log uses, beyond the rebuilt part. */
static void mark_rest(struct lfix *f, uint32_t from, struct pcm_walk *w)
{
	enum pcm_walk_event ev;

	pcm_walk_init(w, f->c, (struct pcm_pos){ from, 0 });
	f->used[from] = 1;
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST) {
		if (ev == PCM_WALK_LAST) {
			f->used[w->next.cseg] = 1;
			continue;
		}
		for (unsigned i = 0; i < w->hdr.key_num; i++) {
			struct pcm_key k;

			pcm_walk_key(w, i, &k);
			if (k.cseg < f->c->n_segs)
				f->used[k.cseg] = 1;
		}
	}
}

static int free_segment(const struct lfix *f)
{
	for (uint32_t s = 0; s < f->c->n_segs; s++)
		if (!f->used[s] && !f->rep->seg_used[s] && !f->visited[s])
			return (int)s;
	return -1;
}

static const enum pcm_problem_code log_codes[] = {
	PCM_P_LOG_START_INVALID, PCM_P_KSET_OVERSIZE_CORRUPT, PCM_P_LOG_END_TORN,
	PCM_P_LOG_END_CORRUPT, PCM_P_LOG_LOST_KSETS, PCM_P_LOG_LOOP, PCM_P_LOG_HOPS,
	PCM_P_LOG_NEXT_RANGE, PCM_P_LOG_KSET_OVERSIZE, PCM_P_LOG_DATA_OVERLAP, PCM_P_KSET_EMPTY,
	PCM_P_KSET_NO_ROOM, PCM_P_KSET_FLAGS, PCM_P_KEY_RANGE, PCM_P_KEY_SEG_RANGE,
	PCM_P_KEY_SEG_OFF, PCM_P_KEY_DATA_CRC, PCM_P_KEY_EMPTY, PCM_P_KEY_GEN_AHEAD,
	PCM_P_KEY_STALE, PCM_P_KEY_FLAGS, PCM_P_KEY_ALIAS, PCM_P_KEY_UNALIGNED, PCM_P_KEY_SECTOR,
};

/* fsck -p rebuilds a log only when every log problem found is in its safe set; no
 * mode touches the log while the chain is broken (fsck -p leaves a duplicated chain
 * alone): a cache segment that aliases another's device segment would have that
 * segment's data overwritten by whatever the log fix writes. */
static bool log_fix_allowed(const struct rplan *r)
{
	for (uint64_t i = 0; i < r->nprobs; i++)
		switch (r->probs[i].code) {
		case PCM_P_CHAIN_NO_NEXT: case PCM_P_CHAIN_RANGE: case PCM_P_CHAIN_DUPLICATE:
		case PCM_P_SEGINFO_BOTH_BAD:
			return false;
		default:
			break;
		}
	if (r->o->mode != PCM_REPAIR_SAFE)
		return true;
	for (uint64_t i = 0; i < r->nprobs; i++)
		for (size_t j = 0; j < sizeof(log_codes) / sizeof(log_codes[0]); j++)
			if (r->probs[i].code == log_codes[j] &&
			    !pcm_problem_def(log_codes[j])->safe_fix)
				return false;
	return true;
}

static const struct pcm_problem *first_log_problem(const struct rplan *r)
{
	for (uint64_t i = 0; i < r->nprobs; i++)
		for (size_t j = 0; j < sizeof(log_codes) / sizeof(log_codes[0]); j++)
			if (r->probs[i].code == log_codes[j] &&
			    !seen_has(r, r->probs[i].code, r->probs[i].offset))
				return &r->probs[i];
	return NULL;
}

static int write_end_at(struct lfix *f, struct pcm_pos p, bool last, uint32_t next)
{
	uint8_t rec[PCM_KSET_HDR_SIZE];
	struct pcm_kset_hdr h = { .key_num = next, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };

	memset(rec, 0, sizeof(rec));
	if (last) {
		pcm_kset_hdr_encode(&h, rec);
		pcm_record_seal(rec, sizeof(rec));
	}
	return pcm_dev_write(f->r->ov, pcm_pos_dev_off(f->c, p.cseg, p.seg_off), rec, sizeof(rec));
}

/*
 * The writes, in crash-safe order: dirty_tail back to p, new part, LAST at p, dirty_tail on.
 * When the tails move instead: new part, key_tail, dirty_tail (a crash between the two
 * leaves dirty_tail off the log, which loads and which fsck -p fixes).
 */
static int splice(struct lfix *f, const struct rebuild *rb, int n)
{
	struct pcm_dev *ov = f->r->ov;
	struct pcm_pos start = { (uint32_t)n, 0 };
	int rc = 0;

	if (rb->move_tails) {
		rc = pcm_dev_write(ov, pcm_pos_dev_off(f->c, start.cseg, 0), f->buf,
				   f->len + PCM_KSET_HDR_SIZE);
		if (!rc)
			rc = tail_write(ov, 0, start);
		return rc ? rc : tail_write(ov, 1, start);
	}
	if (rb->move_dt)
		rc = tail_write(ov, 1, rb->p);
	if (!rc && n < 0)
		return write_end_at(f, rb->p, rb->last && !f->kept_ksets, rb->next);
	if (!rc)
		rc = pcm_dev_write(ov, pcm_pos_dev_off(f->c, (uint32_t)n, 0), f->buf,
				   f->len + PCM_KSET_HDR_SIZE);
	if (!rc)
		rc = write_end_at(f, rb->p, true, (uint32_t)n);
	if (!rc && rb->move_dt)
		rc = tail_write(ov, 1, (struct pcm_pos){ (uint32_t)n, rb->dt_new });
	return rc;
}

/* "" or "s": counts in the words of an action are read by people. */
static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

static const char *behind_text(const struct lfix *f, char *buf, size_t len)
{
	buf[0] = 0;
	if (f->behind_ksets)
		snprintf(buf, len, "; %llu valid kset%s behind the damage dropped, as the kernel "
			 "drops them", (unsigned long long)f->behind_ksets, plural(f->behind_ksets));
	return buf;
}

static int plan_splice(struct lfix *f, struct rebuild *rb, const struct pcm_problem *p0)
{
	int n = f->kept_ksets || rb->move_tails ? free_segment(f) : -1;
	char how[96];

	if (rb->move_tails && n < 0)
		return seen_add(f->r, p0->code, p0->offset);   /* nowhere to move them */
	if (rb->move_tails)
		snprintf(how, sizeof(how), "no room for a kset: move key_tail and dirty_tail "
			 "to free segment %d (%llu kset%s)", n, (unsigned long long)f->kept_ksets,
			 plural(f->kept_ksets));
	else if (f->kept_ksets && n < 0)
		snprintf(how, sizeof(how), "no free segment: end the log there, losing %llu kset%s",
			 (unsigned long long)f->kept_ksets, plural(f->kept_ksets));
	else if (n < 0)
		snprintf(how, sizeof(how), "%s there", rb->last ? "continue the log" : "end the log");
	else
		snprintf(how, sizeof(how), "rebuild it in free segment %d (%llu kset%s)", n,
			 (unsigned long long)f->kept_ksets, plural(f->kept_ksets));
	if (!act_begin(f->r, p0, "log from %u:%u: %s; %llu key%s dropped, %llu corrupt kset%s "
		       "skipped%s", rb->p.cseg, rb->p.seg_off, how, (unsigned long long)f->dropped,
		       plural(f->dropped), (unsigned long long)f->lost_corrupt,
		       plural(f->lost_corrupt), behind_text(f, (char[128]){ 0 }, 128)))
		return 0;
	int rc = splice(f, rb, n);

	f->r->cur->behind_ksets = f->behind_ksets;
	f->r->cur->behind_keys = f->behind_keys;
	f->r->cur->lost_keys = f->dropped + f->behind_keys + (n < 0 ? f->kept_keys : 0);
	f->r->cur->lost_dirty_bytes = f->dropped_dirty;
	f->r->cur->lost_ksets = f->lost_corrupt + (n < 0 ? f->kept_ksets : 0);
	act_end(f->r);
	return rc ? rc : 1;
}

/*
 * A LAST kset naming a segment that holds live keys' data but no kset is the
 * damage, not those keys: the kernel never gives a data segment to the log,
 * and the ksets it writes in a new log segment start at its offset 0.  Such a
 * hop is taken out of the rebuilt log (and the keys are not dropped for
 * pointing into the log).  Any kset at offset 0 makes it a log segment.
 */
static void find_bad_hops(struct lfix *f, struct pcm_walk *w)
{
	for (uint32_t s = 0; s < f->c->n_segs; s++) {
		enum pcm_walk_event ev;

		if (!f->log_seg[s] || s == f->c->key_tail.pos.cseg || !(f->rep->seg_used[s] & 2))
			continue;
		pcm_walk_init(w, f->c, (struct pcm_pos){ s, 0 });
		ev = pcm_walk_next(w);
		if (ev == PCM_WALK_KSET || ev == PCM_WALK_LAST)
			continue;
		f->bad_hop[s] = 1;
		f->log_seg[s] = 0;
	}
}

static int prepare(struct lfix *f, struct pcm_walk *w)
{
	struct pcm_replay_opts ro = { .verify_data = true, .keep_going = true,
				      .on_key = gather_key, .on_kset = gather_kset, .arg = f };
	uint32_t n = f->c->n_segs;
	int rc;

	f->c->backing_size = f->r->o->backing_size;
	f->log_seg = calloc(n, 1);
	f->used = calloc(n, 1);
	f->visited = calloc(n, 1);
	f->bad_hop = calloc(n, 1);
	if (!f->log_seg || !f->used || !f->visited || !f->bad_hop)
		return -ENOMEM;
	f->log_seg[f->c->key_tail.pos.cseg] = 1;
	rc = pcm_replay_run(f->c, &ro, &f->rep);
	if (rc)
		return rc;
	if (f->rep->stop == PCM_FAIL_HOPS)
		f->nspans = 0;   /* a looping log meets the same keys again: no aliases */
	find_bad_hops(f, w);
	return find_aliases(f);
}

int fix_log(struct rplan *r)
{
	const struct pcm_problem *p0 = first_log_problem(r);
	struct lfix f = { .r = r };
	struct rebuild rb = { 0 };
	struct pcm_walk *w = malloc(sizeof(*w));
	int rc = 0;

	if (!p0 || !w || !log_fix_allowed(r) || pcm_cache_open(r->ov, &f.c, NULL)) {
		free(w);
		return w ? 0 : -ENOMEM;
	}
	rc = prepare(&f, w);
	if (!rc && !find_first_change(&f, &rb, w)) {
		rc = seen_add(r, p0->code, p0->offset);
	} else if (!rc) {
		struct pcm_pos dt = f.c->dirty_tail.pos;

		rb.move_tails = !has_room(rb.p);
		rb.move_dt = !rb.move_tails && !rb.dirty && dt.cseg == rb.p.cseg &&
			     dt.seg_off > rb.p.seg_off;
		f.used[rb.p.cseg] = 1;
		f.slack = rb.p.seg_off;
		rc = rebuild(&f, &rb, w);
		if (!rc && rb.last)
			mark_rest(&f, rb.next, w);
		if (!rc)
			rc = plan_splice(&f, &rb, p0);
	}
	pcm_replay_free(f.rep);
	free(f.log_seg);
	free(f.used);
	free(f.visited);
	free(f.bad_hop);
	free(f.alias_drop);
	free(f.spans);
	free(f.buf);
	free(w);
	pcm_cache_close(f.c);
	return rc;
}
