/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_writeback.c - writeback of the embedded engine (§7.2) and
 * the tail/gen record writers (§3.3).
 *
 * The expected backing content is computed by a byte model of the kernel's
 * algorithm, walking the log on the media: kset by kset from dirty_tail,
 * inside a kset the last key covering a sector wins, CLEAN winners are not
 * written.  Logs are built with the library appender, including crafted
 * ksets with overlapping keys, CLEAN keys and keys crossing 4 MiB windows,
 * and one long enough to hop to a second log segment (a LAST kset in the
 * dirty region).  Also: batching, resuming, dry runs, no-metadata-update,
 * failing backing writes (retry ladder, exact failed ranges) and data CRC
 * verification.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "tap.h"
#include "testfiles.h"

#define MIB (1ull << 20)
#define SECT 512u
#define RANGE (32 * MIB)

struct img {
	char cache[4096], back[4096];
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct pcm_appender *a;
	struct pcm_key *keys;          /* keys the appender wrote (placed data) */
	size_t n_keys, cap_keys;
	uint8_t *base;                 /* initial backing content */
};




static void on_kset_written(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	struct img *im = arg;

	(void)at;
	if (im->n_keys + n > im->cap_keys) {
		im->cap_keys = (im->n_keys + n) * 2;
		im->keys = realloc(im->keys, im->cap_keys * sizeof(*im->keys));
		if (!im->keys)
			abort();
	}
	memcpy(im->keys + im->n_keys, keys, n * sizeof(*keys));
	im->n_keys += n;
}

/* Loads the image as the kernel would and puts an appender at key_head. */
static int img_load(struct img *im)
{
	int rc = pcm_dev_open(im->cache, PCM_DEV_RDWR, &im->dev);

	if (!rc)
		rc = pcm_cache_open(im->dev, &im->c, NULL);
	if (rc)
		return rc;
	im->c->backing_size = RANGE;
	rc = pcm_replay_run(im->c, NULL, &im->r);
	if (!rc && im->r->failed)
		rc = -EUCLEAN;
	if (!rc)
		rc = pcm_appender_open(im->c, im->r, &im->a);
	if (!rc) {
		pcm_appender_set_persist(im->a, false);
		pcm_appender_set_hook(im->a, on_kset_written, im);
	}
	return rc;
}

static void img_unload(struct img *im)
{
	pcm_appender_close(im->a);
	pcm_replay_free(im->r);
	pcm_cache_close(im->c);
	pcm_dev_close(im->dev);
	im->a = NULL;
	im->r = NULL;
	im->c = NULL;
	im->dev = NULL;
}

/* Formatted cache, backing file with random content, appender ready. */
static int img_create(struct img *im, bool data_crc, unsigned gc_percent)
{
	struct pcm_format_opts fo = { .data_crc = data_crc, .gc_percent = gc_percent };
	struct pcm_format_plan plan;
	int rc = tmpfile_of(im->cache, sizeof(im->cache), "test_writeback", "cache", 1024 * MIB);

	if (!rc)
		rc = tmpfile_of(im->back, sizeof(im->back), "test_writeback", "back", RANGE);
	if (!rc)
		rc = pcm_format_plan(1024 * MIB, &fo, &plan);
	if (!rc)
		rc = pcm_dev_open(im->cache, PCM_DEV_RDWR, &im->dev);
	if (!rc)
		rc = pcm_format_write(im->dev, &plan, NULL, NULL);
	pcm_dev_close(im->dev);
	im->dev = NULL;
	im->base = malloc(RANGE);
	if (rc || !im->base)
		return rc ? rc : -ENOMEM;
	fill_random(im->base, RANGE);
	rc = file_io(im->back, im->base, RANGE, true);
	return rc ? rc : img_load(im);
}

static void img_destroy(struct img *im)
{
	img_unload(im);
	unlink(im->cache);
	unlink(im->back);
	free(im->keys);
	free(im->base);
}

/* ---- the byte model of the kernel's writeback ---- */
struct ref {
	struct pcm_dev *dev;
	struct pcm_cache *c;
	int32_t *owner;                /* per sector: winning key + 1 in the current kset */
	uint64_t *list;                /* sectors touched by the current kset */
	size_t n_list, cap_list;
};

