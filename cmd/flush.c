/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pcache flush: offline writeback.  Checks the cache first (a damaged log
 * is refused: writing it back would spread the damage to the backing
 * device), then writes the dirty data back in the kernel's order through the
 * embedded engine, one batch of ksets at a time, each batch followed by a
 * backing flush and a persisted dirty_tail, so that a flush killed at any
 * point resumes where it stopped.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "engine/engine.h"

static const char usage_text[] =
	"usage: pcache flush [--dry-run] [--verify-data] [--no-metadata-update] [--batch N]\n"
	"                    [-q] [-v] DEV BACKING\n\n"
	"Writes every dirty byte of the cache DEV back to BACKING in the kernel's order and\n"
	"advances dirty_tail as it goes: an interrupted flush resumes where it stopped.\n"
	"Ends with 'N/M bytes written back'.  Exit: 0 the cache is clean, 4 dirty data\n"
	"remains (a dry run found dirty data, or ranges could not be written: listed),\n"
	"8 error (damaged cache: run pcache fsck; device busy or missing), 16 usage,\n"
	"32 interrupted.\n\n"
	"  --dry-run             list, kset by kset, the ranges that would be written; write\n"
	"                        nothing\n"
	"  --verify-data         check each key's data checksum before writing it back; on a\n"
	"                        mismatch stop before its kset\n"
	"  --no-metadata-update  write the data but never move dirty_tail (copy the dirty data\n"
	"                        to another device); exit 0 once all of it is written\n"
	"  --batch N             ksets per backing flush (default 64; 1: exactly the kernel)\n"
	"  -q, --quiet           print nothing but errors\n"
	"  -v, --verbose         one line per batch\n";

struct flush_args {
	bool dry_run, verify, no_meta;
	unsigned batch;
	const char *dev, *backing;
};

/* Shared with the callbacks: progress, the dry-run listing, test hooks. */
struct flush_state {
	const struct flush_args *a;
	uint64_t total, delay_us;
	struct timespec start;
	struct pce_range fail;        /* PCACHE_FLUSH_TEST_FAIL: writes here fail */
};

static volatile sig_atomic_t cancelled;

static void on_signal(int sig)
{
	(void)sig;
	cancelled = 1;
}

static int parse(int argc, char **argv, struct flush_args *a)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verify-data", no_argument, NULL, 'V' },
		{ "no-metadata-update", no_argument, NULL, 'M' },
		{ "batch", required_argument, NULL, 'b' },
		COMMON_LONGOPTS, { 0 }
	};
	uint64_t v;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': a->dry_run = true; break;
		case 'V': a->verify = true; break;
		case 'M': a->no_meta = true; break;
		case 'b':
			if (cli_parse_uint(optarg, 1u << 20, &v) || !v)
				return cli_usage_error("--batch: '%s' is not a number from 1", optarg);
			a->batch = (unsigned)v;
			break;
		default:
			rc = cmd_common_opt(c, usage_text);
			if (rc != -2)
				return rc < 0 ? EXIT_USAGE : rc;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(argc - optind < 2 ? "missing DEV or BACKING" :
				       "too many arguments");
	a->dev = argv[optind];
	a->backing = argv[optind + 1];
	return -2;
}

static int backing_size(const char *path, uint64_t *out)
{
	struct pcm_dev *b;
	int rc = cli_open_dev(path, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &b);

	if (rc)
		return rc;
	*out = pcm_dev_size(b);
	pcm_dev_close(b);
	if (*out)
		return EXIT_OK;
	cli_err(path, "backing device is empty");
	return EXIT_OPERATIONAL;
}

