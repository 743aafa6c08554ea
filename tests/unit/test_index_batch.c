/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pcm_index_insert_batch builds exactly the index that inserting the same
 * keys one by one builds: every extent, field for field, for random key mixes
 * (overlaps, window crossings, unaligned, EMPTY keys inserted singly between
 * batches as replay does) and batch sizes from 1 to all keys.
 */
#include <stdlib.h>
#include <string.h>

#include "pcachemeta.h"
#include "tap.h"

struct list {
	struct pcm_extent *v;
	size_t n, cap;
};

static int collect(const struct pcm_extent *e, void *arg)
{
	struct list *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *e;
	return 0;
}

static struct pcm_extent random_key(uint64_t range, unsigned unaligned, unsigned empty_pct)
{
	uint32_t len = (uint32_t)(1 + tap_rand_below(tap_rand_below(8) ? 64 : 4096)) * 512;
	struct pcm_extent e = {
		.off = tap_rand_below(range / 512) * 512,
		.len = len,
		.cseg = (uint32_t)tap_rand_below(60),
		.seg_off = (uint32_t)tap_rand_below(1 << 20) * 8,
		.seg_gen = tap_rand_below(4),
		.flags = tap_rand_below(100) < 30 ? PCM_EXT_CLEAN : PCM_EXT_DIRTY,
	};

	if (unaligned && tap_rand_below(4) == 0) {
		e.off += tap_rand_below(512);
		e.len -= (uint32_t)tap_rand_below(511);
	}
	if (tap_rand_below(100) < empty_pct)
		e.flags = PCM_EXT_EMPTY;
	return e;
}

static bool same(const struct list *a, const struct list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (memcmp(&a->v[i], &b->v[i], sizeof(a->v[i])))
			return false;
	return true;
}

static void one_run(unsigned seed, size_t nkeys, uint64_t range, size_t batch, unsigned unaligned,
		    unsigned empty_pct)
{
	struct pcm_index *one = pcm_index_new(), *bat = pcm_index_new();
	struct pcm_extent *keys = malloc(nkeys * sizeof(*keys)), *pend = malloc(nkeys * sizeof(*keys));
	struct list a = { 0 }, b = { 0 };
	size_t np = 0;
	int r1, r2, bad = 0;

	tap_srand(seed);
	for (size_t i = 0; i < nkeys; i++)
		keys[i] = random_key(range, unaligned, empty_pct);
	for (size_t i = 0; i < nkeys; i++) {
		r1 = pcm_index_insert(one, &keys[i]);
		if (keys[i].flags & PCM_EXT_EMPTY) {
			if (np)
				pcm_index_insert_batch(bat, pend, np);
			np = 0;
			r2 = pcm_index_insert(bat, &keys[i]);
			bad += r1 != r2;
			continue;
		}
		pend[np++] = keys[i];
		if (np == batch) {
			pcm_index_insert_batch(bat, pend, np);
			np = 0;
		}
	}
	if (np)
		pcm_index_insert_batch(bat, pend, np);
	pcm_index_foreach(one, collect, &a);
	pcm_index_foreach(bat, collect, &b);
	ok(!bad && same(&a, &b) && pcm_index_count(bat) == a.n,
	   "seed %u: %zu keys over %llu MiB in batches of %zu%s%s: %zu extents, identical",
	   seed, nkeys, (unsigned long long)(range >> 20), batch, unaligned ? ", unaligned" : "",
	   empty_pct ? ", with EMPTY keys" : "", a.n);
	for (size_t i = 0; i < 2000; i++) {
		uint64_t x = tap_rand_below(range + (8 << 20));
		const struct pcm_extent *p = pcm_index_lookup(one, x), *q = pcm_index_lookup(bat, x);

		if ((p == NULL) != (q == NULL) || (p && memcmp(p, q, sizeof(*p)))) {
			ok(false, "seed %u: lookup of %llu differs", seed, (unsigned long long)x);
			break;
		}
	}
	free(a.v);
	free(b.v);
	free(keys);
	free(pend);
	pcm_index_free(one);
	pcm_index_free(bat);
}

int main(void)
{
	static const size_t batches[] = { 1, 2, 7, 64, 1000, 1u << 30 };

	for (unsigned s = 1; s <= 6; s++)
		for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++)
			one_run(s * 100 + (unsigned)i, 5000, 16ull << 20, batches[i], s & 1, 0);
	one_run(7, 20000, 8ull << 20, 500, 1, 3);
	one_run(8, 20000, 8ull << 20, 3, 0, 5);
	one_run(9, 200000, 4ull << 30, 65536, 0, 0);
	one_run(10, 100000, 4ull << 20, 10000, 1, 1);
	return tap_done();
}
