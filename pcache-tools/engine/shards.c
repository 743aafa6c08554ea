/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The live index, split into shards by 4 MiB window.  The kernel keeps one
 * tree per window with its own lock; windows never interact (§6.6),
 * so a shard holding many windows behaves the same and bounds the number of
 * mutexes.  Each shard is a libpcachemeta index under one mutex.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine_int.h"

struct pce_shard *pce_shard_of(struct pce *e, uint64_t off)
{
	return &e->shards[(off >> PCM_WINDOW_SHIFT) % e->n_shards];
}

static int copy_extent(const struct pcm_extent *x, void *arg)
{
	struct pce *e = arg;

	/* extents of a finished index are disjoint: inserting them cuts nothing */
	return pcm_index_insert(pce_shard_of(e, x->off)->idx, x);
}

int pce_shards_init(struct pce *e, const struct pcm_index *from)
{
	e->shards = aligned_alloc(PCE_CACHELINE, e->n_shards * sizeof(*e->shards));
	if (!e->shards)
		return -ENOMEM;
	for (unsigned i = 0; i < e->n_shards; i++) {
		pthread_mutex_init(&e->shards[i].lock, NULL);
		e->shards[i].idx = pcm_index_new();
		if (!e->shards[i].idx) {
			e->n_shards = i + 1;
			return -ENOMEM;
		}
	}
	return from ? pcm_index_foreach(from, copy_extent, e) : 0;
}

void pce_shards_free(struct pce *e)
{
	if (!e->shards)
		return;
	for (unsigned i = 0; i < e->n_shards; i++) {
		pcm_index_free(e->shards[i].idx);
		pthread_mutex_destroy(&e->shards[i].lock);
	}
	free(e->shards);
	e->shards = NULL;
}

int pce_shard_insert(struct pce *e, const struct pcm_key *k)
{
	struct pce_shard *s = pce_shard_of(e, k->off);
	struct pcm_extent x = {
		.off = k->off, .seg_gen = k->seg_gen, .len = k->len, .cseg = k->cseg,
		.seg_off = k->seg_off,
		.flags = (k->flags & PCM_KEY_F_CLEAN) ? PCM_EXT_CLEAN : 0,
	};
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = pcm_index_insert(s->idx, &x);
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? rc : 0;
}

void pce_shards_lock_all(struct pce *e)
{
	for (unsigned i = 0; i < e->n_shards; i++)
		pthread_mutex_lock(&e->shards[i].lock);
}

void pce_shards_unlock_all(struct pce *e)
{
	for (unsigned i = e->n_shards; i-- > 0;)
		pthread_mutex_unlock(&e->shards[i].lock);
}