static int ref_touch(struct ref *m, uint64_t s, unsigned key)
{
	if (!m->owner[s]) {
		if (m->n_list == m->cap_list) {
			m->cap_list = m->cap_list ? m->cap_list * 2 : 4096;
			m->list = realloc(m->list, m->cap_list * sizeof(*m->list));
			if (!m->list)
				return -ENOMEM;
		}
		m->list[m->n_list++] = s;
	}
	m->owner[s] = (int32_t)key + 1;
	return 0;
}

/* One kset: the last key covering a sector wins (one window); CLEAN winners write nothing. */
static int ref_kset(struct ref *m, const struct pcm_walk *w, uint8_t *back)
{
	int rc = 0;

	m->n_list = 0;
	for (unsigned i = 0; i < w->hdr.key_num && !rc; i++) {
		struct pcm_key k;

		pcm_walk_key(w, i, &k);
		for (uint64_t s = k.off / SECT; s < (k.off + k.len) / SECT && !rc; s++)
			rc = ref_touch(m, s, i);
	}
	for (size_t j = 0; j < m->n_list && !rc; j++) {
		uint64_t s = m->list[j];
		struct pcm_key k;

		pcm_walk_key(w, (unsigned)m->owner[s] - 1, &k);
		m->owner[s] = 0;
		if (!(k.flags & PCM_KEY_F_CLEAN))
			rc = pcm_dev_read(m->dev, pcm_pos_dev_off(m->c, k.cseg, k.seg_off +
					  (uint32_t)(s * SECT - k.off)), back + s * SECT, SECT);
	}
	return rc;
}

/* back := what the kernel's writeback of max ksets (0: all) from dirty_tail leaves on back. */
static int reference(const char *cache, uint8_t *back, uint64_t max)
{
	struct ref m = { .owner = calloc(RANGE / SECT, sizeof(int32_t)) };
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev = PCM_WALK_END;
	int rc = pcm_dev_open(cache, PCM_DEV_RDONLY, &m.dev);

	if (!rc)
		rc = pcm_cache_open(m.dev, &m.c, NULL);
	if (!rc && (!m.owner || !w))
		rc = -ENOMEM;
	if (!rc)
		pcm_walk_init(w, m.c, m.c->dirty_tail.pos);
	while (!rc && (!max || w->ksets < max) &&
	       ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST))
		if (ev == PCM_WALK_KSET)
			rc = ref_kset(&m, w, back);
	if (max && w && w->ksets == max)
		ev = PCM_WALK_END;
	free(w);
	free(m.owner);
	free(m.list);
	pcm_cache_close(m.c);
	pcm_dev_close(m.dev);
	return rc ? rc : ev == PCM_WALK_END ? 0 : -EIO;
}

/* ---- building logs ---- */
static int put_write(struct img *im, uint64_t off, uint32_t len, uint32_t flags)
{
	uint8_t *d = malloc(len);
	int rc;

	if (!d)
		return -ENOMEM;
	fill_random(d, len);
	rc = pcm_append_write(im->a, off, d, len, flags);
	free(d);
	return rc;
}

static int put_writes(struct img *im, unsigned n, unsigned flush_every)
{
	int rc = 0;

	for (unsigned i = 0; i < n && !rc; i++) {
		uint32_t len = (uint32_t)(1 + tap_rand_below(128)) * SECT;
		uint64_t off = tap_rand_below((RANGE - len) / SECT + 1) * SECT;

		rc = put_write(im, off, len, tap_rand_below(8) ? 0 : PCM_KEY_F_CLEAN);
		if (!rc && flush_every && i % flush_every == flush_every - 1)
			rc = pcm_append_flush(im->a);
	}
	return rc ? rc : pcm_append_flush(im->a);
}

/* A crafted key: any logical range (overlaps, window crossings) over placed data. */
static struct pcm_key craft_key(struct img *im, uint32_t max_secs)
{
	struct pcm_key k = im->keys[tap_rand_below(im->n_keys)];
	uint32_t secs = k.len / SECT, skip = (uint32_t)tap_rand_below(secs), n;

