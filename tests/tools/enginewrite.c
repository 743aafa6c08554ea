/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * enginewrite: drives the engine (pcache-tools/engine) directly from a write
 * list, so the kernel interop suite can load images the engine wrote without
 * going through nbd.
 *
 * LIST has one write per line, `OFF LEN SRC` (bytes; tests/kernel/model.py
 * genwrites): LEN bytes of BLOB from SRC written at OFF of the logical device.
 * The engine opens CACHE (formatted) over BACKING with one open kset, one
 * data head and one thread, so the log holds the writes in list order.
 *
 * --cut N stops the process at the N-th persist the engine asks for, before
 * that persist happens and without closing anything: what a power cut leaves
 * on pmem when every store issued so far still reached the media (the page
 * cache of the mapped file keeps them).  Before stopping it writes
 * `durable D issued I` to the --progress file: writes [0, D) were
 * acknowledged by a FLUSH, writes [D, I) were issued but not acknowledged.
 * --count-persists runs to the end and prints how many persists there were,
 * and after each FLUSH of the list `flush_end N` (N persists so far: a cut at N
 * stops before the last persist of that FLUSH, its kset written but not persisted)
 * and `wb_persists A B` around the --wb-at writeback (persists A+1 .. B are its
 * own), to choose cut points.
 *
 * Prints one summary line: writes, flushes, writeback and GC counts and the
 * engine status at the end.  Exit: 0 ok, 8 error, 16 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "device_int.h"
#include "engine/engine_int.h"

enum { EW_OK = 0, EW_ERR = 8, EW_USAGE = 16 };

static const char usage_text[] =
	"usage: enginewrite [--flush-every K] [--gc-percent P] [--wb-at N --wb-ksets K]\n"
	"                   [--cut N --progress FILE] [--count-persists] [--persist]\n"
	"                   [--verify-data] CACHE BACKING LIST BLOB\n\n"
	"  --flush-every K    FLUSH after every K writes (always a FLUSH at the end)\n"
	"  --gc-percent P     set gc_percent (as dmsetup message) before writing\n"
	"  --wb-at N          after write N: FLUSH, then write back --wb-ksets ksets\n"
	"  --wb-ksets K       ksets the partial writeback copies (default 1)\n"
	"  --cut N            stop at the N-th persist, without closing (power cut)\n"
	"  --progress FILE    where --cut writes `durable D issued I`\n"
	"  --count-persists   print the number of persists (implies --persist)\n"
	"  --persist          persist (default: skip pmem flushes, a file needs none)\n"
	"  --verify-data      check data CRCs at open, as the kernel's load does\n";

struct ew_opts {
	uint64_t flush_every, gc_percent, wb_at, wb_ksets, cut;
	bool set_gc, count, persist, verify;
	const char *progress, *cache, *backing, *list, *blob;
};

/* The cut hook's state: a persist function has no argument to carry it. */
static struct {
	pmem2_persist_fn real;
	uint64_t n, cut;
	uint64_t durable, issued;
	int fd;
} cut;

static void cut_persist(const void *p, size_t len)
{
	char line[64];
	int n;

	if (++cut.n == cut.cut) {
		n = snprintf(line, sizeof(line), "durable %" PRIu64 " issued %" PRIu64 "\n",
			     cut.durable, cut.issued);
		if (cut.fd < 0 || write(cut.fd, line, (size_t)n) != n)
			_exit(EW_ERR);
		_exit(EW_OK);
	}
	cut.real(p, len);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "enginewrite: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	return EW_USAGE;
}

static int parse_opts(int argc, char **argv, struct ew_opts *o)
{
	static const struct option lo[] = {
		{ "flush-every", required_argument, NULL, 'f' },
		{ "gc-percent", required_argument, NULL, 'g' },
		{ "wb-at", required_argument, NULL, 'w' },
		{ "wb-ksets", required_argument, NULL, 'k' },
		{ "cut", required_argument, NULL, 'c' },
		{ "progress", required_argument, NULL, 'p' },
		{ "count-persists", no_argument, NULL, 'C' },
		{ "persist", no_argument, NULL, 'P' },
		{ "verify-data", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	uint64_t *num[128] = { ['f'] = &o->flush_every, ['g'] = &o->gc_percent,
			       ['w'] = &o->wb_at, ['k'] = &o->wb_ksets, ['c'] = &o->cut };
	int c;

	*o = (struct ew_opts){ .wb_ksets = 1 };
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o->progress = optarg; break;
		case 'C': o->count = o->persist = true; break;
		case 'P': o->persist = true; break;
		case 'V': o->verify = true; break;
		case 'h': fputs(usage_text, stdout); exit(EW_OK);
		case '?': return EW_USAGE;
		default:
			if (cli_parse_uint(optarg, UINT32_MAX, num[c]))
				return usage_error("bad number", optarg);
			o->set_gc |= c == 'g';
		}
	}
	if (optind + 4 != argc)
		return usage_error("CACHE BACKING LIST BLOB expected", NULL);
	if (o->cut && !o->progress)
		return usage_error("--cut needs --progress", NULL);
	o->persist |= o->cut != 0;   /* a cut counts persists: they must happen */
	o->cache = argv[optind];
	o->backing = argv[optind + 1];
	o->list = argv[optind + 2];
	o->blob = argv[optind + 3];
	return EW_OK;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "enginewrite: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	return EW_ERR;
}

