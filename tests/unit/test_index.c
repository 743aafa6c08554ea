/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_index.c - unit tests for the extent index (§6.6): the four
 * overlap cases and EMPTY behaviour by hand, then random keys against a
 * brute-force per-byte model of "later wins inside the window of the key's
 * start", then memory use for a million extents.
 */
#include "pcachemeta.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define MIB (1ull << 20)
#define WIN (4 * MIB)

/* ---- collecting extents ---- */

struct ext_list {
	struct pcm_extent *v;
	size_t n, cap;
};

static int collect(const struct pcm_extent *e, void *arg)
{
	struct ext_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct pcm_extent *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *e;
	return 0;
}

static void list_get(const struct pcm_index *idx, struct ext_list *l)
{
	l->n = 0;
	if (pcm_index_foreach(idx, collect, l))
		l->n = (size_t)-1;
}

static struct pcm_extent X(uint64_t off, uint32_t len, uint32_t cseg, uint32_t seg_off,
			   uint32_t flags)
{
	return (struct pcm_extent){ .off = off, .len = len, .cseg = cseg, .seg_off = seg_off,
				    .seg_gen = 1000 + cseg, .flags = flags };
}

static bool ext_eq(const struct pcm_extent *a, const struct pcm_extent *b)
{
	return a->off == b->off && a->len == b->len && a->cseg == b->cseg &&
	       a->seg_off == b->seg_off && a->seg_gen == b->seg_gen && a->flags == b->flags;
}

static void print_ext(const char *pfx, const struct pcm_extent *e)
{
	printf("# %s [%llu, %llu) len %u cseg %u seg_off %u gen %llu flags 0x%x\n", pfx,
	       (unsigned long long)e->off, (unsigned long long)(e->off + e->len), e->len, e->cseg,
	       e->seg_off, (unsigned long long)e->seg_gen, e->flags);
}

/* The index holds exactly want[0..n) in foreach order, and count agrees. */
static bool index_is(const struct pcm_index *idx, const struct pcm_extent *want, size_t n)
{
	struct ext_list l = { 0 };
	bool good;

	list_get(idx, &l);
	good = l.n == n && pcm_index_count(idx) == n;
	for (size_t i = 0; good && i < n; i++)
		good = ext_eq(&l.v[i], &want[i]);
	if (!good) {
		printf("# index has %zu extents (count %llu), expected %zu\n", l.n,
		       (unsigned long long)pcm_index_count(idx), n);
		for (size_t i = 0; i < l.n && l.n != (size_t)-1; i++)
			print_ext("got ", &l.v[i]);
		for (size_t i = 0; i < n; i++)
			print_ext("want", &want[i]);
	}
	free(l.v);
	return good;
}

/* Inserts a list of extents into a new index, returns it. */
static struct pcm_index *build(const struct pcm_extent *e, size_t n, int *rc_last)
{
	struct pcm_index *idx = pcm_index_new();
	int rc = 0;

