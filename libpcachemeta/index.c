/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The extent index.  As in the kernel, keys compete only inside the 4 MiB
 * logical window of their start, so the index is one ordered set per window,
 * windows found by hash.  A window is a two-level sorted structure: leaves of
 * up to LEAF_CAP extents, and a directory holding each leaf's last end offset.
 * That keeps an insert to two binary searches and a memmove of at most one
 * leaf (a flat vector per window memmoved kilobytes per key on dense logs).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"

struct pcm_index *pcm_index_new(void)
{
	return calloc(1, sizeof(struct pcm_index));
}

void pcm_index_free(struct pcm_index *idx)
{
	if (!idx)
		return;
	for (uint32_t i = 0; i < idx->nw; i++) {
		for (uint32_t j = 0; j < idx->w[i].nl; j++)
			free(idx->w[i].l[j]);
		free(idx->w[i].l);
		free(idx->w[i].end);
	}
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

struct window *idx_window_get(struct pcm_index *idx, uint64_t id)
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
	idx->w[idx->nw++] = (struct window){ .id = id };
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

/* First leaf whose last end is past off (nl when none). */
static uint32_t leaf_search(const struct window *w, uint64_t off)
{
	uint32_t lo = 0, hi = w->nl;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (w->end[mid] > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* First extent of a leaf whose end is past off (ends ascend: extents are disjoint). */
static uint32_t ext_search(const struct leaf *l, uint64_t off)
{
	uint32_t lo = 0, hi = l->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ext_end(&l->v[mid]) > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static int dir_insert(struct pcm_index *idx, struct window *w, uint32_t at, struct leaf *l)
{
	if (w->nl == w->capl) {
		uint32_t cap = w->capl ? w->capl * 2 : 4;
		struct leaf **nl = realloc(w->l, cap * sizeof(*nl));
		uint64_t *ne = nl ? realloc(w->end, cap * sizeof(*ne)) : NULL;

		if (nl)
			w->l = nl;
		if (!ne)
			return -ENOMEM;
		w->end = ne;
		w->capl = cap;
	}
	memmove(&w->l[at + 1], &w->l[at], (w->nl - at) * sizeof(*w->l));
	memmove(&w->end[at + 1], &w->end[at], (w->nl - at) * sizeof(*w->end));
	w->l[at] = l;
	w->end[at] = ext_end(&l->v[l->n - 1]);
	w->nl++;
	idx->leaves++;
	return 0;
}

static void dir_remove(struct pcm_index *idx, struct window *w, uint32_t at)
{
	free(w->l[at]);
	memmove(&w->l[at], &w->l[at + 1], (w->nl - at - 1) * sizeof(*w->l));
	memmove(&w->end[at], &w->end[at + 1], (w->nl - at - 1) * sizeof(*w->end));
	w->nl--;
	idx->leaves--;
}

/* Replaces extents [a, b) of leaf li by put[0..m), splitting or dropping the leaf. */
static int leaf_replace(struct pcm_index *idx, struct window *w, uint32_t li, uint32_t a,
			uint32_t b, const struct pcm_extent *put, uint32_t m)
{
	struct leaf *l = w->l[li], *r;
	uint32_t n = l->n - (b - a) + m, h;
	struct pcm_extent tmp[LEAF_CAP + 3];

	if (n == 0) {
		dir_remove(idx, w, li);
		return 0;
	}
	if (n <= LEAF_CAP) {
		memmove(&l->v[a + m], &l->v[b], (l->n - b) * sizeof(*put));
		if (m)
			memcpy(&l->v[a], put, m * sizeof(*put));
		l->n = n;
		w->end[li] = ext_end(&l->v[n - 1]);
		return 0;
	}
	r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* appending at a leaf's end (sequential writes) keeps the left leaf full */
	h = (a == l->n && b == a) ? LEAF_CAP : n / 2;
	memcpy(tmp, l->v, a * sizeof(*put));
	if (m)
		memcpy(tmp + a, put, m * sizeof(*put));
	memcpy(tmp + a + m, &l->v[b], (l->n - b) * sizeof(*put));
	memcpy(l->v, tmp, h * sizeof(*put));
	l->n = h;
	memcpy(r->v, tmp + h, (n - h) * sizeof(*put));
	r->n = n - h;
	w->end[li] = ext_end(&l->v[h - 1]);
	return dir_insert(idx, w, li + 1, r);
}

static int window_first(struct pcm_index *idx, struct window *w, const struct pcm_extent *k)
{
	struct leaf *l = malloc(sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->n = 1;
	l->v[0] = *k;
	return dir_insert(idx, w, 0, l);
}

/*
 * The pieces that replace the overlapped extents: T's front, K, T's back
 * (§6.6; an EMPTY T loses everything from K's start on).
 */
static uint32_t pieces(const struct pcm_extent *first, const struct pcm_extent *last,
		       const struct pcm_extent *k, struct pcm_extent put[3])
{
	uint64_t ks = k->off, ke = ext_end(k);
	uint32_t m = 0;

	if (first && first->off < ks) {
		put[m] = *first;
		put[m++].len = (uint32_t)(ks - first->off);
	}
	put[m++] = *k;
	if (last && ext_end(last) > ke && !(last->flags & PCM_EXT_EMPTY)) {
		put[m] = *last;
		put[m].off = ke;
		put[m].len = (uint32_t)(ext_end(last) - ke);
		put[m++].seg_off = last->seg_off + (uint32_t)(ke - last->off);
	}
	return m;
}

int pcm_index_insert(struct pcm_index *idx, const struct pcm_extent *k)
{
	struct window *w = idx_window_get(idx, k->off >> PCM_WINDOW_SHIFT);
	struct pcm_extent put[3], first, last;
	uint64_t ks = k->off, ke = ext_end(k), removed;
	uint32_t li, lj, a, b, m;
	int rc;

	if (!w)
		return -ENOMEM;
	if (!w->nl) {
		rc = window_first(idx, w, k);
		idx->count += !rc;
		return rc;
	}
	li = leaf_search(w, ks);
	if (li == w->nl) {      /* past every extent of the window */
		li--;
		rc = leaf_replace(idx, w, li, w->l[li]->n, w->l[li]->n, k, 1);
		idx->count += !rc;
		return rc;
	}
	a = ext_search(w->l[li], ks);
	lj = li;
	b = a;
	removed = 0;
	for (;;) {              /* find the end of the overlapped run */
		const struct leaf *l = w->l[lj];

		while (b < l->n && l->v[b].off < ke)
			b++;
		if (b < l->n || lj + 1 == w->nl || w->l[lj + 1]->v[0].off >= ke)
			break;
		removed += b - (lj == li ? a : 0);
		lj++;
		b = 0;
	}
	removed += b - (lj == li ? a : 0);
	if (removed && (k->flags & PCM_EXT_EMPTY))
		return 1;       /* the kernel BUGs here; keep the index as it was */
	if (removed) {
		first = w->l[li]->v[a];
		last = w->l[lj]->v[b - 1];
	}
	m = pieces(removed ? &first : NULL, removed ? &last : NULL, k, put);
	if (lj == li) {
		rc = leaf_replace(idx, w, li, a, b, put, m);
	} else {
		rc = leaf_replace(idx, w, lj, 0, b, NULL, 0);
		while (!rc && --lj > li)
			dir_remove(idx, w, li + 1);
		if (!rc)
			rc = leaf_replace(idx, w, li, a, w->l[li]->n, put, m);
	}
	if (!rc)
		idx->count = idx->count + m - removed;
	return rc;
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
		for (uint32_t j = 0; j < order[i]->nl && !rc; j++)
			for (uint32_t e = 0; e < order[i]->l[j]->n && !rc; e++)
				rc = fn(&order[i]->l[j]->v[e], arg);
	free(order);
	return rc;
}

uint64_t pcm_index_mem(const struct pcm_index *idx)
{
	uint64_t m = sizeof(*idx) + (uint64_t)idx->capw * sizeof(struct window) +
		     (uint64_t)idx->hsize * sizeof(uint32_t) + idx->leaves * sizeof(struct leaf);

	for (uint32_t i = 0; i < idx->nw; i++)
		m += (uint64_t)idx->w[i].capl * (sizeof(struct leaf *) + sizeof(uint64_t));
	return m;
}

const struct pcm_extent *pcm_index_lookup(const struct pcm_index *idx, uint64_t off)
{
	const struct window *w = window_find(idx, off >> PCM_WINDOW_SHIFT);
	const struct leaf *l;
	uint32_t li, a;

	if (!w)
		return NULL;
	li = leaf_search(w, off);
	if (li == w->nl)
		return NULL;
	l = w->l[li];
	a = ext_search(l, off);
	return a < l->n && l->v[a].off <= off ? &l->v[a] : NULL;
}

const struct pcm_extent *pcm_index_lookup_ge(const struct pcm_index *idx, uint64_t off)
{
	const struct window *w = window_find(idx, off >> PCM_WINDOW_SHIFT);
	uint32_t li;

	if (!w)
		return NULL;
	li = leaf_search(w, off);
	if (li == w->nl)
		return NULL;
	/* the leaf's last extent ends past off, so the search stays inside the leaf */
	return &w->l[li]->v[ext_search(w->l[li], off)];
}
