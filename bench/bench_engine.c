/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_engine: 4 KiB random writes per second through the embedded engine,
 * in process, with one thread and with one thread per CPU, each as a ratio
 * of the bound measured in the same run: a plain loop of 4 KiB memcpy plus
 * persist into the same cache mapping (what any write must at least cost).
 * The cache image lives on tmpfs when there is one (as pmem: no disk behind
 * the mapping), so the numbers measure the engine, not a disk.
 *
 * usage: bench_engine [WRITES_PER_THREAD]   (default 150000; best of 3 runs each)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define BLK 4096u

struct bench {
	char cache[4096], back[4096];
	struct pce *e;
	struct pcm_dev *dev;          /* the engine's cache device: the same mapping */
	uint64_t range, writes;
	unsigned threads;
	bool persist;
};

struct worker {
	struct bench *b;
	unsigned id;
	bool engine;
	int rc;
	uint8_t buf[BLK] __attribute__((aligned(64)));
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mkfile(char *path, size_t len, const char *name, uint64_t size)
{
	const char *d = getenv("TMPDIR");
	int fd;

	if (!d || !*d)
		d = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	snprintf(path, len, "%s/bench_engine.%s.XXXXXX", d, name);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		close(fd);
		return -errno;
	}
	return close(fd);
}

static int setup(struct bench *b, uint64_t cache_size)
{
	struct pcm_format_opts fo = { .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pce_opts o = { .n_open = b->threads, .n_heads = b->threads,
			      .flags = b->persist ? 0 : PCE_NO_PERSIST };
	struct pce_error err = { 0 };
	struct pcm_dev *dev;
	uint64_t need;
	int rc = mkfile(b->cache, sizeof(b->cache), "cache", cache_size);

	if (!rc)
		rc = mkfile(b->back, sizeof(b->back), "back", b->range);
	if (!rc)
		rc = pcm_format_plan(cache_size, &fo, &plan);
	if (!rc)
		rc = pcm_dev_open(b->cache, PCM_DEV_RDWR, &dev);
	if (rc)
		return rc;
	rc = pcm_format_write(dev, &plan, NULL, NULL);
	pcm_dev_close(dev);
	if (!rc)
		rc = pce_open(b->cache, b->back, &o, &b->e, &err);
	if (rc) {
		fprintf(stderr, "bench_engine: %s\n", err.msg);
		return rc;
	}
	b->dev = pce_cache(b->e)->dev;
	/* fault the pages in now: first touches of a sparse file are not the engine's cost */
	need = b->writes * b->threads * BLK / PCM_DATA_SIZE + b->threads + 4;
	for (uint32_t s = 0; s < pce_cache(b->e)->n_segs && s < need && !rc; s++)
		rc = pcm_dev_zero(b->dev, pcm_pos_dev_off(pce_cache(b->e), s, 0), PCM_DATA_SIZE);
	return rc;
}

static void teardown(struct bench *b)
{
	pce_abandon(b->e);
	b->e = NULL;
	unlink(b->cache);
	unlink(b->back);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The bound: 4 KiB copies into free data areas of the same mapping, each persisted. */
static int plain_loop(struct worker *w)
{
	const struct pcm_cache *c = pce_cache(w->b->e);
	uint64_t per_seg = PCM_DATA_SIZE / BLK, first = w->id * w->b->writes;

	for (uint64_t i = 0; i < w->b->writes; i++) {
		uint64_t j = first + i;
		uint64_t off = pcm_pos_dev_off(c, (uint32_t)(j / per_seg),
					       (uint32_t)(j % per_seg * BLK));
		int rc;

		w->buf[0] = (uint8_t)i;
		rc = pcm_dev_write(w->b->dev, off, w->buf, BLK);
		if (!rc && w->b->persist)
			rc = pcm_dev_persist(w->b->dev, off, BLK);
		if (rc)
			return rc;
	}
	return 0;
}

static int engine_loop(struct worker *w)
{
	uint64_t x = 0x9E3779B97F4A7C15ull * (w->id + 1), blocks = w->b->range / BLK;

	for (uint64_t i = 0; i < w->b->writes; i++) {
		int rc;

		w->buf[0] = (uint8_t)i;
		rc = pce_write(w->b->e, rnd(&x) % blocks * BLK, w->buf, BLK, false);
		if (rc)
			return rc;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->rc = w->engine ? engine_loop(w) : plain_loop(w);
	return NULL;
}

/* Writes per second of threads workers, on a fresh image. */
static double phase(struct bench *b, bool engine, unsigned threads)
{
	struct worker *w = aligned_alloc(64, threads * sizeof(*w));
	pthread_t th[64];
	double t0, t;
	int rc = 0;

	b->threads = threads;
	if (!w || setup(b, 2 * GIB))
		exit(1);
	t0 = now();
	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct worker){ .b = b, .id = i, .engine = engine };
		memset(w[i].buf, 0xa5, BLK);
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		rc = rc ? rc : w[i].rc;
	}
	t = now() - t0;
	teardown(b);
	free(w);
	if (rc) {
		fprintf(stderr, "bench_engine: %s\n", strerror(-rc));
		exit(1);
	}
	return (double)b->writes * threads / t;
}

/* The best of three runs each: the first touch of memory and a busy neighbour only slow down. */
static void report(struct bench *b, unsigned threads)
{
	double base = 0, eng = 0;

	for (int i = 0; i < 3; i++) {
		double x = phase(b, false, threads), y = phase(b, true, threads);

		base = x > base ? x : base;
		eng = y > eng ? y : eng;
	}

	printf("engine 4K random writes, %u thread%s%s: %.0f/s (%.0f per thread); "
	       "memcpy%s loop: %.0f/s; ratio %.2f\n", threads, threads > 1 ? "s" : "",
	       b->persist ? "" : " (no persist)", eng, eng / threads,
	       b->persist ? "+persist" : "", base, eng / base);
}

int main(int argc, char **argv)
{
	struct bench b = { .range = 1 * GIB, .writes = 150000, .persist = true };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus > 1 ? (cpus > 64 ? 64 : (unsigned)cpus) : 1;

	if (argc > 1 && atoll(argv[1]) > 0)
		b.writes = (uint64_t)atoll(argv[1]);
	/* every thread's writes must fit the 2 GiB cache: no writeback inside the timing */
	if (b.writes * n * BLK > 1800 * MIB)
		b.writes = 1800 * MIB / BLK / n;
	report(&b, 1);
	report(&b, n);
	b.persist = false;
	report(&b, 1);
	report(&b, n);
	return 0;
}