static int read_blob(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !(*buf = malloc((size_t)st.st_size + 1)))
		rc = -errno;
	else if (read(fd, *buf, (size_t)st.st_size) != st.st_size)
		rc = -EIO;
	*len = (size_t)st.st_size;
	close(fd);
	return rc;
}

static void print_status(struct pce *e, uint64_t writes, uint64_t flushes,
			 const struct pce_wb_result *wr)
{
	struct pce_status st;

	pce_status(e, &st);
	printf("writes %" PRIu64 " flushes %" PRIu64 " wb_ksets %" PRIu64
	       " reclaimed %" PRIu64 " segs_used %" PRIu32 " key_head %u:%u dirty_tail %u:%u"
	       " key_tail %u:%u persists %" PRIu64 "\n",
	       writes, flushes, wr->ksets, st.reclaimed_segs, st.segs_used,
	       st.key_head.cseg, st.key_head.seg_off, st.dirty_tail.cseg, st.dirty_tail.seg_off,
	       st.key_tail.cseg, st.key_tail.seg_off, cut.n);
}

/* FLUSH, then writeback of at most o->wb_ksets ksets (the rest stays dirty). */
static int partial_writeback(struct pce *e, const struct ew_opts *o, struct pce_wb_result *wr)
{
	struct pce_wb_opts wo = { .verify_data = o->verify, .batch_ksets = 1,
				  .max_ksets = o->wb_ksets };
	int rc = pce_flush(e);
	uint64_t before = cut.n;

	if (rc)
		return fail("flush before the writeback", rc);
	cut.durable = cut.issued;   /* that FLUSH acknowledged every write so far */
	rc = pce_writeback(e, &wo, wr);
	if (o->count)
		printf("wb_persists %" PRIu64 " %" PRIu64 "\n", before, cut.n);
	if (rc)
		return fail("writeback", rc);
	if (wr->stop != PCE_WB_LIMIT && wr->stop != PCE_WB_CLEAN) {
		fprintf(stderr, "enginewrite: writeback stopped: %s\n", pce_wb_stop_str(wr->stop));
		return EW_ERR;
	}
	return EW_OK;
}

static int run(struct pce *e, const struct ew_opts *o, FILE *list, const uint8_t *blob,
	       size_t blob_len)
{
	struct pce_wb_result wr = { 0 };
	uint64_t off, len, src, n = 0, flushes = 0;
	int rc;

	while (fscanf(list, "%" SCNu64 " %" SCNu64 " %" SCNu64, &off, &len, &src) == 3) {
		if (src + len > blob_len)
			return fail("a write reaches past the blob", -EINVAL);
		cut.issued = n + 1;
		rc = pce_write(e, off, blob + src, (size_t)len, false);
		if (rc)
			return fail("write", rc);
		n++;
		if (o->flush_every && n % o->flush_every == 0) {
			if ((rc = pce_flush(e)))
				return fail("flush", rc);
			flushes++;
			cut.durable = n;
			if (o->count)
				printf("flush_end %" PRIu64 "\n", cut.n);
		}
		if (o->wb_at && n == o->wb_at && (rc = partial_writeback(e, o, &wr)))
			return rc;
	}
	if ((rc = pce_flush(e)))
		return fail("flush", rc);
	cut.durable = n;
	print_status(e, n, flushes + 1, &wr);
	pce_wb_result_free(&wr);
	return EW_OK;
}

int main(int argc, char **argv)
{
	struct ew_opts o;
	struct pce_error err;
	struct pce *e;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	FILE *list;
	int rc = parse_opts(argc, argv, &o);
	struct pce_opts po = { .n_open = 1, .n_heads = 1, .n_shards = 1, .flags = PCE_NO_EXCL };

	if (rc)
		return rc;
	if (!o.persist)
		po.flags |= PCE_NO_PERSIST;
	if (o.verify)
		po.flags |= PCE_VERIFY_DATA;
	if ((rc = read_blob(o.blob, &blob, &blob_len)))
		return fail(o.blob, rc);
	if (!(list = fopen(o.list, "r")))
		return fail(o.list, -errno);
	if (pce_open(o.cache, o.backing, &po, &e, &err)) {
		fprintf(stderr, "enginewrite: %s\n", err.msg);
		return EW_ERR;
	}
	if (o.set_gc && (rc = pce_set_gc_percent(e, (unsigned)o.gc_percent)))
		return fail("gc_percent", rc);
	cut.fd = -1;
	cut.real = e->cdev->persist;
	e->cdev->persist = cut_persist;   /* counts persists; --cut stops at one */
	if (o.cut) {
		cut.cut = o.cut;
		cut.fd = open(o.progress, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (cut.fd < 0)
			return fail(o.progress, -errno);
	}
	rc = run(e, &o, list, blob, blob_len);
	fclose(list);
	free(blob);
	if (rc) {
		pce_abandon(e);
		return rc;
	}
	rc = pce_close(e);
	if (o.count)
		printf("persists %" PRIu64 "\n", cut.n);
	if (o.cut) {
		fprintf(stderr, "enginewrite: --cut %" PRIu64 ": there were only %" PRIu64 " persists\n",
			o.cut, cut.n);
		return EW_ERR;
	}
	return rc ? fail("close", rc) : EW_OK;
}
