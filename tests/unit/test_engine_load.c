/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_engine_load.c - the engine opens every cache the kernel loads, and
 * only those.  Damaged caches are made with the library (tails moved with
 * pcm_tail_write, bytes flipped, crafted ksets), and for each one:
 *
 * - the engine opens it exactly when pcm_check_run's verdict is LOADS, and a
 *   refusal names the check's reason (pcm_problem_def summary);
 * - what it serves, read back over the whole backing device, is the kernel's
 *   view: the backing device with the index of an independent replay over it
 *   (§6.6 "the result of a replay"), also where that replay lost data;
 * - the caches whose writes the kernel would get wrong (§10.4 TL3, TL4) are
 *   served read-only with a reason, every write path fails with -EROFS, and
 *   the cache image is the same byte for byte afterwards.
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
#define RANGE (16 * MIB)
#define CACHE_SIZE (560 * MIB)
#define MAX_KSETS 64

struct img {
	char cache[4096], back[4096];
	uint8_t *base;                 /* the backing file's content */
	struct pcm_pos ks[MAX_KSETS];  /* normal ksets from key_tail, in log order */
	unsigned n_ks;
	struct pcm_pos head;           /* key_head */
};




/* ---- building a cache with the library, as the kernel would have written it ---- */

/* n writes of 4-64 KiB, a FLUSH (one kset) every 6 of them; then one crafted kset if any. */
static int log_writes(struct pcm_appender *a, unsigned n, const struct pcm_key *crafted)
{
	uint8_t *d = malloc(64 * 1024);
	int rc = d ? 0 : -ENOMEM;

	for (unsigned i = 0; i < n && !rc; i++) {
		uint32_t len = (uint32_t)(1 + tap_rand_below(16)) * 4096;
		uint64_t off = tap_rand_below((RANGE - len) / 4096 + 1) * 4096;

		fill_random(d, len);
		rc = pcm_append_write(a, off, d, len, tap_rand_below(8) ? 0 : PCM_KEY_F_CLEAN);
		if (!rc && i % 6 == 5)
			rc = pcm_append_flush(a);
	}
	if (!rc && crafted)
		rc = pcm_append_kset(a, crafted, 1);
	free(d);
	return rc ? rc : pcm_append_flush(a);
}

/* Where the normal ksets of the log lie, and key_head. */
static int walk_log(struct img *im, const struct pcm_cache *c)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev;

	if (!w)
		return -ENOMEM;
	im->n_ks = 0;
	pcm_walk_init(w, c, c->key_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)
		if (ev == PCM_WALK_KSET && im->n_ks < MAX_KSETS)
			im->ks[im->n_ks++] = w->pos;
	im->head = w->pos;
	free(w);
	return ev == PCM_WALK_END ? 0 : -EIO;
}

/* Opens the image for the library's hands (tails, bytes); close with img_put. */
static int img_get(const struct img *im, struct pcm_dev **dev, struct pcm_cache **c)
{
	int rc = pcm_dev_open(im->cache, PCM_DEV_RDWR, dev);

	if (!rc && (rc = pcm_cache_open(*dev, c, NULL)))
		pcm_dev_close(*dev);
	return rc;
}

static void img_put(struct pcm_dev *dev, struct pcm_cache *c)
{
	pcm_cache_close(c);
	pcm_dev_close(dev);
}

static int img_log(struct img *im, unsigned writes, const struct pcm_key *crafted)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct pcm_appender *a = NULL;
	int rc = img_get(im, &dev, &c);

	if (rc)
		return rc;
	if (!(rc = pcm_replay_run(c, NULL, &r)) && !(rc = pcm_appender_open(c, r, &a))) {
		pcm_appender_set_persist(a, false);
		rc = log_writes(a, writes, crafted);
		pcm_appender_free(a);
	}
	pcm_replay_free(r);
	if (!rc)
		rc = walk_log(im, c);
	img_put(dev, c);
	return rc;
}

