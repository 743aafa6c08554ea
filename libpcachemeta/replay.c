/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replay: the kernel's load steps 10 and 11.  Walks the log from key_tail,
 * decodes and checks every key, skips stale ones, builds the extent index,
 * and records key_head, segments in use and references (§6.4-§6.7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "datacrc.h"

enum { USE_LOG = 1, USE_DATA = 2 };

static void mark(struct pcm_replay *r, uint32_t cseg, uint8_t how)
{
	if (!r->seg_used[cseg])
		r->segs_used++;
	r->seg_used[cseg] |= how;
}

/* Step 10: the walk from dirty_tail must end without a FAIL. */
static enum pcm_walk_stop dirty_chain_check(const struct pcm_cache *c)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev;
	enum pcm_walk_stop s;

	if (!w)
		return PCM_FAIL_IO;
	pcm_walk_init(w, c, c->dirty_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)
		;
	s = w->stop;
	free(w);
	return s;
}

/*
 * Keys reach the index in batches (pcm_index_insert_batch): a batch holds at
 * least 64 Ki keys and at most a quarter of the index, so it stays cheap in
 * memory while each window is rebuilt only a few times.  EMPTY keys, which the
 * kernel never writes, go in singly after the batch, as their rules differ.
 */
struct batch {
	struct pcm_extent *v;
	size_t n, cap;
};

static int batch_flush(struct pcm_replay *r, struct batch *b)
{
	int rc = b->n ? pcm_index_insert_batch(r->idx, b->v, b->n) : 0;

	b->n = 0;
	return rc;
}

