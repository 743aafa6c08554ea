/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Check passes over the key log: walk, ksets, keys, where the log ends. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"
#include "le.h"

struct span {
	uint32_t cseg, seg_off, len;
	uint32_t key;    /* ordinal in the log, for messages */
};

struct logchk {
	struct chk *k;
	const struct pcm_cache *c;
	uint8_t *on_log;         /* per cseg: on the log path */
	struct span *spans;
	uint64_t nspans, capspans, nkeys;
	int err;
};

static void where_key(const struct pcm_walk *w, unsigned i, char *buf, size_t len)
{
	snprintf(buf, len, "kset %u:%u key %u", w->pos.cseg, w->pos.seg_off, i);
}

static uint64_t kset_dev_off(const struct logchk *l, const struct pcm_walk *w)
{
	return pcm_pos_dev_off(l->c, w->pos.cseg, w->pos.seg_off);
}

static int on_kset(const struct pcm_walk *w, void *arg)
{
	struct logchk *l = arg;
	const struct pcm_kset_hdr *h = &w->hdr;
	char where[64];

	snprintf(where, sizeof(where), "kset %u:%u", w->pos.cseg, w->pos.seg_off);
	if (l->k->o->progress)
		l->k->o->progress(w->ksets, l->k->o->arg);
	if (h->flags & PCM_KSET_F_LAST) {
		if (h->key_num < l->c->n_segs && l->on_log[h->key_num]++ == 1)
			chk_report(l->k, PCM_P_LOG_LOOP, kset_dev_off(l, w), where,
				   "LAST kset leads back to segment %u", h->key_num);
		return 0;
	}
	if (h->flags & ~PCM_KSET_F_LAST)
		chk_report(l->k, PCM_P_KSET_FLAGS, kset_dev_off(l, w), where, "flags 0x%llx",
			   (unsigned long long)h->flags);
	if (h->key_num == 0)
		chk_report(l->k, PCM_P_KSET_EMPTY, kset_dev_off(l, w), where, "key_num 0");
	else if (PCM_DATA_SIZE - w->pos.seg_off < pcm_kset_size(h) + PCM_KSET_HDR_SIZE &&
		 PCM_DATA_SIZE - w->pos.seg_off >= pcm_kset_size(h))
		chk_report(l->k, PCM_P_KSET_NO_ROOM, kset_dev_off(l, w), where,
			   "%llu bytes left after it", (unsigned long long)(PCM_DATA_SIZE -
			   w->pos.seg_off - pcm_kset_size(h)));
	return 0;
}

static const enum pcm_problem_code verdict_code[] = {
	[PCM_KEY_BAD_LEN] = PCM_P_KEY_RANGE, [PCM_KEY_BAD_SEG] = PCM_P_KEY_SEG_RANGE,
	[PCM_KEY_BAD_SEG_OFF] = PCM_P_KEY_SEG_OFF, [PCM_KEY_BAD_DATA_CRC] = PCM_P_KEY_DATA_CRC,
	[PCM_KEY_IO] = PCM_P_KEY_IO,
};

static void key_shape(struct logchk *l, const struct pcm_walk *w, unsigned i,
		      const struct pcm_key *key, const char *where)
{
	struct chk *k = l->k;
	uint64_t off = kset_dev_off(l, w) + PCM_KSET_HDR_SIZE + (uint64_t)i * PCM_KEY_SIZE;
	uint64_t win = key->off >> PCM_WINDOW_SHIFT;
	bool crosses = key->len && ((key->off + key->len - 1) >> PCM_WINDOW_SHIFT) != win;

	if (key->flags & PCM_KEY_F_EMPTY)
		chk_report(k, PCM_P_KEY_EMPTY, off, where, "off %llu len %u",
			   (unsigned long long)key->off, key->len);
	if (key->off % PCM_SECTOR)
		chk_report(k, PCM_P_KEY_SECTOR, off, where, "off %llu len %u seg_off %u",
			   (unsigned long long)key->off, key->len, key->seg_off);
	else if (key->len % PCM_SECTOR || key->seg_off % PCM_SECTOR ||
		 key->len > (1u << PCM_WINDOW_SHIFT) || crosses)
		chk_report(k, PCM_P_KEY_UNALIGNED, off, where, "off %llu len %u seg_off %u",
			   (unsigned long long)key->off, key->len, key->seg_off);
	if ((key->flags & ~(PCM_KEY_F_EMPTY | PCM_KEY_F_CLEAN)) || key->reserved ||
	    (!l->c->data_crc && key->data_crc))
		chk_report(k, PCM_P_KEY_FLAGS, off, where, "flags 0x%x reserved 0x%x data_crc 0x%x",
			   key->flags, key->reserved, key->data_crc);
}

