/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Writeback (§7.2): from dirty_tail to key_head, kset by kset in
 * log order.  Each kset's keys go through a scratch index (later keys win);
 * a batch of consecutive ksets is merged the same way (later ksets win, so
 * the batch leaves the backing device as writing the ksets one after the
 * other would), written, the backing device flushed, and only then
 * dirty_tail moves past the batch and is persisted.  A crash anywhere
 * leaves dirty_tail at the start of an unfinished batch, which is written
 * again.  batch_ksets 1 is exactly the kernel's one flush per kset.
 *
 * Deviation, on purpose: a stale key (its segment was reclaimed) is skipped;
 * the kernel would copy whatever the reused segment holds now.  Such keys
 * cannot occur at or after dirty_tail in logs the kernel or we write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

#define BATCH_KSETS_DEFAULT 64u
#define BATCH_BYTES_DEFAULT (64ull << 20)

struct wb_run {
	struct pce *e;
	const struct pce_wb_opts *o;
	struct pce_wb_result *res;
	struct pcm_walk *w;
	struct pce_scratch kset, batch;
	struct pce_wbio io;
	struct pcm_pos end;           /* key_head when the run started */
	struct pcm_pos done;          /* after the last record handled */
	struct pcm_pos committed;     /* after the last batch written (and persisted) */
	struct pce_wb_extent *list;   /* on_kset listing */
	size_t list_cap;
};

const char *pce_wb_stop_str(enum pce_wb_stop s)
{
	switch (s) {
	case PCE_WB_CLEAN: return "clean";
	case PCE_WB_CANCELLED: return "cancelled";
	case PCE_WB_IO_FAILED: return "backing device write failed";
	case PCE_WB_BAD_KEY: return "bad key";
	case PCE_WB_LOG_FAIL: return "the log cannot be walked";
	case PCE_WB_META_FAILED: return "cannot persist dirty_tail or flush the backing device";
	case PCE_WB_LIMIT: return "kset limit reached";
	}
	return "unknown";
}

void pce_wb_result_free(struct pce_wb_result *res)
{
	free(res->failed);
	res->failed = NULL;
	res->n_failed = 0;
}

static struct pcm_pos walk_cur(const struct pcm_walk *w)
{
	return w->has_next ? w->next : w->pos;
}

static uint64_t scratch_bytes(const struct pce_scratch *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->v[i].len;
	return n;
}

/* The dry-run listing of one kset: its own scratch index, CLEAN extents left out. */
static int list_kset(struct wb_run *r)
{
	size_t n = 0;

	if (!r->o->on_kset)
		return 0;
	if (r->kset.n > r->list_cap) {
		struct pce_wb_extent *l = realloc(r->list, r->kset.n * sizeof(*l));

		if (!l)
			return -ENOMEM;
		r->list = l;
		r->list_cap = r->kset.n;
	}
	for (size_t i = 0; i < r->kset.n; i++) {
		const struct pcm_extent *x = &r->kset.v[i];

		if (!(x->flags & PCM_EXT_CLEAN))
			r->list[n++] = (struct pce_wb_extent){ .off = x->off, .len = x->len,
							       .cseg = x->cseg, .seg_off = x->seg_off };
	}
	r->o->on_kset(r->w->pos, r->w->hdr.key_num, r->list, n, r->o->arg);
	return 0;
}

/* Decode (§6.5) and insert key i; 1 when it fails: the kset is not written back. */
static int kset_key(struct wb_run *r, unsigned i)
{
	const struct pcm_cache *c = r->e->c;
	struct pcm_key k;
	enum pcm_key_verdict v;
	struct pcm_extent x;

	pcm_walk_key(r->w, i, &k);
	v = pcm_key_check(c, &k, false);
	if (v == PCM_KEY_OK && k.seg_gen < c->gen[k.cseg]) {
		r->res->stale_keys++;
		return 0;
	}
	if (v == PCM_KEY_OK && r->o->verify_data)
		v = pcm_key_check(c, &k, true);
	if (v != PCM_KEY_OK) {
		r->res->bad_kset = r->w->pos;
		r->res->bad_index = i;
		r->res->bad_verdict = v;
		r->res->bad_key = (struct pce_wb_extent){ .off = k.off, .len = k.len,
							  .cseg = k.cseg, .seg_off = k.seg_off };
		return 1;
	}
	x = (struct pcm_extent){ .off = k.off, .len = k.len, .cseg = k.cseg,
				 .seg_off = k.seg_off, .seg_gen = k.seg_gen,
				 .flags = ((k.flags & PCM_KEY_F_CLEAN) ? PCM_EXT_CLEAN : 0) |
					  ((k.flags & PCM_KEY_F_EMPTY) ? PCM_EXT_EMPTY : 0) };
	return pce_scratch_insert(&r->kset, &x);
}

/* One normal kset into the batch; 1 on a bad key (the batch ends before it). */
static int wb_kset(struct wb_run *r)
{
	int rc = 0;

	pce_scratch_reset(&r->kset);
	for (unsigned i = 0; i < r->w->hdr.key_num && !rc; i++)
		rc = kset_key(r, i);
	if (!rc)
		rc = list_kset(r);
	/* CLEAN extents stay out of the batch: they must not hide an earlier kset's write */
	for (size_t i = 0; i < r->kset.n && !rc; i++)
		if (!(r->kset.v[i].flags & PCM_EXT_CLEAN))
			rc = pce_scratch_insert(&r->batch, &r->kset.v[i]);
	if (!rc) {
		r->res->ksets++;
		r->res->keys += r->w->hdr.key_num;
	}
	return rc;
}

