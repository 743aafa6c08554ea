/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Repairs converge (e2fsck's rule, issue 18): after fsck -y, fsck -n finds
 * nothing that has a repair (pcm_problem_fixable), and when only problems
 * without one are left, a second fsck -y changes nothing.  N seeded random
 * corruptions of the kernel fixtures, each applied to an in-memory overlay (the
 * fixtures are opened read-only and never written): one to three of single
 * fields of any record re-sealed with a valid CRC (superblock, cache_info, tails,
 * segment info, gens, kset headers, keys), raw byte flips (some re-sealed with
 * tests/common/reseal.h, as fuzzing does), zeroed ranges, key data under
 * data_crc, torn log ends, LAST ksets anywhere, the log moved to a segment's end,
 * replicas with equal seqs.  The dirty fixture also comes through the library's
 * test seams: poisoned pmem in its log or key data, bad blocks.  Each corrupted
 * image is repaired as fsck -y plans it (PCM_REPAIR_ALL, data CRCs checked), the
 * plan applied to another overlay, and that checked again.
 *
 * PCACHE_CONVERGE_SEED fixes the seed (default: from the time, printed as
 * `# seed S`, so that every run covers new ground and a failure can be replayed),
 * PCACHE_CONVERGE_N the count (default 1000); PCACHE_CONVERGE_ONLY=I runs
 * corruption I of the seed alone and prints its problems, the plan and what is
 * left.  PCACHE_FIXTURES: the decompressed fixtures (default build/fixtures).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pcachemeta.h"
#include "tap.h"
#include "../common/reseal.h"

#define MAX_SHOWN 60u        /* failure lines printed; the summary counts all */

struct kref {
	struct pcm_pos pos;
	uint64_t off;            /* device offset */
	uint32_t size;
	bool last;
};

struct kdata {
	uint64_t off;            /* device offset of the key's data */
	uint32_t len;
};

struct fx {
	const char *name;
	struct pcm_dev *dev;
	uint32_t seg_num, n_segs;
	bool data_crc;
	struct kref *ks;         /* the log from key_tail, LAST ksets included */
	unsigned nks;
	struct kdata *kd;        /* every key's data */
	unsigned nkd;
	struct kref head;        /* the terminator at key_head */
};

struct mut {
	const struct fx *f;
	struct pcm_dev *dev;     /* the overlay being corrupted */
	char desc[600];
	size_t dlen;
};

static bool verbose;

static void say(struct mut *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct mut *m, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->dlen && m->dlen + 2 < sizeof(m->desc))
		m->dlen += (size_t)snprintf(m->desc + m->dlen, sizeof(m->desc) - m->dlen, "; ");
	if (m->dlen >= sizeof(m->desc))
		return;
	va_start(ap, fmt);
	n = vsnprintf(m->desc + m->dlen, sizeof(m->desc) - m->dlen, fmt, ap);
	va_end(ap);
	m->dlen += n > 0 ? (size_t)n : 0;
	if (m->dlen > sizeof(m->desc) - 1)
		m->dlen = sizeof(m->desc) - 1;
}

/* Reads and writes of the overlay cannot fail inside the device: a failure is a bug here. */
static void rd(struct mut *m, uint64_t off, void *buf, size_t len)
{
	if (pcm_dev_read(m->dev, off, buf, len))
		memset(buf, 0, len);
}

static void wr(struct mut *m, uint64_t off, const void *buf, size_t len)
{
	if (pcm_dev_write(m->dev, off, buf, len))
		say(m, "(write at %" PRIu64 " failed)", off);
}

