/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_datacrc.c - data CRCs judged by threads (libpcachemeta/datacrc.c) give
 * a replay exactly what judging them inline gives (§6.4, §6.5, §6.9).
 *
 * An image with DATA_CRC is written with the library: random writes, crafted
 * ksets scattered among them holding keys of every bad kind (length, segment,
 * segment offset, data CRC), data overwritten under some keys, a segment's gen
 * bumped (stale keys), dirty_tail in the middle of the log, and pages under
 * two keys' data poisoned (PCACHE_TEST_POISON: read errors, raised as SIGBUS
 * in whichever thread reads them).  Its replay with 1 thread is the reference;
 * with 2, 4, 7 and all online CPUs, with and without keep_going, and stopped
 * by a callback half-way, every callback (order and arguments), counter,
 * stop position, segment map and extent of the index must be the same.  Also:
 * a small log starts no thread, a big one starts them, and two caches checked
 * at once by two threads each get their own inline result.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datacrc.h"
#include "pcachemeta.h"
#include "tap.h"
#include "testfiles.h"

#define MIB (1ull << 20)
#define CACHE_SIZE (1024 * MIB)
#define RANGE (256 * MIB)

/* ---- what a replay shows: every callback, the result, the index ---- */

struct seen {
	struct pcm_pos kset;
	unsigned i;                /* slot; UINT32_MAX for an on_kset call */
	struct pcm_key k;
	int v;
	bool stale, dirty;
};

struct outcome {
	int rc;
	struct seen *s;
	size_t n, cap;
	uint64_t stop_at_kset;     /* on_kset returns 1 at this kset (0: never) */
	uint64_t ksets_seen;
	struct pcm_replay r;       /* copied; its pointers are not kept */
	uint8_t *seg_used;
	uint32_t *refs, n_segs;
	struct pcm_extent *x;
	size_t nx, capx;
};

static int push(struct outcome *o, const struct seen *s)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 1024;
		struct seen *v = realloc(o->s, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->s = v;
		o->cap = cap;
	}
	o->s[o->n++] = *s;
	return 0;
}

static int on_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *k,
		  enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct seen s = { .kset = w->pos, .i = i, .k = *k, .v = v, .stale = stale, .dirty = dirty };

	return push(arg, &s);
}

static int on_kset(const struct pcm_walk *w, void *arg)
{
	struct outcome *o = arg;
	struct seen s = { .kset = w->pos, .i = UINT32_MAX, .v = (int)w->hdr.key_num };
	int rc = push(o, &s);

	if (!rc && ++o->ksets_seen == o->stop_at_kset)
		return 1;
	return rc;
}