static int add_span(struct logchk *l, const struct pcm_key *key)
{
	if (l->nspans == l->capspans) {
		uint64_t cap = l->capspans ? l->capspans * 2 : 1024;
		struct span *s = realloc(l->spans, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		l->spans = s;
		l->capspans = cap;
	}
	l->spans[l->nspans++] = (struct span){ key->cseg, key->seg_off, key->len,
					       (uint32_t)l->nkeys };
	return 0;
}

static int on_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *key,
		  enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct logchk *l = arg;
	uint64_t off = kset_dev_off(l, w) + PCM_KSET_HDR_SIZE + (uint64_t)i * PCM_KEY_SIZE;
	char where[64];

	(void)dirty;
	l->nkeys++;
	where_key(w, i, where, sizeof(where));
	key_shape(l, w, i, key, where);
	if (v != PCM_KEY_OK) {
		chk_report(l->k, verdict_code[v], off, where, "off %llu len %u segment %u:%u: %s",
			   (unsigned long long)key->off, key->len, key->cseg, key->seg_off,
			   pcm_key_verdict_str(v));
		return 0;
	}
	if (stale) {
		chk_report(l->k, PCM_P_KEY_STALE, off, where, "seg_gen %llu, segment %u gen %llu",
			   (unsigned long long)key->seg_gen, key->cseg,
			   (unsigned long long)l->c->gen[key->cseg]);
		return 0;
	}
	if (key->seg_gen > l->c->gen[key->cseg])
		chk_report(l->k, PCM_P_KEY_GEN_AHEAD, off, where, "seg_gen %llu, segment %u gen %llu",
			   (unsigned long long)key->seg_gen, key->cseg,
			   (unsigned long long)l->c->gen[key->cseg]);
	l->err = add_span(l, key);
	return l->err;
}

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->cseg != y->cseg)
		return x->cseg < y->cseg ? -1 : 1;
	return x->seg_off < y->seg_off ? -1 : x->seg_off > y->seg_off;
}

/*
 * KY8: live keys of one segment must not share data space.  Every overlapping
 * pair, not only neighbours in seg_off order (a long key can overlap several
 * that do not overlap each other); at most 1000 reports.
 */
static void chk_alias(struct logchk *l)
{
	uint64_t reported = 0;
	char where[64];

	if (l->nspans)   /* qsort(NULL, 0) is undefined */
		qsort(l->spans, l->nspans, sizeof(*l->spans), cmp_span);
	for (uint64_t i = 0; i < l->nspans && reported < 1000; i++) {
		const struct span *a = &l->spans[i];
		uint64_t end = (uint64_t)a->seg_off + a->len;

		for (uint64_t j = i + 1; j < l->nspans && l->spans[j].cseg == a->cseg &&
		     l->spans[j].seg_off < end && reported++ < 1000; j++) {
			const struct span *b = &l->spans[j];

			snprintf(where, sizeof(where), "segment %u", b->cseg);
			chk_report(l->k, PCM_P_KEY_ALIAS, pcm_pos_dev_off(l->c, b->cseg, b->seg_off),
				   where, "keys #%u and #%u both use data at %u:%u", a->key, b->key,
				   b->cseg, b->seg_off);
		}
	}
}

