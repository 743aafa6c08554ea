/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The extent index: one sorted vector of non-overlapping extents per 4 MiB
 * logical window (the kernel's subtree split), windows found by hash.  A
 * window holds at most a few thousand extents, so insertion by memmove beats
 * a tree and costs 32 bytes per extent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcachemeta.h"

struct window {
	uint64_t id;
	uint32_t n, cap;
	struct pcm_extent *v;
};

struct pcm_index {
	struct window *w;       /* windows, in creation order */
	uint32_t nw, capw;
	uint32_t *hash;         /* index+1 into w, 0 empty; power-of-two size */
	uint32_t hsize;
	uint64_t count;
};

struct pcm_index *pcm_index_new(void)
{
	return calloc(1, sizeof(struct pcm_index));
}

void pcm_index_free(struct pcm_index *idx)
{
	if (!idx)
		return;
	for (uint32_t i = 0; i < idx->nw; i++)
		free(idx->w[i].v);
	free(idx->w);
	free(idx->hash);
	free(idx);
}

static uint32_t hash_id(uint64_t id, uint32_t mask)
{
	id *= 0x9E3779B97F4A7C15ull;
	return (uint32_t)(id >> 32) & mask;
}

static int rehash(struct pcm_index *idx, uint32_t size)
{
	uint32_t *h = calloc(size, sizeof(*h));

	if (!h)
		return -ENOMEM;
	for (uint32_t i = 0; i < idx->nw; i++) {
		uint32_t s = hash_id(idx->w[i].id, size - 1);

		while (h[s])
			s = (s + 1) & (size - 1);
		h[s] = i + 1;
	}
	free(idx->hash);
	idx->hash = h;
	idx->hsize = size;
	return 0;
}

static struct window *window_find(const struct pcm_index *idx, uint64_t id)
{
	if (!idx->hsize)
		return NULL;
	for (uint32_t s = hash_id(id, idx->hsize - 1);; s = (s + 1) & (idx->hsize - 1)) {
		uint32_t k = idx->hash[s];

		if (!k)
			return NULL;
		if (idx->w[k - 1].id == id)
			return &idx->w[k - 1];
	}
}

static struct window *window_get(struct pcm_index *idx, uint64_t id)
{
	struct window *w = window_find(idx, id);

	if (w)
		return w;
	if (idx->nw == idx->capw) {
		uint32_t cap = idx->capw ? idx->capw * 2 : 64;
		struct window *nw = realloc(idx->w, cap * sizeof(*nw));

		if (!nw)
			return NULL;
		idx->w = nw;
		idx->capw = cap;
	}
	idx->w[idx->nw] = (struct window){ .id = id };
	idx->nw++;
	if ((uint64_t)idx->nw * 2 > idx->hsize) {
		if (rehash(idx, idx->hsize ? idx->hsize * 2 : 128)) {
			idx->nw--;
			return NULL;
		}
	} else {
		uint32_t s = hash_id(id, idx->hsize - 1);

		while (idx->hash[s])
			s = (s + 1) & (idx->hsize - 1);
		idx->hash[s] = idx->nw;
	}
	return &idx->w[idx->nw - 1];
}

static uint64_t ext_end(const struct pcm_extent *e)
{
	return e->off + e->len;
}

/* First extent whose end is past off (ends are sorted, extents being disjoint). */
static uint32_t first_ending_after(const struct window *w, uint64_t off)
{
	uint32_t lo = 0, hi = w->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ext_end(&w->v[mid]) > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static int window_reserve(struct window *w, uint32_t extra)
{
	if (w->n + extra <= w->cap)
		return 0;
	uint32_t cap = w->cap < 8 ? 8 : w->cap + w->cap / 2;

	while (cap < w->n + extra)
		cap += cap / 2;
	struct pcm_extent *v = realloc(w->v, (size_t)cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	w->v = v;
	w->cap = cap;
	return 0;
}

int pcm_index_insert(struct pcm_index *idx, const struct pcm_extent *k)
{
	struct window *w = window_get(idx, k->off >> PCM_WINDOW_SHIFT);
	struct pcm_extent put[3];
	uint32_t i, j, m = 0;
	uint64_t ks = k->off, ke = ext_end(k);

	if (!w)
		return -ENOMEM;
	i = first_ending_after(w, ks);
	for (j = i; j < w->n && w->v[j].off < ke; j++)
		;
	if (i < j && (k->flags & PCM_EXT_EMPTY))
		return 1;
	if (i < j && w->v[i].off < ks) {         /* T keeps its front */
		put[m] = w->v[i];
		put[m++].len = (uint32_t)(ks - w->v[i].off);
	}
	put[m++] = *k;
	if (i < j && ext_end(&w->v[j - 1]) > ke && !(w->v[j - 1].flags & PCM_EXT_EMPTY)) {
		const struct pcm_extent *t = &w->v[j - 1];   /* T keeps its back */
		uint64_t cut = ke - t->off;

		put[m] = *t;
		put[m].off = ke;
		put[m].len = (uint32_t)(ext_end(t) - ke);
		put[m++].seg_off = t->seg_off + (uint32_t)cut;
	}
	if (m > j - i && window_reserve(w, m - (j - i)))
		return -ENOMEM;
	memmove(&w->v[i + m], &w->v[j], (w->n - j) * sizeof(*w->v));
	memcpy(&w->v[i], put, m * sizeof(*put));
	w->n = w->n + m - (j - i);
	idx->count = idx->count + m - (j - i);
	return 0;
}

uint64_t pcm_index_count(const struct pcm_index *idx)
{
	return idx->count;
}

static int cmp_window_ptr(const void *a, const void *b)
{
	uint64_t x = (*(const struct window *const *)a)->id;
	uint64_t y = (*(const struct window *const *)b)->id;

	return x < y ? -1 : x > y;
}

int pcm_index_foreach(const struct pcm_index *idx,
		      int (*fn)(const struct pcm_extent *e, void *arg), void *arg)
{
	const struct window **order = malloc((idx->nw ? idx->nw : 1) * sizeof(*order));
	int rc = 0;

	if (!order)
		return -ENOMEM;
	for (uint32_t i = 0; i < idx->nw; i++)
		order[i] = &idx->w[i];
	qsort(order, idx->nw, sizeof(*order), cmp_window_ptr);
	for (uint32_t i = 0; i < idx->nw && !rc; i++)
		for (uint32_t j = 0; j < order[i]->n && !rc; j++)
			rc = fn(&order[i]->v[j], arg);
	free(order);
	return rc;
}

uint64_t pcm_index_mem(const struct pcm_index *idx)
{
	uint64_t m = sizeof(*idx) + (uint64_t)idx->capw * sizeof(struct window) +
		     (uint64_t)idx->hsize * sizeof(uint32_t);

	for (uint32_t i = 0; i < idx->nw; i++)
		m += (uint64_t)idx->w[i].cap * sizeof(struct pcm_extent);
	return m;
}

const struct pcm_extent *pcm_index_lookup(const struct pcm_index *idx, uint64_t off)
{
	const struct window *w = window_find(idx, off >> PCM_WINDOW_SHIFT);
	uint32_t i;

	if (!w)
		return NULL;
	i = first_ending_after(w, off);
	return i < w->n && w->v[i].off <= off ? &w->v[i] : NULL;
}
