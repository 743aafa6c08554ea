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
#include "verdict.h"
#include "engine/engine.h"

static const char usage_text[] =
	"usage: pcache flush [--dry-run] [--no-verify-data] [--no-metadata-update] [--batch N]\n"
	"                    [--json [-u]] [-q] [-v] DEV BACKING\n\n"
	"Writes every dirty byte of the cache DEV back to BACKING in the kernel's order and\n"
	"advances dirty_tail as it goes: an interrupted flush resumes where it stopped.\n"
	"Ends with 'N/M bytes written back'.  Exit: 0 the cache is clean, 4 dirty data\n"
	"remains (a dry run found dirty data, or ranges could not be written: listed),\n"
	"8 error (damaged cache: run pcache fsck; device busy or missing), 16 usage,\n"
	"32 interrupted.\n\n"
	"  --dry-run             list, kset by kset, the ranges that would be written; write\n"
	"                        nothing\n"
	"  --no-verify-data      write data back without checking its checksum (not what the\n"
	"                        kernel does: by default, on a cache with data_crc, a key\n"
	"                        whose data does not match stops the flush before its kset)\n"
	"  --verify-data         the default; accepted for compatibility\n"
	"  --no-metadata-update  write the data but never move dirty_tail (copy the dirty data\n"
	"                        to another device); exit 0 once all of it is written\n"
	"  --batch N             ksets per backing flush (default 64; 1: exactly the kernel)\n"
	"  --json                a summary as JSON (an array of one object) instead of the\n"
	"                        text on standard output\n"
	"  -u, --human           with --json: sizes for people\n"
	"  -q, --quiet           print nothing but errors\n"
	"  -v, --verbose         one line per batch\n";

