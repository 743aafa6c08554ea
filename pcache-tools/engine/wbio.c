/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Writeback I/O: the extents of one batch go to the backing device in
 * ascending order, logically adjacent extents merged into one vectored
 * write straight from the cache mapping.  A failing write climbs down a
 * retry ladder: the whole extent again, then 64 KiB pieces, then single
 * 512-byte blocks, each followed by a backing flush so that errors the page
 * cache would only report at fdatasync are caught where they happen.
 * Whatever still fails is listed; the caller then does not advance
 * dirty_tail.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

#define RUN_MAX   (8u << 20)      /* bytes per vectored write */
#define PIECE     (64u << 10)     /* second rung of the ladder */
#define IO_THREADS 4              /* writers per batch, the caller included */

void pce_wbio_free(struct pce_wbio *io)
{
	free(io->failed);
	free(io->bounce);
	io->failed = NULL;
	io->bounce = NULL;
}

static int add_failed(struct pce_wbio *io, uint64_t off, uint64_t len)
{
	struct pce_range *last = io->n_failed ? &io->failed[io->n_failed - 1] : NULL;

	if (last && last->off + last->len == off) {
		last->len += len;
		return 0;
	}
	if (io->n_failed == io->cap_failed) {
		size_t cap = io->cap_failed ? io->cap_failed * 2 : 16;
		struct pce_range *v = realloc(io->failed, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		io->failed = v;
		io->cap_failed = cap;
	}
	io->failed[io->n_failed++] = (struct pce_range){ .off = off, .len = len };
	return 0;
}

/* Room for len bytes of copies when the cache is not mapped (block devices). */
static int bounce_reserve(struct pce_wbio *io, uint64_t len)
{
	if (pcm_dev_ptr(io->e->cdev, 0, 1) || len <= io->bounce_len)
		return 0;
	len = (len + 4095) & ~(uint64_t)4095;
	free(io->bounce);
	io->bounce = aligned_alloc(4096, len);
	io->bounce_len = io->bounce ? len : 0;
	return io->bounce ? 0 : -ENOMEM;
}

/* Cache bytes of an extent: the mapping, else a copy at bounce + at (reserved). */
static int extent_src(struct pce_wbio *io, const struct pcm_extent *x, size_t at,
		      const uint8_t **src)
{
	struct pce *e = io->e;
	uint64_t off = pce_data_off(e, x->cseg, x->seg_off);

	*src = pcm_dev_ptr(e->cdev, off, x->len);
	if (*src)
		return 0;
	*src = io->bounce + at;
	return pcm_dev_read(e->cdev, off, io->bounce + at, x->len);
}

/* One rung of the ladder: a write plus a backing flush. */
static int piece_write(struct pce_wbio *io, uint64_t off, const uint8_t *src, uint64_t len)
{
	struct iovec v = { .iov_base = (void *)src, .iov_len = len };
	int rc = pce_bk_writev(&io->e->bk, &v, 1, off);

	if (!rc)
		rc = pce_bk_sync(&io->e->bk);
	if (rc && !io->err)
		io->err = rc;
	return rc;
}

/* Smaller and smaller pieces of one range; lists what never succeeds. */
static int ladder_range(struct pce_wbio *io, uint64_t off, const uint8_t *src, uint64_t len,
			uint32_t step)
{
	int rc = 0;

	for (uint64_t d = 0; d < len && rc != -ENOMEM; d += step) {
		uint64_t n = pce_min(step, len - d);

		if (!piece_write(io, off + d, src + d, n)) {
			io->bytes += n;
			continue;
		}
		if (step > PCM_SECTOR)
			rc = ladder_range(io, off + d, src + d, n, step > PIECE ? PIECE : PCM_SECTOR);
		else
			rc = add_failed(io, off + d, n);
	}
	return rc;
}

/* The ladder for extents x[0..n): each whole again, then 64 KiB, then sectors. */
static int ladder(struct pce_wbio *io, const struct pcm_extent *x, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		const uint8_t *src;

		rc = bounce_reserve(io, x[i].len);
		if (!rc)
			rc = extent_src(io, &x[i], 0, &src);
		if (!rc)
			rc = ladder_range(io, x[i].off, src, x[i].len, x[i].len);
	}
	return rc;
}

/* Extents i.. that are logically contiguous, up to IOV_MAX entries and RUN_MAX bytes. */
static size_t run_end(const struct pce_scratch *s, size_t i)
{
	uint64_t bytes = s->v[i].len;
	size_t j = i + 1;

	while (j < s->n && j - i < IOV_MAX && s->v[j].off == s->v[j - 1].off + s->v[j - 1].len &&
	       !(s->v[j].flags & PCM_EXT_CLEAN) && bytes + s->v[j].len <= RUN_MAX)
		bytes += s->v[j++].len;
	return j;
}