static int batch_add(struct pcm_replay *r, struct batch *b, const struct pcm_extent *e)
{
	uint64_t limit = pcm_index_count(r->idx) / 4;
	int rc;

	if (e->flags & PCM_EXT_EMPTY) {
		rc = batch_flush(r, b);
		if (!rc)
			rc = pcm_index_insert(r->idx, e);
		if (rc > 0)
			r->empty_overlaps += (unsigned)rc;
		return rc < 0 ? rc : 0;
	}
	if (b->n >= (limit > 65536 ? limit : 65536) && (rc = batch_flush(r, b)))
		return rc;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		struct pcm_extent *v = realloc(b->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = *e;
	return 0;
}

/* What one replay walk carries besides the walk itself. */
struct run {
	const struct pcm_cache *c;
	const struct pcm_replay_opts *o;
	struct pcm_replay *r;
	struct batch b;
	struct dcrc *crc;       /* data CRCs judged ahead by threads, or NULL: inline */
	bool dirty_zone;
	struct pcm_pos last_at;   /* salvage: the last LAST kset met, cseg UINT32_MAX: none */
	uint64_t ksets, keys;     /* salvage: counts of the walks before this one */
	struct pcm_pos *skipped;  /* salvage: the damaged places passed, each once */
	size_t nskipped;
};

/* The first bad key fails the kernel's load (§6.4 step 6): remembered, and counted. */
static void bad_key(struct pcm_replay *r, const struct pcm_walk *w, unsigned i,
		    enum pcm_key_verdict v)
{
	r->bad_keys++;
	if (r->bad_key)
		return;
	r->bad_key = true;
	r->bad_key_kset = w->pos;
	r->bad_key_index = i;
	r->bad_key_verdict = v;
}

static enum pcm_key_verdict key_verdict(struct run *x, const struct pcm_walk *w, unsigned i,
					const struct pcm_key *k)
{
	return x->crc ? dcrc_verdict(x->crc, w, i, k) : pcm_key_check(x->c, k, x->o->verify_data);
}

/* A live key: its segment in use and referenced, its extent indexed (§6.4 step 6). */
static int live_key(struct run *x, const struct pcm_key *k, bool dirty)
{
	struct pcm_extent e = {
		.off = k->off, .seg_gen = k->seg_gen, .len = k->len, .cseg = k->cseg,
		.seg_off = k->seg_off,
		.flags = ((k->flags & PCM_KEY_F_CLEAN) ? PCM_EXT_CLEAN : 0) |
			 ((k->flags & PCM_KEY_F_EMPTY) ? PCM_EXT_EMPTY : 0) |
			 (dirty ? PCM_EXT_DIRTY : 0) |
			 (x->o->verify_data && x->c->data_crc ? PCM_EXT_CRC_OK : 0),
	};

	mark(x->r, k->cseg, USE_DATA);
	x->r->refs[k->cseg]++;
	return batch_add(x->r, &x->b, &e);
}

/*
 * Salvage: a key whose data cannot be found (a bad segment or offset) still
 * names the range whose newest version it held; it goes in as a suspect, in
 * its place in log order, with the segment and offset it names (a repair that
 * makes it valid again, as a grown n_segs does, then loses nothing there).
 */
static int suspect_key(struct run *x, const struct pcm_key *k, enum pcm_key_verdict v)
{
	if ((v != PCM_KEY_BAD_SEG && v != PCM_KEY_BAD_SEG_OFF) || !k->len ||
	    k->len > (1u << PCM_WINDOW_SHIFT) || k->off > UINT64_MAX - k->len)
		return 0;
	return batch_add(x->r, &x->b, &(struct pcm_extent){ .off = k->off,
			 .len = k->len, .cseg = k->cseg, .seg_off = k->seg_off,
			 .seg_gen = k->seg_gen, .flags = PCM_EXT_SUSPECT |
			 (x->dirty_zone && !(k->flags & PCM_KEY_F_CLEAN) ? PCM_EXT_DIRTY : 0) });
}

static int replay_kset(struct run *x, const struct pcm_walk *w)
{
	const struct pcm_replay_opts *o = x->o;
	struct pcm_replay *r = x->r;

	for (unsigned i = 0; i < w->hdr.key_num; i++) {
		struct pcm_key k;
		enum pcm_key_verdict v;
		uint64_t end;
		bool stale, dirty;
		int rc;

		pcm_walk_key(w, i, &k);
		end = k.off > UINT64_MAX - k.len ? UINT64_MAX : k.off + k.len;
		if (k.len && end > r->max_key_end)   /* stale keys too: the kernel checks them */
			r->max_key_end = end;
		v = key_verdict(x, w, i, &k);
		stale = v == PCM_KEY_OK && k.seg_gen < x->c->gen[k.cseg];
		dirty = x->dirty_zone && !(k.flags & PCM_KEY_F_CLEAN);
		if (o->on_key && (rc = o->on_key(w, i, &k, v, stale, dirty, o->arg)))
			return rc;
		if (v != PCM_KEY_OK) {
			bad_key(r, w, i, v);
			if (o->salvage && (rc = suspect_key(x, &k, v)))
				return rc;
			if (!o->keep_going)
				return 1;
			continue;
		}
		if (stale) {
			r->stale_keys++;
			continue;
		}
		if ((rc = live_key(x, &k, dirty)))
			return rc;
	}
	return 0;
}

static int sum_extent(const struct pcm_extent *e, void *arg)
{
	struct pcm_replay *r = arg;

	r->live_extents++;
	if (e->flags & PCM_EXT_DIRTY)
		r->dirty_bytes += e->len;
	else
		r->clean_bytes += e->len;
	return 0;
}

/*
 * Salvage (opt-in, beyond the kernel): where valid ksets go on after the walk
 * ended on damage, behind a LAST that led into a segment without ksets, or
 * behind a damaged kset.  Only forward in a segment or into a segment not yet
 * on the log, so that it ends.
 */
static bool salvage_next(const struct pcm_cache *c, const struct pcm_replay *r,
			 const struct pcm_walk *w, struct pcm_pos last_at, struct pcm_pos *q)
{
	bool hop = last_at.cseg != UINT32_MAX && w->pos.seg_off == 0 &&
		   w->pos.cseg != last_at.cseg;

	if (w->stop == PCM_STOP_TERMINATOR || w->stop >= PCM_FAIL_HOPS)
		return false;
	if (!(hop && pcm_walk_behind_last(c, last_at, q)) && !pcm_walk_salvage(c, w->pos, q))
		return false;
	if (q->cseg == w->pos.cseg && q->seg_off > w->pos.seg_off)
		return true;
	if (hop && q->cseg == last_at.cseg && q->seg_off > last_at.seg_off)
		return true;
	return q->cseg < c->n_segs && !(r->seg_used[q->cseg] & USE_LOG);
}

/*
 * Salvage: the keys of the damaged kset at pos, read as if it were whole, go
 * in as suspects, in their place in log order, when its header still makes
 * sense and each key passes its own checks.
 */
static int replay_suspects(struct run *x, struct pcm_pos pos)
{
	const struct pcm_cache *c = x->c;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	uint64_t off = pcm_pos_dev_off(c, pos.cseg, pos.seg_off);
	struct pcm_kset_hdr h;
	int rc = 0;

	if (PCM_DATA_SIZE - pos.seg_off < PCM_KSET_HDR_SIZE ||
	    pcm_dev_read(c->dev, off, buf, PCM_KSET_HDR_SIZE))
		return 0;
	pcm_kset_hdr_decode(buf, &h);
	if (h.magic != PCM_KSET_MAGIC || (h.flags & PCM_KSET_F_LAST) || !h.key_num ||
	    h.key_num > PCM_KSET_KEYS_MAX || pcm_kset_size(&h) > PCM_DATA_SIZE - pos.seg_off ||
	    pcm_dev_read(c->dev, off, buf, pcm_kset_size(&h)))
		return 0;
	for (unsigned i = 0; i < h.key_num && !rc; i++) {
		struct pcm_key k;

		pcm_key_decode(buf + PCM_KSET_HDR_SIZE + (size_t)i * PCM_KEY_SIZE, &k);
		if (pcm_key_check(c, &k, false) != PCM_KEY_OK || k.seg_gen < c->gen[k.cseg] ||
		    (k.flags & PCM_KEY_F_EMPTY))
			continue;
		rc = batch_add(x->r, &x->b, &(struct pcm_extent){ .off = k.off,
			       .seg_gen = k.seg_gen, .len = k.len, .cseg = k.cseg,
			       .seg_off = k.seg_off, .flags = PCM_EXT_SUSPECT });
	}
	return rc;
}

/*
 * A damaged place is passed once: a chain that leads back to it (a LAST into a
 * segment already on the log) ends the salvage there instead of going round.
 */
static int salvage_once(struct run *x, struct pcm_pos at)
{
	struct pcm_pos *v;

	for (size_t i = 0; i < x->nskipped; i++)
		if (pcm_pos_eq(x->skipped[i], at))
			return 1;
	v = realloc(x->skipped, (x->nskipped + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	x->skipped = v;
	x->skipped[x->nskipped++] = at;
	return 0;
}

/* Salvage: on at q past the damage the walk ended at; its counts are kept. */
static int salvage_on(struct run *x, struct pcm_walk *w, struct pcm_pos q)
{
	int rc = replay_suspects(x, w->pos);

	x->ksets += w->ksets;
	x->keys += w->keys;
	x->last_at.cseg = UINT32_MAX;
	pcm_walk_init(w, x->c, q);
	mark(x->r, q.cseg, USE_LOG);
	return rc;
}

/* Walks from key_tail until the log ends or a key or a callback stops it. */
static int walk_log(struct run *x, struct pcm_walk *w, enum pcm_walk_event *ev)
{
	const struct pcm_cache *c = x->c;
	const struct pcm_replay_opts *o = x->o;
	struct pcm_pos q;
	int rc;

	mark(x->r, c->key_tail.pos.cseg, USE_LOG);
	for (;;) {
		if (!x->dirty_zone && pcm_pos_eq(w->has_next ? w->next : w->pos, c->dirty_tail.pos))
			x->dirty_zone = x->r->dirty_tail_on_log = true;
		*ev = pcm_walk_next(w);
		if ((*ev == PCM_WALK_LAST || *ev == PCM_WALK_KSET) && o->on_kset &&
		    (rc = o->on_kset(w, o->arg)))
			return rc;
		if (*ev == PCM_WALK_LAST) {
			x->r->last_ksets++;
			x->last_at = w->pos;
			mark(x->r, w->next.cseg, USE_LOG);
		} else if (*ev == PCM_WALK_KSET) {
			if ((rc = replay_kset(x, w)))
				return rc;
		} else if (*ev == PCM_WALK_END && o->salvage &&
			   salvage_next(c, x->r, w, x->last_at, &q)) {
			rc = salvage_once(x, w->pos);
			if (rc)
				return rc < 0 ? rc : 0;
			if ((rc = salvage_on(x, w, q)))
				return rc;
		} else if (*ev == PCM_WALK_END && o->salvage && w->stop == PCM_STOP_CRC) {
			/* a damaged kset with nothing valid behind it still held
			 * writes the kernel acknowledged, unless it was torn */
			return replay_suspects(x, w->pos);
		} else {
			return 0;
		}
	}
}

static int replay_walk(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		       unsigned threads, struct pcm_replay *r)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	struct run x = { .c = c, .o = o, .r = r, .last_at = { UINT32_MAX, 0 } };
	enum pcm_walk_event ev;
	int rc, frc;

	if (!w)
		return -ENOMEM;
	/* data CRCs are the slow part of a verified replay: judged ahead, in parallel
	 * (a salvage leaves the log's own path, which the walk ahead follows) */
	rc = o->verify_data && c->data_crc && !o->salvage ?
	     dcrc_new(c, c->key_tail.pos, threads, &x.crc) : 0;
	if (rc) {
		free(w);
		return rc;
	}
	pcm_walk_init(w, c, c->key_tail.pos);
	rc = walk_log(&x, w, &ev);
	dcrc_free(x.crc);   /* its threads end before the replay returns */
	r->stop = w->stop;
	r->err = w->err;
	r->key_head = w->pos;
	r->ksets = x.ksets + w->ksets;
	r->keys = x.keys + w->keys;
	if (ev == PCM_WALK_FAIL || rc > 0)
		r->failed = true;
	frc = batch_flush(r, &x.b);   /* what was replayed is indexed, even after a stop */
	free(x.b.v);
	free(x.skipped);
	free(w);
	return rc < 0 ? rc : frc;
}

int replay_run_threads(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		       unsigned threads, struct pcm_replay **out)
{
	static const struct pcm_replay_opts defaults;
	struct pcm_replay *r = calloc(1, sizeof(*r));
	int rc;

	if (!o)
		o = &defaults;
	if (!r)
		return -ENOMEM;
	r->idx = pcm_index_new();
	r->seg_used = calloc(c->n_segs, 1);
	r->refs = calloc(c->n_segs, sizeof(*r->refs));
	if (!r->idx || !r->seg_used || !r->refs) {
		pcm_replay_free(r);
		return -ENOMEM;
	}
	rc = replay_walk(c, o, threads, r);
	if (rc) {
		pcm_replay_free(r);
		return rc;
	}
	/* Step 10 runs before replay in the kernel; a log reaching dirty_tail proves it. */
	r->dirty_chain_stop = r->dirty_tail_on_log && !r->failed ? PCM_STOP_NONE :
			      dirty_chain_check(c);
	if (r->dirty_chain_stop >= PCM_FAIL_HOPS)
		r->failed = true;
	pcm_index_foreach(r->idx, sum_extent, r);
	*out = r;
	return 0;
}

int pcm_replay_run(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		   struct pcm_replay **out)
{
	return replay_run_threads(c, o, 0, out);
}

void pcm_replay_free(struct pcm_replay *r)
{
	if (!r)
		return;
	pcm_index_free(r->idx);
	free(r->seg_used);
	free(r->refs);
	free(r);
}

const char *pcm_replay_error_str(const struct pcm_replay *r)
{
	if (r->dirty_chain_stop >= PCM_FAIL_HOPS)
		return pcm_walk_stop_str(r->dirty_chain_stop);
	if (r->stop >= PCM_FAIL_HOPS)
		return pcm_walk_stop_str(r->stop);
	if (r->bad_key)
		return pcm_key_verdict_str(r->bad_key_verdict);
	return "none";
}