	for (size_t i = 0; idx && i < n; i++)
		rc = pcm_index_insert(idx, &e[i]);
	if (rc_last)
		*rc_last = rc;
	return idx;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define CASE(name, ins, want, want_rc) do {                                        \
		int rc_;                                                           \
		struct pcm_index *idx_ = build(ins, N(ins), &rc_);                 \
		ok(idx_ && rc_ == (want_rc) && index_is(idx_, want, N(want)),      \
		   "%s (last insert rc %d)", name, rc_);                           \
		pcm_index_free(idx_);                                              \
	} while (0)

static void test_cases(void)
{
	const uint32_t E = PCM_EXT_EMPTY, C = PCM_EXT_CLEAN | PCM_EXT_CRC_OK;

	{
		struct pcm_index *idx = pcm_index_new();

		ok(idx && pcm_index_count(idx) == 0 && index_is(idx, NULL, 0) &&
		   pcm_index_lookup(idx, 0) == NULL && pcm_index_lookup(idx, 1ull << 40) == NULL,
		   "new index: empty, lookups NULL");
		pcm_index_free(idx);
		pcm_index_free(NULL);
	}
	{	/* T inside K */
		struct pcm_extent in[] = { X(1000, 1000, 1, 100, 0), X(500, 2500, 2, 0, 0) };
		struct pcm_extent want[] = { X(500, 2500, 2, 0, 0) };

		CASE("T inside K: T removed", in, want, 0);
	}
	{	/* T == K */
		struct pcm_extent in[] = { X(1000, 1000, 1, 100, 0), X(1000, 1000, 2, 7, 0) };
		struct pcm_extent want[] = { X(1000, 1000, 2, 7, 0) };

		CASE("T equal to K: T removed", in, want, 0);
	}
	{	/* T covers K's tail */
		struct pcm_extent in[] = { X(1000, 2000, 1, 100, 0), X(500, 1500, 2, 0, 0) };
		struct pcm_extent want[] = { X(500, 1500, 2, 0, 0), X(2000, 1000, 1, 1100, 0) };

		CASE("T covers K's tail: T loses its front, seg_off advances by 1000", in, want, 0);
	}
	{	/* T covers K's tail, same start */
		struct pcm_extent in[] = { X(1000, 2000, 1, 100, C), X(1000, 512, 2, 0, 0) };
		struct pcm_extent want[] = { X(1000, 512, 2, 0, 0), X(1512, 1488, 1, 612, C) };

		CASE("T covers K's tail (same start): seg_off + 512, flags kept", in, want, 0);
	}
	{	/* T covers K's head */
		struct pcm_extent in[] = { X(1000, 2000, 1, 100, 0), X(2000, 2000, 2, 0, 0) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, 0), X(2000, 2000, 2, 0, 0) };

		CASE("T covers K's head: T loses its back, keeps seg_off", in, want, 0);
	}
	{	/* K strictly inside T */
		struct pcm_extent in[] = { X(1000, 4000, 1, 100, C), X(2000, 1000, 2, 0, 0) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, C), X(2000, 1000, 2, 0, 0),
					     X(3000, 2000, 1, 2100, C) };

