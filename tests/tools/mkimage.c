/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mkimage: builds dm-pcache test images the way the kernel would fill them.
 * Formats a sparse file, then appends pseudo-random writes through the
 * library's appender (deterministic from --seed), and optionally writes a
 * model file holding the logical content a replay of the image must serve.
 *
 * The model is built from the ksets the appender actually wrote (its hook),
 * using the bytes the writes carried, so keys still in the open kset at the
 * end (--no-final-flush, or after running out of segments) are not in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "pcachemeta.h"

enum { MK_OK = 0, MK_ERR = 8, MK_USAGE = 16 };

static const char usage_text[] =
	"usage: mkimage --size BYTES [--data-crc] [--gc-percent N] --writes N [--seed S]\n"
	"               [--range BYTES] [--min-len B] [--max-len B] [--align B]\n"
	"               [--flush-every K] [--clean-pct P] [--model FILE] [--no-final-flush]\n"
	"               [--persist] [--quiet] IMG\n\n"
	"Creates IMG (sparse, BYTES long), formats it as a dm-pcache cache and appends N\n"
	"pseudo-random writes as the kernel would log them.\n\n"
	"  --size BYTES       image size (suffixes K M G T)\n"
	"  --data-crc         format with data CRCs\n"
	"  --gc-percent N     GC threshold stored in cache_info (default 70)\n"
	"  --writes N         number of writes\n"
	"  --seed S           PRNG seed (default 1)\n"
	"  --range BYTES      writes fall inside [0, BYTES) (default 64M)\n"
	"  --min-len B        shortest write (default 4096)\n"
	"  --max-len B        longest write (default 65536)\n"
	"  --align B          offsets and lengths are multiples of B (default 4096, >= 512)\n"
	"  --flush-every K    FLUSH after every K writes (default 0: only at the end)\n"
	"  --clean-pct P      percentage of writes logged as CLEAN read-miss fills\n"
	"  --model FILE       write the expected logical content (RANGE bytes, sparse)\n"
	"  --no-final-flush   leave the last open kset unwritten\n"
	"  --persist          persist every record as the kernel orders it (slow on files)\n"
	"  --quiet            no summary line\n\n"
	"Exit: 0 ok, 8 error (also: cache full, there is no GC), 16 usage.\n";

struct mk_opts {
	uint64_t size, writes, seed, range, min_len, max_len, align, flush_every, clean_pct;
	struct pcm_format_opts fmt;
	bool have_size, have_writes, no_final_flush, persist, quiet;
	const char *model, *img;
};

/* A write whose keys are not all in written ksets yet: the model waits for them. */
struct pending {
	uint64_t off;
	uint32_t len, done;
	uint8_t *data;
};

struct model {
	uint8_t *map;                 /* range bytes, MAP_SHARED on the model file */
	uint64_t range;
	struct pending *q;            /* FIFO: q[head .. tail) */
	size_t head, tail, cap;
	uint64_t keys, ksets;
	bool broken;                  /* a key did not match the pending writes */
};

/* splitmix64: offsets, lengths and per-write data seeds from one seed. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Pseudo-random data, 8 bytes per xorshift step: fast enough for gigabytes. */
static void fill_data(uint8_t *p, uint32_t len, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (uint32_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "mkimage: %s%s%s\ntry 'mkimage --help'\n", msg, arg ? ": " : "",
		arg ? arg : "");
	return MK_USAGE;
}

/* Where a numeric option goes; NULL for options that are not numbers. */
static uint64_t *value_slot(int c, struct mk_opts *o)
{
	switch (c) {
	case 's': return &o->size;
	case 'w': return &o->writes;
	case 'S': return &o->seed;
	case 'r': return &o->range;
	case 'm': return &o->min_len;
	case 'M': return &o->max_len;
	case 'a': return &o->align;
	case 'f': return &o->flush_every;
	case 'p': return &o->clean_pct;
	}
	return NULL;
}