/* A formatted cache, a backing file of random bytes, a log of writes. */
static int img_create(struct img *im, bool data_crc, const struct pcm_key *crafted)
{
	struct pcm_format_opts fo = { .data_crc = data_crc, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	int rc = tmpfile_of(im->cache, sizeof(im->cache), "test_engine_load", "cache", CACHE_SIZE);

	if (!rc)
		rc = tmpfile_of(im->back, sizeof(im->back), "test_engine_load", "back", RANGE);
	if (!rc)
		rc = pcm_format_plan(CACHE_SIZE, &fo, &plan);
	if (!rc && !(rc = pcm_dev_open(im->cache, PCM_DEV_RDWR, &dev))) {
		rc = pcm_format_write(dev, &plan, NULL, NULL);
		pcm_dev_close(dev);
	}
	im->base = malloc(RANGE);
	if (!rc && !im->base)
		rc = -ENOMEM;
	if (!rc) {
		fill_random(im->base, RANGE);
		rc = file_io(im->back, im->base, RANGE, true);
	}
	return rc ? rc : img_log(im, 120, crafted);
}

static void img_destroy(struct img *im)
{
	unlink(im->cache);
	unlink(im->back);
	free(im->base);
}

/* ---- the damage ---- */

/* A newer valid replica of key_tail (0) or dirty_tail (1) holding pos, as corrupt's tail_set. */
static int set_tail(const struct img *im, int which, struct pcm_pos pos)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	int rc = img_get(im, &dev, &c);

	if (!rc) {
		rc = pcm_tail_write(c, which, pos, false);
		img_put(dev, c);
	}
	return rc;
}

/* Flips one byte: at a position of the log (+ delta), or at a device offset (cseg UINT32_MAX). */
static int flip(const struct img *im, struct pcm_pos at, uint64_t delta)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	uint64_t off;
	uint8_t b;
	int rc = img_get(im, &dev, &c);

	if (rc)
		return rc;
	off = (at.cseg == UINT32_MAX ? at.seg_off : pcm_pos_dev_off(c, at.cseg, at.seg_off)) + delta;
	rc = pcm_dev_read(dev, off, &b, 1);
	b ^= 0x5a;
	if (!rc)
		rc = pcm_dev_write(dev, off, &b, 1);
	img_put(dev, c);
	return rc;
}

/* ---- the kernel's view, the library's verdict ---- */

struct view {
	const struct pcm_cache *c;
	uint8_t *bytes;
	int err;
};

static int view_extent(const struct pcm_extent *e, void *arg)
{
	struct view *v = arg;

	if (e->flags & PCM_EXT_EMPTY)
		return 0;   /* a placeholder: the backing device serves it */
	v->err = pcm_dev_read(v->c->dev, pcm_pos_dev_off(v->c, e->cseg, e->seg_off),
			      v->bytes + e->off, e->len);
	return v->err != 0;
}

/* What the kernel serves after loading the image: the backing device under the replayed index. */
static int kernel_view(const struct img *im, uint8_t *out, bool verify)
{
	struct pcm_replay_opts ro = { .verify_data = verify };
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct view v = { .bytes = out };
	int rc = pcm_dev_open(im->cache, PCM_DEV_RDONLY, &dev);

	if (!rc && (rc = pcm_cache_open(dev, &c, NULL)))
		pcm_dev_close(dev);
	if (rc)
		return rc;
	c->backing_size = RANGE;
	memcpy(out, im->base, RANGE);
	v.c = c;
	rc = pcm_replay_run(c, &ro, &r);
	if (!rc && r->failed)
		rc = -EUCLEAN;
	if (!rc)
		pcm_index_foreach(r->idx, view_extent, &v);
	pcm_replay_free(r);
	img_put(dev, c);
	return rc ? rc : v.err;
}

static enum pcm_kernel_verdict verdict_of(const struct img *im, bool verify)
{
	struct pcm_check_opts o = { .verify_data = verify, .backing_size = RANGE };
	struct pcm_check_result res = { .verdict = PCM_VERDICT_REFUSES };
	struct pcm_dev *dev;

	if (!pcm_dev_open(im->cache, PCM_DEV_RDONLY, &dev)) {
		if (pcm_check_run(dev, &o, &res))
			res.verdict = PCM_VERDICT_REFUSES;
		pcm_dev_close(dev);
	}
	return res.verdict;
}