		CASE("K inside T: split, back part seg_off = 100 + (3000 - 1000)", in, want, 0);
	}
	{	/* K over several extents at once */
		struct pcm_extent in[] = { X(0, 1000, 1, 0, 0), X(1000, 1000, 2, 50, 0),
					   X(2000, 1000, 3, 60, 0), X(3000, 1000, 4, 70, 0),
					   X(5000, 100, 5, 0, 0), X(500, 3000, 9, 9, 0) };
		struct pcm_extent want[] = { X(0, 500, 1, 0, 0), X(500, 3000, 9, 9, 0),
					     X(3500, 500, 4, 570, 0), X(5000, 100, 5, 0, 0) };

		CASE("K over head, inside and tail extents at once", in, want, 0);
	}
	{	/* adjacent keys do not cut each other */
		struct pcm_extent in[] = { X(1000, 1000, 1, 0, 0), X(3000, 1000, 2, 0, 0),
					   X(2000, 1000, 3, 0, 0) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 0, 0), X(2000, 1000, 3, 0, 0),
					     X(3000, 1000, 2, 0, 0) };

		CASE("touching keys are kept whole", in, want, 0);
	}
	{	/* EMPTY T covers K's tail: removed */
		struct pcm_extent in[] = { X(1000, 2000, 1, 100, E), X(500, 1500, 2, 0, 0) };
		struct pcm_extent want[] = { X(500, 1500, 2, 0, 0) };

		CASE("EMPTY T covering K's tail is removed", in, want, 0);
	}
	{	/* EMPTY K strictly inside T: front only */
		struct pcm_extent in[] = { X(1000, 4000, 1, 100, E), X(2000, 1000, 2, 0, 0) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, E), X(2000, 1000, 2, 0, 0) };

		CASE("EMPTY T split keeps only the front part", in, want, 0);
	}
	{	/* EMPTY T covers K's head: normal back cut */
		struct pcm_extent in[] = { X(1000, 2000, 1, 100, E), X(2000, 2000, 2, 0, 0) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, E), X(2000, 2000, 2, 0, 0) };

		CASE("EMPTY T covering K's head loses its back", in, want, 0);
	}
	{	/* EMPTY T inside K */
		struct pcm_extent in[] = { X(1000, 1000, 1, 100, E), X(500, 2500, 2, 0, 0) };
		struct pcm_extent want[] = { X(500, 2500, 2, 0, 0) };

		CASE("EMPTY T inside K is removed", in, want, 0);
	}
	{	/* EMPTY key over an existing extent */
		struct pcm_extent in[] = { X(1000, 1000, 1, 100, 0), X(1500, 1000, 2, 0, E) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, 0) };

		CASE("EMPTY K overlapping an extent: returns 1, nothing changes", in, want, 1);
	}
	{	/* EMPTY key strictly inside an extent */
		struct pcm_extent in[] = { X(1000, 4000, 1, 100, 0), X(2000, 100, 2, 0, E) };
		struct pcm_extent want[] = { X(1000, 4000, 1, 100, 0) };

		CASE("EMPTY K inside an extent: returns 1, nothing changes", in, want, 1);
	}
	{	/* EMPTY key over an EMPTY extent */
		struct pcm_extent in[] = { X(1000, 1000, 1, 100, E), X(1500, 1000, 2, 0, E) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, E) };

		CASE("EMPTY K overlapping an EMPTY extent: returns 1, nothing changes", in, want, 1);
	}
	{	/* EMPTY key touching only */
		struct pcm_extent in[] = { X(1000, 1000, 1, 100, 0), X(2000, 1000, 2, 0, E) };
		struct pcm_extent want[] = { X(1000, 1000, 1, 100, 0), X(2000, 1000, 2, 0, E) };

		CASE("EMPTY K touching an extent is inserted (rc 0)", in, want, 0);
	}
	{	/* windows: K in window 1 does not cut T of window 0 */
		struct pcm_extent in[] = { X(WIN - 1000, 2000, 1, 0, 0), X(WIN, 500, 2, 0, 0) };
		struct pcm_extent want[] = { X(WIN - 1000, 2000, 1, 0, 0), X(WIN, 500, 2, 0, 0) };
		struct pcm_index *idx = build(in, 2, NULL);
		const struct pcm_extent *e;

		ok(idx && index_is(idx, want, 2),
		   "window: key starting in window 1 does not cut an extent of window 0 crossing into it");
		e = pcm_index_lookup(idx, WIN - 10);
		ok(e && e->cseg == 1, "window: lookup(4M-10) -> window 0 extent");
		e = pcm_index_lookup(idx, WIN + 100);
		ok(e && e->cseg == 2, "window: lookup(4M+100) -> window 1 key");
		e = pcm_index_lookup(idx, WIN + 700);
		ok(!e, "window: lookup(4M+700) -> NULL (window 0's tail is invisible from window 1)");
		/* a window 0 key crossing into window 1 does cut window 0 extents only */
		struct pcm_extent k = X(WIN - 2000, 4000, 3, 0, 0);

		ok(pcm_index_insert(idx, &k) == 0, "window: insert [4M-2000, 4M+2000) in window 0");
		struct pcm_extent want2[] = { X(WIN - 2000, 4000, 3, 0, 0), X(WIN, 500, 2, 0, 0) };

		ok(index_is(idx, want2, 2), "window: it replaced window 0's extent, window 1 untouched");
		pcm_index_free(idx);
	}
	{	/* a split back part starting in the next window stays in the old one */
		struct pcm_extent in[] = { X(WIN - 4096, 12288, 1, 0, 0), X(WIN - 2048, 4096, 2, 0, 0) };
		struct pcm_extent want[] = { X(WIN - 4096, 2048, 1, 0, 0), X(WIN - 2048, 4096, 2, 0, 0),
					     X(WIN + 2048, 6144, 1, 6144, 0) };
		struct pcm_index *idx = build(in, 2, NULL);

		ok(idx && index_is(idx, want, 3),
		   "window: back part [4M+2048, ...) of a window-0 extent is kept in window 0");
		ok(pcm_index_lookup(idx, WIN + 4096) == NULL,
		   "window: ... and is not visible to lookup(4M+4096) (window 1 empty)");
		pcm_index_free(idx);
	}
	{	/* foreach stops on non-zero */
		struct pcm_extent in[] = { X(0, 10, 1, 0, 0), X(WIN * 5, 10, 2, 0, 0),
					   X(WIN * 2, 10, 3, 0, 0) };
		struct pcm_extent want[] = { X(0, 10, 1, 0, 0), X(WIN * 2, 10, 3, 0, 0),
					     X(WIN * 5, 10, 2, 0, 0) };
		struct pcm_index *idx = build(in, 3, NULL);

		ok(idx && index_is(idx, want, 3), "foreach visits windows in ascending order");
		pcm_index_free(idx);
	}
}