	n = 1 + (uint32_t)tap_rand_below(secs - skip < max_secs ? secs - skip : max_secs);
	k.seg_off += skip * SECT;
	k.len = n * SECT;
	if (tap_rand_below(2))
		k.off = tap_rand_below((RANGE - k.len) / SECT + 1) * SECT;
	else    /* crowd a small area, around the 4 MiB window boundary */
		k.off = 4 * MIB - 64 * 1024 + tap_rand_below(256) * SECT;
	k.flags = tap_rand_below(5) ? 0 : PCM_KEY_F_CLEAN;
	k.data_crc = 0;
	return k;
}

static int put_crafted(struct img *im, unsigned ksets, unsigned max_keys, uint32_t max_secs)
{
	struct pcm_key k[PCM_KSET_KEYS_MAX];
	int rc = 0;

	for (unsigned i = 0; i < ksets && !rc; i++) {
		unsigned n = max_keys == PCM_KSET_KEYS_MAX ? max_keys :
			     1 + (unsigned)tap_rand_below(max_keys);

		for (unsigned j = 0; j < n; j++)
			k[j] = craft_key(im, max_secs);
		rc = pcm_append_kset(im->a, k, n);
	}
	return rc;
}

/* ---- the engine ---- */
static struct pce *eng_open(struct img *im, unsigned flags)
{
	struct pce_opts o = { .flags = flags | PCE_NO_PERSIST };
	struct pce_error err;
	struct pce *e = NULL;

	if (pce_open(im->cache, im->back, &o, &e, &err))
		diag("pce_open: %s", err.msg);
	return e;
}

static struct pce_wb_result eng_wb(struct pce *e, unsigned batch, uint64_t max, bool retry)
{
	struct pce_wb_opts o = { .batch_ksets = batch, .max_ksets = max, .retry = retry };
	struct pce_wb_result r = { .stop = PCE_WB_LOG_FAIL };

	if (e && pce_writeback(e, &o, &r))
		r.stop = PCE_WB_LOG_FAIL;
	return r;
}

/* The backing file equals the reference (every byte), or says where not. */
static bool back_is(const struct img *im, const uint8_t *want, const char *what)
{
	uint8_t *b = malloc(RANGE);
	bool same = b && !file_io(im->back, b, RANGE, false) && !memcmp(b, want, RANGE);

	for (uint64_t i = 0; b && !same && i < RANGE; i++)
		if (b[i] != want[i]) {
			diag("%s: backing byte %llu differs", what, (unsigned long long)i);
			break;
		}
	free(b);
	return same;
}

static struct pcm_pos status_of(struct pce *e, int which)
{
	struct pce_status st;

	pce_status(e, &st);
	return which == 0 ? st.key_tail : which == 1 ? st.dirty_tail : st.key_head;
}

/* ---- tests ---- */
static void test_tails(void)
{
	struct img im = { 0 };
	struct pcm_pos_rec r[2];
	struct pcm_seg_gen g[2];
	struct pcm_rep_state st;
	struct pcm_pos p = { .cseg = 3, .seg_off = 4096 };
	bool good = true;

	tap_srand(1);
	if (!ok(!img_create(&im, false, 70), "tails: image")) {
		img_destroy(&im);
		return;
	}
	ok(!pcm_tail_write(im.c, 1, p, false) && !pcm_read_tail(im.dev, 1, r, &st) &&
	   st.pick == 1 && r[1].h.seq == 2 && pcm_pos_eq(r[1].pos, p) && r[0].h.seq == 1,
	   "dirty_tail: the slot not holding the newest copy, seq + 1");
	p.seg_off = 8192;
	ok(!pcm_tail_write(im.c, 1, p, true) && !pcm_read_tail(im.dev, 1, r, &st) &&
	   st.pick == 1 && r[1].h.seq == 3 && r[0].h.seq == 1, "in_place: the newest copy rewritten");
	for (unsigned i = 0; i < 300 && good; i++) {
		p.seg_off = i * SECT;
		good = !pcm_tail_write(im.c, 0, p, false) && !pcm_read_tail(im.dev, 0, r, &st) &&
		       st.pick >= 0 && pcm_pos_eq(r[st.pick].pos, p);
	}
	ok(good, "key_tail: 300 writes (seq wraps), the kernel's pick is always the last one");
	ok(!pcm_gen_write(im.c, 5, 1) && !pcm_read_seg_gen(im.dev, im.c->dseg[5], g, &st) &&
	   st.pick == 0 && g[0].gen == 1 && g[0].h.seq == 2,
	   "gen: advance-then-write from the format's slot 1 seq 1 -> slot 0 seq 2");
	ok(!pcm_gen_write(im.c, 5, 2) && !pcm_read_seg_gen(im.dev, im.c->dseg[5], g, &st) &&
	   st.pick == 1 && g[1].gen == 2 && g[1].h.seq == 3 && im.c->gen[5] == 2,
	   "gen: alternates, in-memory gen follows");
	/* past the segment count: refused before its replica state is looked up (ASan: no
	 * read past gen_slot/gen_seq) */
	ok(pcm_gen_write(im.c, im.c->n_segs, 3) == -EINVAL &&
	   pcm_gen_write(im.c, im.c->n_segs + (1u << 20), 3) == -EINVAL && im.c->gen[5] == 2,
	   "gen: a cache segment past n_segs is refused (-EINVAL), nothing read or written");
	img_destroy(&im);
}

