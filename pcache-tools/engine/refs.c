/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Segment references, data heads and reclaim (§6.3, §8.3).
 *
 * A data segment holds one reference per key pointing into it from key_tail
 * on (or still in an open kset), plus one while it is a data head.  A key's
 * reference is taken when its space is reserved, before the head can move
 * on, so dropping the head's reference never frees a segment that is about
 * to receive a key.  When the count reaches exactly 0 the segment's gen is
 * bumped and persisted, and only then is it free to be taken again.
 */
#include <errno.h>
#include <sched.h>

#include "engine_int.h"

void pce_ref_get(struct pce *e, uint32_t cseg)
{
	__atomic_add_fetch(&e->refs[cseg], 1, __ATOMIC_RELAXED);
}

bool pce_ref_put(struct pce *e, uint32_t cseg)
{
	return __atomic_sub_fetch(&e->refs[cseg], 1, __ATOMIC_ACQ_REL) == 0;
}

/* One head per CPU, as the kernel: threads on different CPUs place data in parallel. */
static struct pce_head *my_head(struct pce *e)
{
	int cpu = sched_getcpu();

	return &e->heads[(cpu < 0 ? 0u : (unsigned)cpu) % e->n_heads];
}

/* A fresh segment for a head; one segment always stays free for the log (see below). */
static int head_new(struct pce *e, struct pce_head *h)
{
	uint32_t s;
	int rc;

	/*
	 * Keeping one segment back means a kset close never lacks a segment for
	 * its LAST hop: every key needs fresh data space, so between two hops at
	 * least a dozen data segments are taken, each leaving one free.
	 */
	pthread_mutex_lock(&e->log_lock);
	rc = pcm_appender_take_seg(e->a, 1, &s);
	pthread_mutex_unlock(&e->log_lock);
	if (rc)
		return rc;
	pce_ref_get(e, s);
	h->valid = true;
	h->cseg = s;
	h->off = 0;
	return 0;
}

int pce_head_reserve(struct pce *e, uint32_t *len, struct pcm_pos *at, uint64_t *gen)
{
	struct pce_head *h = my_head(e);
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	if (!h->valid)
		rc = head_new(e, h);
	if (!rc) {
		/* the kernel shortens the key to the rest of the segment and drops the head */
		if (*len > PCM_DATA_SIZE - h->off)
			*len = PCM_DATA_SIZE - h->off;
		*at = (struct pcm_pos){ .cseg = h->cseg, .seg_off = h->off };
		*gen = e->c->gen[h->cseg];
		pce_ref_get(e, h->cseg);
		h->off += *len;
		if (h->off == PCM_DATA_SIZE) {
			h->valid = false;
			pce_ref_put(e, h->cseg);   /* never 0: the key just took one */
		}
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int pce_seg_reclaim(struct pce *e, uint32_t cseg)
{
	int rc;

	/*
	 * Readers copy cache data while holding their shard lock and check the
	 * gen under it: with every shard held, no copy of this segment is in
	 * flight, and every later lookup sees the bumped gen (stale: a miss).
	 */
	pce_shards_lock_all(e);
	pthread_mutex_lock(&e->log_lock);
	rc = pcm_gen_write(e->c, cseg, e->c->gen[cseg] + 1);
	if (!rc)
		rc = pcm_appender_release_seg(e->a, cseg);
	if (!rc)
		__atomic_add_fetch(&e->reclaimed, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&e->log_lock);
	pce_shards_unlock_all(e);
	return rc;
}

void pce_heads_drop(struct pce *e)
{
	/* heads live in memory only: after a load partially filled segments are not resumed */
	for (unsigned i = 0; i < e->n_heads; i++) {
		struct pce_head *h = &e->heads[i];

		pthread_mutex_lock(&h->lock);
		if (h->valid)
			pce_ref_put(e, h->cseg);
		h->valid = false;
		pthread_mutex_unlock(&h->lock);
	}
}