static int on_extent(const struct pcm_extent *e, void *arg)
{
	struct outcome *o = arg;

	if (o->nx == o->capx) {
		size_t cap = o->capx ? o->capx * 2 : 1024;
		struct pcm_extent *v = realloc(o->x, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->x = v;
		o->capx = cap;
	}
	o->x[o->nx++] = *e;
	return 0;
}

/* Keeps what r holds (arrays copied, index listed), then frees r. */
static void keep(struct outcome *o, const struct pcm_cache *c, struct pcm_replay *r)
{
	o->r = *r;
	o->n_segs = c->n_segs;
	o->seg_used = malloc(c->n_segs);
	o->refs = malloc(c->n_segs * sizeof(*o->refs));
	if (!o->seg_used || !o->refs)
		abort();
	memcpy(o->seg_used, r->seg_used, c->n_segs);
	memcpy(o->refs, r->refs, c->n_segs * sizeof(*o->refs));
	pcm_index_foreach(r->idx, on_extent, o);
	o->r.idx = NULL;
	o->r.seg_used = NULL;
	o->r.refs = NULL;
	pcm_replay_free(r);
}

static void replay(struct outcome *o, const struct pcm_cache *c, bool keep_going,
		   uint64_t stop_at_kset, unsigned threads)
{
	struct pcm_replay_opts ro = { .verify_data = true, .keep_going = keep_going,
				      .on_key = on_key, .on_kset = on_kset, .arg = o };
	struct pcm_replay *r = NULL;

	memset(o, 0, sizeof(*o));
	o->stop_at_kset = stop_at_kset;
	o->rc = replay_run_threads(c, &ro, threads, &r);
	if (!o->rc)
		keep(o, c, r);
}

static void outcome_free(struct outcome *o)
{
	free(o->s);
	free(o->seg_used);
	free(o->refs);
	free(o->x);
}

/* ---- comparing two outcomes ---- */

static bool same_seen(const struct seen *a, const struct seen *b)
{
	return pcm_pos_eq(a->kset, b->kset) && a->i == b->i && !memcmp(&a->k, &b->k, sizeof(a->k)) &&
	       a->v == b->v && a->stale == b->stale && a->dirty == b->dirty;
}

static bool same_result(const struct pcm_replay *a, const struct pcm_replay *b)
{
	return pcm_pos_eq(a->key_head, b->key_head) && a->stop == b->stop && a->err == b->err &&
	       a->failed == b->failed && a->bad_key == b->bad_key &&
	       pcm_pos_eq(a->bad_key_kset, b->bad_key_kset) &&
	       a->bad_key_index == b->bad_key_index && a->bad_key_verdict == b->bad_key_verdict &&
	       a->dirty_tail_on_log == b->dirty_tail_on_log &&
	       a->dirty_chain_stop == b->dirty_chain_stop && a->ksets == b->ksets &&
	       a->last_ksets == b->last_ksets && a->keys == b->keys &&
	       a->stale_keys == b->stale_keys && a->empty_overlaps == b->empty_overlaps &&
	       a->bad_keys == b->bad_keys && a->live_extents == b->live_extents &&
	       a->dirty_bytes == b->dirty_bytes && a->clean_bytes == b->clean_bytes &&
	       a->max_key_end == b->max_key_end && a->segs_used == b->segs_used;
}

/* NULL when a and b are the same, else what differs first. */
static const char *differs(const struct outcome *a, const struct outcome *b)
{
	if (a->rc != b->rc)
		return "return code";
	if (a->n != b->n)
		return "number of callbacks";
	for (size_t i = 0; i < a->n; i++)
		if (!same_seen(&a->s[i], &b->s[i]))
			return "a callback's arguments";
	if (a->rc)
		return NULL;
	if (!same_result(&a->r, &b->r))
		return "the replay's result";
	if (memcmp(a->seg_used, b->seg_used, a->n_segs) ||
	    memcmp(a->refs, b->refs, a->n_segs * sizeof(*a->refs)))
		return "segments in use or references";
	if (a->nx != b->nx || (a->nx && memcmp(a->x, b->x, a->nx * sizeof(*a->x))))
		return "the index";
	return NULL;
}

/* ---- the image ---- */

struct img {
	char path[4096];
	struct pcm_key *keys;      /* every key written, in log order */
	size_t nkeys, capkeys;
	struct pcm_pos ks[4096];   /* normal ksets, in log order */
	unsigned nks;
	uint8_t *buf;
};

static void hook(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	struct img *im = arg;

	if (im->nkeys + n > im->capkeys) {
		im->capkeys = (im->nkeys + n) * 2;
		im->keys = realloc(im->keys, im->capkeys * sizeof(*im->keys));
		if (!im->keys)
			abort();
	}
	memcpy(im->keys + im->nkeys, keys, n * sizeof(*keys));
	im->nkeys += n;
	if (im->nks < 4096)
		im->ks[im->nks++] = at;
}

/* n random writes of 512 B to 128 KiB, a FLUSH now and then. */
static int writes(struct img *im, struct pcm_appender *a, unsigned n)
{
	int rc = 0;

	for (unsigned i = 0; i < n && !rc; i++) {
		uint32_t len = (uint32_t)(1 + tap_rand_below(256)) * 512;
		uint64_t off = tap_rand_below((RANGE - len) / 512 + 1) * 512;

		fill_random(im->buf, len);
		rc = pcm_append_write(a, off, im->buf, len, tap_rand_below(6) ? 0 : PCM_KEY_F_CLEAN);
		if (!rc && !tap_rand_below(40))
			rc = pcm_append_flush(a);
	}
	return rc;
}

/* Does k's data lie in the data area of a segment of c (§6.5 checks 2 and 3)? */
static bool in_range(const struct pcm_cache *c, const struct pcm_key *k)
{
	return k->len && k->cseg < c->n_segs && k->seg_off + (uint64_t)k->len <= PCM_DATA_SIZE;
}

/* The first key from index i on whose data lies in a segment. */
static const struct pcm_key *key_from(const struct img *im, const struct pcm_cache *c, size_t i)
{
	while (i + 1 < im->nkeys && !in_range(c, &im->keys[i]))
		i++;
	return &im->keys[i];
}

/* A kset of copies of written keys, one to three of them made bad in one of four ways. */
static int crafted(struct img *im, struct pcm_appender *a, const struct pcm_cache *c)
{
	struct pcm_key k[8];
	unsigned n = 2 + (unsigned)tap_rand_below(7);
	int rc = pcm_append_flush(a);   /* the hook has seen every key written so far */

	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++)
		k[i] = *key_from(im, c, tap_rand_below(im->nkeys));
	for (unsigned j = 0, bad = 1 + (unsigned)tap_rand_below(3); j < bad; j++) {
		struct pcm_key *b = &k[tap_rand_below(n)];

		switch (tap_rand_below(4)) {
		case 0: b->len = 0; break;
		case 1: b->cseg = c->n_segs + (uint32_t)tap_rand_below(1000); break;
		case 2: b->seg_off = PCM_DATA_SIZE - 512; b->len = 4096; break;
		default: b->data_crc ^= 1u << tap_rand_below(32); break;
		}
	}
	return pcm_append_kset(a, k, n);
}

