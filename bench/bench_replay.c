/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replay and check throughput on a synthetic log (issue targets: >= 20 M keys/s,
 * >= 0.5 of a plain memory read over the same kset bytes, --verify-data >= 0.7
 * of the CRC32C bound using every core, <= 64 bytes per live key).  Every bound
 * is measured in the same run over the same bytes.  --verify-data is timed with
 * data CRCs judged inline and by every online CPU, against the CRC32C bound of
 * one thread and of as many threads as CPUs, on the 512-byte keys and again on
 * an image of 64 KiB keys (where the CRCs are most of the work).
 *
 * usage: bench_replay [KEYS] (default 2000000; 512-byte keys, 1 GiB of data;
 *        then KEYS / 128 keys of 64 KiB, 1 GiB of data)
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datacrc.h"
#include "pcachemeta.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_replay: %s failed: %d\n", what, rc);
	exit(1);
}

/* An image with n keys of ks bytes (<= 64 KiB) at random offsets of a 4 GiB range. */
static void build(const char *path, uint64_t n, uint32_t ks, uint64_t size)
{
	struct pcm_format_opts fo = { .data_crc = true, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev = NULL;
	struct pcm_cache *c = NULL;
	struct pcm_replay *r = NULL;
	struct pcm_appender *a = NULL;
	static uint8_t data[65536];
	uint64_t x = 88172645463325252ull;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), rc;

	if (fd < 0 || ftruncate(fd, (off_t)size))
		die("create", -1);
	close(fd);
	if ((rc = pcm_dev_open(path, PCM_DEV_RDWR, &dev)) || (rc = pcm_format_plan(size, &fo, &plan)) ||
	    (rc = pcm_format_write(dev, &plan, NULL, NULL)) || (rc = pcm_cache_open(dev, &c, NULL)) ||
	    (rc = pcm_replay_run(c, NULL, &r)) || (rc = pcm_appender_open(c, r, &a)))
		die("setup", rc);
	pcm_appender_set_persist(a, false);
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		memset(data, (int)(x & 0xff), ks);
		memcpy(data, &i, sizeof(i));
		rc = pcm_append_write(a, (x % ((4ull << 30) / ks)) * ks, data, ks, 0);
		if (rc)
			die("append", rc);
	}
	if ((rc = pcm_appender_close(a)))
		die("flush", rc);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
}

struct region { const uint8_t *p; uint64_t len; };

/* The bound: a plain read of the same bytes (sum of 64-bit words). */
static double read_rate(const struct region *rg, unsigned n, uint64_t *sink)
{
	double best = 1e9;

	for (int rep = 0; rep < 5; rep++) {
		double t = now();
		uint64_t s = 0;

		for (unsigned i = 0; i < n; i++) {
			const uint64_t *q = (const uint64_t *)rg[i].p;
			for (uint64_t j = 0; j < rg[i].len / 8; j++)
				s += q[j];
		}
		*sink += s;
		t = now() - t;
		best = t < best ? t : best;
	}
	return best;
}

struct logmap { struct region rg[4096]; unsigned n; struct pcm_dev *dev; const struct pcm_cache *c; };

/* Collects the log's bytes (per segment, [0, end of its last kset)) for the read bound. */
static int collect(const struct pcm_walk *w, void *arg)
{
	struct logmap *m = arg;
	uint64_t size = pcm_kset_size(&w->hdr);
	uint64_t off = pcm_pos_dev_off(m->c, w->pos.cseg, w->pos.seg_off);

	if (m->n && m->rg[m->n - 1].p + m->rg[m->n - 1].len == pcm_dev_ptr(m->dev, off, size)) {
		m->rg[m->n - 1].len += size;
	} else if (m->n < 4096) {
		m->rg[m->n].p = pcm_dev_ptr(m->dev, off, size);
		m->rg[m->n++].len = size;
	}
	return 0;
}

