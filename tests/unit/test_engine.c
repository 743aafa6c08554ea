/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_engine.c - the embedded engine against a model (a plain byte array
 * holding the logical device).  Random mixes of writes (overwrites, partial
 * overlaps, window-crossing, FUA), reads, flushes, writeback and GC on a
 * small cache (gc_percent low, so segments are reclaimed and reused many
 * times), with a full close + reopen + replay every few steps and simulated
 * crashes (the engine dropped without a flush): a freshly opened engine must
 * serve the model for everything flushed.  After each phase pcm_check_run
 * must find no problem at all, and after a final writeback the backing file
 * must equal the model.  A threaded phase runs writers, readers, writeback
 * and GC at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "tap.h"
#include "testfiles.h"

#define MIB (1ull << 20)
#define SECT 512u

struct t {
	char cache[4096], back[4096];
	struct pce *e;
	unsigned flags;              /* engine open flags */
	uint64_t range;              /* backing size */
	uint8_t *model;              /* what reads must return */
	uint8_t *durable;            /* what survives a crash: content at the last flush */
	uint8_t *touched;            /* per sector: written since the last flush (saturating) */
	uint8_t *fua_last;           /* per sector: its last write was FUA (durable) */
	uint8_t *buf;
	uint64_t writes, reads, flushes, wbs, gcs, reopens, crashes, reclaimed;
	bool broken;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(uint8_t *p, size_t n)
{
	uint64_t x = tap_rand() | 1;

	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		p[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
}


/* A formatted cache image and a backing file with some data in it. */
static int t_create(struct t *t, uint64_t cache_size, uint64_t range, bool data_crc,
		    unsigned gc_percent)
{
	struct pcm_format_opts fo = { .data_crc = data_crc, .gc_percent = gc_percent };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	int fd, rc;

	t->range = range;
	rc = tmpfile_of(t->cache, sizeof(t->cache), "test_engine", "cache", cache_size);
	if (!rc)
		rc = tmpfile_of(t->back, sizeof(t->back), "test_engine", "back", range);
	if (!rc)
		rc = pcm_format_plan(cache_size, &fo, &plan);
	if (!rc)
		rc = pcm_dev_open(t->cache, PCM_DEV_RDWR, &dev);
	if (rc)
		return rc;
	rc = pcm_format_write(dev, &plan, NULL, NULL);
	pcm_dev_close(dev);
	t->model = calloc(1, range);
	t->durable = calloc(1, range);
	t->touched = calloc(1, range / SECT);
	t->fua_last = calloc(1, range / SECT);
	t->buf = malloc(8 * MIB);
	if (rc || !t->model || !t->durable || !t->touched || !t->fua_last || !t->buf)
		return rc ? rc : -ENOMEM;
	/* the first 8 MiB of the backing device hold data: misses must return it */
	fill(t->model, 8 * MIB);
	memcpy(t->durable, t->model, 8 * MIB);
	fd = open(t->back, O_WRONLY);
	rc = fd < 0 || pwrite(fd, t->model, 8 * MIB, 0) != (ssize_t)(8 * MIB) ? -EIO : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

static int t_open(struct t *t)
{
	struct pce_opts o = { .flags = t->flags, .n_open = 2, .n_heads = 2, .n_shards = 8 };
	struct pce_error err;
	int rc = pce_open(t->cache, t->back, &o, &t->e, &err);

	if (rc)
		diag("pce_open: %s", err.msg);
	return rc;
}

static void t_destroy(struct t *t)
{
	if (t->e)
		pce_abandon(t->e);
	t->e = NULL;
	unlink(t->cache);
	unlink(t->back);
	free(t->model);
	free(t->durable);
	free(t->touched);
	free(t->fua_last);
	free(t->buf);
}

static void mark_written(struct t *t, uint64_t off, uint64_t len, bool fua)
{
	for (uint64_t s = off / SECT; s < (off + len) / SECT; s++) {
		if (t->touched[s] < 255)
			t->touched[s]++;
		t->fua_last[s] = fua;
	}
}

static bool t_write(struct t *t, uint64_t off, uint32_t len, bool fua)
{
	int rc;

	fill(t->buf, len);
	rc = pce_write(t->e, off, t->buf, len, fua);
	if (rc) {
		ok(false, "write %llu+%u: %s", (unsigned long long)off, len, strerror(-rc));
		t->broken = true;
		return false;
	}
	memcpy(t->model + off, t->buf, len);
	mark_written(t, off, len, fua);
	t->writes++;
	return true;
}

/* Reads through the engine and compares with the model; says where it differs. */
static bool t_check(struct t *t, uint64_t off, uint64_t len, const char *what)
{
	int rc = pce_read(t->e, off, t->buf, len);

	if (!rc && !memcmp(t->buf, t->model + off, len))
		return true;
	for (uint64_t i = 0; !rc && i < len; i++)
		if (t->buf[i] != t->model[off + i]) {
			diag("%s: byte %llu differs (engine %02x, model %02x)", what,
			     (unsigned long long)(off + i), t->buf[i], t->model[off + i]);
			break;
		}
	ok(false, "%s: read %llu+%llu %s", what, (unsigned long long)off,
	   (unsigned long long)len, rc ? strerror(-rc) : "differs from the model");
	t->broken = true;
	return false;
}

static bool t_check_all(struct t *t, const char *what)
{
	for (uint64_t off = 0; off < t->range; off += 8 * MIB)
		if (!t_check(t, off, (t->range - off < 8 * MIB ? t->range - off : 8 * MIB), what))
			return false;
	return true;
}

/* FLUSH: every write so far is durable. */
static bool t_flush(struct t *t)
{
	int rc = pce_flush(t->e);

	if (rc) {
		ok(false, "flush: %s", strerror(-rc));
		return !(t->broken = true);
	}
	for (uint64_t s = 0; s < t->range / SECT; s++)
		if (t->touched[s])
			memcpy(t->durable + s * SECT, t->model + s * SECT, SECT);
	memset(t->touched, 0, t->range / SECT);
	memset(t->fua_last, 0, t->range / SECT);
	t->flushes++;
	return true;
}

static void report_problem(const struct pcm_problem *p, void *arg)
{
	(void)arg;
	diag("problem %s at %s: %s", pcm_problem_def(p->code)->name, p->where, p->detail);
}

/* The whole metadata check on the image: the kernel must load it, nothing to report. */
static bool t_fsck(struct t *t, const char *what, bool verify)
{
	struct pcm_check_opts o = { .verify_data = verify, .backing_size = t->range,
				    .report = report_problem };
	struct pcm_check_result r;
	struct pcm_dev *dev;
	int rc = pcm_dev_open(t->cache, PCM_DEV_RDONLY, &dev);

	if (!rc) {
		rc = pcm_check_run(dev, &o, &r);
		pcm_dev_close(dev);
	}
	if (!rc && !r.problems && r.verdict == PCM_VERDICT_LOADS)
		return true;
	ok(false, "%s: pcm_check_run: %s, %llu problems", what, rc ? strerror(-rc) : "ran",
	   rc ? 0ull : (unsigned long long)r.problems);
	t->broken = true;
	return false;
}

static void t_note_reclaims(struct t *t)
{
	struct pce_status st;

	pce_status(t->e, &st);
	t->reclaimed += st.reclaimed_segs;
}

/* Clean close, metadata check, reopen (replay): everything must still be there. */
static bool t_reopen(struct t *t, bool verify)
{
	int rc;

	t_note_reclaims(t);
	rc = pce_close(t->e);
	t->e = NULL;
	if (rc) {
		ok(false, "close: %s", strerror(-rc));
		return !(t->broken = true);
	}
	if (!t_fsck(t, "after close", verify) || t_open(t))
		return !(t->broken = true);
	memcpy(t->durable, t->model, t->range);
	memset(t->touched, 0, t->range / SECT);
	t->reopens++;
	return t_check_all(t, "after reopen");
}

/* After a crash a sector written since the last flush holds the old or the new data. */
static bool crash_sector_ok(struct t *t, uint64_t s, const uint8_t *got)
{
	const uint8_t *m = t->model + s * SECT, *d = t->durable + s * SECT;

	if (!t->touched[s] || t->fua_last[s])
		return !memcmp(got, m, SECT);
	return t->touched[s] > 1 || !memcmp(got, m, SECT) || !memcmp(got, d, SECT);
}

static bool crash_compare(struct t *t)
{
	for (uint64_t off = 0; off < t->range; off += 8 * MIB) {
		uint64_t len = t->range - off < 8 * MIB ? t->range - off : 8 * MIB;
		int rc = pce_read(t->e, off, t->buf, len);

		for (uint64_t s = off / SECT; !rc && s < (off + len) / SECT; s++) {
			const uint8_t *got = t->buf + (s * SECT - off);

			if (!crash_sector_ok(t, s, got)) {
				diag("sector %llu after a crash: touched %u fua %u",
				     (unsigned long long)s, t->touched[s], t->fua_last[s]);
				return false;
			}
			/* from now on the model is what the media kept */
			memcpy(t->model + s * SECT, got, SECT);
		}
		if (rc)
			return false;
	}
	return true;
}

/* The engine dropped without a FLUSH: flushed and FUA data must survive. */
static bool t_crash(struct t *t)
{
	t_note_reclaims(t);
	pce_abandon(t->e);
	t->e = NULL;
	if (!t_fsck(t, "after a crash", false) || t_open(t))
		return !(t->broken = true);
	if (!crash_compare(t)) {
		ok(false, "after a crash: flushed or FUA data lost");
		return !(t->broken = true);
	}
	memcpy(t->durable, t->model, t->range);
	memset(t->touched, 0, t->range / SECT);
	memset(t->fua_last, 0, t->range / SECT);
	t->crashes++;
	return true;
}

static bool t_writeback(struct t *t)
{
	struct pce_wb_opts o = { .verify_data = true, .retry = true,
				 .batch_ksets = 1 + (unsigned)tap_rand_below(8) };
	struct pce_wb_result r;
	int rc = pce_writeback(t->e, &o, &r);

	pce_wb_result_free(&r);
	t->wbs++;
	if (!rc && r.stop == PCE_WB_CLEAN && !r.stale_keys)
		return true;
	ok(false, "writeback: %s, %s, %llu stale keys", rc ? strerror(-rc) : "ran",
	   pce_wb_stop_str(r.stop), (unsigned long long)r.stale_keys);
	return !(t->broken = true);
}

static bool t_gc(struct t *t)
{
	struct pce_gc_result r;
	int rc = pce_gc(t->e, &r);

	t->gcs++;
	if (!rc)
		return true;
	ok(false, "gc: %s", strerror(-rc));
	return !(t->broken = true);
}

/* Mostly small writes, some large ones, a few crossing 4 MiB windows. */
static void random_extent(const struct t *t, uint64_t *off, uint32_t *len)
{
	unsigned r = (unsigned)tap_rand_below(100);
	uint64_t sectors = r < 60 ? 1 + tap_rand_below(16) : r < 90 ? 1 + tap_rand_below(512) :
			   1 + tap_rand_below(12288);

	*len = (uint32_t)(sectors * SECT);
	*off = tap_rand_below((t->range - *len) / SECT + 1) * SECT;
}

static bool t_step(struct t *t, bool crashes)
{
	unsigned r = (unsigned)tap_rand_below(1000);
	uint64_t off;
	uint32_t len;

	random_extent(t, &off, &len);
	if (r < 560)
		return t_write(t, off, len, tap_rand_below(10) == 0);
	if (r < 800) {
		/* unaligned reads too: the engine serves any byte range */
		uint64_t skip = tap_rand_below(len / 2), cut = tap_rand_below((len - skip) / 2);

		t->reads++;
		return t_check(t, off + skip, len - skip - cut, "random read");
	}
	if (r < 880)
		return t_flush(t);
	if (r < 940)
		return t_writeback(t);
	if (r < 985)
		return t_gc(t);
	if (r < 993 || !crashes)
		return t_reopen(t, tap_rand_below(4) == 0);
	return t_crash(t);
}

/* After FLUSH, writeback and a reopen: clean, and the backing file is the model. */
static void test_final_backing(struct t *t, const char *name)
{
	struct pce_status st;
	uint8_t *b;
	int fd;
	bool same = false;

	if (t->broken || !t->e)
		return;
	pce_status(t->e, &st);
	ok(pcm_pos_eq(st.dirty_tail, st.key_head), "%s: clean after writeback (dirty_tail %u:%u, "
	   "key_head %u:%u)", name, st.dirty_tail.cseg, st.dirty_tail.seg_off, st.key_head.cseg,
	   st.key_head.seg_off);
	b = malloc(t->range);
	fd = open(t->back, O_RDONLY);
	if (b && fd >= 0 && pread(fd, b, t->range, 0) == (ssize_t)t->range)
		same = !memcmp(b, t->model, t->range);
	if (fd >= 0)
		close(fd);
	free(b);
	ok(same, "%s: the backing file equals the model after writeback", name);
}

static void test_random(const char *name, bool data_crc, bool persist, unsigned gc_percent,
			unsigned steps, uint64_t seed)
{
	struct t t = { .flags = persist ? 0 : PCE_NO_PERSIST };
	struct pce_status st;
	double t0 = now_s();

	tap_srand(seed);
	if (!ok(!t_create(&t, 600 * MIB, 96 * MIB, data_crc, gc_percent) && !t_open(&t),
		"%s: image created and opened", name)) {
		t_destroy(&t);
		return;
	}
	pce_status(t.e, &st);
	diag("%s: %u segments, gc_percent %u", name, st.n_segs, st.gc_percent);
	for (unsigned i = 0; i < steps && !t.broken; i++)
		t_step(&t, true);
	ok(!t.broken, "%s: %u random steps match the model", name, steps);
	if (!t.broken && t_flush(&t) && t_writeback(&t) && t_reopen(&t, true))
		t_note_reclaims(&t);
	diag("%s: %llu writes, %llu reads, %llu flushes, %llu writebacks, %llu gc runs, "
	     "%llu reopens, %llu crashes, %llu segments reclaimed, %.1f s", name,
	     (unsigned long long)t.writes, (unsigned long long)t.reads,
	     (unsigned long long)t.flushes, (unsigned long long)t.wbs, (unsigned long long)t.gcs,
	     (unsigned long long)t.reopens, (unsigned long long)t.crashes,
	     (unsigned long long)t.reclaimed, now_s() - t0);
	ok(t.reclaimed > st.n_segs, "%s: GC reclaimed and reused segments (%llu > %u)",
	   name, (unsigned long long)t.reclaimed, st.n_segs);
	test_final_backing(&t, name);
	t_destroy(&t);
}

static void basic_overlaps(struct t *t)
{
	ok(t_check_all(t, "empty cache"), "empty cache: every read comes from the backing device");
	t_write(t, 4096, 4096, false);
	ok(t_check(t, 0, 16384, "hit"), "a write is read back, misses around it from the backing");
	t_write(t, 2048, 4096, false);
	t_write(t, 6144, 1024, false);
	t_write(t, 7168, 8192, false);
	ok(t_check(t, 0, 32768, "overlaps"), "partial overlaps: the newest write wins per byte");
	t_write(t, 4 * MIB - 2048, 8192, false);
	ok(t_check(t, 4 * MIB - 4096, 16384, "window"), "a write across a 4 MiB window");
	ok(t_check(t, 4097, 3, "unaligned"), "unaligned reads");
	ok(pce_write(t->e, 100, t->buf, 512, false) == -EINVAL, "unaligned write refused");
	ok(pce_write(t->e, t->range - 512, t->buf, 1024, false) == -EINVAL &&
	   pce_read(t->e, t->range - 10, t->buf, 20) == -EINVAL, "I/O past the backing device refused");
}

/* FUA and FLUSH survive a crash; a write in an open kset does not (volatile cache). */
static void basic_durability(struct t *t)
{
	t_write(t, 1 * MIB, 65536, true);
	ok(t_crash(t) && t_check(t, 1 * MIB, 65536, "fua"), "a FUA write survives a crash");
	t_write(t, 2 * MIB, 8192, false);
	t_write(t, 6 * MIB, 8192, false);
	ok(t_flush(t) && t_crash(t) && t_check_all(t, "flush"),
	   "writes before a FLUSH survive a crash");
	t_write(t, 3 * MIB, 4096, false);
	pce_abandon(t->e);
	t->e = NULL;
	ok(!t_open(t) && !pce_read(t->e, 3 * MIB, t->buf, 4096) &&
	   !memcmp(t->buf, t->durable + 3 * MIB, 4096),
	   "a write still in its open kset is lost in a crash, as with the kernel");
	memcpy(t->model + 3 * MIB, t->durable + 3 * MIB, 4096);
	memset(t->touched, 0, t->range / SECT);
}

static void basic_rdonly(struct t *t)
{
	unsigned flags = t->flags;

	ok(!pce_close(t->e), "close");
	t->e = NULL;
	t->flags |= PCE_RDONLY;
	ok(!t_open(t) && pce_write(t->e, 0, t->buf, 512, false) == -EROFS &&
	   t_check_all(t, "read-only"), "read-only: reads served, writes refused");
	t->flags = flags;
}

static void test_basic(void)
{
	struct t t = { .flags = PCE_NO_PERSIST };

	tap_srand(11);
	if (!ok(!t_create(&t, 560 * MIB, 16 * MIB, false, 70) && !t_open(&t),
		"basic: image created and opened")) {
		t_destroy(&t);
		return;
	}
	basic_overlaps(&t);
	basic_durability(&t);
	basic_rdonly(&t);
	t_fsck(&t, "basic", true);
	t_destroy(&t);
}

/* ---- threads: writers and readers on their own windows, writeback and GC beside them ---- */
struct worker {
	struct t *t;
	unsigned id, nthreads, ops;
	uint64_t rng;
	unsigned fails;
	uint8_t *buf;
};

static int maint_stop;           /* atomic */

static uint64_t w_rand(struct worker *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545F4914F6CDD1Dull;
}

/* A range inside one window this worker owns (window % nthreads == id). */
static void w_extent(struct worker *w, uint64_t *off, uint32_t *len)
{
	uint64_t windows = w->t->range >> PCM_WINDOW_SHIFT, win;

	win = w_rand(w) % (windows / w->nthreads) * w->nthreads + w->id;
	*len = (uint32_t)((1 + w_rand(w) % 64) * SECT);
	*off = (win << PCM_WINDOW_SHIFT) + w_rand(w) % (((1u << PCM_WINDOW_SHIFT) - *len) / SECT) *
	       SECT;
}

static void *w_main(void *arg)
{
	struct worker *w = arg;
	struct t *t = w->t;

	for (unsigned i = 0; i < w->ops; i++) {
		uint64_t off;
		uint32_t len;

		w_extent(w, &off, &len);
		if (w_rand(w) % 3) {
			for (uint32_t j = 0; j < len; j++)
				w->buf[j] = (uint8_t)w_rand(w);
			if (pce_write(t->e, off, w->buf, len, w_rand(w) % 16 == 0))
				w->fails++;
			else
				memcpy(t->model + off, w->buf, len);
		} else if (pce_read(t->e, off, w->buf, len) || memcmp(w->buf, t->model + off, len)) {
			w->fails++;
		}
	}
	return NULL;
}

static void *maint_main(void *arg)
{
	struct t *t = arg;
	struct pce_wb_opts o = { .retry = true, .verify_data = true };
	struct pce_wb_result r;
	struct pce_gc_result g;
	long bad = 0;

	while (!__atomic_load_n(&maint_stop, __ATOMIC_ACQUIRE)) {
		bad += pce_flush(t->e) != 0;
		bad += pce_writeback(t->e, &o, &r) != 0 || r.stop != PCE_WB_CLEAN;
		pce_wb_result_free(&r);
		bad += pce_gc(t->e, &g) != 0;
	}
	return (void *)bad;
}

static void test_threads(unsigned nthreads, unsigned ops)
{
	struct t t = { .flags = PCE_NO_PERSIST };
	struct worker w[8];
	pthread_t th[8], mt;
	unsigned fails = 0;
	void *bad = NULL;

	tap_srand(21);
	if (!ok(!t_create(&t, 560 * MIB, 64 * MIB, true, 10) && !t_open(&t),
		"threads: image created and opened")) {
		t_destroy(&t);
		return;
	}
	__atomic_store_n(&maint_stop, 0, __ATOMIC_RELEASE);
	pthread_create(&mt, NULL, maint_main, &t);
	for (unsigned i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ .t = &t, .id = i, .nthreads = nthreads, .ops = ops,
					.rng = 0x9E3779B97F4A7C15ull * (i + 1), .buf = malloc(64 * SECT) };
		pthread_create(&th[i], NULL, w_main, &w[i]);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		fails += w[i].fails;
		free(w[i].buf);
	}
	__atomic_store_n(&maint_stop, 1, __ATOMIC_RELEASE);
	pthread_join(mt, &bad);
	ok(!fails, "threads: %u writers/readers x %u ops, every read matched (%u failures)",
	   nthreads, ops, fails);
	ok(!bad, "threads: writeback and GC ran beside them without error");
	ok(t_reopen(&t, true), "threads: after a reopen everything matches the model");
	t_destroy(&t);
}

/*
 * Half a million 4 KiB writes with no explicit writeback or GC: the log hops across
 * log segments (LAST ksets) and the cache fills up again and again, so every write
 * that finds no free segment runs writeback and GC itself.
 */
static void test_long_log(unsigned writes)
{
	struct t t = { .flags = PCE_NO_PERSIST };
	struct pce_status st;
	bool good = true;
	double t0 = now_s();

	tap_srand(31);
	if (!ok(!t_create(&t, 560 * MIB, 8 * MIB, false, 70) && !t_open(&t),
		"long log: image created and opened")) {
		t_destroy(&t);
		return;
	}
	for (unsigned i = 0; i < writes && good; i++)
		good = t_write(&t, tap_rand_below(t.range / 4096) * 4096, 4096, false);
	pce_status(t.e, &st);
	ok(good, "long log: %u writes of 4 KiB (%.0f MiB through %u segments), %.1f s", writes,
	   writes * 4096.0 / MIB, st.n_segs, now_s() - t0);
	ok(st.reclaimed_segs > 2 * st.n_segs && st.key_head.cseg != 0,
	   "long log: full cache recycled (%llu segments reclaimed), log now in segment %u",
	   (unsigned long long)st.reclaimed_segs, st.key_head.cseg);
	ok(good && t_reopen(&t, true), "long log: after a reopen everything matches the model");
	t_destroy(&t);
}

/* test_engine [SCALE [NAME]]: SCALE multiplies the step counts; NAME runs one test only. */
int main(int argc, char **argv)
{
	unsigned scale = argc > 1 && atoi(argv[1]) > 0 ? (unsigned)atoi(argv[1]) : 1;
	const char *only = argc > 2 ? argv[2] : NULL;

#define RUN(name, call) do { if (!only || !strcmp(only, name)) call; } while (0)
	RUN("basic", test_basic());
	RUN("random", test_random("random", false, false, 20, 12000 * scale, 1));
	RUN("random", test_random("random data_crc", true, false, 10, 8000 * scale, 2));
	RUN("random", test_random("random persist", false, true, 0, 4000 * scale, 3));
	RUN("long", test_long_log(500000 * scale));
	RUN("threads", test_threads(3, 20000 * scale));
#undef RUN
	return tap_done();
}
