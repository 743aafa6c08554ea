/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bulk insertion for replay.  Inserting keys one by one into a large index
 * costs a few cache misses each; a replay instead collects keys in log order,
 * sorts them by offset (radix, stable), resolves each window's batch with a
 * sweep where the newest key wins, and merges the result into the window's
 * extents in one pass.  The result is the one pcm_index_insert() would build
 * key by key (§6.6), EMPTY keys excepted: the caller inserts those
 * singly, after flushing the batch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"

struct bitem {
	uint64_t off;
	uint32_t seq;        /* position in the batch: later wins */
};

static int radix_sort_big(struct bitem *v, size_t n)
{
	struct bitem *tmp = malloc(n * sizeof(*tmp));
	size_t *count = malloc(65536 * sizeof(*count));
	int rc = tmp && count ? 0 : -ENOMEM;

	for (unsigned shift = 0; !rc && shift < 64; shift += 16) {
		size_t sum = 0;

		memset(count, 0, 65536 * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(v[i].off >> shift) & 0xFFFF]++;
		if (count[(v[0].off >> shift) & 0xFFFF] == n)
			continue;
		for (size_t d = 0; d < 65536; d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[count[(v[i].off >> shift) & 0xFFFF]++] = v[i];
		memcpy(v, tmp, n * sizeof(*v));
	}
	free(tmp);
	free(count);
	return rc;
}

static int bitem_cmp(const void *a, const void *b)
{
	const struct bitem *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Below this many keys a comparison sort beats four passes over 64 Ki buckets. */
#define RADIX_MIN 8192u

/* Stable LSD radix sort on off, 16 bits per pass, passes with one bucket skipped.
 * Small batches use qsort on (off, seq): seq is unique, so that order is stable too. */
static int radix_sort(struct bitem *v, size_t n)
{
	if (n < RADIX_MIN) {
		qsort(v, n, sizeof(*v), bitem_cmp);
		return 0;
	}
	return radix_sort_big(v, n);
}

/* Max-heap of active keys by seq. */
struct heap {
	uint32_t *s;
	size_t n;
};

static void heap_push(struct heap *h, uint32_t seq)
{
	size_t i = h->n++;

	while (i && h->s[(i - 1) / 2] < seq) {
		h->s[i] = h->s[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->s[i] = seq;
}

static void heap_pop(struct heap *h)
{
	uint32_t last = h->s[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->s[c + 1] > h->s[c])
			c++;
		if (h->s[c] <= last)
			break;
		h->s[i] = h->s[c];
		i = c;
	}
	if (h->n)
		h->s[i] = last;
}

static uint64_t xend(const struct pcm_extent *e)
{
	return e->off + e->len;
}

/* Appends [a, b) of e to out, joined to the previous piece of the same key. */
static void put_part(struct pcm_extent *out, size_t *n, const struct pcm_extent *e, uint64_t a,
		     uint64_t b, uint32_t key, uint32_t *last_key)
{
	if (*n && *last_key == key && xend(&out[*n - 1]) == a) {
		out[*n - 1].len += (uint32_t)(b - a);
		return;
	}
	out[*n] = *e;
	out[*n].off = a;
	out[*n].len = (uint32_t)(b - a);
	out[*n].seg_off = e->seg_off + (uint32_t)(a - e->off);
	(*n)++;
	*last_key = key;
}

/* The batch's own pieces in one window: for every byte, the newest key covering it. */
static size_t resolve(const struct pcm_extent *v, const struct bitem *g, size_t m,
		      struct heap *h, struct pcm_extent *out)
{
	size_t i = 0, n = 0;
	uint64_t cur = 0;
	uint32_t last = UINT32_MAX;

	h->n = 0;
	while (i < m || h->n) {
		uint64_t next;

		if (!h->n)
			cur = g[i].off;
		while (i < m && g[i].off <= cur)
			heap_push(h, g[i++].seq);
		while (h->n && xend(&v[h->s[0]]) <= cur)
			heap_pop(h);
		if (!h->n)
			continue;
		next = xend(&v[h->s[0]]);
		if (i < m && g[i].off < next)
			next = g[i].off;
		put_part(out, &n, &v[h->s[0]], cur, next, h->s[0], &last);
		cur = next;
	}
	return n;
}

/* What is left of the older extents where the batch's pieces p[] do not cover them. */
static size_t subtract(const struct pcm_extent *old, size_t no, const struct pcm_extent *p,
		       size_t np, struct pcm_extent *out)
{
	size_t j = 0, n = 0;
	uint32_t last = UINT32_MAX;

	for (size_t i = 0; i < no; i++) {
		const struct pcm_extent *e = &old[i];
		uint64_t a = e->off;

		while (j < np && xend(&p[j]) <= a)
			j++;
		if (e->flags & PCM_EXT_EMPTY) {   /* loses everything from the first newer key on */
			uint64_t cut = j < np && p[j].off < xend(e) ? p[j].off : xend(e);

			if (cut > a)
				put_part(out, &n, e, a, cut, (uint32_t)i, &last);
			continue;
		}
		for (size_t k = j; a < xend(e); k++) {
			if (k >= np || p[k].off >= xend(e)) {
				put_part(out, &n, e, a, xend(e), (uint32_t)i, &last);
				break;
			}
			if (p[k].off > a)
				put_part(out, &n, e, a, p[k].off, (uint32_t)i, &last);
			a = xend(&p[k]);
		}
		last = UINT32_MAX;   /* parts of one old extent stay apart, as insertion leaves them */
	}
	return n;
}

/* Two sorted, mutually disjoint runs into one. */
static size_t merge(const struct pcm_extent *a, size_t na, const struct pcm_extent *b, size_t nb,
		    struct pcm_extent *out)
{
	size_t i = 0, j = 0, n = 0;

	while (i < na || j < nb)
		out[n++] = j >= nb || (i < na && a[i].off < b[j].off) ? a[i++] : b[j++];
	return n;
}

#define LEAF_FILL 48u   /* room left in each leaf for later single inserts */

/* Replaces a window's leaves by the sorted extents m[0..n). */
static int rebuild(struct pcm_index *idx, struct window *w, const struct pcm_extent *m, size_t n)
{
	uint32_t nl = (uint32_t)((n + LEAF_FILL - 1) / LEAF_FILL);
	struct leaf **l = calloc(nl ? nl : 1, sizeof(*l));
	uint64_t *end = calloc(nl ? nl : 1, sizeof(*end));

	if (!l || !end) {
		free(l);
		free(end);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < nl; i++) {
		size_t from = (size_t)i * LEAF_FILL, cnt = n - from < LEAF_FILL ? n - from : LEAF_FILL;

		l[i] = malloc(sizeof(**l));
		if (!l[i]) {
			while (i--)
				free(l[i]);
			free(l);
			free(end);
			return -ENOMEM;
		}
		l[i]->n = (uint32_t)cnt;
		memcpy(l[i]->v, m + from, cnt * sizeof(*m));
		end[i] = xend(&m[from + cnt - 1]);
	}
	for (uint32_t i = 0; i < w->nl; i++)
		free(w->l[i]);
	free(w->l);
	free(w->end);
	idx->leaves = idx->leaves - w->nl + nl;
	w->l = l;
	w->end = end;
	w->nl = w->capl = nl;
	return 0;
}

/* Flattens a window's extents into out; returns their count. */
static size_t flatten(const struct window *w, struct pcm_extent *out)
{
	size_t n = 0;

	for (uint32_t i = 0; i < w->nl; i++) {
		memcpy(out + n, w->l[i]->v, w->l[i]->n * sizeof(*out));
		n += w->l[i]->n;
	}
	return n;
}

static size_t window_size(const struct window *w)
{
	size_t n = 0;

	for (uint32_t i = 0; i < w->nl; i++)
		n += w->l[i]->n;
	return n;
}

struct scratch {
	struct pcm_extent *p, *old, *rest, *out;
	size_t cap;
	struct heap h;
};

static int scratch_fit(struct scratch *s, size_t need)
{
	if (need <= s->cap)
		return 0;
	free(s->p);
	free(s->old);
	free(s->rest);
	free(s->out);
	free(s->h.s);
	s->p = malloc(need * sizeof(*s->p));
	s->old = malloc(need * sizeof(*s->old));
	s->rest = malloc(need * sizeof(*s->rest));
	s->out = malloc(2 * need * sizeof(*s->out));
	s->h.s = malloc(need * sizeof(*s->h.s));
	s->cap = s->p && s->old && s->rest && s->out && s->h.s ? need : 0;
	return s->cap ? 0 : -ENOMEM;
}

/* One window: the batch's items g[0..m) against what the window holds. */
static int merge_window(struct pcm_index *idx, const struct pcm_extent *v, const struct bitem *g,
			size_t m, struct scratch *s)
{
	struct window *w = idx_window_get(idx, g[0].off >> PCM_WINDOW_SHIFT);
	size_t no, np, nr, n;
	int rc;

	if (!w)
		return -ENOMEM;
	no = window_size(w);
	/* pieces: fewer than 2m; what is left of the old: at most no + 2m */
	rc = scratch_fit(s, no + 2 * m + 1);
	if (rc)
		return rc;
	np = resolve(v, g, m, &s->h, s->p);
	flatten(w, s->old);
	nr = subtract(s->old, no, s->p, np, s->rest);
	n = merge(s->rest, nr, s->p, np, s->out);
	rc = rebuild(idx, w, s->out, n);
	if (!rc)
		idx->count = idx->count - no + n;
	return rc;
}

int pcm_index_insert_batch(struct pcm_index *idx, const struct pcm_extent *v, size_t n)
{
	struct bitem *b = malloc((n ? n : 1) * sizeof(*b));
	struct scratch s = { 0 };
	int rc = b ? 0 : -ENOMEM;

	for (size_t i = 0; !rc && i < n; i++)
		b[i] = (struct bitem){ v[i].off, (uint32_t)i };
	if (!rc && n)
		rc = radix_sort(b, n);
	for (size_t i = 0; !rc && i < n;) {
		size_t j = i + 1;

		while (j < n && (b[j].off >> PCM_WINDOW_SHIFT) == (b[i].off >> PCM_WINDOW_SHIFT))
			j++;
		rc = merge_window(idx, v, b + i, j - i, &s);
		i = j;
	}
	free(b);
	free(s.p);
	free(s.old);
	free(s.rest);
	free(s.out);
	free(s.h.s);
	return rc;
}