/* kcrc of the whole cache file: "never written" is checked by comparing two of these. */
static uint32_t file_crc(const char *path)
{
	uint8_t *b = malloc(4 * MIB);
	uint32_t crc = PCM_CRC_SEED;
	int fd = open(path, O_RDONLY);
	ssize_t n;

	while (b && fd >= 0 && (n = read(fd, b, 4 * MIB)) > 0)
		crc = pcm_crc32c(crc, b, (size_t)n);
	if (fd >= 0)
		close(fd);
	free(b);
	return crc;
}

/* ---- one case: open or refuse, read-only or not, the bytes served ---- */

enum want { W_RW, W_RO, W_REFUSE };
/* The view against the undamaged one; V_ANY: not compared (damaged cached data). */
enum view_rel { V_SAME, V_CHANGED, V_BACKING, V_ANY };

struct expect {
	const char *name;
	enum want want;
	unsigned flags;            /* pce_open flags besides PCE_NO_PERSIST */
	const char *reason;        /* in the refusal, or in the read-only reason */
	enum view_rel rel;
};

static struct pce *open_engine(const struct img *im, const struct expect *x,
			       struct pce_error *err)
{
	struct pce_opts o = { .flags = x->flags | PCE_NO_PERSIST, .n_open = 2, .n_heads = 2,
			      .n_shards = 4 };
	struct pce *e = NULL;

	if (pce_open(im->cache, im->back, &o, &e, err))
		return NULL;
	return e;
}

/* Every byte the engine serves against the kernel's view, and how that view relates. */
static void check_view(const struct img *im, struct pce *e, const struct expect *x,
		       const uint8_t *before)
{
	uint8_t *want = malloc(RANGE), *got = malloc(RANGE);
	bool same = want && got && !kernel_view(im, want, x->flags & PCE_VERIFY_DATA) &&
		    !pce_read(e, 0, got, RANGE) && !memcmp(got, want, RANGE);
	bool rel = want && (x->rel == V_BACKING ? !memcmp(want, im->base, RANGE) :
			    x->rel == V_SAME ? !memcmp(want, before, RANGE) :
			    memcmp(want, before, RANGE) && memcmp(want, im->base, RANGE));

	ok(same, "%s: every byte served is the kernel's (the replayed index over the backing "
	   "device)", x->name);
	if (x->rel != V_ANY)
		ok(rel, "%s: which is %s", x->name, x->rel == V_BACKING ? "the backing device alone" :
		   x->rel == V_SAME ? "what the undamaged cache served" :
		   "neither the undamaged cache's nor the backing device's");
	free(want);
	free(got);
}

/* A read-only engine writes nothing: every write path refused, the image unchanged. */
static void check_rdonly(const struct img *im, struct pce *e, const struct expect *x,
			 uint32_t crc_before)
{
	struct pce_wb_opts wo = { .retry = true }, copy = { .no_metadata_update = true };
	struct pce_wb_result r;
	struct pce_gc_result g;
	uint8_t sector[SECT] = { 1 };
	const char *why = pce_rdonly_reason(e);

	ok(why && strstr(why, x->reason), "%s: read-only because '%s' (%s)", x->name, x->reason,
	   why ? why : "no reason given");
	ok(pce_write(e, 0, sector, SECT, true) == -EROFS && pce_writeback(e, &wo, &r) == -EROFS &&
	   pce_writeback(e, &copy, &r) == -EROFS && pce_gc(e, &g) == -EROFS &&
	   pce_set_gc_percent(e, 10) == -EROFS && !pce_flush(e),
	   "%s: writes, writeback, GC and gc_percent refused (-EROFS)", x->name);
	ok(!pce_close(e) && file_crc(im->cache) == crc_before,
	   "%s: the cache image is unchanged, byte for byte", x->name);
}

