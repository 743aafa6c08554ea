/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * crash-harness: crash points of the operations that write a cache.
 *
 * Each operation runs on a copy of its starting image (a memfd) through the
 * recorder (record.h): every persist point, and the bytes written before it,
 * are logged.  Then for every persist point (a crash just before that
 * persist completes, plus one after the last event) the harness builds the
 * images a crash there may leave on pmem: everything persisted before the
 * point, and the writes not yet persisted, each kept or dropped (all
 * combinations up to 6 of them, else each alone kept / alone dropped and
 * random mixes), and, separately, each of those writes torn (its first half,
 * 8-byte aligned, kept).  Each image is an overlay over the durable state.
 *
 * Every image must: open as the kernel would; pass pcm_check_run with the
 * data CRCs (verdict LOADS and no error or critical problem, except the torn
 * end of the log a torn kset leaves, which the kernel itself leaves after a
 * power cut); serve every write acknowledged by a FLUSH (or FUA) before the
 * crash; serve nothing else than, per sector, the last acknowledged write or
 * a later write already issued (sectors carry stamps naming their write).
 * For the engine the backing device is checked at both ends of what a crash may
 * leave there: every backing write issued, and only those a completed backing
 * sync (fdatasync) covers, as after losing a volatile write cache.
 * Format must leave the old cache, one the kernel re-initialises, or an
 * empty cache; repair, cut anywhere, must be finished by the next fsck -y to
 * the same content.
 *
 * Usage: crash-harness [-q] [-v] [-s SEED] [-l LIMIT] [OP...]
 *   OP: format, reformat, append, append-hop, selftest, repair, engine (default: all)
 *   -l: crash images per persist point at most (default 160)
 * Prints TAP lines, one per operation (and per repair case), with the
 * number of persist points and crash images checked; exits 1 on a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "pcachemeta.h"
#include "record.h"

#define SECT 512u
#define DEV_SIZE (512ull << 20)
#define STAMP 0x4b524350u    /* "PCRK" */

/* mark tags: kind in the top byte, a write id below */
enum {
	MK_START = 1,            /* write id is about to be issued */
	MK_DONE = 2,             /* write id returned */
	MK_FLUSHED = 3,          /* a FLUSH returned: every write <= id acknowledged */
	MK_FUA = 4,              /* write id returned and was FUA: acknowledged */
	MK_BACKING = 5,          /* backing write number id issued */
	MK_BKSYNC = 6,           /* backing sync number id issued (fdatasync) */
};
#define MK(kind, id) (((uint64_t)(kind) << 56) | (uint64_t)(id))
#define MK_KIND(t) ((unsigned)((t) >> 56))
#define MK_ID(t) ((t) & ((1ull << 56) - 1))

static bool quiet, verbose, expect_fail;
static unsigned limit = 160;
static uint64_t seed = 1;
static int failures;

/* ---- small helpers ---- */

static uint64_t rnd_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545F4914F6CDD1Dull;
}

/* splitmix64 of the seed: any seed (1 included) gives a non-zero xorshift state. */
static void rnd_seed(uint64_t s)
{
	s += 0x9E3779B97F4A7C15ull;
	s = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ull;
	s = (s ^ (s >> 27)) * 0x94D049BB133111EBull;
	s ^= s >> 31;
	rnd_state = s ? s : 1;
}

static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "crash-harness: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(2);
}

static void must(int rc, const char *what)
{
	if (rc)
		die(what, rc);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("calloc", ENOMEM);
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		die("realloc", ENOMEM);
	return p;
}

struct mfd {
	int fd;
	char path[64];
	uint64_t size;
};

static void mfd_new(struct mfd *m, uint64_t size)
{
	m->fd = memfd_create("crash-harness", MFD_CLOEXEC);
	if (m->fd < 0 || ftruncate(m->fd, (off_t)size))
		die("memfd", errno);
	m->size = size;
	snprintf(m->path, sizeof(m->path), "/proc/self/fd/%d", m->fd);
}