/* Crafted overlapping ksets (CLEAN keys, window crossings): batching changes nothing. */
static void test_crafted(unsigned batch)
{
	struct img im = { 0 };
	uint8_t *want = NULL;
	struct pce *e;
	struct pce_wb_result r;

	tap_srand(7);
	if (!ok(!img_create(&im, false, 70), "crafted (batch %u): image", batch)) {
		img_destroy(&im);
		return;
	}
	ok(!put_writes(&im, 300, 17) && !put_crafted(&im, 60, 128, 64) && !put_writes(&im, 50, 0),
	   "crafted (batch %u): a log of writes and 60 crafted ksets", batch);
	img_unload(&im);
	want = malloc(RANGE);
	memcpy(want, im.base, RANGE);
	ok(!reference(im.cache, want, 0), "crafted (batch %u): reference computed", batch);
	e = eng_open(&im, 0);
	r = eng_wb(e, batch, 0, true);
	ok(r.stop == PCE_WB_CLEAN && pcm_pos_eq(status_of(e, 1), status_of(e, 2)),
	   "crafted (batch %u): writeback clean (%llu ksets, %llu batches)", batch,
	   (unsigned long long)r.ksets, (unsigned long long)r.batches);
	ok(back_is(&im, want, "crafted"), "crafted (batch %u): backing = the kernel's result", batch);
	pce_wb_result_free(&r);
	pce_close(e);
	free(want);
	img_destroy(&im);
}

/* Normal ksets before the first LAST kset of the log (walked from key_tail). */
static uint64_t ksets_before_last(const char *cache, struct pcm_pos *last)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev;
	uint64_t n = 0;

	if (!w || pcm_dev_open(cache, PCM_DEV_RDONLY, &dev)) {
		free(w);
		return 0;
	}
	if (!pcm_cache_open(dev, &c, NULL)) {
		pcm_walk_init(w, c, c->key_tail.pos);
		while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET)
			n++;
		*last = w->pos;
		n = ev == PCM_WALK_LAST ? n : 0;
		pcm_cache_close(c);
	}
	pcm_dev_close(dev);
	free(w);
	return n;
}

/* A log over two log segments: writeback stops at the LAST kset, resumes across it; GC follows. */
static void test_last_kset(void)
{
	struct img im = { 0 };
	struct pcm_pos last = { 0 }, kh;
	uint8_t *want = malloc(RANGE);
	struct pce_wb_result r;
	struct pce_gc_result g;
	struct pce *e;
	uint64_t n0;

	tap_srand(5);
	ok(!img_create(&im, false, 0) && !put_writes(&im, 64, 0) &&
	   !put_crafted(&im, 3400, PCM_KSET_KEYS_MAX, 1), "last: 3400 full ksets of 1-sector keys");
	img_unload(&im);
	n0 = ksets_before_last(im.cache, &last);
	ok(n0 > 0 && last.cseg == 0, "last: %llu ksets, then a LAST kset at %u:%u",
	   (unsigned long long)n0, last.cseg, last.seg_off);
	memcpy(want, im.base, RANGE);
	reference(im.cache, want, 0);
	e = eng_open(&im, 0);
	r = eng_wb(e, 16, n0, true);
	ok(r.stop == PCE_WB_LIMIT && pcm_pos_eq(status_of(e, 1), last),
	   "last: writeback of the first segment leaves dirty_tail on the LAST kset");
	pce_abandon(e);
	e = eng_open(&im, 0);
	r = eng_wb(e, 1, 0, true);
	kh = e ? status_of(e, 2) : last;
	ok(e && r.stop == PCE_WB_CLEAN && r.last_ksets == 1 && pcm_pos_eq(status_of(e, 1), kh) &&
	   kh.cseg != 0, "last: after a reload writeback hops the LAST kset and ends clean at %u:%u",
	   kh.cseg, kh.seg_off);
	ok(back_is(&im, want, "last"), "last: backing = the kernel's result");
	ok(e && !pce_gc(e, &g) && g.last_ksets == 1 && pcm_pos_eq(status_of(e, 0), kh),
	   "last: GC (gc_percent 0) moves key_tail across the LAST kset to key_head");
	pce_close(e);
	free(want);
	img_destroy(&im);
}

