/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replay: the kernel's load steps 10 and 11.  Walks the log from key_tail,
 * decodes and checks every key, skips stale ones, builds the extent index,
 * and records key_head, segments in use and references (§6.4-§6.7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcachemeta.h"

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

static int replay_kset(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		       struct pcm_replay *r, const struct pcm_walk *w, bool dirty_zone,
		       struct batch *b)
{
	for (unsigned i = 0; i < w->hdr.key_num; i++) {
		struct pcm_key k;
		enum pcm_key_verdict v;
		struct pcm_extent e;
		uint64_t end;
		bool stale, dirty;
		int rc;

		pcm_walk_key(w, i, &k);
		end = k.off > UINT64_MAX - k.len ? UINT64_MAX : k.off + k.len;
		if (k.len && end > r->max_key_end)   /* stale keys too: the kernel checks them */
			r->max_key_end = end;
		v = pcm_key_check(c, &k, o->verify_data);
		stale = v == PCM_KEY_OK && k.seg_gen < c->gen[k.cseg];
		dirty = dirty_zone && !(k.flags & PCM_KEY_F_CLEAN);
		if (o->on_key && (rc = o->on_key(w, i, &k, v, stale, dirty, o->arg)))
			return rc;
		if (v != PCM_KEY_OK) {
			r->bad_keys++;
			if (!r->bad_key) {
				r->bad_key = true;
				r->bad_key_kset = w->pos;
				r->bad_key_index = i;
				r->bad_key_verdict = v;
			}
			if (!o->keep_going)
				return 1;
			continue;
		}
		if (stale) {
			r->stale_keys++;
			continue;
		}
		mark(r, k.cseg, USE_DATA);
		r->refs[k.cseg]++;
		e = (struct pcm_extent){
			.off = k.off, .seg_gen = k.seg_gen, .len = k.len, .cseg = k.cseg,
			.seg_off = k.seg_off,
			.flags = ((k.flags & PCM_KEY_F_CLEAN) ? PCM_EXT_CLEAN : 0) |
				 ((k.flags & PCM_KEY_F_EMPTY) ? PCM_EXT_EMPTY : 0) |
				 (dirty ? PCM_EXT_DIRTY : 0) |
				 (o->verify_data && c->data_crc ? PCM_EXT_CRC_OK : 0),
		};
		rc = batch_add(r, b, &e);
		if (rc)
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
static int replay_suspects(const struct pcm_cache *c, struct pcm_replay *r, struct pcm_pos pos,
			   struct batch *b)
{
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
		rc = batch_add(r, b, &(struct pcm_extent){ .off = k.off, .seg_gen = k.seg_gen,
			       .len = k.len, .cseg = k.cseg, .seg_off = k.seg_off,
			       .flags = PCM_EXT_SUSPECT });
	}
	return rc;
}

static int replay_walk(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		       struct pcm_replay *r)
{
	struct pcm_pos last_at = { UINT32_MAX, 0 }, q;
	uint64_t ksets = 0, keys = 0;
	struct pcm_walk *w = malloc(sizeof(*w));
	struct batch b = { 0 };
	enum pcm_walk_event ev;
	bool dirty_zone = false;
	int rc = 0, frc;

	if (!w)
		return -ENOMEM;
	pcm_walk_init(w, c, c->key_tail.pos);
	mark(r, c->key_tail.pos.cseg, USE_LOG);
	for (;;) {
		if (!dirty_zone && pcm_pos_eq(w->has_next ? w->next : w->pos, c->dirty_tail.pos))
			dirty_zone = r->dirty_tail_on_log = true;
		ev = pcm_walk_next(w);
		if ((ev == PCM_WALK_LAST || ev == PCM_WALK_KSET) && o->on_kset &&
		    (rc = o->on_kset(w, o->arg)))
			break;
		if (ev == PCM_WALK_LAST) {
			r->last_ksets++;
			last_at = w->pos;
			mark(r, w->next.cseg, USE_LOG);
		} else if (ev == PCM_WALK_KSET) {
			rc = replay_kset(c, o, r, w, dirty_zone, &b);
			if (rc)
				break;
		} else if (ev == PCM_WALK_END && o->salvage && salvage_next(c, r, w, last_at, &q)) {
			rc = replay_suspects(c, r, w->pos, &b);
			if (rc)
				break;
			ksets += w->ksets;
			keys += w->keys;
			last_at.cseg = UINT32_MAX;
			pcm_walk_init(w, c, q);
			mark(r, q.cseg, USE_LOG);
		} else {
			break;
		}
	}
	r->stop = w->stop;
	r->err = w->err;
	r->key_head = w->pos;
	r->ksets = ksets + w->ksets;
	r->keys = keys + w->keys;
	if (ev == PCM_WALK_FAIL || rc > 0)
		r->failed = true;
	frc = batch_flush(r, &b);   /* what was replayed is indexed, even after a stop */
	free(b.v);
	free(w);
	return rc < 0 ? rc : frc;
}

int pcm_replay_run(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		   struct pcm_replay **out)
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
	rc = replay_walk(c, o, r);
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