/* What the read-only line promises: after 'pcache fsck -y' the engine writes again. */
static void check_repaired(const struct img *im, const struct expect *x)
{
	struct pcm_repair_opts ro = { .mode = PCM_REPAIR_ALL, .verify_data = true,
				      .backing_size = RANGE };
	struct pcm_repair_plan *plan = NULL;
	struct expect rw = *x;
	struct pce_error err;
	struct pcm_dev *dev;
	struct pce *e = NULL;
	int rc = pcm_dev_open(im->cache, PCM_DEV_RDWR, &dev);

	if (!rc) {
		rc = pcm_repair_plan(dev, &ro, &plan);
		if (!rc)
			rc = pcm_repair_apply(dev, plan, NULL);
		pcm_repair_plan_free(plan);
		pcm_dev_close(dev);
	}
	rw.flags &= ~(unsigned)PCE_RDONLY;
	if (!rc)
		e = open_engine(im, &rw, &err);
	ok(e && !pce_rdonly_reason(e), "%s: after fsck -y the engine opens it writable (%s)",
	   x->name, rc ? strerror(-rc) : e ? "ok" : err.msg);
	pce_abandon(e);
}

static void check_writable(struct pce *e, const struct expect *x)
{
	uint8_t w[4096], r[4096];

	fill_random(w, sizeof(w));
	ok(!pce_rdonly_reason(e) && !pce_write(e, 8192, w, sizeof(w), true) &&
	   !pce_read(e, 8192, r, sizeof(r)) && !memcmp(w, r, sizeof(w)) && !pce_close(e),
	   "%s: writable, a write reads back", x->name);
}

static void check_case(const struct img *im, const struct expect *x, const uint8_t *before)
{
	enum pcm_kernel_verdict v = verdict_of(im, x->flags & PCE_VERIFY_DATA);
	uint32_t crc = file_crc(im->cache);
	struct pce_error err = { 0 };
	struct pce *e = open_engine(im, x, &err);

	ok((v == PCM_VERDICT_LOADS) == (x->want != W_REFUSE) && (e != NULL) == (x->want != W_REFUSE),
	   "%s: the check says the kernel %s, the engine %s", x->name,
	   v == PCM_VERDICT_LOADS ? "loads it" : v == PCM_VERDICT_RESETS ? "re-initialises it" :
	   v == PCM_VERDICT_CRASHES ? "crashes on it" : "refuses it", e ? "opens it" : err.msg);
	if (x->want == W_REFUSE) {
		ok(err.err == -EUCLEAN && strstr(err.msg, x->reason) && file_crc(im->cache) == crc,
		   "%s: refused with the reason '%s', nothing written", x->name, x->reason);
		pce_abandon(e);
		return;
	}
	if (!e)
		return;
	check_view(im, e, x, before);
	if (x->want == W_RO) {
		check_rdonly(im, e, x, crc);
		check_repaired(im, x);
	} else
		check_writable(e, x);
}

/* ---- the damage of each case, applied to a fresh image ---- */

static struct pcm_pos at(struct pcm_pos p, uint32_t plus)
{
	return (struct pcm_pos){ .cseg = p.cseg, .seg_off = p.seg_off + plus };
}

static int d_none(struct img *im)
{
	(void)im;
	return 0;
}

/* TL3: the checksum of the kset at key_tail broken: replay sees an empty log. */
static int d_first_kset(struct img *im)
{
	return flip(im, im->ks[0], 0);
}

/* TL3 and TL4: key_tail 64 bytes into the third kset. */
static int d_key_tail_mid_kset(struct img *im)
{
	return set_tail(im, 0, at(im->ks[2], 64));
}

/* TL4: key_tail at the fourth kset, dirty_tail (0:0) behind it. */
static int d_key_tail_past_dirty(struct img *im)
{
	return set_tail(im, 0, im->ks[3]);
}

/* TL4: dirty_tail 4096 bytes past key_head. */
static int d_dirty_tail_past_head(struct img *im)
{
	return set_tail(im, 1, at(im->head, 4096));
}

/* TL4: dirty_tail at key 3 of the third kset, not a kset boundary. */
static int d_dirty_tail_mid_kset(struct img *im)
{
	return set_tail(im, 1, at(im->ks[2], PCM_KSET_HDR_SIZE + 3 * PCM_KEY_SIZE));
}