struct flush_args {
	bool dry_run, verify, no_meta;
	unsigned batch;
	const char *dev, *backing;
	struct cli_backing bk;        /* BACKING resolved: its size in whole sectors */
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
		{ "verify-data", no_argument, NULL, CLI_OPT_VERIFY },
		{ "no-verify-data", no_argument, NULL, CLI_OPT_NO_VERIFY },
		{ "no-metadata-update", no_argument, NULL, 'M' },
		{ "batch", required_argument, NULL, 'b' },
		REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 }
	};
	uint64_t v;
	int c, rc;

	a->verify = true;
	while ((c = getopt_long(argc, argv, "uqvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': a->dry_run = true; break;
		case CLI_OPT_VERIFY: a->verify = true; break;
		case CLI_OPT_NO_VERIFY: a->verify = false; break;
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
	/* before anything is opened for write: never the cache as its own backing device */
	rc = cli_backing_opt(&a->bk, a->backing, false);
	return rc != -2 ? rc : cli_backing_resolve(&a->bk, a->dev);
}

/* The metadata check: whatever the kernel would refuse, or any error, stops us here. */
static int precheck(const struct flush_args *a, uint64_t *dirty)
{
	struct pcm_check_opts o = { .backing_size = a->bk.size };
	struct pcm_check_result r;
	enum cli_sb_kind kind;
	struct pcm_dev *dev;
	char why[256];
	int crc, rc = cli_open_dev(a->dev, PCM_DEV_RDONLY, &dev);

	if (rc)
		return rc;
	/* a backing device smaller than the cached data is the wrong one, not damage */
	rc = cli_backing_fits(&a->bk, a->dev, dev);
	if (!rc && (crc = pcm_check_run(dev, &o, &r))) {
		cli_err(a->dev, "cannot check the metadata: %s", strerror(-crc));
		rc = EXIT_OPERATIONAL;
	} else if (!rc && (kind = cli_sb_words(dev, why, sizeof(why))) != CLI_SB_OK) {
		/* not a pcache device, or a truncated one: the words of every command */
		cli_err(a->dev, "%s", why);
		if (kind == CLI_SB_BAD)
			cli_hint("run 'pcache fsck -n %s' for details", a->dev);
		rc = EXIT_OPERATIONAL;
	}
	pcm_dev_close(dev);
	if (rc)
		return rc;
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
		cli_note("pcache flush: %s, %s written back", CLI_COUNT(ksets, "kset", "ksets"),
			 CLI_BYTES(done));
	snprintf(what, sizeof(what), "writing back %11s/s, %4.0f s left",
		 cli_fmt_size((uint64_t)rate, r, sizeof(r)),
		 rate > 0 ? (double)(s->total - done) / rate : 0.0);
	cli_progress_bytes(what, done, s->total);
}

/* --dry-run: one line per kset, then one line per range it would write. */
static void on_kset(struct pcm_pos at, unsigned keys, const struct pce_wb_extent *x, size_t n,
		    void *arg)
{
	uint64_t bytes = 0;

	(void)arg;
	for (size_t i = 0; i < n; i++)
		bytes += x[i].len;
	printf("kset %u:%u: %s, %s, %s\n", at.cseg, at.seg_off, CLI_COUNT(keys, "key", "keys"),
	       CLI_COUNT(n, "range", "ranges"), CLI_BYTES(bytes));
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
	if (err.err == -EBUSY && err.path)
		cli_err_busy(err.path, NULL);
	else
		fprintf(stderr, "pcache flush: %s\n", err.msg);
	if (err.err == -EUCLEAN)
		cli_hint("run 'pcache fsck -n %s' for details", a->dev);
	return EXIT_OPERATIONAL;
}

/* A data checksum mismatch stops the writeback as the kernel's does: exit 4, not 8. */
static bool crc_stop(const struct pce_wb_result *r)
{
	return r->stop == PCE_WB_BAD_KEY && r->bad_verdict == PCM_KEY_BAD_DATA_CRC;
}

/*
 * The dry pass: exactly what a flush from the current dirty_tail writes, batch by batch.
 * A dry run checks the data as the flush would (and stops where it would stop); before a
 * real flush it only counts the bytes, the flush itself checks them.
 */
static int plan(struct pce *e, const struct flush_args *a, struct pce_wb_result *p)
{
	struct pce_wb_opts o = { .dry_run = true, .batch_ksets = a->batch,
				 .verify_data = a->dry_run && a->verify,
				 .on_kset = a->dry_run && !cli.json ? on_kset : NULL };
	int rc = pce_writeback(e, &o, p);

	if (!rc && (p->stop == PCE_WB_CLEAN || crc_stop(p)))
		return EXIT_OK;
	cli_err(a->dev, "cannot plan the writeback: %s", rc ? strerror(-rc) :
		pce_wb_stop_str(p->stop));
	return EXIT_OPERATIONAL;
}

static void announce(const struct flush_args *a, const struct pce_status *st,
		     const struct pce_wb_result *p, uint64_t dirty)
{
	if (!p->ksets && !p->last_ksets && !crc_stop(p)) {
		cli_note("%s: clean (dirty_tail = key_head = %u:%u): nothing to write back", a->dev,
			 st->key_head.cseg, st->key_head.seg_off);
		return;
	}
	if (crc_stop(p)) {    /* a dry run that stops: it counted the ksets up to the stop */
		cli_note("%s: %s of dirty data (dirty_tail %u:%u, key_head %u:%u): would write "
			 "%s, %s, to %s, then stop", a->dev, CLI_BYTES(dirty),
			 st->dirty_tail.cseg, st->dirty_tail.seg_off, st->key_head.cseg,
			 st->key_head.seg_off, CLI_COUNT(p->ksets, "kset", "ksets"),
			 CLI_BYTES(p->bytes), a->backing);
		return;
	}
	cli_note("%s: %s of dirty data in %s (dirty_tail %u:%u, key_head %u:%u): %s %s to %s",
		 a->dev, CLI_BYTES(dirty), CLI_COUNT(p->ksets, "kset", "ksets"),
		 st->dirty_tail.cseg, st->dirty_tail.seg_off, st->key_head.cseg, st->key_head.seg_off,
		 a->dry_run ? "would write" : "writing", CLI_BYTES(p->bytes), a->backing);
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
	cli_err(a->dev, "%zu %s could not be written back; dirty_tail stays at %u:%u",
		res->n_failed, res->n_failed == 1 ? "range" : "ranges", res->pos.cseg,
		res->pos.seg_off);
	return EXIT_UNCORRECTED;
}

/* The key whose data does not match its checksum: listed, and where the flush stops. */
static int report_crc(const struct flush_args *a, const struct pce_wb_result *r)
{
	const struct pce_wb_extent *k = &r->bad_key;

	cli_err(a->dev, "cannot write back %u bytes at offset %" PRIu64 " (key %u of kset %u:%u, "
		"cached at %u:%u): data checksum mismatch", k->len, k->off, r->bad_index,
		r->bad_kset.cseg, r->bad_kset.seg_off, k->cseg, k->seg_off);
	if (a->dry_run)
		cli_err(a->dev, "a flush would stop before kset %u:%u, as the kernel's writeback does",
			r->bad_kset.cseg, r->bad_kset.seg_off);
	else if (a->no_meta)
		cli_err(a->dev, "stopped before kset %u:%u, as the kernel's writeback does",
			r->bad_kset.cseg, r->bad_kset.seg_off);
	else
		cli_err(a->dev, "stopped before kset %u:%u, as the kernel's writeback does: "
			"dirty_tail stays at %u:%u, the cache stays dirty", r->bad_kset.cseg,
			r->bad_kset.seg_off, r->pos.cseg, r->pos.seg_off);
	cli_hint("run 'pcache fsck -n %s' for details", a->dev);
	return EXIT_UNCORRECTED;
}

/* Exit code and messages for how the writeback ended. */
static int report(const struct flush_args *a, const struct pce_wb_result *res)
{
	if (crc_stop(res))
		return report_crc(a, res);
	switch (res->stop) {
	case PCE_WB_CLEAN:
		return EXIT_OK;
	case PCE_WB_IO_FAILED:
		return report_failed(a, res);
	case PCE_WB_BAD_KEY:
		cli_err(a->dev, "kset %u:%u key %u: %s: stopped before this kset (dirty_tail %u:%u)",
			res->bad_kset.cseg, res->bad_kset.seg_off, res->bad_index,
			pcm_key_verdict_str(res->bad_verdict), res->pos.cseg, res->pos.seg_off);
		cli_hint("run 'pcache fsck -n %s' for details", a->dev);
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

/* ---- --json: one summary object ---- */

static json_object *range_json(uint64_t off, uint64_t len, const char *reason)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "offset", cli_json_u64(off));
	json_object_object_add(o, "length", cli_json_size(len));
	json_object_object_add(o, "reason", json_object_new_string(reason));
	return o;
}

/* What was not written: the failed ranges, or the key whose data does not match. */
static json_object *not_written_json(const struct pce_wb_result *r)
{
	json_object *arr = json_object_new_array(), *o;

	for (size_t i = 0; i < r->n_failed; i++) {
		o = range_json(r->failed[i].off, r->failed[i].len, "write_failed");
		json_object_object_add(o, "error", json_object_new_string(strerror(-r->err)));
		json_object_object_add(o, "cache_pos", NULL);
		json_object_object_add(o, "kset", NULL);
		json_object_object_add(o, "key", NULL);
		json_object_array_add(arr, o);
	}
	if (crc_stop(r)) {
		o = range_json(r->bad_key.off, r->bad_key.len, "data_crc_mismatch");
		json_object_object_add(o, "error", NULL);
		json_object_object_add(o, "cache_pos", cli_json_pos((struct pcm_pos){
			.cseg = r->bad_key.cseg, .seg_off = r->bad_key.seg_off }));
		json_object_object_add(o, "kset", cli_json_pos(r->bad_kset));
		json_object_object_add(o, "key", json_object_new_int64(r->bad_index));
		json_object_array_add(arr, o);
	}
	return arr;
}

static const char *result_str(const struct flush_args *a, const struct pce_wb_result *r)
{
	if (crc_stop(r))
		return "data_crc_mismatch";
	switch (r->stop) {
	case PCE_WB_CLEAN:
		return a->dry_run ? "dry_run" : a->no_meta ? "written" : "clean";
	case PCE_WB_IO_FAILED: return "write_failed";
	case PCE_WB_CANCELLED: return "cancelled";
	default: return "error";
	}
}

/* r: how the flush (or the dry run) ended; p: the plan. */
static void print_json(struct pce *e, const struct flush_args *a, uint64_t dirty,
		       const struct pce_wb_result *p, const struct pce_wb_result *r)
{
	json_object *arr = json_object_new_array(), *o = json_object_new_object();
	struct pce_status st;
	struct pcm_pos stop = crc_stop(r) ? r->bad_kset : r->pos;

	pce_status(e, &st);
	json_object_object_add(o, "device", json_object_new_string(a->dev));
	json_object_object_add(o, "backing", json_object_new_string(a->backing));
	json_object_object_add(o, "dry_run", json_object_new_boolean(a->dry_run));
	json_object_object_add(o, "verify_data", json_object_new_boolean(a->verify && st.data_crc));
	json_object_object_add(o, "result", json_object_new_string(result_str(a, r)));
	json_object_object_add(o, "dirty_bytes", cli_json_size(dirty));
	json_object_object_add(o, "ksets", cli_json_u64(p->ksets));
	json_object_object_add(o, "bytes_to_write", cli_json_size(p->bytes));
	json_object_object_add(o, "bytes_written", cli_json_size(a->dry_run ? 0 : r->bytes));
	json_object_object_add(o, "dirty_tail", cli_json_pos(st.dirty_tail));
	json_object_object_add(o, "key_head", cli_json_pos(st.key_head));
	json_object_object_add(o, "stopped_at", r->stop == PCE_WB_CLEAN ? NULL :
			       cli_json_pos(stop));
	json_object_object_add(o, "not_written", not_written_json(r));
	json_object_array_add(arr, o);
	cli_json_print(arr);
	json_object_put(arr);
}

/* The last line: "7.18 MiB (7532544 bytes) written back", or "X of Y written back". */
static void print_written(uint64_t done, uint64_t total)
{
	if (done == total)
		printf("%s written back\n", CLI_BYTES(done));
	else
		printf("%s of %s written back\n", CLI_BYTES(done), CLI_BYTES(total));
}

/* Plan, announce, write back (unless a dry run), report. */
static int flush_engine(struct pce *e, const struct flush_args *a, uint64_t dirty)
{
	struct flush_state s = { .a = a };
	struct pce_wb_result p, res = { 0 };
	struct pce_status st;
	int rc;

	pce_status(e, &st);
	rc = plan(e, a, &p);
	if (rc)
		return rc;
	s.total = p.bytes;
	announce(a, &st, &p, dirty);
	if (a->dry_run) {
		rc = crc_stop(&p) ? report_crc(a, &p) :
		     (p.ksets || p.last_ksets) ? EXIT_UNCORRECTED : EXIT_OK;
	} else {
		test_hooks(e, &s);
		rc = run(e, a, &s, &res);
		if (!rc)
			rc = report(a, &res);
	}
	if (cli.json && rc != EXIT_OPERATIONAL)
		print_json(e, a, dirty, &p, a->dry_run ? &p : &res);
	else if (!cli.quiet && !cli.json)
		print_written(res.bytes, p.bytes);
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
