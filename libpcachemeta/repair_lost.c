/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a repair gives up, as logical byte ranges: the log read as far as it
 * can be (salvaging past damage, data CRCs not trusted) is compared with the
 * repaired log.  A byte the first maps to data that the second no longer maps
 * to the same place loses its newest version: reads there return older cached
 * data or the backing device (which holds it when it was written back).  A byte
 * both map to different data counts as lost even when the repaired log's is the
 * newer one (a key that a metadata fix made valid again): the list errs on the
 * side of naming too much.
 */
#include <errno.h>
#include <stdlib.h>

#include "repair_int.h"

struct ranges {
	struct pcm_range **v;
	uint64_t *n, *bytes, cap;
};

static int ranges_add(struct ranges *s, uint64_t off, uint64_t len)
{
	struct pcm_range *last = *s->n ? &(*s->v)[*s->n - 1] : NULL;

	*s->bytes += len;
	if (last && last->off + last->len == off) {
		last->len += len;
		return 0;
	}
	if (*s->n == s->cap) {
		uint64_t cap = s->cap ? s->cap * 2 : 64;
		struct pcm_range *n = realloc(*s->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		*s->v = n;
		s->cap = cap;
	}
	(*s->v)[(*s->n)++] = (struct pcm_range){ off, len };
	return 0;
}

struct diff {
	const struct pcm_index *after;
	struct ranges lost, suspect;
	uint64_t lost_dirty;
	int err;
};

static void lost_add(struct diff *d, const struct pcm_extent *e, uint64_t off, uint64_t len)
{
	int rc = ranges_add(e->flags & PCM_EXT_SUSPECT ? &d->suspect : &d->lost, off, len);

	if ((e->flags & (PCM_EXT_SUSPECT | PCM_EXT_DIRTY)) == PCM_EXT_DIRTY)
		d->lost_dirty += len;
	if (rc)
		d->err = rc;
}

/* Unmapped after the repair: a byte written back (not dirty) reads the same from
 * the backing device, so only dirty (and suspect) data is lost there. */
static void unmapped(struct diff *d, const struct pcm_extent *e, uint64_t off, uint64_t len)
{
	if (e->flags & (PCM_EXT_DIRTY | PCM_EXT_SUSPECT))
		lost_add(d, e, off, len);
}

/* Same data for byte x: the same segment and the same offset in it. */
static bool same_data(const struct pcm_extent *a, const struct pcm_extent *b, uint64_t x)
{
	return a->cseg == b->cseg &&
	       a->seg_off + (x - a->off) == b->seg_off + (x - b->off);
}

/* Extents never cross a 4 MiB window (§6.6), so lookups in e's window find all. */
static int diff_extent(const struct pcm_extent *e, void *arg)
{
	struct diff *d = arg;
	uint64_t x = e->off, end = e->off + e->len;
	uint64_t wend = ((e->off >> PCM_WINDOW_SHIFT) + 1) << PCM_WINDOW_SHIFT;

	/* reads never saw the part of a key past its first window (§12.11); whatever
	 * the repair maps there now changes what they return (not data lost, so not
	 * in lost_dirty) */
	if (end > wend) {
		int rc = ranges_add(&d->lost, wend, end - wend);

		if (rc)
			return d->err = rc;
		end = wend;
	}

	while (x < end && !d->err) {
		const struct pcm_extent *a = pcm_index_lookup_ge(d->after, x);
		uint64_t stop;

		if (!a || a->off >= end) {
			unmapped(d, e, x, end - x);
			break;
		}
		if (a->off > x) {
			unmapped(d, e, x, a->off - x);
			x = a->off;
		}
		stop = a->off + a->len < end ? a->off + a->len : end;
		if (!same_data(e, a, x))
			lost_add(d, e, x, stop - x);
		x = stop;
	}
	return d->err;
}

static int replay_of(struct pcm_dev *dev, bool salvage, struct pcm_cache **c,
		     struct pcm_replay **r)
{
	struct pcm_replay_opts ro = { .keep_going = true, .salvage = salvage };
	int rc = pcm_cache_open(dev, c, NULL);

	if (rc)
		return rc;
	rc = pcm_replay_run(*c, &ro, r);
	if (rc) {
		pcm_cache_close(*c);
		*c = NULL;
	}
	return rc;
}

int lost_baseline(struct rplan *r, struct pcm_dev *dev)
{
	int rc = r->base_r ? 0 : replay_of(dev, true, &r->base_c, &r->base_r);

	return rc == -ENOMEM ? rc : 0;
}

int lost_ranges(struct rplan *r)
{
	struct pcm_repair_plan *plan = r->plan;
	struct pcm_cache *ca = NULL;
	struct pcm_replay *ra = NULL;
	struct diff d = {
		.lost = { &plan->lost_ranges, &plan->nlost_ranges, &plan->lost_bytes, 0 },
		.suspect = { &plan->suspect_ranges, &plan->nsuspect_ranges, &plan->suspect_bytes, 0 },
	};
	int rc = 0;

	if (r->base_r && !replay_of(plan->ov, false, &ca, &ra)) {
		d.after = ra->idx;
		rc = pcm_index_foreach(r->base_r->idx, diff_extent, &d);
		plan->lost_ranges_known = !rc;
		/* live bytes, not the sum of the keys', which counts overwritten data too */
		if (!rc)
			plan->lost_dirty_bytes = d.lost_dirty;
	}
	pcm_replay_free(ra);
	pcm_cache_close(ca);
	pcm_replay_free(r->base_r);
	pcm_cache_close(r->base_c);
	r->base_r = NULL;
	r->base_c = NULL;
	return rc == -ENOMEM ? rc : 0;
}