static int stop_after_two(const struct pcm_extent *e, void *arg)
{
	int *n = arg;

	(void)e;
	return ++*n == 2 ? 42 : 0;
}

static void test_foreach_stop(void)
{
	struct pcm_index *idx = pcm_index_new();
	int n = 0, rc;

	for (int i = 0; i < 10; i++) {
		struct pcm_extent e = X((uint64_t)i * 3 * WIN + 17, 100, (uint32_t)i, 0, 0);

		pcm_index_insert(idx, &e);
	}
	rc = pcm_index_foreach(idx, stop_after_two, &n);
	ok(rc == 42 && n == 2, "foreach stops when fn returns non-zero and returns its value");
	pcm_index_free(idx);
}

/* ---- random keys against a per-byte model ---- */

enum { NWIN = 3, SPAN = (int)(5 * MIB) };   /* a window's keys reach 1 MiB past its end */

struct model {
	uint16_t *own[NWIN];       /* per window: key id + 1 covering byte W*4M + i, 0 none */
	struct pcm_extent *keys;   /* key id -> the key */
	size_t nkeys;
};

/* §6.6 on the model: returns what pcm_index_insert must return. */
static int model_insert(struct model *m, const struct pcm_extent *k, uint16_t id)
{
	unsigned w = (unsigned)(k->off / WIN);
	uint16_t *o = m->own[w];
	uint64_t s = k->off - (uint64_t)w * WIN, e = s + k->len;

	if (k->flags & PCM_EXT_EMPTY) {
		for (uint64_t x = s; x < e; x++)
			if (o[x])
				return 1;
	} else if (o[e - 1] && (m->keys[o[e - 1] - 1].flags & PCM_EXT_EMPTY)) {
		/* an EMPTY extent running past K's end loses that part too */
		uint16_t t = o[e - 1];

		for (uint64_t x = e; x < SPAN && o[x] == t; x++)
			o[x] = 0;
	}
	for (uint64_t x = s; x < e; x++)
		o[x] = (uint16_t)(id + 1);
	return 0;
}

/* The extents the model predicts, in foreach order; per_win[w] = how many in window w. */
static void model_extents(const struct model *m, struct ext_list *l, size_t per_win[NWIN])
{
	l->n = 0;
	for (unsigned w = 0; w < NWIN; w++) {
		const uint16_t *o = m->own[w];
		size_t before = l->n;

		for (uint64_t x = 0; x < SPAN;) {
			uint64_t y = x + 1;

			if (!o[x]) {
				x++;
				continue;
			}
			while (y < SPAN && o[y] == o[x])
				y++;
			const struct pcm_extent *k = &m->keys[o[x] - 1];
			struct pcm_extent e = *k;

			e.off = (uint64_t)w * WIN + x;
			e.len = (uint32_t)(y - x);
			e.seg_off = k->seg_off + (uint32_t)(e.off - k->off);
			collect(&e, l);
			x = y;
		}
		per_win[w] = l->n - before;
	}
}