/* §12.9: a kset claiming more than its segment holds, whatever its CRC says. */
static void chk_oversize_claim(struct logchk *l, struct pcm_pos at, uint64_t off, const char *where)
{
	uint8_t buf[PCM_KSET_HDR_SIZE];
	struct pcm_kset_hdr h;

	if (pcm_dev_read(l->c->dev, off, buf, sizeof(buf)))
		return;
	pcm_kset_hdr_decode(buf, &h);
	if (h.magic == PCM_KSET_MAGIC && !(h.flags & PCM_KSET_F_LAST) &&
	    h.key_num <= PCM_KSET_KEYS_MAX && pcm_kset_size(&h) > PCM_DATA_SIZE - at.seg_off)
		chk_report(l->k, PCM_P_KSET_OVERSIZE_CORRUPT, off, where,
			   "%u keys (%llu bytes) with %u bytes left in the segment", h.key_num,
			   (unsigned long long)pcm_kset_size(&h), PCM_DATA_SIZE - at.seg_off);
}

/* The ksets walked from q are lost to the kernel, whose log ends at end. */
static void chk_lost_from(struct logchk *l, struct pcm_pos end, struct pcm_pos q)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	char where[64];

	if (!w)
		return;
	pcm_walk_init(w, l->c, q);
	while (pcm_walk_next(w) == PCM_WALK_KSET || w->stop == PCM_STOP_NONE)
		;
	if (!w->ksets) {
		free(w);
		return;
	}
	l->k->res->lost_keys += w->keys;
	snprintf(where, sizeof(where), "log end %u:%u", end.cseg, end.seg_off);
	chk_report(l->k, PCM_P_LOG_LOST_KSETS, pcm_pos_dev_off(l->c, end.cseg, end.seg_off), where,
		   "%llu valid kset%s with %llu key%s follow%s from %u:%u",
		   (unsigned long long)w->ksets, w->ksets == 1 ? "" : "s",
		   (unsigned long long)w->keys, w->keys == 1 ? "" : "s", w->ksets == 1 ? "s" : "",
		   q.cseg, q.seg_off);
	free(w);
}


/*
 * The log ends at a kset that fails its tests.  key_tail inside a kset, or a
 * damaged kset with valid ksets behind it (pcm_walk_salvage), loses those
 * ksets; a kset torn by a crash at the head (nothing valid behind it) loses
 * only what was never flushed, also when it is the first kset at key_tail.
 */
static void chk_bad_end(struct logchk *l, const struct pcm_replay *r, uint64_t off,
			const char *where)
{
	const struct pcm_cache *c = l->c;
	bool at_tail = pcm_pos_eq(r->key_head, c->key_tail.pos);
	struct pcm_pos b, q;
	bool mid = at_tail && pcm_walk_boundary_after(c, r->key_head, &b) &&
		   !pcm_pos_eq(b, r->key_head);
	bool salvage = !mid && pcm_walk_salvage(c, r->key_head, &q);

	if (mid || (at_tail && salvage))
		chk_report(l->k, PCM_P_LOG_START_INVALID, off, where, "%s at key_tail",
			   pcm_walk_stop_str(r->stop));
	else
		chk_report(l->k, salvage ? PCM_P_LOG_END_CORRUPT : PCM_P_LOG_END_TORN, off, where,
			   "%s", pcm_walk_stop_str(r->stop));
	if (mid)
		chk_lost_from(l, r->key_head, b);
	else if (salvage)
		chk_lost_from(l, r->key_head, q);
}

static void chk_walk_end(struct logchk *l, const struct pcm_replay *r)
{
	static const enum pcm_problem_code fail_code[] = {
		[PCM_FAIL_HOPS] = PCM_P_LOG_HOPS, [PCM_FAIL_NEXT_RANGE] = PCM_P_LOG_NEXT_RANGE,
		[PCM_FAIL_OVERSIZE] = PCM_P_LOG_KSET_OVERSIZE, [PCM_FAIL_IO] = PCM_P_LOG_IO,
	};
	const struct pcm_cache *c = l->c;
	uint64_t off = pcm_pos_dev_off(c, r->key_head.cseg, r->key_head.seg_off);
	char where[64];

	snprintf(where, sizeof(where), "kset %u:%u", r->key_head.cseg, r->key_head.seg_off);
	if (r->stop >= PCM_FAIL_HOPS) {
		chk_report(l->k, fail_code[r->stop], off, where, "%s", pcm_walk_stop_str(r->stop));
		return;
	}
	/* key_head lands here whatever ended the log: the next kset close would write
	 * its LAST kset past the data area */
	if (PCM_DATA_SIZE - r->key_head.seg_off < PCM_KSET_HDR_SIZE)
		chk_report(l->k, PCM_P_KSET_NO_ROOM, off, where,
			   "the log ends %u bytes before its segment's end",
			   PCM_DATA_SIZE - r->key_head.seg_off);
	if (r->stop == PCM_STOP_TERMINATOR)
		return;
	chk_oversize_claim(l, r->key_head, off, where);
	chk_bad_end(l, r, off, where);
}