static void mfd_close(struct mfd *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

/* Sparse copy of src into a new memfd. */
static void mfd_clone(struct mfd *dst, const struct mfd *src)
{
	static uint8_t buf[1 << 20];
	off_t pos = 0;

	mfd_new(dst, src->size);
	for (;;) {
		off_t d = lseek(src->fd, pos, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(src->fd, d, SEEK_HOLE);
		for (off_t p = d; p < h;) {
			size_t n = (size_t)(h - p) < sizeof(buf) ? (size_t)(h - p) : sizeof(buf);

			if (pread(src->fd, buf, n, p) != (ssize_t)n ||
			    pwrite(dst->fd, buf, n, p) != (ssize_t)n)
				die("copy", errno);
			p += (off_t)n;
		}
		pos = h;
	}
}

static struct pcm_dev *dev_open(const struct mfd *m, unsigned flags)
{
	struct pcm_dev *dev;

	must(pcm_dev_open(m->path, flags, &dev), m->path);
	return dev;
}

/* ---- stamped data: every sector names the write that put it there ---- */

static void stamp(uint8_t *p, uint32_t id, uint64_t sector)
{
	uint64_t x = ((uint64_t)id << 32 ^ sector) * 0x9E3779B97F4A7C15ull | 1;

	if (!id) {
		memset(p, 0, SECT);
		return;
	}
	for (unsigned i = 0; i < SECT; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	memcpy(p, &(uint32_t){ STAMP }, 4);
	memcpy(p + 4, &id, 4);
	memcpy(p + 8, &sector, 8);
}

/* The write id a sector's bytes name, 0 for zeros, -1 for anything else. */
static int64_t stamp_id(const uint8_t *p, uint64_t sector)
{
	uint8_t want[SECT];
	uint32_t magic, id;

	memcpy(&magic, p, 4);
	memcpy(&id, p + 4, 4);
	if (magic != STAMP || !id) {
		for (unsigned i = 0; i < SECT; i++)
			if (p[i])
				return -1;
		return 0;
	}
	stamp(want, id, sector);
	return memcmp(want, p, SECT) ? -1 : (int64_t)id;
}

/* ---- the model of the logical writes ---- */

struct hnode {
	uint32_t id, next;       /* next: older node + 1, 0 none */
};

struct model {
	uint64_t range;          /* logical bytes the writes stay in */
	uint64_t nsect;
	uint32_t *head;          /* per sector: newest node + 1 */
	struct hnode *node;
	size_t nnode, capnode;
	uint32_t nw;             /* writes so far: ids 1..nw */
	size_t *started, *acked; /* per id: event index of MK_START / the acknowledging mark */
	uint8_t *touched;        /* per sector */
	/* the backing device at a crash point (engine) */
	uint8_t *backing;        /* range bytes */
};

static void model_init(struct model *m, uint64_t range)
{
	memset(m, 0, sizeof(*m));
	m->range = range;
	m->nsect = range / SECT;
	m->head = xcalloc(m->nsect, sizeof(*m->head));
	m->touched = xcalloc(m->nsect, 1);
}

static void model_free(struct model *m)
{
	free(m->head);
	free(m->node);
	free(m->started);
	free(m->acked);
	free(m->touched);
	free(m->backing);
	memset(m, 0, sizeof(*m));
}

/* Registers write id over [off, off+len) and fills buf with its stamped data. */
static uint32_t model_write(struct model *m, uint64_t off, uint32_t len, uint8_t *buf)
{
	uint32_t id = ++m->nw;

	for (uint64_t s = off / SECT; s < (off + len) / SECT; s++) {
		if (m->nnode == m->capnode) {
			m->capnode = m->capnode ? m->capnode * 2 : 4096;
			m->node = xrealloc(m->node, m->capnode * sizeof(*m->node));
		}
		m->node[m->nnode] = (struct hnode){ .id = id, .next = m->head[s] };
		m->head[s] = (uint32_t)++m->nnode;
		m->touched[s] = 1;
		stamp(buf + (s * SECT - off), id, s);
	}
	return id;
}

/* From the marks of the log: when each write started and was acknowledged. */
static void model_marks(struct model *m, const struct rec_ev *ev, size_t nev)
{
	uint32_t flushed = 0;

	m->started = xcalloc(m->nw + 1, sizeof(size_t));
	m->acked = xcalloc(m->nw + 1, sizeof(size_t));
	for (uint32_t i = 0; i <= m->nw; i++)
		m->started[i] = m->acked[i] = SIZE_MAX;
	m->started[0] = m->acked[0] = 0;
	for (size_t i = 0; i < nev; i++) {
		uint64_t id;

		if (ev[i].type != REC_MARK)
			continue;
		id = MK_ID(ev[i].tag);
		switch (MK_KIND(ev[i].tag)) {
		case MK_START:
			if (id <= m->nw)
				m->started[id] = i;
			break;
		case MK_FUA:
			if (id <= m->nw && m->acked[id] == SIZE_MAX)
				m->acked[id] = i;
			break;
		case MK_FLUSHED:
			for (; flushed < id && flushed < m->nw; flushed++)
				if (m->acked[flushed + 1] == SIZE_MAX)
					m->acked[flushed + 1] = i;
			break;
		default:
			break;
		}
	}
}

/* Is content id `got` allowed in sector s after a crash at event e? */
static bool model_allows(const struct model *m, uint64_t s, size_t e, int64_t got,
			 int64_t *want_acked)
{
	bool allowed = false;

	*want_acked = 0;
	for (uint32_t n = m->head[s]; n; n = m->node[n - 1].next) {
		uint32_t id = m->node[n - 1].id;

		if (m->started[id] >= e)
			continue;             /* not issued before the crash */
		if (got == id)
			allowed = true;
		if (m->acked[id] < e) {
			*want_acked = id;
			return allowed;
		}
	}
	return allowed || got == 0;
}

/* ---- crash images: pieces of writes, durable from some persist point on ---- */

struct piece {
	size_t w;                /* its WRITE event */
	uint64_t off, len;
	const uint8_t *data;
	size_t durable;          /* index of the persist that made it durable, SIZE_MAX never */
};

struct crash {
	const struct rec_ev *ev;
	size_t nev;
	struct piece *p;
	size_t np, capp;
	uint64_t points, images, torn_images, torn_log_ends;
};

static void piece_add(struct crash *c, size_t w, uint64_t off, uint64_t len, size_t durable)
{
	if (c->np == c->capp) {
		c->capp = c->capp ? c->capp * 2 : 1024;
		c->p = xrealloc(c->p, c->capp * sizeof(*c->p));
	}
	c->p[c->np++] = (struct piece){ .w = w, .off = off, .len = len, .durable = durable,
					.data = c->ev[w].data + (off - c->ev[w].off) };
}

struct range {
	uint64_t a, b;
};

/* Splits every WRITE by the persists after it: each piece durable at the first that covers it. */
static void pieces_build(struct crash *c)
{
	struct range *r = NULL, *nr = NULL;
	size_t cap = 0;

	for (size_t w = 0; w < c->nev; w++) {
		size_t n = 1;

		if (c->ev[w].type != REC_WRITE)
			continue;
		if (cap < 2) {
			cap = 64;
			r = xrealloc(r, cap * sizeof(*r));
			nr = xrealloc(nr, cap * sizeof(*nr));
		}
		r[0] = (struct range){ c->ev[w].off, c->ev[w].off + c->ev[w].len };
		for (size_t p = w + 1; p < c->nev && n; p++) {
			uint64_t pa = c->ev[p].off, pb = c->ev[p].off + c->ev[p].len;
			size_t k = 0;

			if (c->ev[p].type != REC_PERSIST)
				continue;
			for (size_t i = 0; i < n; i++) {
				uint64_t a = r[i].a > pa ? r[i].a : pa, b = r[i].b < pb ? r[i].b : pb;

				if (a >= b) {
					nr[k++] = r[i];
					continue;
				}
				piece_add(c, w, a, b - a, p);
				if (k + 2 > cap) {
					cap *= 2;
					r = xrealloc(r, cap * sizeof(*r));
					nr = xrealloc(nr, cap * sizeof(*nr));
				}
				if (r[i].a < a)
					nr[k++] = (struct range){ r[i].a, a };
				if (b < r[i].b)
					nr[k++] = (struct range){ b, r[i].b };
			}
			memcpy(r, nr, k * sizeof(*r));
			n = k;
		}
		for (size_t i = 0; i < n; i++)
			piece_add(c, w, r[i].a, r[i].b - r[i].a, SIZE_MAX);
	}
	free(r);
	free(nr);
}

static int piece_cmp(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;

	if (x->durable != y->durable)
		return x->durable < y->durable ? -1 : 1;
	if (x->w != y->w)
		return x->w < y->w ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * What an operation checks on each crash image.  e: the crash point (events
 * [0, e) happened); torn: the image holds a torn write.  Returns true when
 * consistent; else fills why.
 */
typedef bool (*check_fn)(void *arg, struct pcm_dev *img, size_t e, bool torn, char *why,
			 size_t n);

struct opt_set {
	const struct piece **v;
	size_t n;
};

/* A torn piece keeps its bytes up to an 8-byte aligned device address inside it (0: atomic). */
static uint64_t torn_len(const struct piece *p)
{
	uint64_t cut = (p->off + p->len / 2 + 7) & ~7ull;

	if (cut <= p->off || cut >= p->off + p->len)
		cut = (p->off + 8) & ~7ull;
	return cut > p->off && cut < p->off + p->len ? cut - p->off : 0;
}

/* Applies the optional pieces selected by sel (and torn piece t: half of it) to an overlay. */
static struct pcm_dev *variant(struct pcm_dev *dur, const struct opt_set *o, const uint8_t *sel,
			       size_t torn)
{
	struct pcm_dev *ov;

	must(pcm_dev_overlay(dur, &ov), "overlay");
	for (size_t i = 0; i < o->n; i++) {
		const struct piece *p = o->v[i];
		uint64_t len = p->len;

		if (i == torn)
			len = torn_len(p);
		else if (!sel[i])
			continue;
		if (len)
			must(pcm_dev_write(ov, p->off, p->data, len), "overlay write");
	}
	return ov;
}

static bool run_variant(struct crash *c, struct pcm_dev *dur, const struct opt_set *o,
			const uint8_t *sel, size_t torn, size_t e, check_fn fn, void *arg,
			const char *op)
{
	struct pcm_dev *img = variant(dur, o, sel, torn);
	char why[512] = "";
	bool good = fn(arg, img, e, torn != SIZE_MAX, why, sizeof(why));

	pcm_dev_close(img);
	c->images++;
	if (torn != SIZE_MAX)
		c->torn_images++;
	if (!good) {
		char kept[160];
		size_t k = 0;

		for (size_t i = 0; i < o->n && k + 24 < sizeof(kept); i++)
			k += (size_t)snprintf(kept + k, sizeof(kept) - k, "%s%c%zu", i ? "," : "",
					      i == torn ? '~' : sel[i] ? '+' : '-', o->v[i]->w);
		failures++;
		if (expect_fail && failures > 1 && !verbose)
			return good;
		printf("# %s: crash at event %zu of %zu (%s%zu unpersisted writes: %s): %s\n", op, e,
		       c->nev, torn != SIZE_MAX ? "torn, " : "", o->n, k ? kept : "none", why);
	}
	return good;
}

/*
 * Every crash point of the log ev over the image pre: returns false at the
 * first few inconsistencies (each printed).
 */
static bool crash_points(struct crash *c, const struct mfd *pre, check_fn fn, void *arg,
			 const char *op)
{
	struct mfd dm;
	struct pcm_dev *dur;
	struct opt_set o = { 0 };
	uint8_t *sel = NULL;
	size_t next = 0, capo = 0;
	int fails0 = failures;

	pieces_build(c);
	qsort(c->p, c->np, sizeof(*c->p), piece_cmp);
	mfd_clone(&dm, pre);
	dur = dev_open(&dm, PCM_DEV_RDONLY);
	for (size_t e = 0; e <= c->nev && failures - fails0 < 5; e++) {
		size_t subsets;

		if (e < c->nev && c->ev[e].type != REC_PERSIST)
			continue;
		c->points++;
		/* the durable image: every piece made durable by a persist before e */
		for (; next < c->np && c->p[next].durable < e; next++)
			if (pwrite(dm.fd, c->p[next].data, c->p[next].len, (off_t)c->p[next].off) !=
			    (ssize_t)c->p[next].len)
				die("pwrite", errno);
		/* optional: written before e, not durable before e; in write order */
		o.n = 0;
		for (size_t i = next; i < c->np; i++) {
			if (c->p[i].w >= e)
				continue;
			if (o.n == capo) {
				capo = capo ? capo * 2 : 64;
				o.v = xrealloc(o.v, capo * sizeof(*o.v));
				sel = xrealloc(sel, capo);
			}
			o.v[o.n++] = &c->p[i];
		}
		for (size_t i = 1; i < o.n; i++)   /* insertion sort by (w, off): n is small */
			for (size_t j = i; j && (o.v[j - 1]->w > o.v[j]->w ||
				(o.v[j - 1]->w == o.v[j]->w && o.v[j - 1]->off > o.v[j]->off)); j--) {
				const struct piece *t = o.v[j];

				o.v[j] = o.v[j - 1];
				o.v[j - 1] = t;
			}
		if (verbose)
			printf("# %s: crash point at event %zu: %zu unpersisted writes\n", op, e, o.n);
		if (o.n <= 6) {
			subsets = (size_t)1 << o.n;
			for (size_t m = 0; m < subsets && m < limit; m++) {
				for (size_t i = 0; i < o.n; i++)
					sel[i] = (m >> i) & 1;
				run_variant(c, dur, &o, sel, SIZE_MAX, e, fn, arg, op);
			}
		} else {
			size_t budget = limit;

			memset(sel, 0, o.n);
			run_variant(c, dur, &o, sel, SIZE_MAX, e, fn, arg, op);
			memset(sel, 1, o.n);
			run_variant(c, dur, &o, sel, SIZE_MAX, e, fn, arg, op);
			for (size_t k = 0; k < o.n && budget > 2; k++, budget -= 2) {
				memset(sel, 0, o.n);
				sel[k] = 1;
				run_variant(c, dur, &o, sel, SIZE_MAX, e, fn, arg, op);
				memset(sel, 1, o.n);
				sel[k] = 0;
				run_variant(c, dur, &o, sel, SIZE_MAX, e, fn, arg, op);
			}
			for (size_t k = 0; k < 16 && budget; k++, budget--) {
				for (size_t i = 0; i < o.n; i++)
					sel[i] = rnd() & 1;
				run_variant(c, dur, &o, sel, SIZE_MAX, e, fn, arg, op);
			}
		}
		/* torn: the writes before it kept, it half there, the later ones dropped */
		for (size_t t = 0; t < o.n && t < limit; t++) {
			if (!torn_len(o.v[t]))
				continue;
			for (size_t i = 0; i < o.n; i++)
				sel[i] = i < t;
			run_variant(c, dur, &o, sel, t, e, fn, arg, op);
		}
	}
	pcm_dev_close(dur);
	mfd_close(&dm);
	free(o.v);
	free(sel);
	return failures == fails0;
}

static void crash_free(struct crash *c)
{
	free(c->p);
	memset(c, 0, sizeof(*c));
}

static void report(bool good, const char *op, const struct crash *c, double secs)
{
	printf("%s - crash: %s: %llu persist points, %llu crash images checked (%llu torn), "
	       "%.1f s\n", good ? "ok" : "not ok", op, (unsigned long long)c->points,
	       (unsigned long long)c->images, (unsigned long long)c->torn_images, secs);
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Records op(arg, work device) run on a copy of pre. */
static struct rec *record(const struct mfd *pre, struct mfd *work,
			  void (*op)(void *arg, struct pcm_dev *dev, struct rec *r), void *arg)
{
	struct pcm_dev *dev;
	struct rec *r;

	mfd_clone(work, pre);
	dev = dev_open(work, PCM_DEV_RDWR);
	must(rec_attach(dev, &r), "record");
	op(arg, dev, r);
	rec_detach(r);
	pcm_dev_close(dev);
	return r;
}

/* ---- checks shared by the operations ---- */

struct problems {
	char text[256];
	size_t n;
	bool bad;                /* an error or critical one that is not a torn log end */
	bool torn;               /* the image holds a torn write */
	unsigned torn_ends;
};

static void on_problem(const struct pcm_problem *p, void *arg)
{
	struct problems *x = arg;
	const struct pcm_problem_def *d = pcm_problem_def(p->code);
	/* a torn kset at the head of the log: where the log ends (or, for the first kset,
	 * that it is empty) is what the kernel itself leaves after a power cut */
	bool torn_end = x->torn && (p->code == PCM_P_LOG_END_TORN ||
				    p->code == PCM_P_LOG_END_CORRUPT ||
				    p->code == PCM_P_KSET_OVERSIZE_CORRUPT ||
				    p->code == PCM_P_LOG_START_INVALID);

	if (torn_end)
		x->torn_ends++;
	if (d->severity >= PCM_SEV_ERROR && !torn_end)
		x->bad = true;
	if (d->severity >= PCM_SEV_WARNING && x->n + 1 < sizeof(x->text))
		x->n += (size_t)snprintf(x->text + x->n, sizeof(x->text) - x->n, "%s%s (%s)",
					 x->n ? ", " : "", d->name, p->where);
	if (x->n >= sizeof(x->text))
		x->n = sizeof(x->text) - 1;
}

/* fsck -n with data CRCs: the kernel loads it and nothing is wrong but a torn log end. */
static bool check_clean(struct pcm_dev *img, uint64_t backing, bool torn, char *why, size_t n,
			unsigned *torn_ends)
{
	struct problems x = { .torn = torn };
	struct pcm_check_opts o = { .verify_data = true, .backing_size = backing,
				    .report = on_problem, .arg = &x };
	struct pcm_check_result res;
	int rc = pcm_check_run(img, &o, &res);

	if (rc) {
		snprintf(why, n, "fsck failed: %s", strerror(-rc));
		return false;
	}
	if (torn_ends)
		*torn_ends += x.torn_ends;
	if (res.verdict != PCM_VERDICT_LOADS || x.bad) {
		snprintf(why, n, "fsck: verdict %s: %s",
			 res.verdict == PCM_VERDICT_LOADS ? "loads" :
			 res.verdict == PCM_VERDICT_REFUSES ? "REFUSES" :
			 res.verdict == PCM_VERDICT_CRASHES ? "CRASHES" : "RESETS", x.text);
		return false;
	}
	return true;
}

/* Reads sector s as the kernel serves it after loading img (backing: m->backing or zero). */
struct view {
	struct pcm_cache *c;
	struct pcm_replay *r;
};

static int view_open(struct pcm_dev *img, uint64_t backing, struct view *v, char *why, size_t n)
{
	struct pcm_open_status st;
	struct pcm_replay_opts ro = { .verify_data = true };
	int rc = pcm_cache_open(img, &v->c, &st);

	if (rc) {
		snprintf(why, n, "does not open: %s", pcm_open_error_str(&st));
		return rc;
	}
	v->c->backing_size = backing;
	rc = pcm_replay_run(v->c, &ro, &v->r);
	if (!rc && v->r->failed) {
		snprintf(why, n, "replay refused: %s", pcm_replay_error_str(v->r));
		rc = -EUCLEAN;
	}
	if (rc && !why[0])
		snprintf(why, n, "replay: %s", strerror(-rc));
	return rc;
}

static void view_close(struct view *v)
{
	pcm_replay_free(v->r);
	pcm_cache_close(v->c);
	v->r = NULL;
	v->c = NULL;
}

struct content_ctx {
	const struct model *m;
	struct view *v;
	size_t e;
	char *why;
	size_t n;
	bool good;
	uint8_t *seen;           /* per sector: covered by an extent */
};

static bool sector_ok(struct content_ctx *x, uint64_t s, const uint8_t *data)
{
	int64_t got = stamp_id(data, s), want = 0;

	if (s >= x->m->nsect) {
		snprintf(x->why, x->n, "an extent covers sector %llu, outside what was written",
			 (unsigned long long)s);
		return false;
	}
	if (got >= 0 && model_allows(x->m, s, x->e, got, &want))
		return true;
	if (got < 0)
		snprintf(x->why, x->n, "sector %llu holds bytes no write put there "
			 "(acknowledged: write %lld)", (unsigned long long)s, (long long)want);
	else
		snprintf(x->why, x->n, "sector %llu holds write %lld, but write %lld was "
			 "acknowledged (or %lld was not issued yet)", (unsigned long long)s,
			 (long long)got, (long long)want, (long long)got);
	return false;
}

static int content_extent(const struct pcm_extent *e, void *arg)
{
	struct content_ctx *x = arg;
	uint8_t buf[SECT];

	for (uint64_t o = 0; o < e->len && x->good; o += SECT) {
		uint64_t s = (e->off + o) / SECT;

		if (e->flags & PCM_EXT_EMPTY)
			continue;
		if (pcm_dev_read(x->v->c->dev, pcm_pos_dev_off(x->v->c, e->cseg,
				 e->seg_off + (uint32_t)o), buf, SECT)) {
			snprintf(x->why, x->n, "cannot read the data of sector %llu",
				 (unsigned long long)s);
			x->good = false;
			break;
		}
		x->good = sector_ok(x, s, buf);
		if (s < x->m->nsect)
			x->seen[s] = 1;
	}
	return !x->good;
}

/* Every extent holds allowed writes; every written sector without one is allowed from backing. */
static bool check_content(const struct model *m, struct pcm_dev *img, size_t e, uint64_t backing,
			  char *why, size_t n)
{
	struct view v = { 0 };
	struct content_ctx x = { .m = m, .v = &v, .e = e, .why = why, .n = n, .good = true };
	static uint8_t zero[SECT];

	if (view_open(img, backing, &v, why, n)) {
		view_close(&v);
		return false;
	}
	x.seen = xcalloc(m->nsect, 1);
	pcm_index_foreach(v.r->idx, content_extent, &x);
	for (uint64_t s = 0; x.good && s < m->nsect; s++)
		if (m->touched[s] && !x.seen[s])
			x.good = sector_ok(&x, s, m->backing ? m->backing + s * SECT : zero);
	free(x.seen);
	view_close(&v);
	return x.good;
}

/* ---- format ---- */

struct fmt {
	struct pcm_format_plan plan;
	bool old;                /* formatting over a cache with data */
	uint64_t old_keys;
	uint8_t *old_content;    /* of the old cache, range bytes */
	uint64_t range;
	unsigned torn_ends;
};

static void op_format(void *arg, struct pcm_dev *dev, struct rec *r)
{
	struct fmt *f = arg;

	(void)r;
	must(pcm_format_write(dev, &f->plan, NULL, NULL), "format");
}

/* The logical content the kernel serves for [0, range) of a loadable image. */
static int logical(struct pcm_dev *img, uint64_t range, uint8_t *out, uint64_t *keys)
{
	struct view v = { 0 };
	char why[128] = "";
	int rc = view_open(img, 0, &v, why, sizeof(why));

	memset(out, 0, range);
	if (!rc) {
		for (uint64_t s = 0; s < range / SECT; s++) {
			const struct pcm_extent *x = pcm_index_lookup(v.r->idx, s * SECT);

			if (x && !(x->flags & PCM_EXT_EMPTY))
				pcm_dev_read(img, pcm_pos_dev_off(v.c, x->cseg, x->seg_off +
					     (uint32_t)(s * SECT - x->off)), out + s * SECT, SECT);
		}
		*keys = v.r->keys;
	}
	view_close(&v);
	return rc;
}

static bool check_format(void *arg, struct pcm_dev *img, size_t e, bool torn, char *why,
			 size_t n)
{
	struct fmt *f = arg;
	struct pcm_cache *c = NULL;
	struct pcm_open_status st;
	uint64_t keys = 0;
	uint8_t *now;
	bool good;

	(void)e;
	if (pcm_cache_open(img, &c, &st)) {
		/* the kernel formats an unformatted device and re-initialises one without
		 * a valid cache_info: both are what formatting wanted */
		if ((st.err == PCM_OPEN_SB && st.sb_verdict == PCM_SB_UNFORMATTED) ||
		    st.err == PCM_OPEN_NO_CACHE_INFO || st.err == PCM_OPEN_NOT_INIT_DONE)
			return true;
		snprintf(why, n, "the kernel would refuse it: %s", pcm_open_error_str(&st));
		return false;
	}
	pcm_cache_close(c);
	if (!check_clean(img, 0, torn, why, n, &f->torn_ends))
		return false;
	now = xcalloc(1, f->range);
	good = !logical(img, f->range, now, &keys);
	if (!good)
		snprintf(why, n, "replay failed");
	else if (keys && !(f->old && keys == f->old_keys && !memcmp(now, f->old_content, f->range)))
		good = !snprintf(why, n, "opens with %llu keys: neither empty nor the old cache",
				 (unsigned long long)keys);
	free(now);
	return good;
}

/* ---- the appender: writes with flushes ---- */

struct app {
	struct model m;
	uint64_t range;
	unsigned nwrites;
	bool big;                /* some writes of up to 1 MiB: data segment changes */
	unsigned torn_ends;
	uint64_t last_ksets;
	bool no_persist;         /* self-test: an appender that never persists must be caught */
};

static void op_append(void *arg, struct pcm_dev *dev, struct rec *r)
{
	struct app *a = arg;
	struct pcm_cache *c;
	struct pcm_replay *rp;
	struct pcm_appender *ap;
	uint8_t *buf = xcalloc(1, 1 << 20);
	unsigned since = 0, every = 1 + (unsigned)rnd_below(8);

	must(pcm_cache_open(dev, &c, NULL), "open");
	must(pcm_replay_run(c, NULL, &rp), "replay");
	must(pcm_appender_open(c, rp, &ap), "appender");
	pcm_appender_set_persist(ap, !a->no_persist);
	for (unsigned i = 0; i < a->nwrites; i++) {
		uint32_t sectors = a->big && rnd_below(10) == 0 ? 256 + (uint32_t)rnd_below(1792) :
				   1 + (uint32_t)rnd_below(24);
		uint32_t len = sectors * SECT;
		uint64_t off = rnd_below((a->range - len) / SECT + 1) * SECT;
		uint32_t id = model_write(&a->m, off, len, buf);

		rec_mark(r, MK(MK_START, id));
		must(pcm_append_write(ap, off, buf, len, 0), "append");
		rec_mark(r, MK(MK_DONE, id));
		if (++since >= every) {
			must(pcm_append_flush(ap), "flush");
			rec_mark(r, MK(MK_FLUSHED, id));
			since = 0;
			every = 1 + (unsigned)rnd_below(8);
		}
	}
	pcm_appender_free(ap);    /* the last writes unflushed: lost as in a crash */
	pcm_replay_free(rp);
	pcm_cache_close(c);
	free(buf);
}

static bool check_append(void *arg, struct pcm_dev *img, size_t e, bool torn, char *why,
			 size_t n)
{
	struct app *a = arg;

	return check_clean(img, 0, torn, why, n, &a->torn_ends) &&
	       check_content(&a->m, img, e, 0, why, n);
}

/* ---- images to start from ---- */

static void format_image(struct mfd *m, bool data_crc, unsigned gc_percent)
{
	struct pcm_format_opts fo = { .data_crc = data_crc, .gc_percent = gc_percent };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;

	mfd_new(m, DEV_SIZE);
	dev = dev_open(m, PCM_DEV_RDWR | PCM_DEV_NOMAP);
	must(pcm_format_plan(DEV_SIZE, &fo, &plan), "format plan");
	must(pcm_format_write(dev, &plan, NULL, NULL), "format");
	pcm_dev_close(dev);
}

/* Moves both tails to cseg:room bytes before its data area's end, over junk when
 * junk_len > 0. */
static void tails_at(struct pcm_dev *dev, uint32_t cseg, uint32_t room, const uint8_t *junk,
		     size_t junk_len)
{
	struct pcm_cache *c;
	struct pcm_pos p = { cseg, PCM_DATA_SIZE - room };

	must(pcm_cache_open(dev, &c, NULL), "open");
	if (junk_len)
		must(pcm_dev_write(dev, pcm_pos_dev_off(c, cseg, p.seg_off), junk, junk_len),
		     "write");
	must(pcm_tail_write(c, 0, p, false), "key_tail");
	must(pcm_tail_write(c, 1, p, false), "dirty_tail");
	pcm_cache_close(c);
}

/* Moves both tails of a fresh cache to cseg 0, room bytes before its data area's end. */
static void tails_near_end(struct mfd *m, uint32_t room)
{
	struct pcm_dev *dev = dev_open(m, PCM_DEV_RDWR | PCM_DEV_NOMAP);

	tails_at(dev, 0, room, NULL, 0);
	pcm_dev_close(dev);
}

/* A cache with a written log (for reformat and repair). */
struct logged {
	struct pcm_key k[PCM_KSET_KEYS_MAX];
	unsigned n;
	struct pcm_pos at;
};

static struct logged *ksets;
static unsigned nksets;

static void hook(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	(void)arg;
	ksets = xrealloc(ksets, (nksets + 1) * sizeof(*ksets));
	memcpy(ksets[nksets].k, keys, n * sizeof(*keys));
	ksets[nksets].n = n;
	ksets[nksets++].at = at;
}

static void written_image(struct mfd *m, uint64_t range, unsigned writes)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct pcm_appender *a;
	static uint8_t data[16384];
	struct model junk;

	format_image(m, true, 70);
	dev = dev_open(m, PCM_DEV_RDWR | PCM_DEV_NOMAP);
	must(pcm_cache_open(dev, &c, NULL), "open");
	must(pcm_replay_run(c, NULL, &r), "replay");
	must(pcm_appender_open(c, r, &a), "appender");
	pcm_appender_set_persist(a, false);
	nksets = 0;
	pcm_appender_set_hook(a, hook, NULL);
	model_init(&junk, range);
	for (unsigned i = 0; i < writes; i++) {
		uint32_t len = (1 + (uint32_t)rnd_below(32)) * SECT;
		uint64_t off = rnd_below((range - len) / SECT) * SECT;

		model_write(&junk, off, len, data);
		must(pcm_append_write(a, off, data, len, 0), "append");
		if (i % 40 == 39)
			must(pcm_append_flush(a), "flush");
	}
	must(pcm_appender_close(a), "close");
	model_free(&junk);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
}

/* ---- repair: a damaged image repaired, cut at any persist, finished by fsck -y ---- */

struct rep {
	struct pcm_repair_plan *plan;
	uint64_t range;
	uint8_t *want;
	enum pcm_repair_mode mode;
};

static void op_repair(void *arg, struct pcm_dev *dev, struct rec *r)
{
	struct rep *x = arg;

	(void)r;
	must(pcm_repair_apply(dev, x->plan, NULL), "repair apply");
}

static bool check_repair(void *arg, struct pcm_dev *img, size_t e, bool torn, char *why,
			 size_t n)
{
	struct rep *x = arg;
	struct pcm_repair_opts o = { .mode = PCM_REPAIR_ALL };
	struct pcm_repair_plan *p2;
	uint8_t *got;
	uint64_t keys;
	bool good;

	(void)e;
	(void)torn;
	if (pcm_repair_plan(img, &o, &p2)) {
		snprintf(why, n, "fsck -y cannot plan");
		return false;
	}
	got = xcalloc(1, x->range);
	good = p2->after.problems == 0;
	if (!good)
		snprintf(why, n, "fsck -y leaves %llu problems (worst %s)",
			 (unsigned long long)p2->after.problems,
			 pcm_problem_def(p2->after.worst)->name);
	else if (logical(p2->ov, x->range, got, &keys) || memcmp(got, x->want, x->range))
		good = !snprintf(why, n, "fsck -y ends with other content than the repair");
	free(got);
	pcm_repair_plan_free(p2);
	return good;
}

static uint64_t kset_off(unsigned i)
{
	return pcm_seg_base(ksets[i].at.cseg) + PCM_DATA_OFF + ksets[i].at.seg_off;
}

static void flip(struct pcm_dev *d, uint64_t off)
{
	uint8_t b;

	must(pcm_dev_read(d, off, &b, 1), "read");
	b ^= 0x5a;
	must(pcm_dev_write(d, off, &b, 1), "write");
}

static void d_kset_crc(struct pcm_dev *d) { flip(d, kset_off(5) + 24 + 40 * 3 + 9); }
static void d_ci_both(struct pcm_dev *d)
{
	must(pcm_dev_zero(d, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_SIZE), "zero");
	must(pcm_dev_zero(d, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, PCM_CACHE_INFO_SIZE), "zero");
}
static void d_key_tail(struct pcm_dev *d) { must(pcm_dev_zero(d, PCM_KEY_TAIL_OFF, 32), "zero"); }
static void d_seginfo(struct pcm_dev *d) { flip(d, pcm_seg_base(2) + PCM_SEG_INFO_SLOT + 9); }
static void d_head(struct pcm_dev *d) { flip(d, kset_off(nksets - 1) + 30); }
static void d_gen(struct pcm_dev *d)
{
	flip(d, pcm_seg_base(1) + PCM_SEG_CTRL_OFF + 9);
	flip(d, pcm_seg_base(1) + PCM_SEG_CTRL_OFF + PCM_SEG_GEN_SIZE + 9);
}

/* Both tails 5 bytes before a data area's end, over junk: the log fix moves them. */
static void d_tail_no_room(struct pcm_dev *d)
{
	static const uint8_t junk[5] = { 9, 9, 9, 9, 9 };

	tails_at(d, 3, sizeof(junk), junk, sizeof(junk));
}

/* cache_info n_segs 2, under keys in later segments: the chain is extended, then n_segs. */
static void d_n_segs_small(struct pcm_dev *d)
{
	uint8_t raw[2][24];
	const uint8_t *rec[2] = { raw[0], raw[1] };
	struct pcm_cache_info ci;
	int pick;

	must(pcm_dev_read(d, PCM_CACHE_INFO_OFF, raw[0], PCM_CACHE_INFO_SIZE), "read");
	must(pcm_dev_read(d, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, raw[1], PCM_CACHE_INFO_SIZE),
	     "read");
	pick = pcm_replica_pick(rec, PCM_CACHE_INFO_SIZE, NULL);
	must(pick < 0 ? -EINVAL : 0, "cache_info");
	pcm_cache_info_decode(raw[pick], &ci);
	ci.n_segs = 2;
	pcm_cache_info_encode(&ci, raw[pick]);
	pcm_record_seal(raw[pick], PCM_CACHE_INFO_SIZE);
	must(pcm_dev_write(d, PCM_CACHE_INFO_OFF + (uint64_t)pick * PCM_CACHE_INFO_SLOT, raw[pick],
			   PCM_CACHE_INFO_SIZE), "write");
}

/* A key of kset 5 moved across a 4 MiB window boundary, kset resealed: the repair splits it. */
static void d_key_window(struct pcm_dev *d)
{
	uint8_t buf[PCM_KSET_SIZE_MAX];
	size_t size = PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * ksets[5].n;
	unsigned j = 0;
	struct pcm_key k;

	while (j + 1 < ksets[5].n && ksets[5].k[j].len < 2 * SECT)
		j++;
	k = ksets[5].k[j];
	must(k.len < 2 * SECT ? -EINVAL : 0, "a key of two sectors");
	k.off = ((1 + (k.off >> PCM_WINDOW_SHIFT) % 7) << PCM_WINDOW_SHIFT) - k.len / 2 / SECT * SECT;
	must(pcm_dev_read(d, kset_off(5), buf, size), "read");
	pcm_key_encode(&k, buf + PCM_KSET_HDR_SIZE + (size_t)j * PCM_KEY_SIZE);
	pcm_record_seal(buf, size);
	must(pcm_dev_write(d, kset_off(5), buf, size), "write");
}

/* Kset 5 overwritten by a LAST kset naming the segment its first key's data is in. */
static void d_last_data(struct pcm_dev *d)
{
	struct pcm_kset_hdr h = { .key_num = ksets[5].k[0].cseg, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };
	uint8_t raw[PCM_KSET_HDR_SIZE];

	pcm_kset_hdr_encode(&h, raw);
	pcm_record_seal(raw, sizeof(raw));
	must(pcm_dev_write(d, kset_off(5), raw, sizeof(raw)), "write");
}

static void run_repair(const struct mfd *base, const char *name, void (*damage)(struct pcm_dev *),
		       enum pcm_repair_mode mode)
{
	struct rep x = { .range = 32u << 20, .mode = mode };
	struct pcm_repair_opts o = { .mode = mode };
	struct crash c = { 0 };
	struct mfd pre, work;
	struct pcm_dev *dev;
	struct rec *r;
	uint64_t keys;
	char op[96];
	double t0 = now();
	bool good;

	snprintf(op, sizeof(op), "repair %s", name);
	mfd_clone(&pre, base);
	dev = dev_open(&pre, PCM_DEV_RDWR | PCM_DEV_NOMAP);
	damage(dev);
	pcm_dev_close(dev);
	dev = dev_open(&pre, PCM_DEV_RDONLY);
	must(pcm_repair_plan(dev, &o, &x.plan), "plan");
	r = record(&pre, &work, op_repair, &x);
	/* what the whole repair leaves */
	pcm_dev_close(dev);
	dev = dev_open(&work, PCM_DEV_RDONLY);
	x.want = xcalloc(1, x.range);
	if (logical(dev, x.range, x.want, &keys))
		die("repaired image does not replay", EINVAL);
	pcm_dev_close(dev);
	c.ev = rec_events(r, &c.nev);
	good = crash_points(&c, &pre, check_repair, &x, op);
	report(good, op, &c, now() - t0);
	crash_free(&c);
	rec_free(r);
	free(x.want);
	pcm_repair_plan_free(x.plan);
	mfd_close(&pre);
	mfd_close(&work);
}

/* ---- the engine: writes, FUA, flushes, writeback, GC ---- */

struct eng {
	struct model m;
	uint64_t range;
	struct rec *r;
	pthread_mutex_t lock;
	struct bkw {
		size_t mark;         /* index of its MK_BACKING mark */
		uint64_t off, len;
		uint8_t *data;
	} *bk;
	size_t nbk, capbk;
	struct bks {
		size_t mark;         /* index of its MK_BKSYNC mark */
		size_t nbk;          /* backing writes issued before it: durable once it ran */
	} *sy;
	size_t nsy, capsy;
	int bk_fd;
	unsigned torn_ends;
	const struct rec_ev *ev;
	size_t nev, bk_next;
	uint64_t wb_ksets, gc_reclaimed;
	/* the backing device with only its synced writes (a volatile write cache lost) */
	uint8_t *durable;
	size_t dur_next;
	uint64_t lost_points;    /* crash points checked with unsynced backing writes lost */
	bool ignore_syncs;       /* self-test: as if no backing sync ever completed */
};

static long backing_write(int fd, const struct iovec *iov, int n, uint64_t off, void *arg)
{
	struct eng *x = arg;
	uint64_t len = 0;
	size_t mark;
	ssize_t rc;
	uint8_t *copy;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	copy = xcalloc(1, len);
	for (int i = 0, o = 0; i < n; o += (int)iov[i].iov_len, i++)
		memcpy(copy + o, iov[i].iov_base, iov[i].iov_len);
	pthread_mutex_lock(&x->lock);
	if (x->nbk == x->capbk) {
		x->capbk = x->capbk ? x->capbk * 2 : 256;
		x->bk = xrealloc(x->bk, x->capbk * sizeof(*x->bk));
	}
	rec_mark(x->r, MK(MK_BACKING, x->nbk));
	rec_events(x->r, &mark);
	x->bk[x->nbk++] = (struct bkw){ .mark = mark - 1, .off = off, .len = len, .data = copy };
	pthread_mutex_unlock(&x->lock);
	rc = pwritev(fd, iov, n, (off_t)off);
	return rc < 0 ? -errno : rc;
}

static void backing_sync(void *arg)
{
	struct eng *x = arg;
	size_t mark;

	pthread_mutex_lock(&x->lock);
	if (x->nsy == x->capsy) {
		x->capsy = x->capsy ? x->capsy * 2 : 64;
		x->sy = xrealloc(x->sy, x->capsy * sizeof(*x->sy));
	}
	rec_mark(x->r, MK(MK_BKSYNC, x->nsy));
	rec_events(x->r, &mark);
	x->sy[x->nsy++] = (struct bks){ .mark = mark - 1, .nbk = x->nbk };
	pthread_mutex_unlock(&x->lock);
}

/* Applies backing writes [*next, upto) to buf (from zero again when upto went back). */
static void backing_apply(const struct eng *x, uint8_t *buf, size_t *next, size_t upto)
{
	if (upto < *next) {
		memset(buf, 0, x->range);
		*next = 0;
	}
	for (; *next < upto; (*next)++) {
		const struct bkw *b = &x->bk[*next];

		if (b->off < x->range)
			memcpy(buf + b->off, b->data,
			       b->len < x->range - b->off ? b->len : x->range - b->off);
	}
}

static void eng_writes(struct eng *x, struct pce *e, unsigned n, bool flush_end)
{
	static uint8_t buf[4096 * SECT];   /* the largest write: 4095 sectors */
	unsigned since = 0, every = 1 + (unsigned)rnd_below(6);

	for (unsigned i = 0; i < n; i++) {
		uint32_t sectors = rnd_below(4) == 0 ? 512 + (uint32_t)rnd_below(3584) :
				   1 + (uint32_t)rnd_below(16);
		uint32_t len = sectors * SECT;
		uint64_t off = rnd_below((x->range - len) / SECT + 1) * SECT;
		bool fua = rnd_below(10) == 0;
		uint32_t id = model_write(&x->m, off, len, buf);

		rec_mark(x->r, MK(MK_START, id));
		must(pce_write(e, off, buf, len, fua), "pce_write");
		rec_mark(x->r, MK(fua ? MK_FUA : MK_DONE, id));
		if (++since >= every || (flush_end && i + 1 == n)) {
			must(pce_flush(e), "pce_flush");
			rec_mark(x->r, MK(MK_FLUSHED, id));
			since = 0;
			every = 1 + (unsigned)rnd_below(6);
		}
	}
}

/* The backing device at a crash before event e is anything between every write issued
 * before e (a write-through device) and only the writes a completed sync covers (a
 * volatile write cache lost): both ends are checked. */
static bool check_engine(void *arg, struct pcm_dev *img, size_t e, bool torn, char *why, size_t n)
{
	struct eng *x = arg;
	size_t issued = 0, synced = 0;
	uint8_t *all = x->m.backing;
	bool ok;

	while (issued < x->nbk && x->bk[issued].mark < e)
		issued++;
	for (size_t i = 0; !x->ignore_syncs && i < x->nsy && x->sy[i].mark < e; i++)
		synced = x->sy[i].nbk;
	backing_apply(x, all, &x->bk_next, issued);
	ok = check_clean(img, x->range, torn, why, n, &x->torn_ends) &&
	     check_content(&x->m, img, e, x->range, why, n);
	if (!ok || synced == issued)
		return ok;
	backing_apply(x, x->durable, &x->dur_next, synced);
	x->m.backing = x->durable;
	ok = check_content(&x->m, img, e, x->range, why, n);
	x->m.backing = all;
	x->lost_points++;
	if (!ok) {
		size_t l = strlen(why);

		snprintf(why + l, n - l, " (backing: the %zu writes not yet synced lost)",
			 issued - synced);
	}
	return ok;
}

/* The checker must see data lost when the backing syncs are: the final image, checked
 * as if none had completed, has written-back and reclaimed keys served from nothing. */
static void engine_selftest(struct eng *x, const struct mfd *work, size_t nev)
{
	struct pcm_dev *dev;
	char why[512] = "";
	bool caught;

	must(pcm_dev_open(work->path, PCM_DEV_RDONLY, &dev), "open the final image");
	x->ignore_syncs = true;
	caught = !check_engine(x, dev, nev, false, why, sizeof(why));
	x->ignore_syncs = false;
	pcm_dev_close(dev);
	printf("%s - crash: self-test: writeback whose backing syncs are lost is caught (%s)\n",
	       caught ? "ok" : "not ok", caught ? why : "the final image passed");
	if (!caught)
		failures++;
}

static void run_engine(void)
{
	struct eng x = { .range = 12u << 20, .bk_fd = -1 };
	struct pce_opts eo = { .flags = PCE_NO_EXCL | PCE_NO_DIRECT | PCE_VERIFY_DATA, .n_open = 2,
			       .n_heads = 2 };
	struct pce_error err;
	struct mfd pre, work, back;
	struct pcm_dev *dev;
	struct pce *e;
	struct crash c = { 0 };
	double t0 = now();
	bool good;

	pthread_mutex_init(&x.lock, NULL);
	format_image(&pre, true, 0);     /* gc_percent 0: GC runs whenever something is clean */
	tails_near_end(&pre, 8192);      /* the log hops (LAST) soon, and GC meets it */
	mfd_new(&back, x.range);
	model_init(&x.m, x.range);
	x.m.backing = xcalloc(1, x.range);
	x.durable = xcalloc(1, x.range);
	mfd_clone(&work, &pre);
	if (pce_open(work.path, back.path, &eo, &e, &err)) {
		printf("not ok - crash: engine: cannot open: %s\n", err.msg);
		failures++;
		goto out;
	}
	dev = (struct pcm_dev *)pce_cache(e)->dev;
	must(rec_attach(dev, &x.r), "record");
	pce_set_backing_write(e, backing_write, &x);
	pce_set_backing_sync(e, backing_sync, &x);
	/* writes, all written back (one kset per batch, as the kernel) and reclaimed; then
	 * writes into reused segments, written back in batches and reclaimed while more
	 * writes come; the last ones are never flushed */
	for (int round = 0; round < 2; round++) {
		struct pce_wb_opts wo = { .batch_ksets = round ? 4 : 1, .verify_data = true };
		struct pce_wb_result wr;
		struct pce_gc_result gr;

		eng_writes(&x, e, round ? 150 : 200, true);
		must(pce_writeback(e, &wo, &wr), "writeback");
		x.wb_ksets += wr.ksets;
		pce_wb_result_free(&wr);
		if (round)
			eng_writes(&x, e, 40, true);
		must(pce_gc(e, &gr), "gc");
		x.gc_reclaimed += gr.reclaimed;
		if (verbose) {
			struct pce_status st;

			pce_status(e, &st);
			printf("# engine round %d: %llu ksets written back, GC: %llu ksets, %llu LAST, "
			       "%llu reclaimed; %u segments used, key_tail %u:%u dirty_tail %u:%u "
			       "key_head %u:%u\n", round, (unsigned long long)wr.ksets,
			       (unsigned long long)gr.ksets, (unsigned long long)gr.last_ksets,
			       (unsigned long long)gr.reclaimed, st.segs_used, st.key_tail.cseg,
			       st.key_tail.seg_off, st.dirty_tail.cseg, st.dirty_tail.seg_off,
			       st.key_head.cseg, st.key_head.seg_off);
		}
	}
	eng_writes(&x, e, 40, false);
	rec_detach(x.r);
	pce_abandon(e);           /* a crash: the open ksets are lost */
	c.ev = rec_events(x.r, &c.nev);
	model_marks(&x.m, c.ev, c.nev);
	good = crash_points(&c, &pre, check_engine, &x, "engine");
	if (!quiet)
		printf("# engine: %u writes, %llu ksets written back, %llu segments reclaimed by GC, "
		       "%zu backing writes, %zu backing syncs, %llu crash images also checked with "
		       "the unsynced backing writes lost, %llu page faults recorded\n", x.m.nw,
		       (unsigned long long)x.wb_ksets, (unsigned long long)x.gc_reclaimed, x.nbk,
		       x.nsy, (unsigned long long)x.lost_points, (unsigned long long)rec_faults(x.r));
	if (x.wb_ksets == 0 || x.gc_reclaimed == 0) {
		printf("# engine: writeback or GC did nothing: the crash points do not cover them\n");
		good = false;
		failures++;
	}
	report(good, "engine writes, flushes, FUA, writeback, GC", &c, now() - t0);
	engine_selftest(&x, &work, c.nev);
	crash_free(&c);
	rec_free(x.r);
out:
	for (size_t i = 0; i < x.nbk; i++)
		free(x.bk[i].data);
	free(x.bk);
	free(x.sy);
	free(x.durable);
	model_free(&x.m);
	mfd_close(&pre);
	mfd_close(&work);
	mfd_close(&back);
}

/* ---- driver ---- */

static void run_format(bool old)
{
	struct fmt f = { .old = old, .range = 32u << 20 };
	struct pcm_format_opts fo = { .data_crc = true, .gc_percent = 70 };
	struct crash c = { 0 };
	struct mfd pre, work;
	struct rec *r;
	double t0 = now();
	const char *op = old ? "format over a cache with data" : "format of a zeroed device";
	bool good;

	if (old) {
		struct pcm_dev *dev;

		written_image(&pre, f.range, 400);
		dev = dev_open(&pre, PCM_DEV_RDONLY);
		f.old_content = xcalloc(1, f.range);
		must(logical(dev, f.range, f.old_content, &f.old_keys), "old content");
		pcm_dev_close(dev);
	} else {
		mfd_new(&pre, DEV_SIZE);
	}
	must(pcm_format_plan(DEV_SIZE, &fo, &f.plan), "plan");
	r = record(&pre, &work, op_format, &f);
	c.ev = rec_events(r, &c.nev);
	good = crash_points(&c, &pre, check_format, &f, op);
	report(good, op, &c, now() - t0);
	crash_free(&c);
	rec_free(r);
	free(f.old_content);
	mfd_close(&pre);
	mfd_close(&work);
}

static void run_append(bool hop)
{
	struct app a = { .range = 64u << 20, .nwrites = hop ? 250 : 200, .big = !hop };
	struct crash c = { 0 };
	struct mfd pre, work;
	struct rec *r;
	double t0 = now();
	const char *op = hop ? "appender writes and flushes across LAST hops" :
			       "appender writes and flushes (with data segment changes)";
	bool good;

	format_image(&pre, true, 70);
	if (hop)
		tails_near_end(&pre, 4096);
	model_init(&a.m, a.range);
	r = record(&pre, &work, op_append, &a);
	{
		struct pcm_dev *dev = dev_open(&work, PCM_DEV_RDONLY);
		struct view v = { 0 };
		char why[128] = "";

		if (!view_open(dev, 0, &v, why, sizeof(why)))
			a.last_ksets = v.r->last_ksets;
		view_close(&v);
		pcm_dev_close(dev);
	}
	c.ev = rec_events(r, &c.nev);
	model_marks(&a.m, c.ev, c.nev);
	good = crash_points(&c, &pre, check_append, &a, op);
	if (!quiet)
		printf("# %s: %u writes, %llu LAST ksets on the final log; %u crash images end "
		       "the log at a torn kset (the kernel's own power-cut state, accepted)\n", op,
		       a.m.nw, (unsigned long long)a.last_ksets, a.torn_ends);
	report(good, op, &c, now() - t0);
	crash_free(&c);
	rec_free(r);
	model_free(&a.m);
	mfd_close(&pre);
	mfd_close(&work);
}

/* A writer that persists a key before its data (§6.8 rule 1 broken on purpose). */
static void op_key_first(void *arg, struct pcm_dev *dev, struct rec *r)
{
	struct app *a = arg;
	struct pcm_cache *c;
	struct pcm_replay *rp;
	struct pcm_appender *ap;
	static uint8_t buf[4096];
	struct pcm_key k = { .off = 0, .len = sizeof(buf) };
	uint32_t id = model_write(&a->m, 0, sizeof(buf), buf);

	must(pcm_cache_open(dev, &c, NULL), "open");
	must(pcm_replay_run(c, NULL, &rp), "replay");
	must(pcm_appender_open(c, rp, &ap), "appender");
	must(pcm_appender_take_seg(ap, 0, &k.cseg), "take");
	k.seg_gen = c->gen[k.cseg];
	k.data_crc = pcm_kcrc(buf, sizeof(buf));
	rec_mark(r, MK(MK_START, id));
	must(pcm_dev_write(dev, pcm_pos_dev_off(c, k.cseg, 0), buf, sizeof(buf)), "data");
	must(pcm_append_kset(ap, &k, 1), "kset");       /* written and persisted */
	must(pcm_dev_persist(dev, pcm_pos_dev_off(c, k.cseg, 0), sizeof(buf)), "persist");
	rec_mark(r, MK(MK_FLUSHED, id));
	pcm_appender_free(ap);
	pcm_replay_free(rp);
	pcm_cache_close(c);
}

/* The harness must catch a writer that does not persist: the appender with persists off. */
static void run_selftest(void)
{
	struct app a = { .range = 16u << 20, .nwrites = 40, .no_persist = true };
	struct crash c = { 0 };
	struct mfd pre, work;
	struct rec *r;
	int before = failures;
	bool saved = quiet;
	int caught;

	format_image(&pre, true, 70);
	model_init(&a.m, a.range);
	r = record(&pre, &work, op_append, &a);
	c.ev = rec_events(r, &c.nev);
	model_marks(&a.m, c.ev, c.nev);
	printf("# self-test: the appender with its persists turned off (the line below is "
	       "expected)\n");
	expect_fail = true;
	failures = 0;
	crash_points(&c, &pre, check_append, &a, "self-test");
	expect_fail = false;
	quiet = saved;
	caught = failures;
	failures = before;
	printf("%s - crash: self-test: an appender that never persists is caught (%d inconsistent "
	       "images of %llu)\n", caught ? "ok" : "not ok", caught,
	       (unsigned long long)c.images);
	if (!caught)
		failures++;
	crash_free(&c);
	rec_free(r);
	model_free(&a.m);
	mfd_close(&work);

	/* a key made durable before its data: only a persist-range model sees it */
	model_init(&a.m, a.range);
	r = record(&pre, &work, op_key_first, &a);
	c.ev = rec_events(r, &c.nev);
	model_marks(&a.m, c.ev, c.nev);
	expect_fail = true;
	failures = 0;
	crash_points(&c, &pre, check_append, &a, "self-test");
	expect_fail = false;
	caught = failures;
	failures = before;
	printf("%s - crash: self-test: a key persisted before its data is caught (%d inconsistent "
	       "images of %llu)\n", caught ? "ok" : "not ok", caught,
	       (unsigned long long)c.images);
	if (!caught)
		failures++;
	crash_free(&c);
	rec_free(r);
	model_free(&a.m);
	mfd_close(&pre);
	mfd_close(&work);
}

static void run_repairs(void)
{
	struct mfd base;

	written_image(&base, 32u << 20, 3000);
	run_repair(&base, "kset crc in the middle", d_kset_crc, PCM_REPAIR_ALL);
	run_repair(&base, "cache_info both replicas", d_ci_both, PCM_REPAIR_ALL);
	run_repair(&base, "key_tail both replicas", d_key_tail, PCM_REPAIR_ALL);
	run_repair(&base, "segment info replica (-p)", d_seginfo, PCM_REPAIR_SAFE);
	run_repair(&base, "torn kset at the head", d_head, PCM_REPAIR_ALL);
	run_repair(&base, "gen both replicas", d_gen, PCM_REPAIR_ALL);
	run_repair(&base, "key_tail with no room for a kset", d_tail_no_room, PCM_REPAIR_ALL);
	run_repair(&base, "n_segs below what the keys use", d_n_segs_small, PCM_REPAIR_ALL);
	run_repair(&base, "key across a 4 MiB window", d_key_window, PCM_REPAIR_ALL);
	run_repair(&base, "LAST kset naming a data segment", d_last_data, PCM_REPAIR_ALL);
	mfd_close(&base);
	free(ksets);
	ksets = NULL;
	nksets = 0;
}

static bool wanted(char **ops, int n, const char *name)
{
	if (!n)
		return true;
	for (int i = 0; i < n; i++)
		if (!strcmp(ops[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "qvs:l:")) != -1) {
		switch (opt) {
		case 'q': quiet = true; break;
		case 'v': verbose = true; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'l': limit = (unsigned)strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: crash-harness [-q] [-v] [-s SEED] [-l LIMIT] "
				"[format|reformat|append|append-hop|selftest|repair|engine...]\n");
			return 2;
		}
	}
	rnd_seed(seed);
	argv += optind;
	argc -= optind;
	if (wanted(argv, argc, "format"))
		run_format(false);
	if (wanted(argv, argc, "reformat"))
		run_format(true);
	if (wanted(argv, argc, "append"))
		run_append(false);
	if (wanted(argv, argc, "append-hop"))
		run_append(true);
	if (wanted(argv, argc, "selftest"))
		run_selftest();
	if (wanted(argv, argc, "repair"))
		run_repairs();
	if (wanted(argv, argc, "engine"))
		run_engine();
	printf("# %d inconsistent crash images\n", failures);
	return failures ? 1 : 0;
}