static size_t peak_heap;
static void sample_heap(uint64_t done, void *arg)
{
	struct mallinfo2 mi = mallinfo2();

	(void)done; (void)arg;
	if (mi.uordblks > peak_heap)
		peak_heap = mi.uordblks;
}

/* kcrc over bytes of the data segments from segment first on, one segment at a time. */
struct crcpart {
	const struct pcm_cache *c;
	struct pcm_dev *dev;
	uint32_t first, step;        /* segments first, first + step, ... */
	uint64_t bytes, sink;
};

static void *crc_part(void *arg)
{
	struct crcpart *p = arg;
	uint64_t left = p->bytes;

	for (uint32_t s = 1 + p->first; s < p->c->n_segs && left; s += p->step) {
		uint32_t len = left < PCM_DATA_SIZE ? (uint32_t)left : PCM_DATA_SIZE;

		p->sink += pcm_kcrc(pcm_dev_ptr(p->dev, pcm_pos_dev_off(p->c, s, 0), len), len);
		left -= len;
	}
	return NULL;
}

/*
 * The CRC bound: kcrc over as many bytes of the data segments as the keys hold,
 * by nt threads each taking every nt-th segment (best of 3).
 */
static double crc_bound(const struct pcm_cache *c, struct pcm_dev *dev, uint64_t bytes,
			unsigned nt, uint64_t *sink)
{
	struct crcpart p[64];
	pthread_t tid[64];
	double best = 1e9;

	nt = nt < 1 ? 1 : nt > 64 ? 64 : nt;
	for (int rep = 0; rep < 3; rep++) {
		double t = now();

		for (unsigned i = 0; i < nt; i++) {
			p[i] = (struct crcpart){ c, dev, i, nt, bytes / nt, 0 };
			if (i && pthread_create(&tid[i], NULL, crc_part, &p[i]))
				die("pthread_create", -1);
		}
		crc_part(&p[0]);
		for (unsigned i = 1; i < nt; i++)
			pthread_join(tid[i], NULL);
		t = now() - t;
		best = t < best ? t : best;
		for (unsigned i = 0; i < nt; i++)
			*sink += p[i].sink;
	}
	return best;
}

/* Best of 3 replays; threads judge data CRCs (0: every online CPU, 1: inline). */
static double time_replay(const struct pcm_cache *c, bool verify, unsigned threads,
			  struct pcm_replay **keep)
{
	struct pcm_replay_opts o = { .verify_data = verify };
	double best = 1e9;

	for (int rep = 0; rep < 3; rep++) {
		struct pcm_replay *r;
		double t = now();
		int rc = replay_run_threads(c, &o, threads, &r);

		t = now() - t;
		if (rc || r->failed)
			die("replay", rc);
		best = t < best ? t : best;
		if (keep && !*keep)
			*keep = r;
		else
			pcm_replay_free(r);
	}
	return best;
}

/*
 * --verify-data with data CRCs judged inline and by every online CPU, each against
 * the crc32c bound of as many threads (kcrc over the same number of data bytes).
 */
static void verify_rates(const struct pcm_cache *c, struct pcm_dev *dev, uint64_t bytes,
			 const char *what, uint64_t *sink)
{
	unsigned nt = dcrc_threads_default();
	double v1 = time_replay(c, true, 1, NULL), vn = time_replay(c, true, 0, NULL);
	double c1 = crc_bound(c, dev, bytes, 1, sink), cn = crc_bound(c, dev, bytes, nt, sink);
	double mb = (double)bytes / 1e6;

	printf("verify-data, %s, 1 thread: %.1f MB/s of key data; crc32c bound 1 thread "
	       "%.1f MB/s; ratio %.2f\n", what, mb / v1, mb / c1, c1 / v1);
	printf("verify-data, %s, %u threads: %.1f MB/s; crc32c bound %u threads %.1f MB/s; "
	       "ratio %.2f (target >= 0.7)\n", what, nt, mb / vn, nt, mb / cn, cn / vn);
	printf("verify-data, %s: speed-up %u threads / 1 thread %.2f (crc32c bound: %.2f)\n",
	       what, nt, v1 / vn, c1 / cn);
}