static uint64_t get_le(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = len; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void set_le(uint8_t *p, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- what values a field gets ---- */

enum dom {
	D_ANY, D_SEQ, D_COUNT, D_SEGNO, D_SEGOFF, D_SBMAGIC, D_KSMAGIC, D_CIFLAGS, D_SIFLAGS,
	D_KEYNUM, D_KSFLAGS, D_KOFF, D_KLEN, D_KFLAGS, D_GEN,
};

struct field {
	uint8_t at, len;
	enum dom dom;
	const char *name;
};

static const struct field sb_fields[] = {
	{ 4, 4, D_ANY, "flags" }, { 8, 8, D_SBMAGIC, "magic" }, { 16, 4, D_COUNT, "seg_num" },
	{ 20, 4, D_ANY, "pad" },
};
#define HDR_FIELDS { 4, 1, D_SEQ, "seq" }, { 5, 1, D_ANY, "version" }, { 6, 2, D_ANY, "res" }
static const struct field ci_fields[] = {
	HDR_FIELDS, { 8, 4, D_SEGNO, "seg_id" }, { 12, 4, D_COUNT, "n_segs" },
	{ 16, 4, D_CIFLAGS, "flags" }, { 20, 4, D_ANY, "reserved" },
};
static const struct field pos_fields[] = {
	HDR_FIELDS, { 8, 4, D_SEGNO, "cseg" }, { 12, 4, D_SEGOFF, "seg_off" },
};
static const struct field si_fields[] = {
	HDR_FIELDS, { 8, 4, D_SIFLAGS, "flags" }, { 12, 4, D_SEGNO, "next_seg" },
};
static const struct field gen_fields[] = { HDR_FIELDS, { 8, 8, D_GEN, "gen" } };
static const struct field ks_fields[] = {
	{ 4, 4, D_KEYNUM, "key_num" }, { 8, 8, D_KSMAGIC, "magic" }, { 16, 8, D_KSFLAGS, "flags" },
};
static const struct field key_fields[] = {
	{ 0, 8, D_KOFF, "off" }, { 8, 4, D_KLEN, "len" }, { 12, 4, D_KFLAGS, "flags" },
	{ 16, 4, D_SEGNO, "cseg" }, { 20, 4, D_SEGOFF, "seg_off" }, { 24, 8, D_GEN, "seg_gen" },
	{ 32, 4, D_ANY, "data_crc" }, { 36, 4, D_ANY, "reserved" },
};
#define NF(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))

static unsigned dom_segs(const struct fx *f, enum dom d, uint64_t *v)
{
	unsigned n = 0;

	v[n++] = 1; v[n++] = 2; v[n++] = 3; v[n++] = f->n_segs - 1; v[n++] = f->n_segs;
	v[n++] = f->seg_num; v[n++] = f->seg_num + 1;
	if (d == D_COUNT) {
		v[n++] = 31; v[n++] = PCM_SEGS_MAX + 1;
	}
	return n;
}

/* Offsets in a data area: kset boundaries, the end of the area, around it. */
static unsigned dom_segoff(const struct fx *f, uint64_t old, uint64_t *v)
{
	unsigned n = 0;

	if (f->nks)
		v[n++] = f->ks[tap_rand_below(f->nks)].pos.seg_off;
	v[n++] = f->head.pos.seg_off;
	v[n++] = PCM_DATA_SIZE; v[n++] = PCM_DATA_SIZE - 8; v[n++] = PCM_DATA_SIZE - 24;
	v[n++] = PCM_DATA_SIZE - 48; v[n++] = old + 512; v[n++] = old + 8; v[n++] = old - 512;
	v[n++] = tap_rand_below(PCM_DATA_SIZE / 512) * 512;
	return n;
}

static unsigned dom_flags(enum dom d, uint64_t old, uint64_t *v)
{
	unsigned n = 0;

	if (d == D_CIFLAGS) {
		static const unsigned gc[] = { 0, 90, 91, 100, 101, 127 };

		for (int b = 0; b < 14; b++)
			v[n++] = old ^ (1ull << b);
		for (unsigned i = 0; i < 6; i++)
			v[n++] = (old & ~(uint64_t)PCM_CI_GC_MASK) | gc[i] << PCM_CI_GC_SHIFT;
		v[n++] = old | 1u << 31;
	} else if (d == D_SIFLAGS) {
		v[n++] = old ^ PCM_SEGI_F_HAS_NEXT; v[n++] = old & ~(uint64_t)PCM_SEGI_TYPE_MASK;
		v[n++] = old ^ 0x20; v[n++] = 0x2; v[n++] = 0x3; v[n++] = old | 0x100;
	} else if (d == D_KSFLAGS) {
		v[n++] = PCM_KSET_F_LAST; v[n++] = 2; v[n++] = old | 4; v[n++] = 1ull << 40;
	} else {   /* D_KFLAGS */
		v[n++] = PCM_KEY_F_EMPTY; v[n++] = PCM_KEY_F_CLEAN; v[n++] = old | 4;
		v[n++] = old ^ PCM_KEY_F_CLEAN; v[n++] = old | 1u << 20;
	}
	return n;
}

static unsigned dom_key(enum dom d, uint64_t old, uint64_t *v)
{
	unsigned n = 0;

	if (d == D_KOFF) {
		v[n++] = old + 512; v[n++] = old + 1; v[n++] = old | 0x3FFE00; v[n++] = 1ull << 40;
		v[n++] = (old & ~0x3FFFFFull) + 0x400000 - 512; v[n++] = old - 512;
	} else if (d == D_KLEN) {
		v[n++] = 1; v[n++] = 511; v[n++] = old + 512; v[n++] = old * 2; v[n++] = 4u << 20;
		v[n++] = (4u << 20) + 512; v[n++] = old - 512; v[n++] = old + 1;
	} else if (d == D_KEYNUM) {
		v[n++] = 1; v[n++] = old + 1; v[n++] = old - 1; v[n++] = 128; v[n++] = 129;
		v[n++] = 200;
	} else {   /* D_GEN */
		v[n++] = old + 1; v[n++] = old + 2; v[n++] = 1ull << 40;
	}
	return n;
}

static unsigned domain(const struct fx *f, enum dom d, uint64_t old, uint64_t *v)
{
	switch (d) {
	case D_SEQ:
		v[0] = old + 1; v[1] = old - 1; v[2] = old + 128; v[3] = old + 2;
		return 4;
	case D_COUNT: case D_SEGNO: return dom_segs(f, d, v);
	case D_SEGOFF: return dom_segoff(f, old, v);
	case D_SBMAGIC: v[0] = PCM_SB_MAGIC; v[1] = PCM_KSET_MAGIC; return 2;
	case D_KSMAGIC: v[0] = PCM_KSET_MAGIC; v[1] = PCM_SB_MAGIC; return 2;
	case D_CIFLAGS: case D_SIFLAGS: case D_KSFLAGS: case D_KFLAGS: return dom_flags(d, old, v);
	case D_KOFF: case D_KLEN: case D_KEYNUM: case D_GEN: return dom_key(d, old, v);
	case D_ANY: break;
	}
	return 0;
}

/* A new value for a field of `bits` bits: an edge, a neighbour, a bit flip, or one of its domain. */
static uint64_t pick_value(const struct fx *f, const struct field *fl, uint64_t old)
{
	unsigned bits = fl->len * 8u;
	uint64_t mask = bits == 64 ? UINT64_MAX : (1ull << bits) - 1, dom[40], v;
	unsigned nd = domain(f, fl->dom, old, dom);

	switch (tap_rand_below(nd ? 10 : 6)) {
	case 0: v = 0; break;
	case 1: v = old + 1; break;
	case 2: v = old - 1; break;
	case 3: v = old ^ (1ull << tap_rand_below(bits)); break;
	case 4: v = tap_rand(); break;
	case 5: v = mask; break;
	default: v = dom[tap_rand_below(nd)]; break;
	}
	v &= mask;
	return v != old ? v : (old ^ 1) & mask;
}

/* ---- mutations ---- */

/* One field of the record at off (size bytes) gets a new value; sealed again mostly. */
static void mut_field(struct mut *m, uint64_t off, size_t size, const struct field *fl,
		      unsigned nfl, const char *what)
{
	uint8_t rec[24];
	const struct field *f = &fl[tap_rand_below(nfl)];
	bool seal = tap_rand_below(8) != 0;
	uint64_t old, v;

	rd(m, off, rec, size);
	old = get_le(rec + f->at, f->len);
	v = pick_value(m->f, f, old);
	set_le(rec + f->at, f->len, v);
	if (seal)
		pcm_record_seal(rec, size);
	wr(m, off, rec, size);
	say(m, "%s.%s %#" PRIx64 " -> %#" PRIx64 "%s", what, f->name, old, v,
	    seal ? "" : " (crc not resealed)");
}

/* Replica 0 or 1 of a record: mostly the one the kernel reads. */
static int which_replica(struct mut *m, uint64_t off0, uint64_t off1, size_t size)
{
	uint8_t raw[2][24];
	const uint8_t *rec[2] = { raw[0], raw[1] };
	int pick;

	rd(m, off0, raw[0], size);
	rd(m, off1, raw[1], size);
	pick = pcm_replica_pick(rec, size, NULL);
	if (pick < 0 || tap_rand_below(10) < 3)
		return (int)tap_rand_below(2);
	return pick;
}

/* Device segments the fixtures use most (log 0, data 1 and 2), else the last or any. */
static uint32_t pick_dseg(const struct fx *f)
{
	uint64_t r = tap_rand_below(10);

	if (r < 5)
		return (uint32_t)tap_rand_below(3);
	if (r < 6)
		return 3;
	if (r < 7)
		return f->seg_num - 1;
	return (uint32_t)tap_rand_below(f->seg_num);
}

static void mut_record(struct mut *m)
{
	uint64_t o0, o1, r = tap_rand_below(6);
	uint32_t d = pick_dseg(m->f);
	char what[48];
	int i;

	if (r == 0) {
		mut_field(m, PCM_SB_OFF, PCM_SB_SIZE, sb_fields, NF(sb_fields), "sb");
		return;
	}
	if (r == 1) {
		o0 = PCM_CACHE_INFO_OFF, o1 = o0 + PCM_CACHE_INFO_SLOT;
	} else if (r <= 3) {
		o0 = r == 2 ? PCM_KEY_TAIL_OFF : PCM_DIRTY_TAIL_OFF, o1 = o0 + PCM_POS_SIZE;
	} else if (r == 4) {
		o0 = pcm_seg_base(d), o1 = o0 + PCM_SEG_INFO_SLOT;
	} else {
		o0 = pcm_seg_base(d) + PCM_SEG_CTRL_OFF, o1 = o0 + PCM_SEG_GEN_SIZE;
	}
	i = which_replica(m, o0, o1, r == 1 ? PCM_CACHE_INFO_SIZE : PCM_POS_SIZE);
	if (r == 1)
		snprintf(what, sizeof(what), "cache_info[%d]", i);
	else if (r <= 3)
		snprintf(what, sizeof(what), "%s[%d]", r == 2 ? "key_tail" : "dirty_tail", i);
	else
		snprintf(what, sizeof(what), "dseg %u %s[%d]", d, r == 4 ? "info" : "gen", i);
	if (r == 1)
		mut_field(m, i ? o1 : o0, PCM_CACHE_INFO_SIZE, ci_fields, NF(ci_fields), what);
	else
		mut_field(m, i ? o1 : o0, PCM_POS_SIZE, r <= 3 ? pos_fields : r == 4 ? si_fields :
			  gen_fields, r <= 3 ? NF(pos_fields) : r == 4 ? NF(si_fields) :
			  NF(gen_fields), what);
}

/* A kset of the log, or (with head) maybe the terminator at key_head. */
static const struct kref *pick_kset(const struct fx *f, bool head, bool normal)
{
	unsigned n = f->nks + (head ? 1 : 0);

	for (int tries = 0; n && tries < 8; tries++) {
		unsigned i = (unsigned)tap_rand_below(n);
		const struct kref *k = i < f->nks ? &f->ks[i] : &f->head;

		if (!normal || (!k->last && k != &f->head))
			return k;
	}
	return head ? &f->head : NULL;
}

/* A kset header field; the kset sealed again over the size its new header claims. */
static void mut_kset(struct mut *m)
{
	const struct kref *k = pick_kset(m->f, true, false);
	const struct field *f = &ks_fields[tap_rand_below(NF(ks_fields))];
	static uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_kset_hdr h;
	uint64_t old, v, size;
	bool seal = tap_rand_below(8) != 0;

	rd(m, k->off, buf, PCM_KSET_HDR_SIZE);
	old = get_le(buf + f->at, f->len);
	v = pick_value(m->f, f, old);
	set_le(buf + f->at, f->len, v);
	pcm_kset_hdr_decode(buf, &h);
	size = pcm_kset_size(&h);
	if (seal && (h.flags & PCM_KSET_F_LAST || h.key_num <= PCM_KSET_KEYS_MAX) &&
	    size <= PCM_DATA_SIZE - k->pos.seg_off) {
		rd(m, k->off + PCM_KSET_HDR_SIZE, buf + PCM_KSET_HDR_SIZE, size - PCM_KSET_HDR_SIZE);
		pcm_record_seal(buf, size);
	} else {
		seal = false;
	}
	wr(m, k->off, buf, PCM_KSET_HDR_SIZE);
	say(m, "kset %u:%u.%s %#" PRIx64 " -> %#" PRIx64 "%s", k->pos.cseg, k->pos.seg_off,
	    f->name, old, v, seal ? "" : " (crc not resealed)");
}

/* A LAST kset written over a kset or the terminator: a data segment, a free one, itself... */
static void mut_last(struct mut *m)
{
	const struct kref *k = pick_kset(m->f, true, false);
	const struct fx *f = m->f;
	uint32_t to[] = { 1, 2, 3, f->n_segs - 1, f->n_segs, k->pos.cseg,
			  (uint32_t)tap_rand_below(f->n_segs) };
	struct pcm_kset_hdr h = { .key_num = to[tap_rand_below(7)], .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };
	uint8_t rec[PCM_KSET_HDR_SIZE];

	pcm_kset_hdr_encode(&h, rec);
	pcm_record_seal(rec, sizeof(rec));
	wr(m, k->off, rec, sizeof(rec));
	say(m, "LAST kset at %u:%u naming segment %u", k->pos.cseg, k->pos.seg_off, h.key_num);
}

static void mut_flip(struct mut *m);

static void mut_key(struct mut *m)
{
	const struct kref *k = pick_kset(m->f, false, true);
	const struct field *f = &key_fields[tap_rand_below(NF(key_fields))];
	static uint8_t buf[PCM_KSET_SIZE_MAX];
	bool seal = tap_rand_below(10) != 0;
	uint64_t old, v;
	uint8_t *key;
	unsigned j;

	if (!k) {
		mut_flip(m);
		return;
	}
	j = (unsigned)tap_rand_below((k->size - PCM_KSET_HDR_SIZE) / PCM_KEY_SIZE);
	key = buf + PCM_KSET_HDR_SIZE + (size_t)j * PCM_KEY_SIZE;
	rd(m, k->off, buf, k->size);
	old = get_le(key + f->at, f->len);
	v = pick_value(m->f, f, old);
	set_le(key + f->at, f->len, v);
	if (seal)
		pcm_record_seal(buf, k->size);
	wr(m, k->off, buf, k->size);
	say(m, "kset %u:%u key %u.%s %#" PRIx64 " -> %#" PRIx64 "%s", k->pos.cseg, k->pos.seg_off,
	    j, f->name, old, v, seal ? "" : " (crc not resealed)");
}

struct span { uint64_t off; uint32_t len; };

/* Somewhere bytes matter: a record, a segment header, a kset or the terminator. */
static struct span pick_span(const struct fx *f)
{
	uint64_t seg = pcm_seg_base(pick_dseg(f));
	const struct kref *k;

	switch (tap_rand_below(6)) {
	case 0: return (struct span){ PCM_SB_OFF, PCM_SB_SIZE };
	case 1: return (struct span){ PCM_CACHE_INFO_OFF + tap_rand_below(2) * PCM_CACHE_INFO_SLOT,
				      PCM_CACHE_INFO_SIZE };
	case 2: return (struct span){ PCM_CACHE_CTRL_OFF, 4 * PCM_POS_SIZE };
	case 3: return (struct span){ seg + tap_rand_below(2) * PCM_SEG_INFO_SLOT, PCM_SEG_INFO_SIZE };
	case 4: return (struct span){ seg + PCM_SEG_CTRL_OFF, 2 * PCM_SEG_GEN_SIZE };
	}
	k = pick_kset(f, true, false);
	return (struct span){ k->off, k->size };
}

/* Replicated records around a changed byte at off get valid CRCs again. */
static void reseal_at(struct mut *m, uint64_t off)
{
	static const uint64_t recs[][2] = {
		{ PCM_SB_OFF, PCM_SB_SIZE }, { PCM_CACHE_INFO_OFF, 24 }, { 12288, 24 },
		{ 16384, 16 }, { 16400, 16 }, { 16416, 16 }, { 16432, 16 },
	};
	uint64_t rel = off >= PCM_SEGMENTS_OFF ? (off - PCM_SEGMENTS_OFF) % PCM_SEG_SIZE : 0;
	uint64_t base = off - rel, at = 0, size = 0;
	uint8_t rec[24];

	for (unsigned i = 0; off < PCM_SEGMENTS_OFF && i < 7; i++)
		if (off >= recs[i][0] && off < recs[i][0] + recs[i][1])
			at = recs[i][0], size = recs[i][1];
	if (off >= PCM_SEGMENTS_OFF && (rel < 16 || (rel >= PCM_SEG_INFO_SLOT && rel < 4112) ||
					(rel >= PCM_SEG_CTRL_OFF && rel < 8224)))
		at = base + rel / 16 * 16, size = 16;
	if (!size)
		return;
	rd(m, at, rec, size);
	if (reseal_record(rec, size))
		wr(m, at, rec, size);
}

static void kset_changed(size_t o, void *arg)
{
	void **a = arg;
	struct mut *m = a[0];
	const uint64_t *at = a[1];
	const uint8_t *buf = a[2];

	wr(m, *at + o, buf + o, 4);
}

/* Kset headers at or before a changed data-area byte get valid CRCs again (as fuzzing does). */
static void reseal_log_at(struct mut *m, uint64_t off)
{
	static uint8_t buf[3 * PCM_KSET_SIZE_MAX];
	uint64_t rel = (off - PCM_SEGMENTS_OFF) % PCM_SEG_SIZE - PCM_DATA_OFF;
	uint64_t lo = rel > PCM_KSET_SIZE_MAX ? (rel - PCM_KSET_SIZE_MAX) & ~7ull : 0;
	uint64_t end = rel + PCM_KSET_SIZE_MAX < PCM_DATA_SIZE ? rel + PCM_KSET_SIZE_MAX :
		       PCM_DATA_SIZE, at = off - rel + lo;
	void *arg[3] = { m, &at, buf };

	rd(m, at, buf, end - lo);
	reseal_ksets(buf, end - lo, rel + 1 - lo, kset_changed, arg);
}

static bool in_data_area(uint64_t off)
{
	return off >= PCM_SEGMENTS_OFF && (off - PCM_SEGMENTS_OFF) % PCM_SEG_SIZE >= PCM_DATA_OFF;
}

static void mut_flip(struct mut *m)
{
	struct span s = pick_span(m->f);
	uint64_t off = s.off + tap_rand_below(s.len);
	uint8_t b, x = (uint8_t)(1 + tap_rand_below(255));
	bool seal = tap_rand_below(10) < 3;

	rd(m, off, &b, 1);
	b ^= x;
	wr(m, off, &b, 1);
	if (seal && in_data_area(off))
		reseal_log_at(m, off);
	else if (seal)
		reseal_at(m, off);
	say(m, "byte %" PRIu64 " ^= %#x%s", off, x, seal ? " (resealed)" : "");
}

static void zero(struct mut *m, uint64_t off, uint64_t len)
{
	if (pcm_dev_zero(m->dev, off, len))
		say(m, "(zeroing at %" PRIu64 " failed)", off);
}

/* A whole record, a kset or part of one, the log from a kset on, or a segment header. */
static void mut_zero(struct mut *m)
{
	struct span s = pick_span(m->f);
	const struct kref *k = pick_kset(m->f, false, false);
	uint64_t r = tap_rand_below(6), a, b;

	if (r < 3 || !k) {
		zero(m, s.off, s.len);
		say(m, "zero [%" PRIu64 ", +%u)", s.off, s.len);
	} else if (r == 3) {
		a = tap_rand_below(k->size);
		b = a + 1 + tap_rand_below(k->size - a);
		zero(m, k->off + a, b - a);
		say(m, "zero kset %u:%u bytes [%" PRIu64 ", %" PRIu64 ")", k->pos.cseg, k->pos.seg_off,
		    a, b);
	} else if (r == 4) {
		zero(m, k->off, m->f->head.off + PCM_KSET_HDR_SIZE - k->off);
		say(m, "zero the log from kset %u:%u to key_head", k->pos.cseg, k->pos.seg_off);
	} else {
		uint32_t d = pick_dseg(m->f);

		zero(m, pcm_seg_base(d), PCM_DATA_OFF);
		say(m, "zero the header of device segment %u", d);
	}
}

static void mut_data(struct mut *m)
{
	const struct kdata *kd = &m->f->kd[tap_rand_below(m->f->nkd)];
	uint64_t off = kd->off + tap_rand_below(kd->len);
	uint8_t b, x = (uint8_t)(1 + tap_rand_below(255));

	rd(m, off, &b, 1);
	b ^= x;
	wr(m, off, &b, 1);
	say(m, "key data byte %" PRIu64 " ^= %#x", off, x);
}

/* A kset of n keys as the kernel writes them, into a fresh fixture's segments 1 and 2. */
/*
 * A kset of 1 to 4 keys as the kernel writes them, into a fresh fixture's
 * segments 1 and 2 (all zero: the data CRC is that of zeros); they often share
 * data space, and some cross a 4 MiB window.
 */
static uint32_t new_kset(struct mut *m, uint8_t *buf)
{
	static const uint8_t zeros[8192];
	unsigned n = 1 + (unsigned)tap_rand_below(4);
	struct pcm_kset_hdr h = { .key_num = n, .magic = PCM_KSET_MAGIC };

	for (unsigned i = 0; i < n; i++) {
		struct pcm_key k = { .off = tap_rand_below(1u << 18) * 4096,
				     .len = 4096u << tap_rand_below(2),
				     .cseg = 1 + (uint32_t)tap_rand_below(2),
				     .seg_off = (uint32_t)tap_rand_below(16) * 4096 };

		if (tap_rand_below(4) == 0)
			k.off = (k.off | ((1u << PCM_WINDOW_SHIFT) - 1)) + 1 - 4096;
		k.data_crc = m->f->data_crc ? pcm_kcrc(zeros, k.len) : 0;
		pcm_key_encode(&k, buf + PCM_KSET_HDR_SIZE + (size_t)i * PCM_KEY_SIZE);
	}
	pcm_kset_hdr_encode(&h, buf);
	pcm_record_seal(buf, pcm_kset_size(&h));
	return (uint32_t)pcm_kset_size(&h);
}

/*
 * A torn log end: the last kset cut (its tail zero or garbage), or a new kset
 * at key_head of which only the first bytes arrived (all of them, sometimes).
 */
static void mut_torn(struct mut *m)
{
	static uint8_t buf[PCM_KSET_SIZE_MAX];
	const struct fx *f = m->f;
	const struct kref *k = f->nks ? &f->ks[f->nks - 1] : NULL;
	uint32_t size, cut;

	if (k && !k->last && tap_rand_below(2)) {
		cut = 1 + (uint32_t)tap_rand_below(k->size - 1);
		for (uint32_t i = cut; i < k->size; i++)
			buf[i] = tap_rand_below(2) ? 0 : (uint8_t)tap_rand();
		wr(m, k->off + cut, buf + cut, k->size - cut);
		say(m, "last kset %u:%u torn at byte %u", k->pos.cseg, k->pos.seg_off, cut);
		return;
	}
	k = pick_kset(f, false, true);
	if (k) {
		rd(m, k->off, buf, k->size);
		size = k->size;
	} else {
		size = new_kset(m, buf);
	}
	cut = 1 + (uint32_t)tap_rand_below(size);
	wr(m, f->head.off, buf, cut);
	say(m, "a %u-byte kset at key_head %u:%u, %u bytes of it written", size,
	    f->head.pos.cseg, f->head.pos.seg_off, cut);
}

static void tail_put(struct mut *m, int which, struct pcm_pos pos);

/* A tail moved to another kset boundary as the kernel writes it (other slot, next seq). */
static void mut_tail_move(struct mut *m)
{
	int which = (int)tap_rand_below(2);
	const struct kref *k = pick_kset(m->f, true, false);

	tail_put(m, which, k->pos);
	say(m, "%s moved to %u:%u", which ? "dirty_tail" : "key_tail", k->pos.cseg, k->pos.seg_off);
}

/* A tail written as the kernel would: the slot not holding the copy it reads, next seq. */
static void tail_put(struct mut *m, int which, struct pcm_pos pos)
{
	uint64_t o0 = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;
	uint8_t raw[2][24];
	const uint8_t *rec[2] = { raw[0], raw[1] };
	struct pcm_pos_rec p = { .pos = pos };
	int pick;

	rd(m, o0, raw[0], PCM_POS_SIZE);
	rd(m, o0 + PCM_POS_SIZE, raw[1], PCM_POS_SIZE);
	pick = pcm_replica_pick(rec, PCM_POS_SIZE, NULL);
	p.h.seq = pick < 0 ? 1 : (uint8_t)(raw[pick][4] + 1);
	pcm_pos_rec_encode(&p, raw[0]);
	pcm_record_seal(raw[0], PCM_POS_SIZE);
	wr(m, o0 + (pick == 0 ? PCM_POS_SIZE : 0), raw[0], PCM_POS_SIZE);
}

/*
 * The log moved to the end of a free segment: a kset (maybe cut) `avail` bytes
 * before its data area's end, both tails there.  Around 24 bytes and the kset's
 * size are the kernel's edge cases (§6.4, §12.9, §12.19).
 */
static void mut_log_at_end(struct mut *m)
{
	static uint8_t buf[PCM_KSET_SIZE_MAX];
	const struct kref *k = pick_kset(m->f, false, true);
	uint32_t size = k ? k->size : new_kset(m, buf), seg = 3 + (uint32_t)tap_rand_below(8);
	uint32_t avails[] = { 0, 1, 8, 16, 23, 24, 32, 48, size - 8, size, size + 8, size + 23,
			      size + 24, size + 48, 2048 };
	uint32_t avail = avails[tap_rand_below(15)];
	struct pcm_pos at = { seg, PCM_DATA_SIZE - avail };
	uint64_t off = pcm_seg_base(seg) + PCM_DATA_OFF + at.seg_off;

	if (k)
		rd(m, k->off, buf, size);
	wr(m, off, buf, avail < size ? avail : size);
	tail_put(m, 1, at);
	tail_put(m, 0, at);
	say(m, "both tails at a %u-byte kset %u bytes before the end of segment %u", size, avail,
	    seg);
}

/* Both replicas valid with the same (or an opposite) seq but another payload. */
static void mut_twin(struct mut *m)
{
	static const uint32_t sizes[] = { 24, 16, 16, 16, 16 };
	uint32_t d = pick_dseg(m->f), r = (uint32_t)tap_rand_below(5);
	uint64_t o0 = r == 0 ? PCM_CACHE_INFO_OFF : r == 1 ? PCM_KEY_TAIL_OFF :
		      r == 2 ? PCM_DIRTY_TAIL_OFF : r == 3 ? pcm_seg_base(d) :
		      pcm_seg_base(d) + PCM_SEG_CTRL_OFF;
	uint64_t o1 = o0 + (r == 0 ? PCM_CACHE_INFO_SLOT : r == 3 ? PCM_SEG_INFO_SLOT : 16);
	uint8_t raw[2][24];
	const uint8_t *rec[2] = { raw[0], raw[1] };
	int pick;

	rd(m, o0, raw[0], sizes[r]);
	rd(m, o1, raw[1], sizes[r]);
	pick = pcm_replica_pick(rec, sizes[r], NULL);
	pick = pick < 0 ? 0 : pick;
	memcpy(raw[1 - pick], raw[pick], sizes[r]);
	raw[1 - pick][sizes[r] - 1 - tap_rand_below(4)] ^= (uint8_t)(1 + tap_rand_below(255));
	raw[1 - pick][4] += tap_rand_below(2) ? 128 : 0;
	pcm_record_seal(raw[1 - pick], sizes[r]);
	wr(m, pick ? o0 : o1, raw[1 - pick], sizes[r]);
	say(m, "replica %d at %" PRIu64 " valid with replica %d's seq and another payload", 1 - pick,
	    pick ? o0 : o1, pick);
}

static void mut_unused(struct mut *m)
{
	static const uint32_t ranges[][2] = {
		{ 8216, 12288 }, { 12312, 16384 }, { 16448, 20480 },
		{ 16, 4096 }, { 4112, 8192 }, { 8224, 12288 },
	};
	unsigned r = (unsigned)tap_rand_below(6);
	uint64_t base = r < 3 ? 0 : pcm_seg_base(pick_dseg(m->f));
	uint64_t off = base + ranges[r][0] + tap_rand_below(ranges[r][1] - ranges[r][0]);
	uint8_t b = (uint8_t)(1 + tap_rand_below(255));

	wr(m, off, &b, 1);
	say(m, "unused byte %" PRIu64 " = %#x", off, b);
}

/* One mutation, by weight; those a fixture cannot take (no keys) draw again. */
static void mutate(struct mut *m)
{
	for (;;) {
		uint64_t r = tap_rand_below(100);
		bool log = m->f->nks > 0;

		if (r < 24) { mut_record(m); return; }
		if (r < 32) { mut_kset(m); return; }
		if (r < 38) { mut_last(m); return; }
		if (r < 56 && log) { mut_key(m); return; }
		if (r >= 56 && r < 66) { mut_flip(m); return; }
		if (r >= 66 && r < 74) { mut_zero(m); return; }
		if (r >= 74 && r < 79 && m->f->nkd && m->f->data_crc) { mut_data(m); return; }
		if (r >= 79 && r < 90) { mut_torn(m); return; }
		if (r >= 90 && r < 94) { mut_tail_move(m); return; }
		if (r >= 94 && r < 97) { mut_log_at_end(m); return; }
		if (r >= 97 && r < 99) { mut_twin(m); return; }
		if (r >= 99) { mut_unused(m); return; }
	}
}

/* ---- fixtures ---- */

static int add_kset(struct fx *f, const struct pcm_walk *w, const struct pcm_cache *c)
{
	struct kref *k = realloc(f->ks, (f->nks + 1) * sizeof(*k));

	if (!k)
		return -1;
	f->ks = k;
	k[f->nks++] = (struct kref){ w->pos, pcm_pos_dev_off(c, w->pos.cseg, w->pos.seg_off),
				     (uint32_t)pcm_kset_size(&w->hdr),
				     (w->hdr.flags & PCM_KSET_F_LAST) != 0 };
	for (unsigned i = 0; !(w->hdr.flags & PCM_KSET_F_LAST) && i < w->hdr.key_num; i++) {
		struct pcm_key key;
		struct kdata *d = realloc(f->kd, (f->nkd + 1) * sizeof(*d));

		if (!d)
			return -1;
		f->kd = d;
		pcm_walk_key(w, i, &key);
		d[f->nkd++] = (struct kdata){ pcm_pos_dev_off(c, key.cseg, key.seg_off), key.len };
	}
	return 0;
}

/* The fixture's layout, from the library: its log from key_tail, keys, key_head. */
static bool fx_load(struct fx *f, const char *dir)
{
	char path[512];
	struct pcm_cache *c = NULL;
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev;
	bool good = false;

	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	if (!w || pcm_dev_open(path, PCM_DEV_RDONLY, &f->dev) || pcm_cache_open(f->dev, &c, NULL))
		goto out;
	f->seg_num = c->seg_num;
	f->n_segs = c->n_segs;
	f->data_crc = c->data_crc;
	pcm_walk_init(w, c, c->key_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)
		if (add_kset(f, w, c))
			goto out;
	f->head = (struct kref){ w->pos, pcm_pos_dev_off(c, w->pos.cseg, w->pos.seg_off),
				 PCM_KSET_HDR_SIZE, false };
	good = ev == PCM_WALK_END && w->stop == PCM_STOP_TERMINATOR;
out:
	pcm_cache_close(c);
	free(w);
	return good;
}

/* ---- one corruption, repaired and checked ---- */

struct left {
	struct pcm_problem first_fixable;
	uint64_t fixable, unfixable;
	bool code[PCM_P_COUNT];      /* codes without a repair that are left */
};

static void collect(const struct pcm_problem *p, void *arg)
{
	struct left *l = arg;

	if (pcm_problem_def(p->code)->remark) {
		/* not a problem: fsck calls the cache clean */
	} else if (!pcm_problem_fixable(p->code)) {
		l->unfixable++;
		l->code[p->code] = true;
	} else if (!l->fixable++) {
		l->first_fixable = *p;
	}
	if (verbose)
		diag("  left: %s at %s: %s", pcm_problem_def(p->code)->name, p->where, p->detail);
}

/* The first check's problems: which codes the corruptions reach (and, replaying one, what). */
static void found(const struct pcm_problem *p, void *arg)
{
	bool *met = arg;

	met[p->code] = true;
	if (verbose)
		diag("  found: %s at %s: %s", pcm_problem_def(p->code)->name, p->where, p->detail);
}

static void show_plan(const struct pcm_repair_plan *p)
{
	for (uint64_t i = 0; i < p->nact; i++)
		diag("  fix: %s at %s: %s", pcm_problem_def(p->act[i].code)->name, p->act[i].where,
		     p->act[i].what);
}

struct stats {
	uint64_t n, clean, unfixable, failed;
	uint64_t seed;
	uint64_t left[PCM_P_COUNT];  /* corruptions leaving each code without a repair */
	bool met[PCM_P_COUNT];       /* codes the corruptions made the first check report */
};

static void fail(struct stats *st, uint64_t i, const struct mut *m, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fail(struct stats *st, uint64_t i, const struct mut *m, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (st->failed++ < MAX_SHOWN)
		ok(false, "converge: seed %" PRIu64 " mutation %" PRIu64 " [%s: %s]: %s", st->seed, i,
		   m->f->name, m->desc, msg);
}

/* After a repair that left only problems without one, a second fsck -y must change nothing. */
static void second_run(struct stats *st, uint64_t i, const struct mut *m, struct pcm_dev *dev)
{
	struct pcm_repair_opts o = { .mode = PCM_REPAIR_ALL, .verify_data = true };
	struct pcm_repair_plan *p = NULL;
	int rc = pcm_repair_plan(dev, &o, &p);

	if (rc)
		fail(st, i, m, "second repair planning failed: %s", strerror(-rc));
	else if (p->nact)
		fail(st, i, m, "a second fsck -y changes the image again: %s at %s: %s",
		     pcm_problem_def(p->act[0].code)->name, p->act[0].where, p->act[0].what);
	else
		st->unfixable++;
	pcm_repair_plan_free(p);
}

/* Repairs the corrupted overlay as fsck -y, applies the plan to another, checks that. */
static void converge(struct stats *st, uint64_t i, const struct mut *m)
{
	struct pcm_repair_opts o = { .mode = PCM_REPAIR_ALL, .verify_data = true,
				     .report = found, .arg = st->met };
	struct left l = { .fixable = 0 };
	struct pcm_check_opts co = { .verify_data = true, .report = collect, .arg = &l };
	struct pcm_check_result res;
	struct pcm_repair_plan *p = NULL;
	struct pcm_dev *ov = NULL;
	int rc = pcm_repair_plan(m->dev, &o, &p);

	if (!rc && verbose)
		show_plan(p);
	if (!rc)
		rc = pcm_dev_overlay(m->dev, &ov);
	if (!rc)
		rc = pcm_repair_apply(ov, p, NULL);
	if (rc == -EHWPOISON) {   /* refused, nothing written: fsck says so and exits 8 */
		st->unfixable++;
		goto out;
	}
	if (!rc)
		rc = pcm_check_run(ov, &co, &res);
	if (rc)
		fail(st, i, m, "repair failed: %s", strerror(-rc));
	else if (l.fixable)
		fail(st, i, m, "%s left at %s (%s)", pcm_problem_def(l.first_fixable.code)->name,
		     l.first_fixable.where, l.first_fixable.detail);
	else if (!l.unfixable)
		st->clean++;
	for (int c = 0; !rc && c < PCM_P_COUNT; c++)
		st->left[c] += l.code[c];
	if (!rc && !l.fixable && l.unfixable)
		second_run(st, i, m, ov);
out:
	pcm_dev_close(ov);
	pcm_repair_plan_free(p);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void one(struct stats *st, struct fx *fx, uint64_t i)
{
	struct mut m = { .dlen = 0 };
	uint64_t r, n;

	tap_srand(mix(st->seed ^ mix(i)));
	r = tap_rand_below(100);
	m.f = &fx[r < 50 ? 0 : r < 65 ? 1 : r < 80 ? 2 : r < 87 ? 3 : r < 94 ? 4 : 5];
	if (pcm_dev_overlay(m.f->dev, &m.dev)) {
		fail(st, i, &m, "no overlay");
		return;
	}
	r = tap_rand_below(20);
	n = r < 12 ? 1 : r < 17 ? 2 : 3;
	for (uint64_t j = 0; j < n; j++)
		mutate(&m);
	if (verbose)
		diag("mutation %" PRIu64 " of %s: %s", i, m.f->name, m.desc);
	converge(st, i, &m);
	st->n++;
	pcm_dev_close(m.dev);
}

static void coverage(const struct stats *st)
{
	char never[1024];
	size_t at = 0;
	int n = 0;

	never[0] = 0;
	for (int c = 0; c < PCM_P_COUNT; c++) {
		if (st->met[c])
			n++;
		else if (at < sizeof(never))
			at += (size_t)snprintf(never + at, sizeof(never) - at, " %s",
					       pcm_problem_def(c)->name);
	}
	diag("problem codes the corruptions reached: %d of %d; not reached:%s", n, PCM_P_COUNT,
	     never);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

#define NFX 6

/*
 * The dirty fixture again through the library's test seams (doc/devices.md): a
 * kset of its log and a key's data read as poisoned pmem (LOG_IO, KEY_IO), and
 * bad blocks listed (MEDIA_BADBLOCK).  They share the first fixture's layout.
 */
static const struct { const char *var, *val, *name; } seams[NFX - 3] = {
	{ "PCACHE_TEST_POISON", "43056:64", "kernel-dirty-300w.pmem, kset 1 poisoned" },
	{ "PCACHE_TEST_POISON", "17297408:4096", "kernel-dirty-300w.pmem, key data poisoned" },
	{ "PCACHE_TEST_BADBLOCKS", "500000000:4096,33574912:512",
	  "kernel-dirty-300w.pmem, bad blocks" },
};

static bool fx_seam(struct fx *f, const struct fx *base, const char *dir, int i)
{
	const struct pcm_badblock *bb;
	size_t nbb;
	char path[512];
	int rc;

	*f = *base;
	f->name = seams[i].name;
	snprintf(path, sizeof(path), "%s/%s", dir, base->name);

	setenv(seams[i].var, seams[i].val, 1);
	rc = pcm_dev_open(path, PCM_DEV_RDONLY, &f->dev);
	if (!rc)   /* the list is read at the first query: while the seam is set */
		rc = pcm_dev_badblock_list(f->dev, &bb, &nbb);
	unsetenv(seams[i].var);
	return rc == 0;
}

static bool fixtures_open(struct fx *fx)
{
	const char *dir = getenv("PCACHE_FIXTURES");

	dir = dir && *dir ? dir : "build/fixtures";
	for (int f = 0; f < 3; f++)
		if (!ok(fx_load(&fx[f], dir), "converge: fixture %s/%s opens and replays", dir,
			fx[f].name))
			return false;
	for (int f = 3; f < NFX; f++)
		if (!ok(fx_seam(&fx[f], &fx[0], dir, f - 3), "converge: %s opens", seams[f - 3].name))
			return false;
	return true;
}

static void fixtures_close(struct fx *fx)
{
	for (int f = 0; f < NFX; f++) {
		pcm_dev_close(fx[f].dev);
		if (f < 3) {   /* the seams share the first fixture's layout */
			free(fx[f].ks);
			free(fx[f].kd);
		}
	}
}

static void summary(const struct stats *st, double secs)
{
	for (int c = 0; c < PCM_P_COUNT; c++)
		if (st->left[c])
			diag("left without a repair: %s after %" PRIu64 " corruptions",
			     pcm_problem_def(c)->name, st->left[c]);
	coverage(st);
	if (st->failed > MAX_SHOWN)
		diag("%" PRIu64 " more failures not shown", st->failed - MAX_SHOWN);
	if (st->failed)
		diag("replay one: PCACHE_CONVERGE_SEED=%" PRIu64 " PCACHE_CONVERGE_ONLY=I %s",
		     st->seed, "build/tests/test_converge");
	ok(!st->failed, "converge: %" PRIu64 " corruptions, %" PRIu64 " repaired clean, %" PRIu64
	   " with only unfixable problems left%s (%.1f s)", st->n, st->clean, st->unfixable,
	   st->failed ? ", some not converged" : "", secs);
}

/*
 * Corruptions that once failed, replayed on every run whatever the seed: seed,
 * index and what went wrong.
 */
static const struct { uint64_t seed, i; const char *why; } regressions[] = {
	{ 79654883531ull, 612, "the salvage replay of a repair went round a log chain "
	  "leading back to its damage, for ever" },
};

static void run_regressions(struct fx *fx)
{
	for (size_t k = 0; k < sizeof(regressions) / sizeof(regressions[0]); k++) {
		struct stats st = { .seed = regressions[k].seed };

		one(&st, fx, regressions[k].i);
		ok(!st.failed, "converge: regression seed %" PRIu64 " case %" PRIu64 ": %s",
		   regressions[k].seed, regressions[k].i, regressions[k].why);
	}
}

int main(void)
{
	struct fx fx[NFX] = { { .name = "kernel-dirty-300w.pmem" },
			      { .name = "kernel-fresh-1071644672-crc.pmem" },
			      { .name = "kernel-fresh-1071644672-nocrc.pmem" } };
	struct timespec t0, t1;
	struct stats st = { .n = 0 };
	uint64_t n = env_u64("PCACHE_CONVERGE_N", 1000), only;

	clock_gettime(CLOCK_REALTIME, &t0);
	st.seed = env_u64("PCACHE_CONVERGE_SEED", mix((uint64_t)t0.tv_sec ^ (uint64_t)t0.tv_nsec) %
			  1000000000000ull);
	only = env_u64("PCACHE_CONVERGE_ONLY", UINT64_MAX);
	verbose = only != UINT64_MAX;
	diag("seed %" PRIu64, st.seed);
	if (!fixtures_open(fx))
		return tap_done();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = verbose ? only : 0; i < (verbose ? only + 1 : n); i++)
		one(&st, fx, i);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	summary(&st, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (!verbose)
		run_regressions(fx);
	fixtures_close(fx);
	return tap_done();
}
