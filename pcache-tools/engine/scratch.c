/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The scratch index of writeback (§7.2 step 6): the insertion rules
 * of §6.6 over ONE window, so within a kset a later key wins over an earlier
 * one across the whole logical range (a crafted key crossing a 4 MiB window
 * cuts extents past the window end here, unlike in the live index).  A
 * sorted array: a kset holds at most 128 keys.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

void pce_scratch_reset(struct pce_scratch *s)
{
	s->n = 0;
}

void pce_scratch_free(struct pce_scratch *s)
{
	free(s->v);
	*s = (struct pce_scratch){ 0 };
}

static uint64_t x_end(const struct pcm_extent *x)
{
	return x->off + x->len;
}

/* First extent ending after off (ends ascend: extents are disjoint and sorted). */
static size_t first_after(const struct pce_scratch *s, uint64_t off)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x_end(&s->v[mid]) > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* T's front, K, T's back; an EMPTY T keeps nothing from K's start on. */
static size_t pieces(const struct pcm_extent *first, const struct pcm_extent *last,
		     const struct pcm_extent *k, struct pcm_extent put[3])
{
	size_t m = 0;

	if (first && first->off < k->off) {
		put[m] = *first;
		put[m++].len = (uint32_t)(k->off - first->off);
	}
	put[m++] = *k;
	if (last && x_end(last) > x_end(k) && !(last->flags & PCM_EXT_EMPTY)) {
		put[m] = *last;
		put[m].off = x_end(k);
		put[m].len = (uint32_t)(x_end(last) - x_end(k));
		put[m++].seg_off = last->seg_off + (uint32_t)(x_end(k) - last->off);
	}
	return m;
}

static int reserve(struct pce_scratch *s, size_t more)
{
	size_t cap;
	struct pcm_extent *v;

	if (s->n + more <= s->cap)
		return 0;
	cap = s->cap ? s->cap * 2 : 256;
	while (cap < s->n + more)
		cap *= 2;
	v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

int pce_scratch_insert(struct pce_scratch *s, const struct pcm_extent *k)
{
	struct pcm_extent put[3];
	size_t a = first_after(s, k->off), b = a, m;

	if (reserve(s, 3))
		return -ENOMEM;
	while (b < s->n && s->v[b].off < x_end(k))
		b++;
	m = pieces(b > a ? &s->v[a] : NULL, b > a ? &s->v[b - 1] : NULL, k, put);
	memmove(&s->v[a + m], &s->v[b], (s->n - b) * sizeof(*put));
	memcpy(&s->v[a], put, m * sizeof(*put));
	s->n = s->n - (b - a) + m;
	return 0;
}