/* One numeric option: sizes accept suffixes (K M G T), counts are plain numbers. */
static int parse_value(int c, const char *arg, struct mk_opts *o)
{
	uint64_t *dst = value_slot(c, o);
	int rc;

	if (!dst)
		return MK_USAGE;
	rc = strchr("srmMa", c) ? cli_parse_size(arg, dst) : cli_parse_uint(arg, UINT64_MAX, dst);
	if (rc)
		return usage_error("bad number", arg);
	o->have_size |= c == 's';
	o->have_writes |= c == 'w';
	return 0;
}

/* Consistency of the numbers: alignment, lengths inside the range, percentages. */
static int check_opts(const struct mk_opts *o)
{
	if (!o->have_size || !o->have_writes || !o->img)
		return usage_error("--size, --writes and IMG are required", NULL);
	if (o->align < PCM_SECTOR || o->align % PCM_SECTOR)
		return usage_error("--align must be a multiple of 512", NULL);
	if (o->min_len == 0 || o->min_len % o->align || o->max_len % o->align ||
	    o->range % o->align)
		return usage_error("--min-len, --max-len and --range must be multiples of --align",
				   NULL);
	if (o->min_len > o->max_len || o->max_len > o->range || o->max_len > UINT32_MAX / 2)
		return usage_error("need 0 < --min-len <= --max-len <= --range (and < 2G)", NULL);
	if (o->clean_pct > 100 || o->fmt.gc_percent > PCM_GC_PERCENT_MAX)
		return usage_error("--clean-pct is 0-100, --gc-percent 0-90", NULL);
	return MK_OK;
}

static int parse(int argc, char **argv, struct mk_opts *o)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' }, { "writes", required_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 'S' }, { "range", required_argument, NULL, 'r' },
		{ "min-len", required_argument, NULL, 'm' }, { "max-len", required_argument, NULL, 'M' },
		{ "align", required_argument, NULL, 'a' },
		{ "flush-every", required_argument, NULL, 'f' },
		{ "clean-pct", required_argument, NULL, 'p' },
		{ "gc-percent", required_argument, NULL, 'g' },
		{ "model", required_argument, NULL, 'o' }, { "data-crc", no_argument, NULL, 'c' },
		{ "no-final-flush", no_argument, NULL, 'n' }, { "persist", no_argument, NULL, 'P' },
		{ "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	uint64_t v;
	int c, rc;

	*o = (struct mk_opts){ .seed = 1, .range = 64ull << 20, .min_len = 4096,
			       .max_len = 65536, .align = 4096,
			       .fmt.gc_percent = PCM_GC_PERCENT_DEFAULT };
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o->fmt.data_crc = true; break;
		case 'n': o->no_final_flush = true; break;
		case 'P': o->persist = true; break;
		case 'q': o->quiet = true; break;
		case 'o': o->model = optarg; break;
		case 'h': fputs(usage_text, stdout); exit(MK_OK);
		case 'g':
			if (cli_parse_uint(optarg, 1000, &v))
				return usage_error("bad number", optarg);
			o->fmt.gc_percent = (unsigned)v;
			break;
		case '?': return MK_USAGE;
		default:
			rc = parse_value(c, optarg, o);
			if (rc)
				return rc;
		}
	}
	if (optind + 1 == argc)
		o->img = argv[optind];
	else if (optind < argc)
		return usage_error("one IMG expected", NULL);
	return check_opts(o);
}

static int err(const char *path, const char *what, int e)
{
	fprintf(stderr, "mkimage: %s: %s: %s\n", path, what, strerror(e < 0 ? -e : e));
	return MK_ERR;
}

/* A sparse file of exactly size bytes, previous content dropped. */
static int make_sparse(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		int e = -errno;

		close(fd);
		return e;
	}
	return close(fd) ? -errno : 0;
}

