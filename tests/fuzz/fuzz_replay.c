/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: replay (walk, key checks with the data CRCs, the extent
 * index), then what the tools do after a replay: the extent map, the data
 * behind each extent, and the salvage helpers at a corrupt log end.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	const struct pcm_cache *c;
	uint64_t keys, extents;
};

static int on_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *k,
		  enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct ctx *x = arg;

	(void)dirty;
	if (i >= w->hdr.key_num || i >= PCM_KSET_KEYS_MAX)
		fz_fail("key index %u of a kset of %u", i, w->hdr.key_num);
	if (v == PCM_KEY_OK && (k->cseg >= x->c->n_segs || k->len == 0 ||
				(uint64_t)k->seg_off + k->len > PCM_DATA_SIZE))
		fz_fail("key %u:%u+%u passed its checks", k->cseg, k->seg_off, k->len);
	(void)stale;
	x->keys++;
	return 0;
}

static int on_kset(const struct pcm_walk *w, void *arg)
{
	struct ctx *x = arg;

	if (w->pos.cseg >= x->c->n_segs || w->pos.seg_off >= PCM_DATA_SIZE)
		fz_fail("kset at %u:%u outside the cache", w->pos.cseg, w->pos.seg_off);
	return 0;
}

static int on_extent(const struct pcm_extent *e, void *arg)
{
	struct ctx *x = arg;
	uint8_t buf[512];

	if (e->cseg >= x->c->n_segs || e->len == 0 ||
	    (uint64_t)e->seg_off + e->len > PCM_DATA_SIZE)
		fz_fail("extent %u:%u+%u in the index", e->cseg, e->seg_off, e->len);
	/* the first sector of its data, as replay --data would read it */
	(void)pcm_dev_read(x->c->dev, pcm_pos_dev_off(x->c, e->cseg, e->seg_off), buf,
			   e->len < sizeof(buf) ? e->len : sizeof(buf));
	x->extents++;
	return x->extents > 100000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_image img;
	struct pcm_cache *c = NULL;
	struct pcm_replay *r = NULL;
	struct ctx x = { 0 };
	struct pcm_replay_opts o = { .on_key = on_key, .on_kset = on_kset, .arg = &x };

	if (fz_image_load(data, size, &img))
		return 0;
	if (pcm_cache_open(img.dev, &c, NULL) && pcm_cache_open_relaxed(img.dev, &c)) {
		fz_image_reset(&img);
		return 0;
	}
	x.c = c;
	if (img.opts & FZ_OPT_BACKING)
		c->backing_size = FZ_BACKING_SIZE;
	o.verify_data = img.opts & FZ_OPT_VERIFY;
	o.keep_going = img.opts & FZ_OPT_KEEP;
	if (!pcm_replay_run(c, &o, &r)) {
		struct pcm_pos next, root;

		if (r->key_head.cseg >= c->n_segs || r->key_head.seg_off > PCM_DATA_SIZE)
			fz_fail("key_head %u:%u outside the cache", r->key_head.cseg,
				r->key_head.seg_off);
		if (r->segs_used > c->n_segs)
			fz_fail("%u segments used of %u", r->segs_used, c->n_segs);
		(void)pcm_replay_error_str(r);
		(void)pcm_index_foreach(r->idx, on_extent, &x);
		(void)pcm_index_lookup(r->idx, 0);
		(void)pcm_index_lookup_ge(r->idx, UINT64_MAX - 511);
		if (r->stop == PCM_STOP_CRC || r->stop == PCM_STOP_MAGIC ||
		    r->stop == PCM_STOP_KEY_NUM) {
			if (pcm_walk_salvage(c, r->key_head, &next) == 1 &&
			    (next.cseg >= c->n_segs || next.seg_off >= PCM_DATA_SIZE))
				fz_fail("salvage points to %u:%u", next.cseg, next.seg_off);
			if (pcm_walk_find_root(c, r->key_head.cseg, &root) && root.cseg >= c->n_segs)
				fz_fail("root in segment %u", root.cseg);
		}
		if (pcm_walk_boundary_after(c, r->key_head, &next) &&
		    (next.cseg != r->key_head.cseg || next.seg_off < r->key_head.seg_off))
			fz_fail("boundary after %u:%u is %u:%u", r->key_head.cseg,
				r->key_head.seg_off, next.cseg, next.seg_off);
		pcm_replay_free(r);
	}
	pcm_cache_close(c);
	fz_image_reset(&img);
	return 0;
}
