/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Open ksets (§6.2): keys of window w gather in open kset
 * w mod n_open and are written as one kset at 128 keys, on FUA, on FLUSH and
 * at close.  A key enters the index and its open kset under the same lock,
 * so for every window the log order is the index order and a replay after a
 * crash serves what the engine served.
 */
#include <errno.h>

#include "engine_int.h"

static struct pce_oks *oks_of(struct pce *e, uint64_t off)
{
	return &e->oks[(off >> PCM_WINDOW_SHIFT) % e->n_open];
}

/* Writes the open kset through the appender (LAST hop, terminator, persist). */
static int oks_close_locked(struct pce *e, struct pce_oks *k)
{
	int rc;

	if (!k->n)
		return 0;
	pthread_mutex_lock(&e->log_lock);
	rc = pcm_append_kset(e->a, k->keys, k->n);
	pthread_mutex_unlock(&e->log_lock);
	if (!rc)
		k->n = 0;
	return rc;
}

int pce_oks_add(struct pce *e, const struct pcm_key *key, bool fua, bool *added)
{
	struct pce_oks *k = oks_of(e, key->off);
	int rc = 0;

	*added = false;
	pthread_mutex_lock(&k->lock);
	if (k->n == PCM_KSET_KEYS_MAX)
		rc = oks_close_locked(e, k);   /* an earlier close failed: retry it first */
	if (!rc)
		rc = pce_shard_insert(e, key);
	if (!rc) {
		k->keys[k->n++] = *key;
		*added = true;
		if (k->n == PCM_KSET_KEYS_MAX || fua)
			rc = oks_close_locked(e, k);
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int pce_oks_flush_all(struct pce *e)
{
	int rc = 0;

	for (unsigned i = 0; i < e->n_open; i++) {
		struct pce_oks *k = &e->oks[i];
		int r;

		pthread_mutex_lock(&k->lock);
		r = oks_close_locked(e, k);
		pthread_mutex_unlock(&k->lock);
		if (r && !rc)
			rc = r;
	}
	return rc;
}