/* A loaded cache on path, as the kernel would find it; the caller closes both. */
static int load(const char *path, unsigned flags, struct pcm_dev **dev, struct pcm_cache **c)
{
	int rc = pcm_dev_open(path, flags, dev);

	if (!rc && (rc = pcm_cache_open(*dev, c, NULL)))
		pcm_dev_close(*dev);
	return rc;
}

static int build_log(struct img *im, unsigned rounds, unsigned per_round)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct pcm_appender *a = NULL;
	int rc = load(im->path, PCM_DEV_RDWR, &dev, &c);

	if (rc)
		return rc;
	if (!(rc = pcm_replay_run(c, NULL, &r)) && !(rc = pcm_appender_open(c, r, &a))) {
		pcm_appender_set_persist(a, false);
		pcm_appender_set_hook(a, hook, im);
		for (unsigned i = 0; i < rounds && !rc; i++)
			if (!(rc = writes(im, a, per_round)) && rounds > 1)
				rc = crafted(im, a, c);
		rc = rc ? rc : pcm_appender_close(a);
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return rc;
}

/* Overwrites 8 bytes of data under one key in eight: their data CRCs fail (§6.9). */
static int damage_data(struct img *im, struct pcm_dev *dev, const struct pcm_cache *c)
{
	uint64_t junk = tap_rand();
	int rc = 0;

	for (size_t i = 0; i < im->nkeys && !rc; i++) {
		const struct pcm_key *k = &im->keys[i];

		if (!tap_rand_below(8) && k->len >= 8 && in_range(c, k))
			rc = pcm_dev_write(dev, pcm_pos_dev_off(c, k->cseg, k->seg_off) +
					   tap_rand_below(k->len / 8) * 8, &junk, 8);
	}
	return rc;
}

/* Stale keys (gen of the first key's segment bumped) and dirty_tail half-way. */
static int age(struct img *im, struct pcm_cache *c)
{
	uint32_t s = im->keys[0].cseg;
	int rc = pcm_gen_write(c, s, c->gen[s] + 1);

	return rc ? rc : pcm_tail_write(c, 1, im->ks[im->nks / 2], false);
}