/* A batch split into runs: logically contiguous non-CLEAN extents [i, j). */
struct run {
	size_t i, j;
	uint64_t bytes;
	int rc;
};

static int runs_of(const struct pce_scratch *s, struct run **out, size_t *n)
{
	struct run *r = malloc((s->n ? s->n : 1) * sizeof(*r));
	size_t k = 0;

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < s->n;) {
		if (s->v[i].flags & PCM_EXT_CLEAN) {
			i++;
			continue;
		}
		r[k] = (struct run){ .i = i, .j = run_end(s, i) };
		i = r[k++].j;
	}
	*out = r;
	*n = k;
	return 0;
}

/* One vectored write of x[0..n) from the mapping (or the bounce buffer: one writer only). */
static int run_write(struct pce_wbio *io, const struct pcm_extent *x, size_t n, uint64_t *bytes)
{
	struct iovec iov[IOV_MAX];
	uint64_t total = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		total += x[i].len;
	*bytes = total;
	rc = bounce_reserve(io, total);
	total = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const uint8_t *src;

		rc = extent_src(io, &x[i], total, &src);
		iov[i] = (struct iovec){ .iov_base = (void *)src, .iov_len = x[i].len };
		total += x[i].len;
	}
	return rc ? rc : pce_bk_writev(&io->e->bk, iov, (int)n, x[0].off);
}

/* A run that failed: the ladder, or the whole run listed. */
static int run_failed(struct pce_wbio *io, const struct pce_scratch *s, const struct run *r)
{
	if (r->rc == -ENOMEM)
		return r->rc;
	if (!io->err)
		io->err = r->rc;
	return io->retry ? ladder(io, &s->v[r->i], r->j - r->i) :
	       add_failed(io, s->v[r->i].off, r->bytes);
}

struct par {
	struct pce_wbio *io;
	const struct pce_scratch *s;
	struct run *r;
	size_t n, next;                  /* next: atomic */
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	size_t k;

	while ((k = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) < p->n) {
		struct run *r = &p->r[k];

		r->rc = run_write(p->io, &p->s->v[r->i], r->j - r->i, &r->bytes);
	}
	return NULL;
}

/*
 * As the kernel, every write of a batch in flight at once (their order inside a batch
 * does not matter): a few threads keep the device queue full.  A cache that is not
 * mapped goes through the one bounce buffer, so it is written by the caller alone.
 */
static void runs_write(struct pce_wbio *io, const struct pce_scratch *s, struct run *r, size_t n)
{
	struct par p = { .io = io, .s = s, .r = r, .n = n };
	pthread_t th[IO_THREADS];
	unsigned t = 0;

	if (pcm_dev_ptr(io->e->cdev, 0, 1))
		while (t < IO_THREADS - 1 && t + 1 < n && !pthread_create(&th[t], NULL, par_main, &p))
			t++;
	par_main(&p);
	while (t--)
		pthread_join(th[t], NULL);
}

/* After a failed backing flush nobody knows which write was lost: redo all, one by one. */
static int batch_sync(struct pce_wbio *io, const struct pce_scratch *s, uint64_t before)
{
	int rc = pce_bk_sync(&io->e->bk);

	if (!rc)
		return 0;
	if (!io->err)
		io->err = rc;
	io->bytes = before;
	if (!io->retry)
		return add_failed(io, s->v[0].off,
				  s->v[s->n - 1].off + s->v[s->n - 1].len - s->v[0].off);
	for (size_t i = 0; i < s->n && !rc; i++)
		if (!(s->v[i].flags & PCM_EXT_CLEAN))
			rc = ladder(io, &s->v[i], 1);
	return rc == -ENOMEM ? rc : 0;
}

int pce_wbio_batch(struct pce_wbio *io, const struct pce_scratch *s)
{
	uint64_t before = io->bytes;
	size_t fails = io->n_failed, n;
	struct run *r;
	int rc = runs_of(s, &r, &n);

	if (rc)
		return rc;
	runs_write(io, s, r, n);
	for (size_t k = 0; k < n && !rc; k++) {
		if (r[k].rc)
			rc = run_failed(io, s, &r[k]);
		else
			io->bytes += r[k].bytes;
	}
	free(r);
	if (!rc && io->bytes > before && io->n_failed == fails)
		rc = batch_sync(io, s, before);
	return rc;
}