/* CI1: no valid cache_info replica: the kernel re-initialises. */
static int d_no_cache_info(struct img *im)
{
	struct pcm_pos ci0 = { UINT32_MAX, PCM_CACHE_INFO_OFF };
	int rc = flip(im, ci0, 8);

	return rc ? rc : flip(im, ci0, PCM_CACHE_INFO_SLOT + 8);
}

/* KY4: one byte of the data of the first key of the log. */
static int d_data_crc(struct img *im)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	struct pcm_key k = { 0 };
	int rc = w ? img_get(im, &dev, &c) : -ENOMEM;

	if (!rc) {
		pcm_walk_init(w, c, im->ks[0]);
		if (pcm_walk_next(w) == PCM_WALK_KSET)
			pcm_walk_key(w, 0, &k);
		img_put(dev, c);
	}
	free(w);
	return rc ? rc : k.len ? flip(im, (struct pcm_pos){ k.cseg, k.seg_off }, 100) : -ENOENT;
}

struct kase {
	struct expect x;
	int (*damage)(struct img *im);
	bool data_crc;
	const struct pcm_key *crafted;   /* a kset of this one key at the end of the log */
};

/* A key ending 4 KiB past the backing device (KY1). */
static const struct pcm_key key_past_end = { .off = RANGE - 4096, .len = 8192, .cseg = 1 };

static const struct kase cases[] = {
	{ { "clean", W_RW, 0, "", V_SAME }, d_none, false, NULL },
	{ { "clean, data_crc verified", W_RW, PCE_VERIFY_DATA, "", V_SAME }, d_none, true, NULL },
	{ { "first kset at key_tail corrupt", W_RO, 0,
	    "key_tail does not point at a kset", V_BACKING }, d_first_kset, false, NULL },
	{ { "key_tail inside a kset", W_RO, 0, "key_tail does not point at a kset", V_BACKING },
	  d_key_tail_mid_kset, false, NULL },
	{ { "key_tail past dirty_tail", W_RO, 0, "dirty_tail is not on the log", V_CHANGED },
	  d_key_tail_past_dirty, false, NULL },
	{ { "dirty_tail past key_head", W_RO, 0, "dirty_tail is not on the log", V_SAME },
	  d_dirty_tail_past_head, false, NULL },
	{ { "dirty_tail not on a kset boundary", W_RO, PCE_VERIFY_DATA,
	    "dirty_tail is not on the log", V_SAME }, d_dirty_tail_mid_kset, true, NULL },
	{ { "dirty_tail past key_head, opened read-only", W_RO, PCE_RDONLY,
	    "dirty_tail is not on the log", V_SAME }, d_dirty_tail_past_head, false, NULL },
	{ { "a key past the backing device", W_REFUSE, 0,
	    "the kernel would refuse to load the cache: key length 0 or past the backing device",
	    V_SAME }, d_none, false, &key_past_end },
	{ { "a bad data CRC", W_REFUSE, PCE_VERIFY_DATA,
	    "the kernel would refuse to load the cache: key data checksum mismatch", V_SAME },
	  d_data_crc, true, NULL },
	/* without PCE_VERIFY_DATA neither the check nor the engine reads the data */
	{ { "a bad data CRC, data not verified", W_RW, 0, "", V_ANY }, d_data_crc, true, NULL },
	{ { "no valid cache_info", W_REFUSE, 0, "the kernel would re-initialise the cache, "
	    "losing all cached data: no valid cache_info replica", V_SAME },
	  d_no_cache_info, false, NULL },
};

static void run_case(const struct kase *k, uint64_t seed)
{
	struct img im = { 0 };
	uint8_t *before = malloc(RANGE);
	int rc;

	tap_srand(seed);
	rc = before ? img_create(&im, k->data_crc, k->crafted) : -ENOMEM;
	/* what the cache served before the damage (a refused one: nothing to compare) */
	if (!rc && !k->crafted)
		rc = kernel_view(&im, before, false);
	if (!rc)
		rc = im.n_ks >= 4 ? k->damage(&im) : -ENOENT;
	if (ok(!rc, "%s: image built (%u ksets) and damaged", k->x.name, im.n_ks))
		check_case(&im, &k->x, before);
	else
		diag("%s", strerror(-rc));
	free(before);
	img_destroy(&im);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], 100 + i);
	return tap_done();
}