/* Backing writes failing on [off, off + len), always or only once (writers run in parallel). */
struct fault {
	uint64_t off, len;
	bool once;
	int fired;                     /* atomic */
};

static long faulty_write(int fd, const struct iovec *iov, int n, uint64_t off, void *arg)
{
	struct fault *f = arg;
	uint64_t len = 0;
	long r;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (off < f->off + f->len && f->off < off + len &&
	    !(f->once && __atomic_exchange_n(&f->fired, 1, __ATOMIC_RELAXED)))
		return -EIO;
	r = pwritev(fd, iov, n, (off_t)off);
	return r < 0 ? -errno : r;
}

static void test_failures(void)
{
	struct img im = { 0 };
	uint8_t *want = malloc(RANGE);
	struct fault f;
	struct pce_wb_result r;
	struct pce *e;

	tap_srand(9);
	ok(!img_create(&im, false, 70) && !put_write(&im, 1 * MIB, 65536, 0) &&
	   !put_writes(&im, 40, 0), "failures: image");
	img_unload(&im);
	memcpy(want, im.base, RANGE);
	reference(im.cache, want, 0);
	e = eng_open(&im, 0);
	f = (struct fault){ .off = 1 * MIB + 8192 + 1024, .len = 1536 };
	pce_set_backing_write(e, faulty_write, &f);
	r = eng_wb(e, 64, 0, true);
	ok(r.stop == PCE_WB_IO_FAILED && r.n_failed == 1 && r.failed[0].off == f.off &&
	   r.failed[0].len == f.len && r.err == -EIO,
	   "failures: the ladder narrows a failing range down to its 3 sectors");
	ok(pcm_pos_eq(status_of(e, 1), (struct pcm_pos){ 0, 0 }), "failures: dirty_tail not moved");
	pce_wb_result_free(&r);
	r = eng_wb(e, 64, 0, false);
	ok(r.stop == PCE_WB_IO_FAILED && r.n_failed == 1 && r.failed[0].off <= f.off &&
	   r.failed[0].off + r.failed[0].len >= f.off + f.len && r.failed[0].len > f.len,
	   "failures: without retries the whole run is listed");
	pce_wb_result_free(&r);
	f = (struct fault){ .off = f.off, .len = f.len, .once = true };
	r = eng_wb(e, 64, 0, true);
	ok(r.stop == PCE_WB_CLEAN && !r.n_failed, "failures: a transient error is retried away");
	ok(back_is(&im, want, "failures"), "failures: then the backing = the kernel's result");
	pce_wb_result_free(&r);
	pce_close(e);
	free(want);
	img_destroy(&im);
}

/* Position of normal kset number i (from 0) on the log. */
static struct pcm_pos kset_pos(const char *cache, uint64_t i)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	struct pcm_pos p = { UINT32_MAX, 0 };

	if (w && !pcm_dev_open(cache, PCM_DEV_RDONLY, &dev)) {
		if (!pcm_cache_open(dev, &c, NULL)) {
			pcm_walk_init(w, c, c->key_tail.pos);
			while (pcm_walk_next(w) == PCM_WALK_KSET)
				if (w->ksets == i + 1) {
					p = w->pos;
					break;
				}
			pcm_cache_close(c);
		}
		pcm_dev_close(dev);
	}
	free(w);
	return p;
}

