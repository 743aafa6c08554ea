/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * GC (§8): FIFO over the log from key_tail, never past dirty_tail,
 * while the kernel's trigger holds.  A normal kset drops one reference per
 * key; a LAST kset frees the log segment it ends.
 *
 * Two deliberate differences from the kernel, both closing its crash window
 * (§12.4) while producing only states the kernel produces too:
 * - key_tail is persisted BEFORE the gens of segments whose count reached 0
 *   are bumped; a crash in between leaves an unreferenced segment with its
 *   old gen (free at the next load, as when a data head held the last
 *   reference), never stale keys in the live log;
 * - stale keys drop no reference (replay counted none for them).
 * A segment becomes free for reuse only after its gen bump is durable.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine_int.h"

/* Conditions 2 and 4 of §8.1 (condition 3 is the walk itself). */
static bool gc_trigger(struct pce *e)
{
	const struct pcm_cache *c = e->c;
	unsigned pct;
	bool on;

	/* gc_percent too: pce_set_gc_percent changes it under the log lock */
	pthread_mutex_lock(&e->log_lock);
	pct = pcm_ci_gc_percent(c->ci.flags);
	on = pct <= 100 && !pcm_pos_eq(c->key_tail.pos, c->dirty_tail.pos) &&
	     pce_segs_used(e) >= (uint64_t)c->seg_num * pct / 100;
	pthread_mutex_unlock(&e->log_lock);
	return on;
}

static int tail_move(struct pce *e, struct pcm_pos to)
{
	int rc;

	pthread_mutex_lock(&e->log_lock);
	rc = pcm_tail_write(e->c, 0, to, false);
	pthread_mutex_unlock(&e->log_lock);
	return rc;
}

/* LAST kset at key_tail: hop, persist, free the segment left (no gen bump: no data). */
static int gc_last(struct pce *e, const struct pcm_walk *w, bool *stop)
{
	struct pcm_pos kt = w->pos;
	int rc;

	pthread_mutex_lock(&e->log_lock);
	*stop = e->c->dirty_tail.pos.cseg == kt.cseg;
	pthread_mutex_unlock(&e->log_lock);
	if (*stop)
		return 0;
	rc = tail_move(e, w->next);
	if (rc)
		return rc;
	pthread_mutex_lock(&e->log_lock);
	rc = pcm_appender_release_seg(e->a, kt.cseg);
	pthread_mutex_unlock(&e->log_lock);
	return rc;
}

/* Decode (§6.5) with the data CRC check, as the kernel; stale keys' data is gone: skip it. */
static int gc_check(struct pce *e, const struct pcm_walk *w, unsigned i, struct pcm_key *k,
		    bool *live)
{
	const struct pcm_cache *c = e->c;

	pcm_walk_key(w, i, k);
	if (pcm_key_check(c, k, false) != PCM_KEY_OK)
		return -EIO;
	*live = k->seg_gen >= c->gen[k->cseg];
	return *live && pcm_key_check(c, k, true) != PCM_KEY_OK ? -EIO : 0;
}

/* Normal kset at key_tail: all keys checked, references dropped, key_tail, then reclaim. */
static int gc_kset(struct pce *e, const struct pcm_walk *w)
{
	struct pcm_key k[PCM_KSET_KEYS_MAX];
	bool live[PCM_KSET_KEYS_MAX];
	uint32_t zero[PCM_KSET_KEYS_MAX];
	unsigned n = w->hdr.key_num, n_zero = 0;
	int rc = 0;

	/* a failing key stops GC before any reference of its kset is dropped */
	for (unsigned i = 0; i < n && !rc; i++)
		rc = gc_check(e, w, i, &k[i], &live[i]);
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++)
		if (live[i] && pce_ref_put(e, k[i].cseg))
			zero[n_zero++] = k[i].cseg;
	rc = tail_move(e, w->next);
	for (unsigned i = 0; i < n_zero && !rc; i++)
		rc = pce_seg_reclaim(e, zero[i]);
	return rc;
}

/* One step at key_tail; 1 when this run ends without an error. */
static int gc_step(struct pce *e, struct pcm_walk *w, struct pce_gc_result *res)
{
	bool stop = false;
	int rc;

	pthread_mutex_lock(&e->log_lock);
	pcm_walk_init(w, e->c, e->c->key_tail.pos);
	pthread_mutex_unlock(&e->log_lock);
	switch (pce_walk_next(e, w)) {
	case PCM_WALK_LAST:
		rc = gc_last(e, w, &stop);
		res->last_ksets += !rc && !stop;
		return rc ? rc : stop;
	case PCM_WALK_KSET:
		rc = gc_kset(e, w);
		res->ksets += !rc;
		return rc;
	case PCM_WALK_END:
		return 1;    /* trigger condition 3: no valid kset at key_tail */
	default:
		return -EIO;
	}
}

int pce_gc(struct pce *e, struct pce_gc_result *res)
{
	struct pcm_walk *w;
	uint64_t before;
	int rc = 0;

	*res = (struct pce_gc_result){ 0 };
	if (!e->a)
		return -EROFS;
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&e->gc_lock);
	before = __atomic_load_n(&e->reclaimed, __ATOMIC_RELAXED);
	res->triggered = gc_trigger(e);
	while (!rc && gc_trigger(e))
		rc = gc_step(e, w, res);
	res->reclaimed = __atomic_load_n(&e->reclaimed, __ATOMIC_RELAXED) - before;
	pthread_mutex_unlock(&e->gc_lock);
	free(w);
	res->err = rc < 0 ? rc : 0;
	return res->err;
}