static int build(struct img *im, const char *name, unsigned rounds, unsigned per_round)
{
	struct pcm_format_opts fo = { .data_crc = true, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	struct pcm_cache *c;
	int rc;

	memset(im, 0, sizeof(*im));
	im->buf = malloc(128 * 1024);
	if (!im->buf || (rc = tmpfile_of(im->path, sizeof(im->path), "test_datacrc", name,
					 CACHE_SIZE)))
		return -ENOMEM;
	if ((rc = pcm_dev_open(im->path, PCM_DEV_RDWR, &dev)))
		return rc;
	rc = pcm_format_plan(CACHE_SIZE, &fo, &plan);
	rc = rc ? rc : pcm_format_write(dev, &plan, NULL, NULL);
	pcm_dev_close(dev);
	if (rc || (rc = build_log(im, rounds, per_round)) || rounds < 2)
		return rc;
	if ((rc = load(im->path, PCM_DEV_RDWR, &dev, &c)))
		return rc;
	rc = damage_data(im, dev, c);
	rc = rc ? rc : age(im, c);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return rc;
}

static void img_free(struct img *im)
{
	unlink(im->path);
	free(im->keys);
	free(im->buf);
}

/*
 * Opens the image with the data pages of two keys (a tenth and two thirds into
 * the log) poisoned: reading them raises SIGBUS, a read error for the key (§10.7).
 */
static int open_poisoned(struct img *im, struct pcm_dev **dev, struct pcm_cache **c)
{
	struct pcm_dev *d;
	struct pcm_cache *cc;
	char env[128];
	uint64_t at[2];
	int rc = load(im->path, PCM_DEV_RDONLY, &d, &cc);

	if (rc)
		return rc;
	for (int j = 0; j < 2; j++) {
		const struct pcm_key *k = key_from(im, cc, im->nkeys * (j ? 2 : 1) / (j ? 3 : 10));

		at[j] = pcm_pos_dev_off(cc, k->cseg, k->seg_off) + k->len / 2;
	}
	pcm_cache_close(cc);
	pcm_dev_close(d);
	snprintf(env, sizeof(env), "%llu:1,%llu:1", (unsigned long long)at[0],
		 (unsigned long long)at[1]);
	setenv("PCACHE_TEST_POISON", env, 1);
	rc = load(im->path, PCM_DEV_RDONLY, dev, c);
	unsetenv("PCACHE_TEST_POISON");
	return rc;
}

/* ---- the checks ---- */

/* The reference has every verdict, stale and live keys, dirty and clean ones. */
static void check_reference(const struct outcome *o)
{
	unsigned verdicts[PCM_KEY_IO + 1] = { 0 }, stale = 0, dirty = 0, clean = 0, all = 1;

	for (size_t i = 0; i < o->n; i++) {
		if (o->s[i].i == UINT32_MAX)
			continue;
		verdicts[o->s[i].v]++;
		stale += o->s[i].stale;
		dirty += o->s[i].dirty;
		clean += !o->s[i].dirty;
	}
	for (int v = 0; v <= PCM_KEY_IO; v++)
		all = all && verdicts[v];
	ok(!o->rc && all && stale && dirty && clean && o->r.bad_keys > 20,
	   "reference replay: %u ok, %u bad len, %u bad segment, %u bad segment offset, "
	   "%u bad data CRC, %u read errors; %u stale, %u dirty, %u clean",
	   verdicts[PCM_KEY_OK], verdicts[PCM_KEY_BAD_LEN], verdicts[PCM_KEY_BAD_SEG],
	   verdicts[PCM_KEY_BAD_SEG_OFF], verdicts[PCM_KEY_BAD_DATA_CRC], verdicts[PCM_KEY_IO],
	   stale, dirty, clean);
}

/* The comparison sees a single changed verdict, and a single changed extent. */
static void check_comparison(struct outcome *o)
{
	struct outcome copy = *o;
	size_t k = o->n / 2, x = o->nx / 2;
	const char *d1, *d2;

	copy.s = malloc(o->n * sizeof(*o->s));
	copy.x = malloc(o->nx * sizeof(*o->x));
	if (!copy.s || !copy.x)
		abort();
	memcpy(copy.s, o->s, o->n * sizeof(*o->s));
	memcpy(copy.x, o->x, o->nx * sizeof(*o->x));
	copy.s[k].v ^= 1;
	d1 = differs(o, &copy);
	copy.s[k].v ^= 1;
	copy.x[x].flags ^= PCM_EXT_DIRTY;
	d2 = differs(o, &copy);
	ok(d1 && d2, "the comparison notices one verdict (%s) and one extent (%s) changed",
	   d1 ? d1 : "missed", d2 ? d2 : "missed");
	free(copy.s);
	free(copy.x);
}

/* Replays with 2, 4, 7 and all threads against the inline one; checks the reference if asked. */
static void compare_threads(const struct pcm_cache *c, bool keep_going, uint64_t stop_at,
			    bool check_ref, const char *what)
{
	static const unsigned threads[] = { 2, 4, 7, 0 };
	struct outcome ref, o;

	replay(&ref, c, keep_going, stop_at, 1);
	if (check_ref) {
		check_reference(&ref);
		check_comparison(&ref);
	}
	for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
		const char *d;
		char n[16] = "all";

		if (threads[t])
			snprintf(n, sizeof(n), "%u", threads[t]);
		replay(&o, c, keep_going, stop_at, threads[t]);
		d = differs(&ref, &o);
		ok(!d, "%s, %s threads: as inline (%zu callbacks, %llu bad keys)%s%s", what, n, o.n, (unsigned long long)o.r.bad_keys, d ? "; differs: " : "",
		   d ? d : "");
		outcome_free(&o);
	}
	outcome_free(&ref);
}