/* Gathers ksets into the batch; returns the stop reason, or -1 to go on after the batch. */
static int gather(struct wb_run *r)
{
	unsigned limit = r->o->batch_ksets ? r->o->batch_ksets : BATCH_KSETS_DEFAULT;
	uint64_t bytes = r->o->batch_bytes ? r->o->batch_bytes : BATCH_BYTES_DEFAULT;
	unsigned n = 0;
	int rc;

	pce_scratch_reset(&r->batch);
	while (n < limit && scratch_bytes(&r->batch) < bytes) {
		if (r->o->max_ksets && r->res->ksets >= r->o->max_ksets)
			return PCE_WB_LIMIT;
		if (pcm_pos_eq(walk_cur(r->w), r->end))
			return PCE_WB_CLEAN;
		switch (pce_walk_next(r->e, r->w)) {
		case PCM_WALK_LAST:
			r->res->last_ksets++;
			break;
		case PCM_WALK_KSET:
			rc = wb_kset(r);
			if (rc < 0)
				r->res->err = rc;
			if (rc)
				return rc < 0 ? PCE_WB_META_FAILED : PCE_WB_BAD_KEY;
			n++;
			break;
		default:
			/* replay reached key_head through here: a failing walk means damage */
			return PCE_WB_LOG_FAIL;
		}
		r->done = walk_cur(r->w);
	}
	return -1;
}

/* dirty_tail := done, after the data it covers is durable (§7.3). */
static int persist_tail(struct wb_run *r)
{
	struct pce *e = r->e;
	int rc = 0;

	if (r->o->no_metadata_update || r->o->dry_run)
		return 0;
	pthread_mutex_lock(&e->log_lock);
	if (!pcm_pos_eq(r->done, e->c->dirty_tail.pos))
		rc = pcm_tail_write(e->c, 1, r->done, false);
	pthread_mutex_unlock(&e->log_lock);
	return rc;
}

/* Writes the gathered batch; returns a stop reason, or -1 to go on. */
static int commit(struct wb_run *r)
{
	size_t fails = r->io.n_failed;
	int rc = 0;

	if (r->o->dry_run)
		r->io.bytes += scratch_bytes(&r->batch);
	else if (r->batch.n)
		rc = pce_wbio_batch(&r->io, &r->batch);
	r->res->bytes = r->io.bytes;
	if (rc) {
		r->res->err = rc;
		return PCE_WB_META_FAILED;
	}
	if (r->io.n_failed > fails)
		return PCE_WB_IO_FAILED;
	rc = persist_tail(r);
	if (rc) {
		r->res->err = rc;
		return PCE_WB_META_FAILED;
	}
	r->committed = r->done;
	r->res->batches++;
	if (r->o->on_batch)
		r->o->on_batch(r->res->bytes, r->res->ksets, r->o->arg);
	return -1;
}

static enum pce_wb_stop wb_loop(struct wb_run *r)
{
	for (;;) {
		int stop = gather(r), c;

		if (stop == PCE_WB_META_FAILED)
			return stop;
		c = commit(r);
		if (c >= 0)
			return (enum pce_wb_stop)c;
		if (stop >= 0)
			return (enum pce_wb_stop)stop;
		if (r->o->cancel && *r->o->cancel)
			return PCE_WB_CANCELLED;
	}
}

static int wb_check(const struct pce *e, const struct pce_wb_opts *o)
{
	if (o->dry_run)
		return 0;
	if (e->flags & PCE_RDONLY)
		return -EROFS;
	if (e->ro_why[0])
		return -EROFS;   /* from a damaged dirty_tail it would copy the wrong data back */
	if (!e->a && !o->no_metadata_update)
		return -EROFS;   /* the cache is read-only: dirty_tail cannot move */
	return 0;
}

int pce_writeback(struct pce *e, const struct pce_wb_opts *o, struct pce_wb_result *res)
{
	static const struct pce_wb_opts defaults = { .retry = true };
	struct wb_run r = { .e = e, .o = o ? o : &defaults, .res = res };
	int rc;

	memset(res, 0, sizeof(*res));
	rc = wb_check(e, r.o);
	if (rc)
		return rc;
	r.w = malloc(sizeof(*r.w));
	if (!r.w)
		return -ENOMEM;
	r.io = (struct pce_wbio){ .e = e, .retry = r.o->retry };
	pthread_mutex_lock(&e->wb_lock);
	r.end = pce_key_head(e);
	pthread_mutex_lock(&e->log_lock);
	r.done = r.committed = e->c->dirty_tail.pos;
	pthread_mutex_unlock(&e->log_lock);
	pcm_walk_init(r.w, e->c, r.done);
	res->stop = wb_loop(&r);
	pthread_mutex_unlock(&e->wb_lock);
	res->pos = r.committed;
	if (!res->err)
		res->err = r.io.err;
	res->failed = r.io.failed;
	res->n_failed = r.io.n_failed;
	r.io.failed = NULL;
	pce_wbio_free(&r.io);
	pce_scratch_free(&r.kset);
	pce_scratch_free(&r.batch);
	free(r.list);
	free(r.w);
	return 0;
}