/* Creates and formats the image; leaves the device open for writing. */
static int format_image(const struct mk_opts *o, struct pcm_dev **dev)
{
	struct pcm_format_plan plan;
	int rc = pcm_format_plan(o->size, &o->fmt, &plan);

	if (rc)
		return err(o->img, "cannot format an image of this size", rc);
	rc = make_sparse(o->img, o->size);
	if (rc)
		return err(o->img, "create", rc);
	/* pwrite beats page faults on a sparse file 2:1; --persist keeps pmem-like msync. */
	rc = pcm_dev_open(o->img, PCM_DEV_RDWR | (o->persist ? 0 : PCM_DEV_NOMAP), dev);
	if (rc)
		return err(o->img, "open", rc);
	rc = pcm_format_write(*dev, &plan, NULL, NULL);
	if (rc)
		return err(o->img, "format", rc);
	return MK_OK;
}

/* Load and replay, as the kernel does before the first write. */
static int load_cache(const char *img, struct pcm_dev *dev, struct pcm_cache **c,
		      struct pcm_replay **r)
{
	struct pcm_open_status st;
	int rc = pcm_cache_open(dev, c, &st);

	if (rc) {
		fprintf(stderr, "mkimage: %s: load: %s\n", img, pcm_open_error_str(&st));
		return MK_ERR;
	}
	rc = pcm_replay_run(*c, NULL, r);
	if (rc)
		return err(img, "replay", rc);
	if ((*r)->failed) {
		fprintf(stderr, "mkimage: %s: replay: %s\n", img, pcm_replay_error_str(*r));
		return MK_ERR;
	}
	return MK_OK;
}

/* Model file of range bytes, mapped shared; zeros wherever nothing is written. */
static int model_open(struct model *m, const char *path, uint64_t range)
{
	int fd, rc;

	m->range = range;
	if (!path)
		return MK_OK;
	rc = make_sparse(path, range);
	if (rc)
		return err(path, "create", rc);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err(path, "open", errno);
	m->map = mmap(NULL, range, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		return err(path, "mmap", errno);
	}
	return MK_OK;
}

static void model_close(struct model *m)
{
	for (size_t i = m->head; i < m->tail; i++)
		free(m->q[i].data);
	free(m->q);
	if (m->map)
		munmap(m->map, m->range);
}