/* With --verify-data a bad data CRC stops writeback before its kset. */
static void test_verify_crc(void)
{
	struct img im = { 0 };
	uint8_t *want = malloc(RANGE), bad = 0x5a;
	struct pcm_key victim;
	struct pcm_pos k2;
	struct pce_wb_result r;
	struct pce *e;

	tap_srand(13);
	ok(!img_create(&im, true, 70) && !put_writes(&im, 10, 0) && !put_writes(&im, 10, 0),
	   "crc: two ksets");
	victim = im.keys[im.n_keys - 1];
	ok(!put_writes(&im, 10, 0), "crc: a third kset");
	pcm_dev_write(im.dev, pcm_pos_dev_off(im.c, victim.cseg, victim.seg_off), &bad, 1);
	img_unload(&im);
	k2 = kset_pos(im.cache, 1);
	memcpy(want, im.base, RANGE);
	reference(im.cache, want, 1);
	e = eng_open(&im, 0);
	{
		struct pce_wb_opts o = { .verify_data = true, .retry = true, .batch_ksets = 64 };

		ok(e && !pce_writeback(e, &o, &r) && r.stop == PCE_WB_BAD_KEY &&
		   r.bad_verdict == PCM_KEY_BAD_DATA_CRC && pcm_pos_eq(r.bad_kset, k2) &&
		   pcm_pos_eq(status_of(e, 1), k2), "crc: stopped at kset %u:%u, dirty_tail there",
		   k2.cseg, k2.seg_off);
		pce_wb_result_free(&r);
	}
	ok(back_is(&im, want, "crc"), "crc: the kset before it was written back");
	pce_close(e);
	free(want);
	img_destroy(&im);
}

static unsigned listed_ksets;

static void count_kset(struct pcm_pos at, unsigned keys, const struct pce_wb_extent *x, size_t n,
		       void *arg)
{
	(void)at;
	(void)keys;
	(void)x;
	(void)n;
	(void)arg;
	listed_ksets++;
}

/* Dry run writes nothing; no-metadata-update writes but leaves dirty_tail; resume works. */
static void test_modes(void)
{
	struct img im = { 0 };
	uint8_t *want = malloc(RANGE);
	struct pce_wb_opts o = { .dry_run = true, .on_kset = count_kset };
	struct pce_wb_result r;
	struct pce *e;

	tap_srand(17);
	ok(!img_create(&im, false, 70) && !put_writes(&im, 200, 9), "modes: image");
	img_unload(&im);
	memcpy(want, im.base, RANGE);
	reference(im.cache, want, 0);
	e = eng_open(&im, PCE_RDONLY);
	ok(e && !pce_writeback(e, &o, &r) && r.stop == PCE_WB_CLEAN && listed_ksets == r.ksets &&
	   r.ksets > 20 && back_is(&im, im.base, "dry run"), "modes: dry run lists every kset, "
	   "writes nothing");
	pce_close(e);
	e = eng_open(&im, PCE_CACHE_RDONLY);
	o = (struct pce_wb_opts){ .no_metadata_update = true, .retry = true };
	ok(e && !pce_writeback(e, &o, &r) && r.stop == PCE_WB_CLEAN && back_is(&im, want, "copy") &&
	   pcm_pos_eq(status_of(e, 1), (struct pcm_pos){ 0, 0 }),
	   "modes: no-metadata-update writes everything, dirty_tail stays");
	pce_close(e);
	e = eng_open(&im, 0);
	r = eng_wb(e, 3, 7, true);
	ok(r.stop == PCE_WB_LIMIT && r.ksets == 7, "modes: stopped after 7 ksets");
	pce_abandon(e);
	e = eng_open(&im, 0);
	r = eng_wb(e, 5, 0, true);
	ok(r.stop == PCE_WB_CLEAN && r.ksets == listed_ksets - 7 && back_is(&im, want, "resume"),
	   "modes: a reloaded engine resumes at dirty_tail and ends clean");
	pce_close(e);
	free(want);
	img_destroy(&im);
}

int main(void)
{
	test_tails();
	test_crafted(1);
	test_crafted(3);
	test_crafted(64);
	test_last_kset();
	test_failures();
	test_verify_crc();
	test_modes();
	return tap_done();
}