static bool compare_with_model(const struct pcm_index *idx, const struct model *m, size_t step)
{
	struct ext_list got = { 0 }, want = { 0 };
	size_t per_win[NWIN], i, first = 0;
	bool good = true, sorted = true;

	list_get(idx, &got);
	model_extents(m, &want, per_win);
	if (!ok(got.n == want.n && pcm_index_count(idx) == got.n,
		"after %zu keys: %zu extents, model %zu, count %llu", step, got.n, want.n,
		(unsigned long long)pcm_index_count(idx)))
		good = false;
	/*
	 * Within one window the extents are ascending and disjoint (extents of
	 * different windows may overlap: a key reaching past its window's end).
	 */
	for (unsigned w = 0; good && w < NWIN; first += per_win[w], w++)
		for (i = first + 1; i < first + per_win[w]; i++)
			if (got.v[i].off < got.v[i - 1].off + got.v[i - 1].len)
				sorted = false;
	if (good)
		ok(sorted, "after %zu keys: each window's extents ascending and non-overlapping", step);
	good = good && sorted;
	for (i = 0; good && i < got.n; i++)
		if (!ext_eq(&got.v[i], &want.v[i])) {
			print_ext("got ", &got.v[i]);
			print_ext("want", &want.v[i]);
			good = false;
		}
	ok(good, "after %zu keys: every extent (off, len, cseg, seg_off, gen, flags) matches the model",
	   step);
	free(got.v);
	free(want.v);
	return good;
}

static bool lookups_match(const struct pcm_index *idx, const struct model *m, size_t step)
{
	int bad = 0;

	for (int i = 0; i < 20000; i++) {
		uint64_t x = tap_rand_below(NWIN * WIN + MIB + 4096);
		unsigned w = (unsigned)(x / WIN);
		uint16_t id = w < NWIN ? m->own[w][x - (uint64_t)w * WIN] : 0;
		const struct pcm_extent *e = pcm_index_lookup(idx, x);

		if (!id) {
			if (e) {
				if (bad++ < 5)
					printf("# lookup(%llu): model none, index has cseg %u\n",
					       (unsigned long long)x, e->cseg);
			}
			continue;
		}
		const struct pcm_extent *k = &m->keys[id - 1];

		if (!e || e->cseg != k->cseg || x < e->off || x >= e->off + e->len ||
		    e->seg_off + (x - e->off) != k->seg_off + (x - k->off)) {
			if (bad++ < 5)
				printf("# lookup(%llu): model key %u, index %s\n", (unsigned long long)x,
				       k->cseg, e ? "other/misplaced extent" : "NULL");
		}
	}
	return ok(!bad, "after %zu keys: 20000 random lookups agree with the model (%d wrong)", step,
		  bad);
}

/* small_pct: percentage of keys up to 8 KiB; the rest up to 128 KiB or 1 MiB. */
static struct pcm_extent random_key(uint16_t id, unsigned small_pct)
{
	struct pcm_extent k = { .cseg = id, .seg_gen = tap_rand(), .flags = 0 };
	uint64_t off, len, r = tap_rand_below(100);

	/* length: small, medium or up to 1 MiB */
	if (r < small_pct)
		len = 1 + tap_rand_below(8192);
	else if (r < small_pct + (100 - small_pct) * 2 / 3)
		len = 1 + tap_rand_below(128 * 1024);
	else
		len = 1 + tap_rand_below(MIB);
	if (tap_rand_below(100) < 15) {   /* start near a window end: likely crosses it */
		unsigned w = (unsigned)tap_rand_below(NWIN);

		off = (uint64_t)(w + 1) * WIN - 1 - tap_rand_below(len < 65536 ? len : 65536);
	} else {
		off = tap_rand_below(NWIN * WIN);
	}
	if (tap_rand_below(2)) {   /* 512-aligned key */
		off &= ~511ull;
		len = (len + 511) & ~511ull;
		if (len > MIB)
			len = MIB;
	}
	k.off = off;
	k.len = (uint32_t)len;
	k.seg_off = (uint32_t)tap_rand_below(PCM_DATA_SIZE - len + 1);
	r = tap_rand_below(100);
	if (r < 10)
		k.flags = PCM_EXT_EMPTY;
	else if (r < 30)
		k.flags = PCM_EXT_CLEAN;
	else if (r < 35)
		k.flags = PCM_EXT_DIRTY | PCM_EXT_CRC_OK;
	return k;
}