/* Every verdict straight from the pool equals pcm_key_check; workers as expected. */
static void check_pool(const struct pcm_cache *c, unsigned threads, bool want_workers,
		       const char *what)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	struct dcrc *d = NULL;
	uint64_t keys = 0, wrong = 0;
	enum pcm_walk_event ev;
	int rc = dcrc_new(c, c->key_tail.pos, threads, &d);

	if (!w || rc || !d) {
		ok(false, "%s: pool made (rc %d)", what, rc);
		free(w);
		return;
	}
	pcm_walk_init(w, c, c->key_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)
		for (unsigned i = 0; ev == PCM_WALK_KSET && i < w->hdr.key_num; i++, keys++) {
			struct pcm_key k;

			pcm_walk_key(w, i, &k);
			wrong += dcrc_verdict(d, w, i, &k) != pcm_key_check(c, &k, true);
		}
	ok(!wrong && (dcrc_workers(d) > 0) == want_workers && (!want_workers ||
	   dcrc_workers(d) == threads - 1), "%s: %llu keys, %llu verdicts wrong, %u worker threads",
	   what, (unsigned long long)keys, (unsigned long long)wrong, dcrc_workers(d));
	dcrc_free(d);
	free(w);
}

static void check_one_thread(const struct pcm_cache *c)
{
	struct dcrc *d = (struct dcrc *)&d;   /* anything but NULL */
	int rc = dcrc_new(c, c->key_tail.pos, 1, &d);

	ok(!rc && !d, "1 thread: no pool, the replay judges inline (rc %d)", rc);
}

struct par {
	const struct pcm_cache *c;
	struct outcome o;
};

static void *par_replay(void *arg)
{
	struct par *p = arg;

	replay(&p->o, p->c, true, 0, 2);
	return NULL;
}

/* Two caches replayed at once by two threads, each with its own pool. */
static void check_two_at_once(const struct pcm_cache *a, const struct pcm_cache *b)
{
	struct par p[2] = { { .c = a }, { .c = b } };
	struct outcome ref[2];
	pthread_t t;
	const char *d0, *d1;

	replay(&ref[0], a, true, 0, 1);
	replay(&ref[1], b, true, 0, 1);
	if (pthread_create(&t, NULL, par_replay, &p[0])) {
		ok(false, "two caches at once: pthread_create");
		return;
	}
	par_replay(&p[1]);
	pthread_join(t, NULL);
	d0 = differs(&ref[0], &p[0].o);
	d1 = differs(&ref[1], &p[1].o);
	ok(!d0 && !d1 && ref[0].n != ref[1].n, "two caches at once, 2 threads each: each as inline "
	   "(%zu and %zu callbacks)%s%s", p[0].o.n, p[1].o.n, d0 || d1 ? "; differs: " : "",
	   d0 ? d0 : d1 ? d1 : "");
	for (int i = 0; i < 2; i++) {
		outcome_free(&ref[i]);
		outcome_free(&p[i].o);
	}
}

int main(void)
{
	struct img big, other, small;
	struct pcm_dev *dev[3] = { 0 };
	struct pcm_cache *c[3] = { 0 };
	int rc;

	tap_srand(18);
	rc = build(&big, "big", 40, 30);
	rc = rc ? rc : build(&other, "other", 12, 30);
	rc = rc ? rc : build(&small, "small", 1, 20);
	if (!ok(!rc, "images written (rc %d)", rc))
		return tap_done();
	rc = open_poisoned(&big, &dev[0], &c[0]);
	rc = rc ? rc : load(other.path, PCM_DEV_RDONLY, &dev[1], &c[1]);
	rc = rc ? rc : load(small.path, PCM_DEV_RDONLY, &dev[2], &c[2]);
	if (ok(!rc, "images loaded (rc %d)", rc)) {
		compare_threads(c[0], true, 0, true, "keep_going");
		compare_threads(c[0], false, 0, false, "stop at the first bad key");
		compare_threads(c[0], true, big.nks / 2, false, "on_kset stops half-way");
		compare_threads(c[2], true, 0, false, "a small log");
		check_pool(c[0], 4, true, "big log, 4 threads");
		check_pool(c[2], 4, false, "small log, 4 threads: judged inline");
		check_one_thread(c[0]);
		check_two_at_once(c[0], c[1]);
	}
	for (int i = 0; i < 3; i++) {
		pcm_cache_close(c[i]);
		pcm_dev_close(dev[i]);
	}
	img_free(&big);
	img_free(&other);
	img_free(&small);
	return tap_done();
}
