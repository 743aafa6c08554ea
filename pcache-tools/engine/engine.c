/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Opening and closing the engine: the kernel's load (§5.5) on the cache
 * device, judged by the library's check (judge.c), its replay (§6.4), then
 * the state the kernel keeps after a load (§6.7): the index (sharded),
 * reference counts, segments in use, no data heads, empty open ksets.
 * Nothing is written by opening.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"

#define SHARDS_DEFAULT 64u

int pce_fail(struct pce_error *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->err = rc;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

static unsigned cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

/* Per-CPU and per-shard structures; every mutex initialised even when unused. */
static int alloc_parts(struct pce *e, const struct pce_opts *o)
{
	e->n_open = o->n_open ? o->n_open : cpus();
	e->n_heads = o->n_heads ? o->n_heads : cpus();
	e->n_shards = o->n_shards ? o->n_shards : SHARDS_DEFAULT;
	e->oks = aligned_alloc(PCE_CACHELINE, e->n_open * sizeof(*e->oks));
	e->heads = aligned_alloc(PCE_CACHELINE, e->n_heads * sizeof(*e->heads));
	e->refs = calloc(e->c->n_segs, sizeof(*e->refs));
	if (!e->oks || !e->heads || !e->refs)
		return -ENOMEM;
	for (unsigned i = 0; i < e->n_open; i++) {
		pthread_mutex_init(&e->oks[i].lock, NULL);
		e->oks[i].n = 0;
	}
	for (unsigned i = 0; i < e->n_heads; i++) {
		pthread_mutex_init(&e->heads[i].lock, NULL);
		e->heads[i].valid = false;
	}
	return 0;
}

/*
 * The cache device, and the kernel's verdict on it.  A cache served read-only
 * because of its damage (e->ro_why) keeps the descriptor it was opened with,
 * so that it stays held exclusively; it is never written: there is no
 * appender, and writeback and GC refuse to run.
 */
static int open_cache(struct pce *e, const char *path, struct pce_error *err)
{
	unsigned f = (e->flags & (PCE_RDONLY | PCE_CACHE_RDONLY)) ? PCM_DEV_RDONLY : PCM_DEV_RDWR;
	struct pcm_open_status st;
	int rc;

	if (!(e->flags & PCE_NO_EXCL))
		f |= PCM_DEV_EXCL;
	if (err)
		err->path = path;
	rc = pcm_dev_open(path, f, &e->cdev);
	if (rc)
		return pce_fail(err, rc, "%s: cannot open: %s", path, strerror(-rc));
	rc = pce_judge(e, path, err);
	if (rc)
		return rc;
	/* the check loaded it too: a failure here is the device changing under us */
	rc = pcm_cache_open(e->cdev, &e->c, &st);
	if (rc)
		return pce_fail(err, rc, "%s: %s: %s", path, "cannot load the cache",
				st.err == PCM_OPEN_IO ? strerror(-rc) : pcm_open_error_str(&st));
	e->c->backing_size = e->bk.size / PCM_SECTOR * PCM_SECTOR;   /* as pce_judge */
	return 0;
}

/*
 * The kernel's replay, whose index the engine serves.  Data CRCs were
 * verified by the check when asked; a replay failure the check did not
 * predict is refused all the same.
 */
static int load(struct pce *e, const char *path, const struct pce_opts *o,
		struct pce_error *err)
{
	struct pcm_replay *r = NULL;
	int rc = pcm_replay_run(e->c, NULL, &r);

	if (rc)
		return pce_fail(err, rc, "%s: replay: %s", path, strerror(-rc));
	if (r->failed)
		rc = pce_fail(err, -EUCLEAN, "%s: the kernel would refuse to load the cache: %s",
			      path, pcm_replay_error_str(r));
	if (!rc)
		rc = alloc_parts(e, o);
	if (!rc)
		rc = pce_shards_init(e, r->idx);
	for (uint32_t i = 0; !rc && i < e->c->n_segs; i++)
		e->refs[i] = (int32_t)r->refs[i];
	e->ro_key_head = r->key_head;
	e->ro_segs_used = r->segs_used;
	if (!rc && pcm_dev_writable(e->cdev) && !e->ro_why[0]) {
		rc = pcm_appender_open(e->c, r, &e->a);
		if (!rc)
			pcm_appender_set_persist(e->a, pce_persisting(e));
	}
	pcm_replay_free(r);
	return rc && err && !err->msg[0] ? pce_fail(err, rc, "%s: %s", path, strerror(-rc)) : rc;
}

static void locks_init(struct pce *e)
{
	pthread_mutex_init(&e->log_lock, NULL);
	pthread_mutex_init(&e->wb_lock, NULL);
	pthread_mutex_init(&e->gc_lock, NULL);
	pthread_mutex_init(&e->room_lock, NULL);
}

int pce_open(const char *cache_path, const char *backing_path, const struct pce_opts *o,
	     struct pce **out, struct pce_error *err)
{
	static const struct pce_opts defaults;
	struct pce *e = calloc(1, sizeof(*e));
	int rc;

	if (err)
		*err = (struct pce_error){ 0 };
	if (!e)
		return pce_fail(err, -ENOMEM, "out of memory");
	o = o ? o : &defaults;
	e->flags = o->flags;
	locks_init(e);
	if (err)
		err->path = backing_path;
	rc = pce_bk_open(&e->bk, backing_path, e->flags & ~PCE_CACHE_RDONLY);
	if (rc)
		pce_fail(err, rc, "%s: cannot open: %s", backing_path, strerror(-rc));
	else if (e->bk.size < PCM_SECTOR)
		rc = pce_fail(err, -EINVAL, "%s: the backing device is smaller than one sector",
			      backing_path);
	if (!rc)
		rc = open_cache(e, cache_path, err);
	if (!rc)
		rc = load(e, cache_path, o, err);
	if (rc) {
		pce_abandon(e);
		return rc;
	}
	*out = e;
	return 0;
}

void pce_abandon(struct pce *e)
{
	if (!e)
		return;
	pcm_appender_free(e->a);
	pce_shards_free(e);
	pcm_cache_close(e->c);
	pcm_dev_close(e->cdev);
	pce_bk_close(&e->bk);
	free(e->oks);
	free(e->heads);
	free(e->refs);
	free(e);
}

int pce_close(struct pce *e)
{
	int rc;

	if (!e)
		return 0;
	rc = pce_flush(e);
	pce_abandon(e);
	return rc;
}

bool pce_persisting(const struct pce *e)
{
	return !(e->flags & PCE_NO_PERSIST);
}

struct pcm_pos pce_key_head(struct pce *e)
{
	struct pcm_pos p;

	pthread_mutex_lock(&e->log_lock);
	p = e->a ? pcm_appender_key_head(e->a) : e->ro_key_head;
	pthread_mutex_unlock(&e->log_lock);
	return p;
}

enum pcm_walk_event pce_walk_next(struct pce *e, struct pcm_walk *w)
{
	struct pcm_pos cur = w->has_next ? w->next : w->pos, kh;
	enum pcm_walk_event ev;
	bool near;

	/*
	 * The walk reads up to 5144 bytes from its position, past a short kset into
	 * the bytes after it.  Near key_head an append may be writing those (they are
	 * never used: the kset's CRC covers only its own bytes), so that read runs
	 * under the log lock; elsewhere appends cannot touch the segment being read.
	 */
	pthread_mutex_lock(&e->log_lock);
	kh = e->a ? pcm_appender_key_head(e->a) : e->ro_key_head;
	near = cur.cseg == kh.cseg && (uint64_t)cur.seg_off + PCM_KSET_SIZE_MAX > kh.seg_off;
	if (!near)
		pthread_mutex_unlock(&e->log_lock);
	ev = pcm_walk_next(w);
	if (near)
		pthread_mutex_unlock(&e->log_lock);
	return ev;
}

uint32_t pce_segs_used(struct pce *e)
{
	return e->a ? pcm_appender_segs_used(e->a) : e->ro_segs_used;
}

void pce_status(struct pce *e, struct pce_status *st)
{
	const struct pcm_cache *c = e->c;

	pthread_mutex_lock(&e->log_lock);
	*st = (struct pce_status){
		.key_head = e->a ? pcm_appender_key_head(e->a) : e->ro_key_head,
		.dirty_tail = c->dirty_tail.pos, .key_tail = c->key_tail.pos,
		.seg_num = c->seg_num, .n_segs = c->n_segs, .segs_used = pce_segs_used(e),
		.gc_percent = pcm_ci_gc_percent(c->ci.flags), .backing_size = e->bk.size,
		.reclaimed_segs = __atomic_load_n(&e->reclaimed, __ATOMIC_RELAXED), .data_crc = c->data_crc,
	};
	pthread_mutex_unlock(&e->log_lock);
}

const struct pcm_cache *pce_cache(const struct pce *e)
{
	return e->c;
}

void pce_set_backing_write(struct pce *e, pce_backing_write_fn fn, void *arg)
{
	e->bk.wfn = fn;
	e->bk.warg = arg;
}

void pce_set_backing_sync(struct pce *e, pce_backing_sync_fn fn, void *arg)
{
	e->bk.sfn = fn;
	e->bk.sarg = arg;
}

int pce_make_room(struct pce *e)
{
	struct pce_wb_opts wo = { .verify_data = e->c->data_crc, .retry = true };
	struct pce_wb_result wr = { .stop = PCE_WB_CLEAN };
	struct pce_gc_result gr;
	uint32_t free_segs;
	int rc;

	pthread_mutex_lock(&e->room_lock);
	rc = pce_oks_flush_all(e);
	if (!rc)
		rc = pce_writeback(e, &wo, &wr);
	if (!rc && wr.stop != PCE_WB_CLEAN)
		rc = wr.err ? wr.err : -EIO;
	pce_wb_result_free(&wr);
	if (!rc)
		rc = pce_gc(e, &gr);
	pthread_mutex_lock(&e->log_lock);
	free_segs = e->c->n_segs - pce_segs_used(e);
	pthread_mutex_unlock(&e->log_lock);
	pthread_mutex_unlock(&e->room_lock);
	return rc ? rc : free_segs > 1 ? 0 : -ENOSPC;
}

int pce_set_gc_percent(struct pce *e, unsigned pct)
{
	struct pcm_cache *c = e->c;
	uint8_t rec[PCM_CACHE_INFO_SIZE];
	struct pcm_cache_info ci;
	uint64_t off;
	int slot, rc = 0;

	if (pct > PCM_GC_PERCENT_MAX)
		return -EINVAL;
	if (!e->a)
		return -EROFS;   /* opened read-only, or damaged: nothing is written */
	pthread_mutex_lock(&e->log_lock);
	if (pcm_ci_gc_percent(c->ci.flags) != pct) {
		/* the other slot with the next seq: a torn write leaves the current copy */
		ci = c->ci;
		ci.flags = (ci.flags & ~PCM_CI_GC_MASK) | (pct << PCM_CI_GC_SHIFT);
		ci.h.seq = (uint8_t)(c->ci.h.seq + 1);
		slot = 1 - c->ci_slot;
		pcm_cache_info_encode(&ci, rec);
		pcm_record_seal(rec, sizeof(rec));
		off = PCM_CACHE_INFO_OFF + (uint64_t)slot * PCM_CACHE_INFO_SLOT;
		rc = pcm_dev_write(e->cdev, off, rec, sizeof(rec));
		if (!rc)
			rc = pcm_dev_persist(e->cdev, off, sizeof(rec));
		if (!rc) {
			c->ci = ci;
			c->ci_slot = slot;
		}
	}
	pthread_mutex_unlock(&e->log_lock);
	return rc;
}