static void test_random(size_t nkeys, size_t check_every, unsigned small_pct)
{
	struct model m = { .nkeys = nkeys };
	struct pcm_index *idx = pcm_index_new();
	int bad_rc = 0, empties_refused = 0, crossing = 0;

	m.keys = calloc(nkeys, sizeof(*m.keys));
	for (int w = 0; w < NWIN; w++)
		m.own[w] = calloc(SPAN, sizeof(uint16_t));
	if (!ok(idx && m.keys && m.own[0] && m.own[1] && m.own[2], "random: allocations"))
		goto out;
	for (size_t i = 0; i < nkeys; i++) {
		struct pcm_extent k = random_key((uint16_t)i, small_pct);
		int want, rc;

		m.keys[i] = k;
		crossing += (k.off / WIN) != ((k.off + k.len - 1) / WIN);
		want = model_insert(&m, &k, (uint16_t)i);
		rc = pcm_index_insert(idx, &k);
		empties_refused += want;
		if (rc != want && bad_rc++ < 5)
			printf("# key %zu [%llu, +%u) flags 0x%x: rc %d, model %d\n", i,
			       (unsigned long long)k.off, k.len, k.flags, rc, want);
		if ((i + 1) % check_every == 0) {
			if (!compare_with_model(idx, &m, i + 1) || !lookups_match(idx, &m, i + 1))
				break;
		}
	}
	diag("random run: %zu keys, %u%% up to 8 KiB, %llu extents at the end", nkeys, small_pct,
	     (unsigned long long)pcm_index_count(idx));
	ok(!bad_rc, "random: pcm_index_insert return values match the model (%d wrong; "
	   "%d EMPTY keys refused, %d keys cross a window)", bad_rc, empties_refused, crossing);
	ok(crossing > 50 && empties_refused > 10, "random: the run exercised crossing and EMPTY keys");
out:
	pcm_index_free(idx);
	free(m.keys);
	for (int w = 0; w < NWIN; w++)
		free(m.own[w]);
}

/* ---- memory ---- */

static void test_memory(void)
{
	const uint64_t n = 1000000;
	struct pcm_index *idx = pcm_index_new();
	struct ext_list l = { 0 };
	uint64_t mem, cnt;
	int bad = 0;

	for (uint64_t i = 0; i < n; i++) {
		struct pcm_extent e = { .off = tap_rand_below(1ull << 20) * 4096, .len = 4096,
					.cseg = (uint32_t)(i % 63), .seg_off = 0 };

		if (pcm_index_insert(idx, &e))
			bad++;
	}
	cnt = pcm_index_count(idx);
	mem = pcm_index_mem(idx);
	list_get(idx, &l);
	ok(!bad && l.n == cnt && cnt > 600000 && cnt <= n,
	   "1M random 4 KiB keys over 4 GiB: %llu extents, foreach agrees", (unsigned long long)cnt);
	ok(cnt && (double)mem / (double)cnt < 64.0, "index memory %.1f bytes per extent (< 64)",
	   cnt ? (double)mem / (double)cnt : 0.0);
	free(l.v);
	pcm_index_free(idx);
}

int main(void)
{
	tap_srand(0x1DE70000ABCDull);
	test_cases();
	test_foreach_stop();
	test_random(4000, 500, 40);
	test_random(30000, 5000, 94);
	test_random(60000, 10000, 100);
	test_memory();
	return tap_done();
}
