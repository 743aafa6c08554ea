/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Repairs of the fixed metadata: superblock, replicas, cache_info, chain, gens, tails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repair_int.h"

static uint64_t seg_base_of(uint64_t off)
{
	return PCM_SEGMENTS_OFF + (off - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE * PCM_SEG_SIZE;
}

int rec_write(struct pcm_dev *dev, uint64_t off, uint8_t *rec, size_t size, uint8_t seq)
{
	rec[4] = seq;
	pcm_record_seal(rec, size);
	return pcm_dev_write(dev, off, rec, size);
}

static int read_pick(struct pcm_dev *dev, uint64_t off0, uint64_t off1, size_t size,
		     uint8_t raw[2][24])
{
	const uint8_t *rec[2] = { raw[0], raw[1] };
	int rc = pcm_dev_read(dev, off0, raw[0], size);

	if (!rc)
		rc = pcm_dev_read(dev, off1, raw[1], size);
	return rc ? rc : pcm_replica_pick(rec, size, NULL);
}

int rec_update(struct pcm_dev *dev, uint64_t off0, uint64_t off1, size_t size, uint8_t *rec)
{
	uint8_t raw[2][24];
	int pick = read_pick(dev, off0, off1, size, raw);

	if (pick < -1)
		return pick;
	if (pick < 0)   /* as from the kernel's initial state: index 0, seq 0 */
		return rec_write(dev, off1, rec, size, 1);
	return rec_write(dev, pick ? off0 : off1, rec, size, (uint8_t)(raw[pick][4] + 1));
}

int tail_write(struct pcm_dev *dev, int which, struct pcm_pos pos)
{
	uint64_t base = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;
	struct pcm_pos_rec p = { .pos = pos };
	uint8_t rec[PCM_POS_SIZE], raw[2][24];
	int pick = read_pick(dev, base, base + PCM_POS_SIZE, PCM_POS_SIZE, raw);

	if (pick < -1)
		return pick;
	pcm_pos_rec_encode(&p, rec);
	if (pick < 0)
		return rec_write(dev, base, rec, sizeof(rec), 1);
	return rec_write(dev, pick ? base : base + PCM_POS_SIZE, rec, sizeof(rec),
			 (uint8_t)(raw[pick][4] + 1));
}

/* Where a replicated record lies, from the code and the offset of the problem. */
static int rec_loc(const struct pcm_problem *p, uint64_t off[2], size_t *size)
{
	uint64_t b;

	switch (p->code) {
	case PCM_P_CI_REPLICA_BAD: case PCM_P_CI_SEQ_AMBIGUOUS:
		off[0] = PCM_CACHE_INFO_OFF;
		off[1] = PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT;
		*size = PCM_CACHE_INFO_SIZE;
		return 0;
	case PCM_P_TAIL_REPLICA_BAD: case PCM_P_TAIL_SEQ_AMBIGUOUS:
		off[0] = p->offset < PCM_DIRTY_TAIL_OFF ? PCM_KEY_TAIL_OFF : PCM_DIRTY_TAIL_OFF;
		off[1] = off[0] + PCM_POS_SIZE;
		*size = PCM_POS_SIZE;
		return 0;
	case PCM_P_SEGINFO_REPLICA_BAD: case PCM_P_SEGINFO_SEQ_AMBIGUOUS:
		b = seg_base_of(p->offset);
		off[0] = b;
		off[1] = b + PCM_SEG_INFO_SLOT;
		*size = PCM_SEG_INFO_SIZE;
		return 0;
	case PCM_P_GEN_REPLICA_BAD: case PCM_P_GEN_SEQ_AMBIGUOUS:
		b = seg_base_of(p->offset) + PCM_SEG_CTRL_OFF;
		off[0] = b;
		off[1] = b + PCM_SEG_GEN_SIZE;
		*size = PCM_SEG_GEN_SIZE;
		return 0;
	default:
		return -EINVAL;
	}
}

/* The replica the kernel does not read gets the one it reads, with the next seq. */
static int fix_replica(struct rplan *r, const struct pcm_problem *p)
{
	uint64_t off[2];
	size_t size;
	uint8_t raw[2][24];
	int pick, rc;

	if (rec_loc(p, off, &size))
		return 0;
	pick = read_pick(r->ov, off[0], off[1], size, raw);
	if (pick < 0)
		return pick < -1 ? pick : 0;
	if (!act_begin(r, p, "rewrite replica %d of %s from replica %d (seq %u -> %u)", 1 - pick,
		       p->where, pick, raw[pick][4], (uint8_t)(raw[pick][4] + 1)))
		return 0;
	rc = rec_write(r->ov, off[1 - pick], raw[pick], size, (uint8_t)(raw[pick][4] + 1));
	act_end(r);
	return rc ? rc : 1;
}

/* META_NONZERO: zero the whole unused range holding the reported byte. */
static int fix_unused(struct rplan *r, const struct pcm_problem *p)
{
	static const uint32_t dev_r[][2] = { { 8216, 12288 }, { 12312, 16384 }, { 16448, 20480 } };
	static const uint32_t seg_r[][2] = { { 16, 4096 }, { 4112, 8192 }, { 8224, 12288 } };
	uint64_t base = p->offset < PCM_SEGMENTS_OFF ? 0 : seg_base_of(p->offset);
	uint64_t rel = p->offset - base;
	const uint32_t (*rg)[2] = base ? seg_r : dev_r;
	int rc;

	for (int i = 0; i < 3; i++) {
		if (rel < rg[i][0] || rel >= rg[i][1])
			continue;
		if (!act_begin(r, p, "zero unused bytes [%llu, %llu)",
			       (unsigned long long)(base + rg[i][0]),
			       (unsigned long long)(base + rg[i][1])))
			return 0;
		rc = pcm_dev_zero(r->ov, base + rg[i][0], rg[i][1] - rg[i][0]);
		act_end(r);
		return rc ? rc : 1;
	}
	return 0;
}

/* The newest valid cache_info of the overlay, or -1. */
static int ci_get(struct pcm_dev *dev, struct pcm_cache_info *ci)
{
	struct pcm_cache_info r[2];
	struct pcm_rep_state st;
	int rc = pcm_read_cache_info(dev, r, &st);

	if (rc)
		return rc;
	if (st.pick >= 0)
		*ci = r[st.pick];
	return st.pick;
}

static int ci_put(struct pcm_dev *dev, const struct pcm_cache_info *ci)
{
	uint8_t rec[PCM_CACHE_INFO_SIZE];

	pcm_cache_info_encode(ci, rec);
	return rec_update(dev, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT,
			  sizeof(rec), rec);
}

static int fix_sb(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_sb sb;
	struct pcm_cache_info ci = { 0 };
	uint8_t rec[PCM_SB_SIZE];
	uint32_t fit = pcm_seg_num_for_size(pcm_dev_size(r->ov)), want;
	int rc = pcm_read_sb(r->ov, &sb, NULL), ci_ok;

	if (rc)
		return rc;
	fit = fit > PCM_SEGS_MAX ? PCM_SEGS_MAX : fit;
	if (r->o->keep_seg_num && sb.seg_num > fit && sb.seg_num <= PCM_SEGS_MAX &&
	    pcm_sb_check(&sb, pcm_dev_size(r->ov)) == PCM_SB_BAD_SEG_NUM) {
		r->plan->held_seg_num = true;   /* a valid superblock on a device too small */
		r->plan->seg_num_fit = fit;
		return 0;
	}
	ci_ok = ci_get(r->ov, &ci) >= 0 && ci.n_segs >= 1 && ci.n_segs <= fit;
	want = sb.seg_num >= 1 && sb.seg_num <= fit ? sb.seg_num : fit;
	if (ci_ok && want < ci.n_segs)
		want = ci.n_segs;
	if (ci_ok && (sb.seg_num < 1 || sb.seg_num > fit))
		want = ci.n_segs;
	if (!act_begin(r, p, "rewrite the superblock: little-endian, seg_num %u, flags and padding 0",
		       want))
		return 0;
	sb = (struct pcm_sb){ .magic = PCM_SB_MAGIC, .seg_num = want };
	pcm_sb_encode(&sb, rec);
	pcm_record_seal(rec, sizeof(rec));
	rc = pcm_dev_write(r->ov, PCM_SB_OFF, rec, sizeof(rec));
	act_end(r);
	return rc ? rc : 1;
}

/* With no cache_info left, DATA_CRC shows in the keys: a key whose data_crc matches. */
static bool keys_carry_crc(struct pcm_dev *dev)
{
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	bool found = false;

	if (!w || pcm_cache_open(dev, &c, NULL)) {
		free(w);
		return false;
	}
	c->data_crc = true;
	pcm_walk_init(w, c, c->key_tail.pos);
	while (!found && w->ksets < 64) {
		enum pcm_walk_event ev = pcm_walk_next(w);

		if (ev != PCM_WALK_KSET && ev != PCM_WALK_LAST)
			break;
		for (unsigned i = 0; ev == PCM_WALK_KSET && i < w->hdr.key_num && !found; i++) {
			struct pcm_key k;

			pcm_walk_key(w, i, &k);
			found = k.data_crc && pcm_key_check(c, &k, true) == PCM_KEY_OK;
		}
	}
	free(w);
	pcm_cache_close(c);
	return found;
}

static int fix_ci_lost(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_sb sb;
	struct pcm_cache_info ci = { 0 };
	int rc = pcm_read_sb(r->ov, &sb, NULL);

	if (rc)
		return rc;
	if (!act_begin(r, p, "rebuild cache_info: %u segments, gc_percent 70, data_crc as the keys show",
		       sb.seg_num))
		return 0;
	ci.n_segs = sb.seg_num;
	ci.flags = PCM_CI_F_INIT_DONE | (PCM_GC_PERCENT_DEFAULT << PCM_CI_GC_SHIFT);
	rc = ci_put(r->ov, &ci);
	if (!rc && keys_carry_crc(r->ov)) {
		ci.flags |= PCM_CI_F_DATA_CRC;
		rc = ci_put(r->ov, &ci);
	}
	act_end(r);
	return rc ? rc : 1;
}

static int fix_ci_field(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_cache_info ci = { 0 };
	struct pcm_sb sb;
	const char *what;
	int rc = ci_get(r->ov, &ci);

	if (rc < 0 || (rc = pcm_read_sb(r->ov, &sb, NULL)))
		return rc < -1 ? rc : 0;
	switch (p->code) {
	case PCM_P_CI_NOT_INIT_DONE: ci.flags |= PCM_CI_F_INIT_DONE; what = "set INIT_DONE"; break;
	case PCM_P_CI_N_SEGS_RANGE: ci.n_segs = sb.seg_num; what = "set n_segs to seg_num"; break;
	case PCM_P_CI_CACHE_MODE: ci.flags &= ~PCM_CI_MODE_MASK; what = "set cache mode to writeback"; break;
	case PCM_P_CI_GC_PERCENT:
		ci.flags = (ci.flags & ~PCM_CI_GC_MASK) | (PCM_GC_PERCENT_MAX << PCM_CI_GC_SHIFT);
		what = "set gc_percent to 90";
		break;
	case PCM_P_CI_UNKNOWN_BITS:
		ci.flags &= 0x1FFFu;
		ci.reserved = 0;
		what = "clear unknown flags and the reserved field";
		break;
	default:
		return 0;
	}
	if (!act_begin(r, p, "cache_info: %s (written to the other replica)", what))
		return 0;
	rc = ci_put(r->ov, &ci);
	act_end(r);
	return rc ? rc : 1;
}

static int seginfo_put(struct pcm_dev *dev, uint32_t dseg, uint32_t flags, uint32_t next)
{
	struct pcm_seg_info si = { .flags = flags, .next_seg = next };
	uint8_t rec[PCM_SEG_INFO_SIZE];
	uint64_t b = pcm_seg_base(dseg);

	pcm_seg_info_encode(&si, rec);
	return rec_update(dev, b, b + PCM_SEG_INFO_SLOT, sizeof(rec), rec);
}

/* Chain problems: the chain becomes the kernel's own layout, 0, 1, ..., n_segs-1. */
static int fix_chain(struct rplan *r, const struct pcm_problem *p)
{
	const uint32_t type = PCM_SEGI_TYPE_DATA << PCM_SEGI_TYPE_SHIFT;
	struct pcm_cache_info ci = { 0 };
	int rc = ci_get(r->ov, &ci);

	if (rc < 0)
		return rc < -1 ? rc : 0;
	if (!act_begin(r, p, "rebuild the segment chain as device segments 0..%u in order",
		       ci.n_segs - 1))
		return 0;
	rc = 0;
	if (ci.seg_id != 0) {
		ci.seg_id = 0;
		rc = ci_put(r->ov, &ci);
	}
	for (uint32_t i = 0; !rc && i < ci.n_segs; i++) {
		struct pcm_seg_info si[2];
		struct pcm_rep_state st;
		bool last = i + 1 == ci.n_segs;
		uint32_t want = last ? 0 : i + 1;

		rc = pcm_read_seg_info(r->ov, i, si, &st);
		if (rc)
			break;
		if (st.pick >= 0 && (last || ((si[st.pick].flags & PCM_SEGI_F_HAS_NEXT) &&
					     si[st.pick].next_seg == want)))
			continue;
		rc = seginfo_put(r->ov, i, type | (last ? 0 : PCM_SEGI_F_HAS_NEXT), want);
	}
	act_end(r);
	return rc ? rc : 1;
}

/* Chain member i of m[0..n) as the kernel's format links them: all but the last point on. */
static int link_member(struct pcm_dev *dev, const uint32_t *m, uint32_t i, uint32_t n)
{
	const uint32_t type = PCM_SEGI_TYPE_DATA << PCM_SEGI_TYPE_SHIFT;
	struct pcm_seg_info si[2];
	struct pcm_rep_state st;
	bool last = i + 1 == n;
	int rc = pcm_read_seg_info(dev, m[i], si, &st);

	if (rc)
		return rc;
	if (st.pick >= 0 && (last || ((si[st.pick].flags & PCM_SEGI_F_HAS_NEXT) &&
				     si[st.pick].next_seg == m[i + 1])))
		return 0;
	return seginfo_put(dev, m[i], type | (last ? 0 : PCM_SEGI_F_HAS_NEXT), last ? 0 : m[i + 1]);
}

/*
 * The chain's members, then the device segments it does not use, in order:
 * the cache segments n_segs to seg_num - 1 it gets (the kernel's own layout
 * when the chain is, §4.1).
 */
static uint32_t *members_to_seg_num(const struct pcm_cache *c)
{
	uint32_t *m = calloc(c->seg_num, sizeof(*m)), next = 0;
	uint8_t *in = calloc(c->seg_num, 1);

	for (uint32_t i = 0; m && in && i < c->seg_num; i++) {
		if (i < c->n_segs) {
			m[i] = c->dseg[i];
		} else {
			while (in[next])
				next++;
			m[i] = next;
		}
		in[m[i]] = 1;
	}
	if (!in) {
		free(m);
		m = NULL;
	}
	free(in);
	return m;
}

/*
 * n_segs below seg_num (CI_N_SEGS_SHORT): a kernel format always makes seg_num
 * cache segments (§5.2), and GC counts seg_num (§8.1), so with fewer it starts
 * late or never and writes can wait for ever.  The chain is extended first, into
 * segments the kernel does not read yet (their info to the slot it does not read
 * either), then cache_info gets n_segs = seg_num: cut short, the old cache stands.
 */
static int fix_n_segs_short(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_cache *c;
	struct pcm_cache_info ci;
	uint32_t *m;
	int rc;

	if (pcm_cache_open_relaxed(r->ov, &c))
		return 0;   /* the chain first: its own problem is fixed by then */
	ci = c->ci;
	m = members_to_seg_num(c);
	rc = m ? 0 : -ENOMEM;
	if (!rc && act_begin(r, p, "extend the segment chain to seg_num %u segments and set n_segs "
			     "to it (was %u)", c->seg_num, c->n_segs)) {
		for (uint32_t i = c->n_segs - 1; !rc && i < c->seg_num; i++)
			rc = link_member(r->ov, m, i, c->seg_num);
		ci.n_segs = c->seg_num;
		rc = rc ? rc : ci_put(r->ov, &ci);
		act_end(r);
		rc = rc ? rc : 1;
	}
	free(m);
	pcm_cache_close(c);
	return rc;
}

static int fix_seg_type(struct rplan *r, const struct pcm_problem *p)
{
	uint32_t d = (uint32_t)((p->offset - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE);
	struct pcm_seg_info si[2];
	struct pcm_rep_state st;
	int rc = pcm_read_seg_info(r->ov, d, si, &st);

	if (rc || st.pick < 0)
		return rc;
	if (!act_begin(r, p, "set the type of device segment %u to 'cache data'", d))
		return 0;
	rc = seginfo_put(r->ov, d, (si[st.pick].flags & ~PCM_SEGI_TYPE_MASK) |
			 (PCM_SEGI_TYPE_DATA << PCM_SEGI_TYPE_SHIFT), si[st.pick].next_seg);
	act_end(r);
	return rc ? rc : 1;
}

/* The highest seg_gen among the log's keys into cseg: no key turns stale or ahead. */
static uint64_t max_key_gen(struct pcm_dev *dev, uint32_t cseg)
{
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	uint64_t g = 0;
	enum pcm_walk_event ev;

	if (!w || pcm_cache_open(dev, &c, NULL)) {
		free(w);
		return 0;
	}
	pcm_walk_init(w, c, c->key_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)
		for (unsigned i = 0; ev == PCM_WALK_KSET && i < w->hdr.key_num; i++) {
			struct pcm_key k;

			pcm_walk_key(w, i, &k);
			if (k.cseg == cseg && k.seg_gen > g)
				g = k.seg_gen;
		}
	free(w);
	pcm_cache_close(c);
	return g;
}

/*
 * max_key_gen for every cseg below seg_num, in one walk.  Gens fixed in one
 * pass share it: the pass's other writes (local fixes) leave the log alone.
 */
static void key_gens(struct rplan *r)
{
	struct pcm_cache *c;
	struct pcm_walk *w;
	enum pcm_walk_event ev;

	r->kgen_done = true;
	if (pcm_cache_open(r->ov, &c, NULL))
		return;
	w = malloc(sizeof(*w));
	r->kgen = calloc(c->seg_num, sizeof(*r->kgen));
	if (w && r->kgen) {
		r->nkgen = c->seg_num;
		pcm_walk_init(w, c, c->key_tail.pos);
		while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)
			for (unsigned i = 0; ev == PCM_WALK_KSET && i < w->hdr.key_num; i++) {
				struct pcm_key k;

				pcm_walk_key(w, i, &k);
				if (k.cseg < r->nkgen && k.seg_gen > r->kgen[k.cseg])
					r->kgen[k.cseg] = k.seg_gen;
			}
	}
	free(w);
	pcm_cache_close(c);
}

static uint64_t pass_key_gen(struct rplan *r, uint32_t cseg)
{
	if (!r->kgen_done)
		key_gens(r);
	return cseg < r->nkgen ? r->kgen[cseg] : max_key_gen(r->ov, cseg);
}

static int fix_gen(struct rplan *r, const struct pcm_problem *p)
{
	uint32_t d = (uint32_t)((p->offset - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE);
	uint64_t b = pcm_seg_base(d) + PCM_SEG_CTRL_OFF;
	struct pcm_seg_gen g = { .gen = pass_key_gen(r, d) };  /* chain is 0..n-1 here */
	uint8_t rec[PCM_SEG_GEN_SIZE];
	int rc;

	if (!act_begin(r, p, "rewrite the gen of device segment %u as %llu (the newest its keys carry)",
		       d, (unsigned long long)g.gen))
		return 0;
	pcm_seg_gen_encode(&g, rec);
	rc = rec_update(r->ov, b, b + PCM_SEG_GEN_SIZE, sizeof(rec), rec);
	act_end(r);
	return rc ? rc : 1;
}

/* A tail's picked position if valid and in range. */
static bool tail_get(struct pcm_dev *dev, int which, uint32_t n_segs, struct pcm_pos *pos)
{
	struct pcm_pos_rec t[2];
	struct pcm_rep_state st;

	if (pcm_read_tail(dev, which, t, &st) || st.pick < 0)
		return false;
	*pos = t[st.pick].pos;
	return pos->cseg < n_segs && pos->seg_off < PCM_DATA_SIZE;
}

/* Both tails lost: the one log chain that starts at a segment's data offset 0. */
static bool find_log_root(struct pcm_dev *dev, struct pcm_pos *root);
/* The same when the log's end is damaged too. */
static bool find_log_root_damaged(struct pcm_dev *dev, struct pcm_pos *root);
/* Both tails lost and no kset at any segment's offset 0: where an empty log can start. */
static bool find_no_log(struct pcm_dev *dev, struct pcm_pos *start);

static int fix_tail(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_cache_info ci = { 0 };
	struct pcm_pos other, pos;
	int which = p->code == PCM_P_TAIL_BOTH_BAD || p->code == PCM_P_TAIL_RANGE ?
		    p->offset >= PCM_DIRTY_TAIL_OFF : 1;
	int rc = ci_get(r->ov, &ci);
	bool both = false, empty = false;

	if (rc < 0)
		return rc < -1 ? rc : 0;
	if (tail_get(r->ov, !which, ci.n_segs, &other)) {
		pos = other;
	} else if (find_log_root(r->ov, &pos) || find_log_root_damaged(r->ov, &pos)) {
		both = true;
	} else if (find_no_log(r->ov, &pos)) {
		both = empty = true;
	} else {
		seen_add(r, p->code, p->offset);
		return 0;
	}
	if (!act_begin(r, p, "set %s to %u:%u (%s)", both ? "key_tail and dirty_tail" :
		       which ? "dirty_tail" : "key_tail", pos.cseg, pos.seg_off,
		       empty ? "no segment starts with a kset: the log is empty" :
		       both ? "the start of the only log chain found" :
		       which ? "key_tail: more is written back, nothing is lost" :
		       "dirty_tail: only clean cached data is dropped"))
		return 0;
	rc = tail_write(r->ov, which, pos);
	if (!rc && both)
		rc = tail_write(r->ov, !which, pos);
	act_end(r);
	return rc ? rc : 1;
}

static bool find_log_root(struct pcm_dev *dev, struct pcm_pos *root)
{
	struct pcm_cache *c;
	bool found;

	if (pcm_cache_open_relaxed(dev, &c))
		return false;
	found = pcm_walk_find_root(c, UINT32_MAX, root);
	pcm_cache_close(c);
	return found;
}

/* Walks the chain from s:0 whatever ends it, marking where its LAST ksets lead. */
static bool damaged_chain_from(const struct pcm_cache *c, struct pcm_walk *w, uint32_t s,
			       uint8_t *reached)
{
	enum pcm_walk_event ev;
	bool any = false;

	pcm_walk_init(w, c, (struct pcm_pos){ s, 0 });
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST) {
		any = true;
		if (ev == PCM_WALK_LAST && w->next.cseg != s)
			reached[w->next.cseg] = 1;
	}
	return any;
}

/*
 * No chain ends at a terminator (pcm_walk_find_root): its end is damaged as well.
 * The one segment starting with a kset that no other such chain leads to is
 * still the log's start; the log repair then deals with its end.
 */
static bool find_log_root_damaged(struct pcm_dev *dev, struct pcm_pos *root)
{
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	uint8_t *cand = NULL, *reached = NULL;
	uint32_t roots = 0;

	if (!w || pcm_cache_open_relaxed(dev, &c)) {
		free(w);
		return false;
	}
	cand = calloc(c->n_segs, 1);
	reached = calloc(c->n_segs, 1);
	for (uint32_t s = 0; cand && reached && s < c->n_segs; s++)
		cand[s] = damaged_chain_from(c, w, s, reached);
	for (uint32_t s = 0; cand && reached && s < c->n_segs; s++)
		if (cand[s] && !reached[s]) {
			roots++;
			*root = (struct pcm_pos){ s, 0 };
		}
	free(cand);
	free(reached);
	free(w);
	pcm_cache_close(c);
	return roots == 1;
}

/*
 * No segment's data area starts with a kset, so no log can be found and no key
 * refers to any data: the cache holds nothing, as after a format.  The empty log
 * goes where a terminator already is (the first such segment), else to 0:0,
 * whose bytes the log repair then ends with a terminator (LOG_END_TORN).
 */
static bool find_no_log(struct pcm_dev *dev, struct pcm_pos *start)
{
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	bool none = w != NULL, term = false;

	if (!w || pcm_cache_open_relaxed(dev, &c)) {
		free(w);
		return false;
	}
	*start = (struct pcm_pos){ 0, 0 };
	for (uint32_t s = 0; none && s < c->n_segs; s++) {
		enum pcm_walk_event ev;

		pcm_walk_init(w, c, (struct pcm_pos){ s, 0 });
		ev = pcm_walk_next(w);
		none = ev != PCM_WALK_KSET && ev != PCM_WALK_LAST;
		if (none && !term && ev == PCM_WALK_END && w->stop == PCM_STOP_TERMINATOR) {
			*start = (struct pcm_pos){ s, 0 };
			term = true;
		}
	}
	free(w);
	pcm_cache_close(c);
	return none;
}

/* Does the log walked from `from` pass the kset boundary `to`? */
static bool reaches(struct pcm_dev *dev, struct pcm_pos from, struct pcm_pos to)
{
	struct pcm_cache *c;
	struct pcm_walk *w = malloc(sizeof(*w));
	bool met = false;

	if (!w || pcm_cache_open_relaxed(dev, &c)) {
		free(w);
		return false;
	}
	pcm_walk_init(w, c, from);
	while (!met) {
		enum pcm_walk_event ev = pcm_walk_next(w);

		met = pcm_pos_eq(w->has_next ? w->next : w->pos, to);
		if (ev != PCM_WALK_KSET && ev != PCM_WALK_LAST)
			break;
	}
	free(w);
	pcm_cache_close(c);
	return met;
}

static bool loads(struct rplan *r, struct pcm_dev *dev)
{
	struct pcm_check_opts co = { .verify_data = true, .backing_size = r->o->backing_size };
	struct pcm_check_result res;

	return !pcm_check_run(dev, &co, &res) && res.verdict == PCM_VERDICT_LOADS;
}

/*
 * May key_tail go back to dt?  The ksets it brings back into the log may hold
 * what the kernel refuses.  -y's log fix then drops that, but -p and -i may not
 * get that fix: for them, not when a cache the kernel loads would stop loading
 * (tried on an overlay of the overlay).
 */
static bool back_ok(struct rplan *r, struct pcm_pos dt)
{
	struct pcm_dev *t;
	bool ok;

	if (r->o->mode == PCM_REPAIR_ALL)
		return true;
	if (pcm_dev_overlay(r->ov, &t))
		return false;
	ok = !tail_write(t, 0, dt) && loads(r, t);
	pcm_dev_close(t);
	return ok || !loads(r, r->ov);
}

/*
 * dirty_tail off the log.  When key_tail ran past it (the log from dirty_tail
 * leads to key_tail), key_tail goes back: the ksets between are dirty and
 * still there.  Otherwise dirty_tail := key_tail: more is written back.
 */
static int fix_dirty_tail(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_cache_info ci = { 0 };
	struct pcm_pos kt, dt;
	bool back, have_dt;
	int rc = ci_get(r->ov, &ci);

	if (rc < 0 || !tail_get(r->ov, 0, ci.n_segs, &kt))
		return rc < -1 ? rc : 0;
	have_dt = tail_get(r->ov, 1, ci.n_segs, &dt);
	if (have_dt && pcm_pos_eq(kt, dt))
		return 0;   /* nothing to move: what fails is the log, the log repair's business */
	back = have_dt && reaches(r->ov, dt, kt) && back_ok(r, dt);
	if (back && !act_begin(r, p, "set key_tail back to dirty_tail %u:%u (the ksets up to key_tail "
			       "%u:%u are dirty and kept)", dt.cseg, dt.seg_off, kt.cseg, kt.seg_off))
		return 0;
	if (!back && !act_begin(r, p, "set dirty_tail to key_tail %u:%u (more is written back, "
				"nothing is lost)", kt.cseg, kt.seg_off))
		return 0;
	rc = back ? tail_write(r->ov, 0, dt) : tail_write(r->ov, 1, kt);
	act_end(r);
	return rc ? rc : 1;
}

static bool boundary_after(struct pcm_dev *dev, struct pcm_pos pos, struct pcm_pos *out)
{
	struct pcm_cache *c;
	bool found;

	if (pcm_cache_open_relaxed(dev, &c))
		return false;
	found = pcm_walk_boundary_after(c, pos, out);
	pcm_cache_close(c);
	return found;
}

static int fix_log_start(struct rplan *r, const struct pcm_problem *p)
{
	struct pcm_cache_info ci = { 0 };
	struct pcm_pos kt, dt, to;
	int rc = ci_get(r->ov, &ci);

	if (rc < 0 || !tail_get(r->ov, 0, ci.n_segs, &kt) || !tail_get(r->ov, 1, ci.n_segs, &dt))
		return rc < -1 ? rc : 0;
	if (!pcm_pos_eq(kt, dt))
		to = dt;
	else if (!boundary_after(r->ov, kt, &to) || pcm_pos_eq(to, kt))
		return 0;   /* key_tail is at a damaged kset: the log repair salvages it */
	if (!act_begin(r, p, "move key_tail%s from %u:%u to the kset boundary %u:%u",
		       pcm_pos_eq(kt, dt) ? " and dirty_tail" : "", kt.cseg, kt.seg_off, to.cseg,
		       to.seg_off))
		return 0;
	rc = tail_write(r->ov, 0, to);
	if (!rc && pcm_pos_eq(kt, dt))
		rc = tail_write(r->ov, 1, to);
	act_end(r);
	return rc ? rc : 1;
}

static int fix_one(struct rplan *r, const struct pcm_problem *p)
{
	switch (p->code) {
	case PCM_P_CI_REPLICA_BAD: case PCM_P_CI_SEQ_AMBIGUOUS:
	case PCM_P_TAIL_REPLICA_BAD: case PCM_P_TAIL_SEQ_AMBIGUOUS:
	case PCM_P_SEGINFO_REPLICA_BAD: case PCM_P_SEGINFO_SEQ_AMBIGUOUS:
	case PCM_P_GEN_REPLICA_BAD: case PCM_P_GEN_SEQ_AMBIGUOUS:
		return fix_replica(r, p);
	case PCM_P_META_NONZERO: return fix_unused(r, p);
	case PCM_P_SB_CRC_BAD: case PCM_P_SB_BIGENDIAN: case PCM_P_SB_SEG_NUM_RANGE:
	case PCM_P_SB_UNUSED_BITS:
		return fix_sb(r, p);
	case PCM_P_CI_BOTH_BAD: return fix_ci_lost(r, p);
	case PCM_P_CI_NOT_INIT_DONE: case PCM_P_CI_N_SEGS_RANGE: case PCM_P_CI_CACHE_MODE:
	case PCM_P_CI_GC_PERCENT: case PCM_P_CI_UNKNOWN_BITS:
		return fix_ci_field(r, p);
	case PCM_P_CI_N_SEGS_SHORT: return fix_n_segs_short(r, p);
	case PCM_P_CHAIN_NO_NEXT: case PCM_P_CHAIN_RANGE: case PCM_P_CHAIN_DUPLICATE:
	case PCM_P_SEGINFO_BOTH_BAD:
		return fix_chain(r, p);
	case PCM_P_SEG_TYPE: return fix_seg_type(r, p);
	case PCM_P_GEN_BOTH_BAD: return fix_gen(r, p);
	case PCM_P_TAIL_BOTH_BAD: case PCM_P_TAIL_RANGE: return fix_tail(r, p);
	case PCM_P_DIRTY_TAIL_OFF_LOG: case PCM_P_DIRTY_CHAIN_FAIL: return fix_dirty_tail(r, p);
	case PCM_P_LOG_START_INVALID: return fix_log_start(r, p);
	default: return 0;
	}
}

/*
 * Fixes that change nothing a later check of another record decides on: a replica
 * rewritten from the one the kernel already picks, zeroed unused bytes, a segment's
 * type or gen (gens only judge that segment's keys).  They are all applied in one
 * pass: a cache with damage in thousands of segments must not need a pass for each.
 */
static bool fix_is_local(enum pcm_problem_code c)
{
	switch (c) {
	case PCM_P_CI_REPLICA_BAD: case PCM_P_CI_SEQ_AMBIGUOUS:
	case PCM_P_TAIL_REPLICA_BAD: case PCM_P_TAIL_SEQ_AMBIGUOUS:
	case PCM_P_SEGINFO_REPLICA_BAD: case PCM_P_SEGINFO_SEQ_AMBIGUOUS:
	case PCM_P_GEN_REPLICA_BAD: case PCM_P_GEN_SEQ_AMBIGUOUS:
	case PCM_P_META_NONZERO: case PCM_P_SEG_TYPE: case PCM_P_GEN_BOTH_BAD:
		return true;
	default:
		return false;
	}
}

/*
 * One pass over the metadata problems.  A fix that changes what later checks
 * see (superblock, cache_info, chain, tails) ends the pass, so the next fix
 * is decided on a fresh check.
 */
int fix_meta(struct rplan *r)
{
	int n = 0, rc = 0;

	for (uint64_t i = 0; i < r->nprobs; i++) {
		enum pcm_problem_code c = r->probs[i].code;

		rc = fix_one(r, &r->probs[i]);
		if (rc < 0)
			break;
		n += rc;
		if (rc && !fix_is_local(c))
			break;
	}
	free(r->kgen);   /* the next pass may have moved the log */
	r->kgen = NULL;
	r->nkgen = 0;
	r->kgen_done = false;
	return rc < 0 ? rc : n;
}