static void chk_tails_and_segments(struct logchk *l, const struct pcm_replay *r)
{
	const struct pcm_cache *c = l->c;
	char where[64];

	if (!r->dirty_tail_on_log)
		chk_report(l->k, PCM_P_DIRTY_TAIL_OFF_LOG,
			   PCM_DIRTY_TAIL_OFF + (uint64_t)c->dirty_tail.slot * PCM_POS_SIZE, "dirty_tail",
			   "%u:%u is not met walking the log from key_tail %u:%u to key_head %u:%u",
			   c->dirty_tail.pos.cseg, c->dirty_tail.pos.seg_off, c->key_tail.pos.cseg,
			   c->key_tail.pos.seg_off, r->key_head.cseg, r->key_head.seg_off);
	/* with dirty_tail on the log, its walk is the end of replay's own: a failure there is
	 * the log's (LOG_HOPS, LOG_NEXT_RANGE, LOG_KSET_OVERSIZE, LOG_IO), reported once, as that */
	if (r->dirty_chain_stop >= PCM_FAIL_HOPS && !r->dirty_tail_on_log)
		chk_report(l->k, PCM_P_DIRTY_CHAIN_FAIL, UINT64_MAX, "dirty_tail", "%s",
			   pcm_walk_stop_str(r->dirty_chain_stop));
	for (uint32_t s = 0; s < c->n_segs; s++) {
		if (r->seg_used[s] != 3)
			continue;
		snprintf(where, sizeof(where), "segment %u", s);
		chk_report(l->k, PCM_P_LOG_DATA_OVERLAP, pcm_seg_base(c->dseg[s]), where,
			   "%u live keys point into a segment that holds the log", r->refs[s]);
	}
}

static void fill_result(struct pcm_check_result *res, const struct pcm_replay *r,
			const struct pcm_cache *c, bool verify_data)
{
	res->replayed = true;
	res->max_key_end = r->max_key_end;
	res->data_crc = c->data_crc;
	res->data_verified = c->data_crc && verify_data;
	res->ksets = r->ksets;
	res->keys = r->keys;
	res->live_extents = r->live_extents;
	res->dirty_bytes = r->dirty_bytes;
	res->clean_bytes = r->clean_bytes;
	res->key_head = r->key_head;
	res->stale_keys = r->stale_keys;
	res->last_ksets = r->last_ksets;
	res->segs_used = r->segs_used;
}

int chk_log(struct chk *k)
{
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct logchk l = { .k = k };
	struct pcm_replay_opts ro = { .verify_data = k->o->verify_data, .keep_going = true,
				      .on_key = on_key, .on_kset = on_kset, .arg = &l };
	int rc = pcm_cache_open(k->dev, &c, NULL);

	if (rc)
		return rc;   /* the metadata passes would have said why */
	c->backing_size = k->o->backing_size;
	l.c = c;
	l.on_log = calloc(c->n_segs, 1);
	rc = l.on_log ? 0 : -ENOMEM;
	if (!rc) {
		l.on_log[c->key_tail.pos.cseg] = 1;
		rc = pcm_replay_run(c, &ro, &r);
	}
	if (!rc && l.err)
		rc = l.err;
	if (!rc) {
		chk_walk_end(&l, r);
		chk_tails_and_segments(&l, r);
		if (r->stop != PCM_FAIL_HOPS)   /* a looping log meets the same keys again */
			chk_alias(&l);
		fill_result(k->res, r, c, k->o->verify_data);
	}
	pcm_replay_free(r);
	free(l.spans);
	free(l.on_log);
	pcm_cache_close(c);
	return rc;
}
