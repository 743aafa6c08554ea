/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bad blocks: the ranges of a device the hardware reports as poisoned.
 * Mapped devices (devdax, files on a DAX filesystem) ask libpmem2, which finds
 * the namespace's badblocks through libndctl (and a file's extents on it);
 * block devices read /sys/class/block/NAME/badblocks (512-byte sectors).  A
 * file on a filesystem without DAX has none.  A listed range is not
 * necessarily unreadable (poison is per cache line, the list per sector or
 * page), but a write there may not stick and a later read may fail.
 *
 * Test seam: PCACHE_TEST_BADBLOCKS="OFF:LEN[,OFF:LEN...]" (bytes) adds ranges
 * to every device's list.  They are listed only: reads of them still work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "device_int.h"

struct bbvec {
	struct pcm_badblock *v;
	size_t n, cap;
};

static int bb_add(struct bbvec *b, uint64_t size, uint64_t off, uint64_t len)
{
	if (off >= size || !len)
		return 0;
	if (len > size - off)
		len = size - off;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct pcm_badblock *v = realloc(b->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = (struct pcm_badblock){ off, len };
	return 0;
}

static int cmp_bb(const void *a, const void *b)
{
	const struct pcm_badblock *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorts and merges overlapping or touching ranges. */
static void bb_normalize(struct bbvec *b)
{
	size_t o = 0;

	if (!b->n)
		return;
	qsort(b->v, b->n, sizeof(*b->v), cmp_bb);
	for (size_t i = 1; i < b->n; i++) {
		struct pcm_badblock *last = &b->v[o];

		if (b->v[i].off <= last->off + last->len) {
			uint64_t end = b->v[i].off + b->v[i].len;

			if (end > last->off + last->len)
				last->len = end - last->off;
		} else {
			b->v[++o] = b->v[i];
		}
	}
	b->n = o + 1;
}

static int from_pmem2(struct pcm_dev *dev, struct bbvec *b)
{
	struct pmem2_source *src = dev->src, *tmp = NULL;
	struct pmem2_badblock_context *ctx = NULL;
	struct pmem2_badblock bb;
	int rc;

	if (!src) {
		if (pmem2_source_from_fd(&tmp, dev->fd))
			return 0;   /* not something pmem2 knows: no bad blocks to ask for */
		src = tmp;
	}
	/* A file on a filesystem without DAX or a region ndctl cannot see: none known. */
	rc = pmem2_badblock_context_new(&ctx, src);
	while (!rc && ctx) {
		rc = pmem2_badblock_next(ctx, &bb);
		if (!rc)
			rc = bb_add(b, dev->size, bb.offset, bb.length);
	}
	if (ctx)
		pmem2_badblock_context_delete(&ctx);
	if (tmp)
		pmem2_source_delete(&tmp);
	return rc == -ENOMEM ? rc : 0;
}

static int from_sysfs(struct pcm_dev *dev, struct bbvec *b)
{
	char path[128], line[128];
	unsigned long long sector, count, start = 0;
	FILE *f;
	int rc = 0;

	/* A partition: the whole disk's list, shifted by the partition start. */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/start", major(dev->rdev),
		 minor(dev->rdev));
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &start) != 1)
			start = 0;
		fclose(f);
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../badblocks",
			 major(dev->rdev), minor(dev->rdev));
	} else {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/badblocks", major(dev->rdev),
			 minor(dev->rdev));
	}
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!rc && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llu %llu", &sector, &count) != 2)
			continue;
		if (sector + count <= start)
			continue;
		if (sector < start) {
			count -= start - sector;
			sector = start;
		}
		rc = bb_add(b, dev->size, (sector - start) * PCM_SECTOR, count * PCM_SECTOR);
	}
	fclose(f);
	return rc;
}

static int from_env(struct pcm_dev *dev, struct bbvec *b)
{
	const char *s = getenv("PCACHE_TEST_BADBLOCKS");

	while (s && *s) {
		char *end;
		uint64_t off = strtoull(s, &end, 0), len;
		int rc;

		if (*end != ':')
			return -EINVAL;
		len = strtoull(end + 1, &end, 0);
		if (*end && *end != ',')
			return -EINVAL;
		s = *end ? end + 1 : end;
		rc = bb_add(b, dev->size, off, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* An overlay has its base's bad blocks, through any number of overlays. */
static struct pcm_dev *bb_dev(struct pcm_dev *dev)
{
	while (dev->ov_base)
		dev = dev->ov_base;
	return dev;
}

static int bb_load(struct pcm_dev *dev)
{
	struct bbvec b = { 0 };
	int rc;

	dev = bb_dev(dev);
	if (dev->bb_known)
		return 0;
	rc = dev->kind == PCM_DEV_BLOCK ? from_sysfs(dev, &b) : from_pmem2(dev, &b);
	if (!rc)
		rc = from_env(dev, &b);
	if (rc) {
		free(b.v);
		return rc;
	}
	bb_normalize(&b);
	dev->bb = b.v;
	dev->nbb = b.n;
	dev->bb_known = true;
	return 0;
}

int pcm_dev_badblock_list(struct pcm_dev *dev, const struct pcm_badblock **list, size_t *n)
{
	int rc = bb_load(dev);

	dev = bb_dev(dev);
	*list = rc ? NULL : dev->bb;
	*n = rc ? 0 : dev->nbb;
	return rc;
}

int pcm_dev_badblocks(struct pcm_dev *dev, int (*cb)(uint64_t off, uint64_t len, void *arg),
		      void *arg)
{
	const struct pcm_badblock *l;
	size_t n;
	int rc = pcm_dev_badblock_list(dev, &l, &n);

	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(l[i].off, l[i].len, arg);
	return rc;
}

const struct pcm_badblock *pcm_badblock_find(const struct pcm_badblock *l, size_t n,
					     uint64_t off, uint64_t len)
{
	size_t lo = 0, hi = n;

	if (!len)
		return NULL;
	/* the first range ending after off */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l[mid].off + l[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && l[lo].off < off + len ? &l[lo] : NULL;
}

int pcm_repair_badblock_conflict(struct pcm_dev *dev, const struct pcm_repair_plan *p,
				 uint64_t *write, struct pcm_badblock *bb)
{
	const struct pcm_badblock *l, *hit;
	const struct pcm_ov_write *w;
	uint64_t nw;
	size_t n;
	int rc = pcm_dev_badblock_list(dev, &l, &n);

	if (rc)
		return rc;
	w = pcm_dev_overlay_writes(p->ov, &nw);
	for (uint64_t i = 0; n && i < nw; i++) {
		hit = pcm_badblock_find(l, n, w[i].off, w[i].len);
		if (hit) {
			if (write)
				*write = i;
			if (bb)
				*bb = *hit;
			return 1;
		}
	}
	return 0;
}