/* Queues a write (owning data) until the ksets holding its keys are written. */
static int model_push(struct model *m, uint64_t off, uint32_t len, uint8_t *data)
{
	if (m->head > 0 && m->tail == m->cap) {
		memmove(m->q, m->q + m->head, (m->tail - m->head) * sizeof(*m->q));
		m->tail -= m->head;
		m->head = 0;
	}
	if (m->tail == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct pending *q = realloc(m->q, cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		m->q = q;
		m->cap = cap;
	}
	m->q[m->tail++] = (struct pending){ .off = off, .len = len, .data = data };
	return 0;
}

/* A written key: its bytes (taken from the oldest pending write) become logical content. */
static void model_key(struct model *m, const struct pcm_key *k)
{
	struct pending *p = m->head < m->tail ? &m->q[m->head] : NULL;

	if (!p || k->off != p->off + p->done || k->len > p->len - p->done) {
		m->broken = true;
		return;
	}
	memcpy(m->map + k->off, p->data + p->done, k->len);
	p->done += k->len;
	if (p->done == p->len) {
		free(p->data);
		m->head++;
	}
}

/* Appender hook: counts ksets and keys, feeds the model. */
static void on_kset(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	struct model *m = arg;

	(void)at;
	m->ksets++;
	m->keys += n;
	for (unsigned i = 0; m->map && i < n; i++)
		model_key(m, &keys[i]);
}

/* The i-th pseudo-random write: offset, length, CLEAN or not, data seed. */
static void next_write(const struct mk_opts *o, uint64_t *rng, uint64_t *off, uint32_t *len,
		       uint32_t *flags, uint64_t *dseed)
{
	uint64_t nlen = (o->max_len - o->min_len) / o->align + 1;

	*len = (uint32_t)(o->min_len + rng_next(rng) % nlen * o->align);
	*off = rng_next(rng) % ((o->range - *len) / o->align + 1) * o->align;
	*flags = rng_next(rng) % 100 < o->clean_pct ? PCM_KEY_F_CLEAN : 0;
	*dseed = rng_next(rng);
}

/* One write: data generated, appended, queued for the model. */
static int do_write(const struct mk_opts *o, struct pcm_appender *a, struct model *m,
		    uint64_t *rng, uint8_t *scratch)
{
	uint64_t off, dseed;
	uint32_t len, flags;
	uint8_t *data = scratch;
	int rc;

	next_write(o, rng, &off, &len, &flags, &dseed);
	if (m->map && !(data = malloc(len)))
		return -ENOMEM;
	fill_data(data, len, dseed);
	if (m->map && (rc = model_push(m, off, len, data))) {
		free(data);
		return rc;
	}
	rc = pcm_append_write(a, off, data, len, flags);
	if (rc && m->map)
		free(m->q[--m->tail].data);
	return rc;
}

/* The write loop with periodic FLUSHes; stops at the first error. */
static int write_all(const struct mk_opts *o, struct pcm_appender *a, struct model *m,
		     uint64_t *done)
{
	uint64_t rng = o->seed;
	uint8_t *scratch = malloc(o->max_len + 8);
	int rc = scratch ? 0 : -ENOMEM;

	for (*done = 0; !rc && *done < o->writes; ) {
		rc = do_write(o, a, m, &rng, scratch);
		if (!rc && ++*done % (o->flush_every ? o->flush_every : UINT64_MAX) == 0)
			rc = pcm_append_flush(a);
	}
	free(scratch);
	return rc;
}

static void summary(const struct mk_opts *o, const struct model *m, struct pcm_appender *a,
		    uint64_t done)
{
	struct pcm_pos h = pcm_appender_key_head(a);

	if (o->quiet)
		return;
	printf("writes=%" PRIu64 " ksets=%" PRIu64 " keys=%" PRIu64 " open_keys=%u"
	       " key_head=%" PRIu32 ":%" PRIu32 " segs_used=%" PRIu32 "\n", done, m->ksets,
	       m->keys, pcm_appender_open_keys(a), h.cseg, h.seg_off, pcm_appender_segs_used(a));
}

/* Writes, final flush, summary; the image stays a loadable log even after an error. */
static int fill_image(const struct mk_opts *o, struct pcm_cache *c, const struct pcm_replay *r,
		      struct model *m)
{
	struct pcm_appender *a;
	uint64_t done;
	int rc = pcm_appender_open(c, r, &a), frc = 0;

	if (rc)
		return err(o->img, "appender", rc);
	pcm_appender_set_persist(a, o->persist);
	pcm_appender_set_hook(a, on_kset, m);
	rc = write_all(o, a, m, &done);
	if (!o->no_final_flush)
		frc = pcm_append_flush(a);
	summary(o, m, a, done);
	pcm_appender_free(a);
	if (rc == -ENOSPC)
		fprintf(stderr, "mkimage: %s: cache full after %" PRIu64 " of %" PRIu64
			" writes (no free segment; mkimage has no GC)\n", o->img, done, o->writes);
	else if (rc || frc)
		return err(o->img, rc ? "write" : "flush", rc ? rc : frc);
	if (m->broken) {
		fprintf(stderr, "mkimage: %s: internal error: keys do not match the writes\n",
			o->img);
		return MK_ERR;
	}
	return rc ? MK_ERR : MK_OK;
}

int main(int argc, char **argv)
{
	struct mk_opts o;
	struct model m = { 0 };
	struct pcm_dev *dev = NULL;
	struct pcm_cache *c = NULL;
	struct pcm_replay *r = NULL;
	int rc = parse(argc, argv, &o);

	if (rc)
		return rc;
	rc = format_image(&o, &dev);
	if (!rc)
		rc = load_cache(o.img, dev, &c, &r);
	if (!rc)
		rc = model_open(&m, o.model, o.range);
	if (!rc)
		rc = fill_image(&o, c, r, &m);
	model_close(&m);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return rc;
}