/* The metadata check: whatever the kernel would refuse, or any error, stops us here. */
static int precheck(const struct flush_args *a, uint64_t *dirty)
{
	struct pcm_check_opts o = { 0 };
	struct pcm_check_result r;
	struct pcm_dev *dev;
	int rc = backing_size(a->backing, &o.backing_size);

	if (!rc)
		rc = cli_open_dev(a->dev, PCM_DEV_RDONLY, &dev);
	if (rc)
		return rc;
	rc = pcm_check_run(dev, &o, &r);
	pcm_dev_close(dev);
	if (rc) {
		cli_err(a->dev, "cannot check the metadata: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (r.not_pcache) {
		cli_err(a->dev, "not a pcache device");
		return EXIT_OPERATIONAL;
	}
	*dirty = r.dirty_bytes;
	if (r.verdict == PCM_VERDICT_LOADS && !r.by_severity[PCM_SEV_ERROR] &&
	    !r.by_severity[PCM_SEV_CRITICAL])
		return EXIT_OK;
	cli_err(a->dev, "refusing to write back: the metadata is damaged (%s: %s)",
		pcm_problem_def(r.worst)->name, pcm_problem_def(r.worst)->summary);
	cli_hint("run 'pcache fsck -n %s' for details, then repair it", a->dev);
	return EXIT_OPERATIONAL;
}

static double elapsed(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Bytes, rate and time left on the terminal; -v: one line per batch. */
static void on_batch(uint64_t done, uint64_t ksets, void *arg)
{
	struct flush_state *s = arg;
	double t = elapsed(&s->start), rate = t > 0 ? (double)done / t : 0;
	char what[96], r[32];

	if (s->delay_us)
		usleep((useconds_t)s->delay_us);
	if (cli.verbose)
		cli_note("pcache flush: %" PRIu64 " ksets, %" PRIu64 " bytes written back", ksets,
			 done);
	snprintf(what, sizeof(what), "writing back %9s/s, %4.0f s left",
		 cli_fmt_size((uint64_t)rate, r, sizeof(r)),
		 rate > 0 ? (double)(s->total - done) / rate : 0.0);
	cli_progress(what, done, s->total);
}

/* --dry-run: one line per kset, then one line per range it would write. */
static void on_kset(struct pcm_pos at, unsigned keys, const struct pce_wb_extent *x, size_t n,
		    void *arg)
{
	uint64_t bytes = 0;

	(void)arg;
	for (size_t i = 0; i < n; i++)
		bytes += x[i].len;
	printf("kset %u:%u: %u keys, %zu ranges, %" PRIu64 " bytes\n", at.cseg, at.seg_off, keys, n,
	       bytes);
	for (size_t i = 0; i < n; i++)
		printf("  %" PRIu64 " +%u\n", x[i].off, x[i].len);
}

/* PCACHE_FLUSH_TEST_FAIL=OFF:LEN: writes touching that range fail (exit 4 tests). */
static long failing_write(int fd, const struct iovec *iov, int n, uint64_t off, void *arg)
{
	const struct pce_range *f = arg;
	uint64_t len = 0;
	long r;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (off < f->off + f->len && f->off < off + len)
		return -EIO;
	r = pwritev(fd, iov, n, (off_t)off);
	return r < 0 ? -errno : r;
}

static void test_hooks(struct pce *e, struct flush_state *s)
{
	const char *d = getenv("PCACHE_FLUSH_TEST_DELAY_US"), *f = getenv("PCACHE_FLUSH_TEST_FAIL");
	unsigned long long off, len;

	if (d)
		s->delay_us = strtoull(d, NULL, 10);
	if (f && sscanf(f, "%llu:%llu", &off, &len) == 2) {
		s->fail = (struct pce_range){ .off = off, .len = len };
		pce_set_backing_write(e, failing_write, &s->fail);
	}
}

static int open_engine(const struct flush_args *a, struct pce **e)
{
	struct pce_opts o = { .n_open = 1, .n_heads = 1, .n_shards = 1 };
	struct pce_error err;
	int rc;

	o.flags = a->dry_run ? PCE_RDONLY : a->no_meta ? PCE_CACHE_RDONLY : 0;
	rc = pce_open(a->dev, a->backing, &o, e, &err);
	if (!rc && (a->dry_run || !pce_rdonly_reason(*e)))
		return EXIT_OK;
	if (!rc) {
		/* the precheck lets warnings through; some of them make writing back unsafe */
		cli_err(a->dev, "refusing to write back: %s", pce_rdonly_reason(*e));
		cli_hint("run 'pcache fsck -n %s' for details, then repair it", a->dev);
		pce_abandon(*e);
		*e = NULL;
		return EXIT_OPERATIONAL;
	}
	if (err.err == -EBUSY)
		fprintf(stderr, "pcache flush: %s (held by another program: dm-pcache, or a running "
			"pcache command)\n", err.msg);
	else
		fprintf(stderr, "pcache flush: %s\n", err.msg);
	if (err.err == -EUCLEAN)
		cli_hint("run 'pcache fsck -n %s' for details", a->dev);
	return EXIT_OPERATIONAL;
}

/* The dry pass: exactly what a flush from the current dirty_tail writes, batch by batch. */
static int plan(struct pce *e, const struct flush_args *a, struct pce_wb_result *p)
{
	struct pce_wb_opts o = { .dry_run = true, .batch_ksets = a->batch,
				 .on_kset = a->dry_run ? on_kset : NULL };
	int rc = pce_writeback(e, &o, p);

	if (!rc && p->stop == PCE_WB_CLEAN)
		return EXIT_OK;
	cli_err(a->dev, "cannot plan the writeback: %s", rc ? strerror(-rc) :
		pce_wb_stop_str(p->stop));
	return EXIT_OPERATIONAL;
}

static void announce(struct pce *e, const struct flush_args *a, const struct pce_wb_result *p,
		     uint64_t dirty)
{
	struct pce_status st;

	pce_status(e, &st);
	if (!p->ksets && !p->last_ksets) {
		cli_note("%s: clean (dirty_tail = key_head = %u:%u): nothing to write back", a->dev,
			 st.key_head.cseg, st.key_head.seg_off);
		return;
	}
	cli_note("%s: %" PRIu64 " dirty bytes in %" PRIu64 " ksets (dirty_tail %u:%u, key_head "
		 "%u:%u): %s %" PRIu64 " bytes to %s", a->dev, dirty, p->ksets,
		 st.dirty_tail.cseg, st.dirty_tail.seg_off, st.key_head.cseg, st.key_head.seg_off,
		 a->dry_run ? "would write" : "writing", p->bytes, a->backing);
}

static int run(struct pce *e, const struct flush_args *a, struct flush_state *s,
	       struct pce_wb_result *res)
{
	struct pce_wb_opts o = {
		.verify_data = a->verify, .no_metadata_update = a->no_meta, .retry = true,
		.batch_ksets = a->batch, .cancel = &cancelled, .on_batch = on_batch, .arg = s,
	};
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	rc = pce_writeback(e, &o, res);
	cli_progress_done();
	if (rc)
		cli_err(a->dev, "writeback failed: %s", strerror(-rc));
	return rc ? EXIT_OPERATIONAL : EXIT_OK;
}

static int report_failed(const struct flush_args *a, const struct pce_wb_result *res)
{
	for (size_t i = 0; i < res->n_failed; i++)
		cli_err(a->backing, "cannot write %" PRIu64 " bytes at offset %" PRIu64 ": %s",
			res->failed[i].len, res->failed[i].off, strerror(-res->err));
	cli_err(a->dev, "%zu ranges could not be written back; dirty_tail stays at %u:%u",
		res->n_failed, res->pos.cseg, res->pos.seg_off);
	return EXIT_UNCORRECTED;
}

/* Exit code and messages for how the writeback ended. */
static int report(const struct flush_args *a, const struct pce_wb_result *res)
{
	switch (res->stop) {
	case PCE_WB_CLEAN:
		return EXIT_OK;
	case PCE_WB_IO_FAILED:
		return report_failed(a, res);
	case PCE_WB_BAD_KEY:
		cli_err(a->dev, "kset %u:%u key %u: %s: stopped before this kset (dirty_tail %u:%u)",
			res->bad_kset.cseg, res->bad_kset.seg_off, res->bad_index,
			pcm_key_verdict_str(res->bad_verdict), res->pos.cseg, res->pos.seg_off);
		cli_hint("run 'pcache fsck -n --verify-data %s' for details", a->dev);
		return EXIT_OPERATIONAL;
	case PCE_WB_CANCELLED:
		cli_err(a->dev, "interrupted at dirty_tail %u:%u: run pcache flush again to finish",
			res->pos.cseg, res->pos.seg_off);
		return EXIT_CANCELLED;
	default:
		cli_err(a->dev, "writeback stopped: %s%s%s", pce_wb_stop_str(res->stop),
			res->err ? ": " : "", res->err ? strerror(-res->err) : "");
		return EXIT_OPERATIONAL;
	}
}

/* Plan, announce, write back (unless a dry run), report. */
static int flush_engine(struct pce *e, const struct flush_args *a, uint64_t dirty)
{
	struct flush_state s = { .a = a };
	struct pce_wb_result p, res = { 0 };
	int rc = plan(e, a, &p);

	if (rc)
		return rc;
	s.total = p.bytes;
	announce(e, a, &p, dirty);
	if (a->dry_run) {
		rc = (p.ksets || p.last_ksets) ? EXIT_UNCORRECTED : EXIT_OK;
	} else {
		test_hooks(e, &s);
		rc = run(e, a, &s, &res);
		if (!rc)
			rc = report(a, &res);
	}
	if (!cli.quiet)
		printf("%" PRIu64 "/%" PRIu64 " bytes written back\n", res.bytes, p.bytes);
	pce_wb_result_free(&res);
	pce_wb_result_free(&p);
	return rc;
}

int cmd_flush(int argc, char **argv)
{
	struct flush_args a = { 0 };
	uint64_t dirty = 0;
	struct pce *e;
	int rc = parse(argc, argv, &a);

	if (rc != -2)
		return rc;
	rc = precheck(&a, &dirty);
	if (!rc)
		rc = open_engine(&a, &e);
	if (rc)
		return rc;
	rc = flush_engine(e, &a, dirty);
	pce_close(e);
	return rc;
}