/* --verify-data on an image of n keys of ks bytes, built for it. */
static void verify_image(const char *dir, uint64_t n, uint32_t ks, uint64_t *sink)
{
	char path[512], what[64];
	struct pcm_dev *dev = NULL;
	struct pcm_cache *c = NULL;
	double t = now();
	int rc;

	snprintf(path, sizeof(path), "%s/bench_replay.%d.big.img", dir, (int)getpid());
	build(path, n, ks, (uint64_t)((double)n * ks * 1.15) + (1ull << 30));
	printf("image: %llu keys of %u KiB, built in %.1f s\n", (unsigned long long)n, ks >> 10,
	       now() - t);
	if ((rc = pcm_dev_open(path, PCM_DEV_RDONLY, &dev)) || (rc = pcm_cache_open(dev, &c, NULL)))
		die("open", rc);
	snprintf(what, sizeof(what), "%u KiB keys", ks >> 10);
	verify_rates(c, dev, n * ks, what, sink);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	unlink(path);
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char path[512];
	struct pcm_dev *dev = NULL;
	struct pcm_cache *c = NULL;
	struct pcm_replay *r = NULL;
	struct logmap *m = calloc(1, sizeof(*m));
	struct pcm_replay_opts co = { .on_kset = collect, .arg = m };
	struct pcm_check_opts ko = { .progress = sample_heap };
	struct pcm_check_result res;
	uint64_t sink = 0, log_bytes = 0;
	double t_read, t_replay, t_check;
	size_t base_heap;
	int rc;

	snprintf(path, sizeof(path), "%s/bench_replay.%d.img", dir, (int)getpid());
	double t = now();
	build(path, n, 512, (uint64_t)(n * 512 * 1.15) + (1ull << 30));
	printf("image: %llu keys of 512 bytes, built in %.1f s\n", (unsigned long long)n, now() - t);
	if ((rc = pcm_dev_open(path, PCM_DEV_RDONLY, &dev)) || (rc = pcm_cache_open(dev, &c, NULL)))
		die("open", rc);
	m->dev = dev;
	m->c = c;
	if ((rc = pcm_replay_run(c, &co, &r)))
		die("collect", rc);
	pcm_replay_free(r);
	r = NULL;
	for (unsigned i = 0; i < m->n; i++)
		log_bytes += m->rg[i].len;
	t_read = read_rate(m->rg, m->n, &sink);
	base_heap = mallinfo2().uordblks;
	t_replay = time_replay(c, false, 1, &r);
	printf("replay: %.1f M keys/s; kset bytes %.1f MB/s; read bound %.1f MB/s; ratio %.2f (target >= 0.5)\n",
	       (double)n / t_replay / 1e6, (double)log_bytes / t_replay / 1e6,
	       (double)log_bytes / t_read / 1e6, t_read / t_replay);
	printf("replay: %.1f bytes of index per live key (%llu live keys; target <= 64)\n",
	       (double)pcm_index_mem(r->idx) / (double)r->live_extents,
	       (unsigned long long)r->live_extents);
	pcm_replay_free(r);
	t = now();
	peak_heap = base_heap;
	if ((rc = pcm_check_run(dev, &ko, &res)) || res.problems)
		die("check", rc ? rc : -1);
	t_check = now() - t;
	printf("check: %.1f M keys/s; kset ratio %.2f; peak heap %.1f bytes per live key\n",
	       (double)n / t_check / 1e6, t_read / t_check,
	       (double)(peak_heap - base_heap) / (double)res.live_extents);
	verify_rates(c, dev, n * 512, "512-byte keys", &sink);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	unlink(path);
	free(m);
	verify_image(dir, n / 128 ? n / 128 : 1, 65536, &sink);
	printf("(sink %llx)\n", (unsigned long long)(sink & 0xf));
	return 0;
}
