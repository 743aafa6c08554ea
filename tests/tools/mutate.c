/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mutate: one seeded random mutation of a dm-pcache image (see mutate.h).
 *
 * A random flip anywhere in a 1 GiB image would nearly always land in bytes
 * nobody reads, so every mutation is aimed at a structure the kernel reads at
 * load: the superblock, the replicas of cache_info, of the tails, and of the
 * segment info and gen of a chain member (a member the log or a key uses half of
 * the time), a kset on the log from key_tail (or the terminator after it), a key
 * of such a kset, or the data of such a key.  The seed alone decides everything
 * (the generator is splitmix64); the image decides only what there is to pick
 * from.  Four classes, as issue 19 item 5 names them:
 *
 *   field  one field of a record set to 0, 1, all ones, old +-1, old with one bit
 *          flipped, old +- a few sectors, a small number or random bits, then the
 *          record's CRC (or the kset's) computed again: the change passes the CRC
 *   flip   1 to 8 bytes of a structure changed (a single bit most of the time),
 *          the CRC left as it was
 *   zero   a record replica, a whole kset, or a range inside a kset zeroed
 *   data   bits of the cached data of a key flipped (with DATA_CRC the kernel
 *          checks every key's data at load; without, it serves the bytes)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutate.h"

enum { M_OK = 0, M_NEED = 8 };

/* How many ksets of the log are remembered: more than any base of the suite has. */
#define MAX_KSETS 65536u

struct kref {
	struct pcm_pos pos;
	struct pcm_kset_hdr hdr;
	bool last;
};

struct mu {
	struct pcm_dev *dev;
	const struct pcm_cache *c;
	uint64_t s;                 /* splitmix64 state */
	mutate_put_fn put;
	void *arg;
	struct kref *ks;
	size_t nks, nkeyed;         /* ksets walked; normal ones with at least one key */
	bool head_ok;               /* the walk ended at a terminator: head */
	struct pcm_pos head;
	uint8_t *used;              /* per cseg: the log or a key uses it */
	uint32_t nused;
};

/* ---- the generator ---- */

static uint64_t rnd(struct mu *m)
{
	uint64_t z = (m->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t below(struct mu *m, uint64_t n)
{
	return n ? rnd(m) % n : 0;
}

/* Index of the weight that a draw below the sum of w[0..n) falls on. */
static unsigned pick_weighted(struct mu *m, const unsigned *w, unsigned n)
{
	unsigned sum = 0, i;
	uint64_t d;

	for (i = 0; i < n; i++)
		sum += w[i];
	d = below(m, sum);
	for (i = 0; i < n; i++) {
		if (d < w[i])
			return i;
		d -= w[i];
	}
	return n - 1;
}

/* ---- what the image holds ---- */

static int walk_log(struct mu *m)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	enum pcm_walk_event ev;

	m->used = calloc(m->c->n_segs ? m->c->n_segs : 1, 1);
	if (!w || !m->used) {
		free(w);
		return -1;
	}
	pcm_walk_init(w, m->c, m->c->key_tail.pos);
	while (m->nks < MAX_KSETS && ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST)) {
		struct kref *k;

		if (!(m->nks & (m->nks - 1))) {
			k = realloc(m->ks, (m->nks ? 2 * m->nks : 64) * sizeof(*k));
			if (!k) {
				free(w);
				return -1;
			}
			m->ks = k;
		}
		m->ks[m->nks++] = (struct kref){ w->pos, w->hdr, ev == PCM_WALK_LAST };
		if (w->pos.cseg < m->c->n_segs)
			m->used[w->pos.cseg] = 1;
		if (ev == PCM_WALK_KSET && w->hdr.key_num)
			m->nkeyed++;
		for (unsigned i = 0; ev == PCM_WALK_KSET && i < w->hdr.key_num; i++) {
			struct pcm_key key;

			pcm_walk_key(w, i, &key);
			if (key.cseg < m->c->n_segs)
				m->used[key.cseg] = 1;
		}
	}
	m->head_ok = w->stop == PCM_STOP_TERMINATOR;
	m->head = w->pos;
	for (uint32_t i = 0; i < m->c->n_segs; i++)
		m->nused += m->used[i];
	free(w);
	return 0;
}

/* A cache segment: one the log or a key uses half of the time, else any. */
static uint32_t pick_cseg(struct mu *m)
{
	if (m->nused && below(m, 2)) {
		uint64_t n = below(m, m->nused);

		for (uint32_t i = 0; i < m->c->n_segs; i++)
			if (m->used[i] && n-- == 0)
				return i;
	}
	return (uint32_t)below(m, m->c->n_segs);
}

static const struct kref *pick_kset(struct mu *m, bool keyed)
{
	uint64_t n;

	if (!keyed)
		return m->nks ? &m->ks[below(m, m->nks)] : NULL;
	if (!m->nkeyed)
		return NULL;
	n = below(m, m->nkeyed);
	for (size_t i = 0; i < m->nks; i++)
		if (!m->ks[i].last && m->ks[i].hdr.key_num && n-- == 0)
			return &m->ks[i];
	return NULL;
}

static uint64_t kset_off(const struct mu *m, struct pcm_pos p)
{
	return pcm_pos_dev_off(m->c, p.cseg, p.seg_off);
}

/* ---- replicated records ---- */

enum rkind { R_SB, R_CI, R_KTAIL, R_DTAIL, R_SEGINFO, R_GEN, R_NKINDS };

struct rec {
	enum rkind kind;
	char name[48];
	uint64_t off[PCM_REPLICAS];
	unsigned n;                 /* copies: 1 for the superblock */
	size_t size;
	int pick;                   /* the replica the kernel reads (0 when none is valid) */
};

static int rec_pick(struct mu *m, struct rec *r, enum rkind kind)
{
	uint8_t raw[PCM_REPLICAS][24];
	const uint8_t *p[PCM_REPLICAS] = { raw[0], raw[1] };
	bool valid[PCM_REPLICAS];
	uint32_t cs = 0, ds;

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->n = PCM_REPLICAS;
	switch (kind) {
	case R_SB:
		r->n = 1;
		r->off[0] = PCM_SB_OFF;
		r->size = PCM_SB_SIZE;
		snprintf(r->name, sizeof(r->name), "superblock");
		break;
	case R_CI:
		r->off[0] = PCM_CACHE_INFO_OFF;
		r->off[1] = PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT;
		r->size = PCM_CACHE_INFO_SIZE;
		snprintf(r->name, sizeof(r->name), "cache_info");
		break;
	case R_KTAIL:
	case R_DTAIL:
		r->off[0] = kind == R_KTAIL ? PCM_KEY_TAIL_OFF : PCM_DIRTY_TAIL_OFF;
		r->off[1] = r->off[0] + PCM_POS_SIZE;
		r->size = PCM_POS_SIZE;
		snprintf(r->name, sizeof(r->name), kind == R_KTAIL ? "key_tail" : "dirty_tail");
		break;
	case R_SEGINFO:
	case R_GEN:
	default:
		cs = pick_cseg(m);
		ds = m->c->dseg[cs];
		r->size = 16;
		if (kind == R_SEGINFO) {
			r->off[0] = pcm_seg_base(ds);
			r->off[1] = r->off[0] + PCM_SEG_INFO_SLOT;
		} else {
			r->off[0] = pcm_seg_base(ds) + PCM_SEG_CTRL_OFF;
			r->off[1] = r->off[0] + PCM_SEG_GEN_SIZE;
		}
		snprintf(r->name, sizeof(r->name), "cseg %u %s", cs,
			 kind == R_SEGINFO ? "segment info" : "segment gen");
		break;
	}
	if (r->n == 1)
		return 0;
	for (unsigned i = 0; i < r->n; i++)
		if (pcm_dev_read(m->dev, r->off[i], raw[i], r->size))
			return -1;
	r->pick = pcm_replica_pick(p, r->size, valid);
	if (r->pick < 0)
		r->pick = 0;
	return 0;
}

/* A record of any kind, the weights favouring those with more to break. */
static int rec_any(struct mu *m, struct rec *r)
{
	static const unsigned w[R_NKINDS] = { 1, 2, 1, 1, 2, 2 };

	return rec_pick(m, r, (enum rkind)pick_weighted(m, w, R_NKINDS));
}

/* ---- fields ---- */

struct field {
	const char *name;
	size_t off;
	unsigned width;
};

#define F(type, member) { #member, offsetof(type, member), sizeof(((type *)0)->member) }

static const struct field sb_fields[] = {
	F(struct pcm_sb, flags), F(struct pcm_sb, magic), F(struct pcm_sb, seg_num),
	F(struct pcm_sb, pad),
};
static const struct field ci_fields[] = {
	F(struct pcm_cache_info, h.seq), F(struct pcm_cache_info, h.version),
	F(struct pcm_cache_info, h.res), F(struct pcm_cache_info, seg_id),
	F(struct pcm_cache_info, n_segs), F(struct pcm_cache_info, flags),
	F(struct pcm_cache_info, reserved),
};
static const struct field pos_fields[] = {
	F(struct pcm_pos_rec, h.seq), F(struct pcm_pos_rec, h.version), F(struct pcm_pos_rec, h.res),
	F(struct pcm_pos_rec, pos.cseg), F(struct pcm_pos_rec, pos.seg_off),
};
static const struct field si_fields[] = {
	F(struct pcm_seg_info, h.seq), F(struct pcm_seg_info, h.version),
	F(struct pcm_seg_info, h.res), F(struct pcm_seg_info, flags),
	F(struct pcm_seg_info, next_seg),
};
static const struct field gen_fields[] = {
	F(struct pcm_seg_gen, h.seq), F(struct pcm_seg_gen, h.version), F(struct pcm_seg_gen, h.res),
	F(struct pcm_seg_gen, gen),
};
static const struct field kset_fields[] = {
	F(struct pcm_kset_hdr, key_num), F(struct pcm_kset_hdr, magic), F(struct pcm_kset_hdr, flags),
};
static const struct field key_fields[] = {
	F(struct pcm_key, off), F(struct pcm_key, len), F(struct pcm_key, flags),
	F(struct pcm_key, cseg), F(struct pcm_key, seg_off), F(struct pcm_key, seg_gen),
	F(struct pcm_key, data_crc), F(struct pcm_key, reserved),
};

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t fget(const void *base, const struct field *f)
{
	const uint8_t *p = (const uint8_t *)base + f->off;
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	switch (f->width) {
	case 1: memcpy(&v8, p, 1); return v8;
	case 2: memcpy(&v16, p, 2); return v16;
	case 4: memcpy(&v32, p, 4); return v32;
	default: memcpy(&v64, p, 8); return v64;
	}
}

static void fset(void *base, const struct field *f, uint64_t v)
{
	uint8_t *p = (uint8_t *)base + f->off;
	uint8_t v8 = (uint8_t)v;
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;

	switch (f->width) {
	case 1: memcpy(p, &v8, 1); break;
	case 2: memcpy(p, &v16, 2); break;
	case 4: memcpy(p, &v32, 4); break;
	default: memcpy(p, &v, 8); break;
	}
}

/*
 * Another value for a field of `width` bytes holding old: the values checks
 * tend to sit next to (0, 1, the maximum, one off), a bit flip, a move by whole
 * sectors, a small number (a plausible segment or count) or random bits.  Never
 * old itself.  how says which.
 */
static uint64_t new_value(struct mu *m, uint64_t old, unsigned width, const char **how)
{
	uint64_t mask = width >= 8 ? ~0ull : (1ull << (8 * width)) - 1, v;
	unsigned bits = 8 * width;

	switch (below(m, 9)) {
	case 0: v = 0; *how = "zero"; break;
	case 1: v = 1; *how = "one"; break;
	case 2: v = mask; *how = "all ones"; break;
	case 3: v = old + 1; *how = "old + 1"; break;
	case 4: v = old - 1; *how = "old - 1"; break;
	case 5: v = old ^ (1ull << below(m, bits)); *how = "one bit flipped"; break;
	case 6:
		v = below(m, 2) ? old + PCM_SECTOR * (1 + below(m, 8)) :
			old - PCM_SECTOR * (1 + below(m, 8));
		*how = "old +- sectors";
		break;
	case 7: v = below(m, 80); *how = "small number"; break;
	default: v = rnd(m); *how = "random bits"; break;
	}
	v &= mask;
	if (v == old) {
		v = (old ^ (1ull << below(m, bits))) & mask;
		*how = "one bit flipped";
	}
	return v;
}

union recv {
	struct pcm_sb sb;
	struct pcm_cache_info ci;
	struct pcm_pos_rec pos;
	struct pcm_seg_info si;
	struct pcm_seg_gen g;
};

static int field_record(struct mu *m)
{
	static const struct {
		const struct field *f;
		size_t n;
	} tab[R_NKINDS] = {
		[R_SB] = { sb_fields, NF(sb_fields) },
		[R_CI] = { ci_fields, NF(ci_fields) },
		[R_KTAIL] = { pos_fields, NF(pos_fields) },
		[R_DTAIL] = { pos_fields, NF(pos_fields) },
		[R_SEGINFO] = { si_fields, NF(si_fields) },
		[R_GEN] = { gen_fields, NF(gen_fields) },
	};
	struct rec r;
	union recv u;
	uint8_t raw[24];
	const struct field *f;
	const char *how;
	uint64_t old, nv;
	unsigned slot;
	char what[160];

	if (rec_any(m, &r))
		return -1;
	/* The replica the kernel reads, three times out of four. */
	slot = r.n == 1 || below(m, 4) ? (unsigned)r.pick : 1u - (unsigned)r.pick;
	if (pcm_dev_read(m->dev, r.off[slot], raw, r.size))
		return -1;
	switch (r.kind) {
	case R_SB: pcm_sb_decode(raw, &u.sb); break;
	case R_CI: pcm_cache_info_decode(raw, &u.ci); break;
	case R_KTAIL:
	case R_DTAIL: pcm_pos_rec_decode(raw, &u.pos); break;
	case R_SEGINFO: pcm_seg_info_decode(raw, &u.si); break;
	default: pcm_seg_gen_decode(raw, &u.g); break;
	}
	f = &tab[r.kind].f[below(m, tab[r.kind].n)];
	old = fget(&u, f);
	nv = new_value(m, old, f->width, &how);
	fset(&u, f, nv);
	switch (r.kind) {
	case R_SB: pcm_sb_encode(&u.sb, raw); break;
	case R_CI: pcm_cache_info_encode(&u.ci, raw); break;
	case R_KTAIL:
	case R_DTAIL: pcm_pos_rec_encode(&u.pos, raw); break;
	case R_SEGINFO: pcm_seg_info_encode(&u.si, raw); break;
	default: pcm_seg_gen_encode(&u.g, raw); break;
	}
	pcm_record_seal(raw, r.size);
	snprintf(what, sizeof(what), "field: %s%s%s %s %#llx -> %#llx (%s), resealed", r.name,
		 r.n == 1 ? "" : " replica ", r.n == 1 ? "" : (slot ? "1" : "0"), f->name,
		 (unsigned long long)old, (unsigned long long)nv, how);
	return m->put(m->arg, r.off[slot], raw, r.size, what);
}

/* Reads up to PCM_KSET_SIZE_MAX bytes of the kset at k (less at the device's end). */
static size_t kset_read(struct mu *m, const struct kref *k, uint8_t *buf)
{
	uint64_t off = kset_off(m, k->pos), dev = pcm_dev_size(m->dev);
	size_t n = PCM_KSET_SIZE_MAX;

	memset(buf, 0, PCM_KSET_SIZE_MAX);
	if (off >= dev)
		return 0;
	if (dev - off < n)
		n = (size_t)(dev - off);
	return pcm_dev_read(m->dev, off, buf, n) ? 0 : n;
}

/*
 * Seals the kset in buf after an edit: its CRC over the size its (new) header
 * claims.  A key_num the kernel stops at before its CRC (above 128) keeps the CRC.
 */
static void kset_reseal(uint8_t *buf, size_t have)
{
	struct pcm_kset_hdr h;
	uint64_t size;

	pcm_kset_hdr_decode(buf, &h);
	size = pcm_kset_size(&h);
	if (size > have)
		return;
	h.crc = pcm_kcrc(buf + 4, (size_t)size - 4);
	pcm_kset_hdr_encode(&h, buf);
}

static int field_kset(struct mu *m, bool key)
{
	const struct kref *k = pick_kset(m, key);
	uint8_t buf[PCM_KSET_SIZE_MAX];
	const struct field *f;
	const char *how;
	uint64_t old, nv, len;
	size_t have;
	char what[200];

	if (!k || !(have = kset_read(m, k, buf)))
		return 1;
	len = pcm_kset_size(&k->hdr);
	if (key) {
		struct pcm_key kv;
		unsigned i = (unsigned)below(m, k->hdr.key_num);

		pcm_key_decode(buf + PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * i, &kv);
		f = &key_fields[below(m, NF(key_fields))];
		old = fget(&kv, f);
		nv = new_value(m, old, f->width, &how);
		fset(&kv, f, nv);
		pcm_key_encode(&kv, buf + PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * i);
		snprintf(what, sizeof(what), "field: key %u of kset %u:%u %s %#llx -> %#llx (%s), "
			 "kset resealed", i, k->pos.cseg, k->pos.seg_off, f->name,
			 (unsigned long long)old, (unsigned long long)nv, how);
	} else {
		struct pcm_kset_hdr h = k->hdr;

		f = &kset_fields[below(m, NF(kset_fields))];
		old = fget(&h, f);
		nv = new_value(m, old, f->width, &how);
		fset(&h, f, nv);
		pcm_kset_hdr_encode(&h, buf);
		snprintf(what, sizeof(what), "field: %skset %u:%u header %s %#llx -> %#llx (%s), "
			 "resealed", k->last ? "LAST " : "", k->pos.cseg, k->pos.seg_off, f->name,
			 (unsigned long long)old, (unsigned long long)nv, how);
	}
	kset_reseal(buf, have);
	/* what the new header covers, or at least what the old one did */
	{
		struct pcm_kset_hdr h;
		uint64_t nlen;

		pcm_kset_hdr_decode(buf, &h);
		nlen = pcm_kset_size(&h);
		if (nlen > len && nlen <= have)
			len = nlen;
	}
	return m->put(m->arg, kset_off(m, k->pos), buf, (size_t)len, what);
}

static int c_field(struct mu *m)
{
	/* records, kset headers, keys */
	unsigned w[3] = { 8, m->nks ? 2 : 0, m->nkeyed ? 6 : 0 };
	unsigned t = pick_weighted(m, w, 3);
	int rc;

	if (t == 0)
		return field_record(m);
	rc = field_kset(m, t == 2);
	return rc == 1 ? field_record(m) : rc;
}

/* ---- flips and zeroed ranges: a region of metadata ---- */

struct region {
	uint64_t off;
	size_t len;
	char name[64];
	bool kset;
};

static int pick_region(struct mu *m, struct region *g)
{
	unsigned w[3] = { 8, m->nks ? 8 : 0, m->head_ok ? 1 : 0 };
	unsigned t = pick_weighted(m, w, 3);

	memset(g, 0, sizeof(*g));
	if (t == 0) {
		struct rec r;
		unsigned slot;

		if (rec_any(m, &r))
			return -1;
		/* the replica the kernel reads, three times out of four */
		slot = r.n == 1 || below(m, 4) ? (unsigned)r.pick : 1u - (unsigned)r.pick;
		g->off = r.off[slot];
		g->len = r.size;
		snprintf(g->name, sizeof(g->name), "%s%s%s", r.name, r.n == 1 ? "" : " replica ",
			 r.n == 1 ? "" : (slot ? "1" : "0"));
	} else if (t == 1) {
		const struct kref *k = pick_kset(m, false);
		uint64_t len = pcm_kset_size(&k->hdr);

		if (k->pos.seg_off + len > PCM_DATA_SIZE)
			len = PCM_DATA_SIZE - k->pos.seg_off;
		g->off = kset_off(m, k->pos);
		g->len = (size_t)len;
		g->kset = true;
		snprintf(g->name, sizeof(g->name), "%skset %u:%u (%u keys)", k->last ? "LAST " : "",
			 k->pos.cseg, k->pos.seg_off, k->last ? 0 : k->hdr.key_num);
	} else {
		g->off = kset_off(m, m->head);
		g->len = PCM_KSET_HDR_SIZE;
		snprintf(g->name, sizeof(g->name), "terminator at key_head %u:%u", m->head.cseg,
			 m->head.seg_off);
	}
	return 0;
}

/* Changes `bytes` bytes (one bit of one byte when 0) at a random place of region g. */
static int flip_in(struct mu *m, const struct region *g, uint64_t off, size_t bytes,
		   const char *cls, const char *where)
{
	uint8_t b[8];
	char what[200];

	if (!bytes) {
		unsigned bit = (unsigned)below(m, 8);

		if (pcm_dev_read(m->dev, off, b, 1))
			return -1;
		b[0] ^= (uint8_t)(1u << bit);
		snprintf(what, sizeof(what), "%s: bit %u of byte %llu of %s%s", cls, bit,
			 (unsigned long long)(off - g->off), g->name, where);
		return m->put(m->arg, off, b, 1, what);
	}
	if (pcm_dev_read(m->dev, off, b, bytes))
		return -1;
	for (size_t i = 0; i < bytes; i++)
		b[i] ^= (uint8_t)(1 + below(m, 255));
	snprintf(what, sizeof(what), "%s: %zu bytes at byte %llu of %s%s", cls, bytes,
		 (unsigned long long)(off - g->off), g->name, where);
	return m->put(m->arg, off, b, bytes, what);
}

static int c_flip(struct mu *m)
{
	struct region g;
	uint64_t at;
	size_t bytes = 0;
	unsigned mode;

	if (pick_region(m, &g))
		return -1;
	mode = (unsigned)below(m, 20);
	if (mode >= 12) /* 40%: 1 to 8 whole bytes, else a single bit */
		bytes = mode >= 17 ? 2 + (size_t)below(m, 7) : 1;
	if (bytes > g.len)
		bytes = g.len;
	at = g.off + below(m, g.len - (bytes ? bytes : 1) + 1);
	return flip_in(m, &g, at, bytes, "flip", "");
}

static int c_zero(struct mu *m)
{
	struct region g;
	uint64_t a = 0, b;
	uint8_t *z;
	char what[200];
	int rc;

	if (pick_region(m, &g))
		return -1;
	b = g.len;
	/* a range inside a kset half of the time, else the whole structure */
	if (g.kset && below(m, 2)) {
		a = below(m, g.len);
		b = a + 1 + below(m, g.len - a);
	}
	z = calloc(1, (size_t)(b - a));
	if (!z)
		return -1;
	snprintf(what, sizeof(what), "zero: bytes [%llu, %llu) of %s", (unsigned long long)a,
		 (unsigned long long)b, g.name);
	rc = m->put(m->arg, g.off + a, z, (size_t)(b - a), what);
	free(z);
	return rc;
}

/* ---- data ---- */

static int c_data(struct mu *m)
{
	for (int tries = 0; tries < 32; tries++) {
		const struct kref *k = pick_kset(m, true);
		uint8_t buf[PCM_KSET_SIZE_MAX];
		struct pcm_key key;
		struct region g;
		unsigned i;
		uint64_t at;
		char where[96];

		if (!k || !kset_read(m, k, buf))
			return 1;
		i = (unsigned)below(m, k->hdr.key_num);
		pcm_key_decode(buf + PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * i, &key);
		if (key.cseg >= m->c->n_segs || !key.len || key.len > PCM_DATA_SIZE ||
		    key.seg_off > PCM_DATA_SIZE - key.len)
			continue;
		memset(&g, 0, sizeof(g));
		g.off = pcm_pos_dev_off(m->c, key.cseg, key.seg_off);
		g.len = key.len;
		snprintf(g.name, sizeof(g.name), "the data of key %u of kset %u:%u", i, k->pos.cseg,
			 k->pos.seg_off);
		at = g.off + below(m, g.len);
		snprintf(where, sizeof(where), " (logical %llu%s)",
			 (unsigned long long)(key.off + (at - g.off)),
			 m->c->data_crc ? ", under data_crc" : "");
		return flip_in(m, &g, at, below(m, 4) ? 0 : 1, "data", where);
	}
	return 1;
}

int mutate_apply(struct pcm_dev *dev, const struct pcm_cache *c, uint64_t seed,
		 mutate_put_fn put, void *arg, char *err, size_t errlen)
{
	struct mu m = { .dev = dev, .c = c, .s = seed, .put = put, .arg = arg };
	/* field, flip, zero, data */
	static const unsigned w[4] = { 35, 25, 20, 20 };
	unsigned cls;
	int rc;

	if (!c->n_segs || walk_log(&m)) {
		snprintf(err, errlen, "cannot walk the log");
		rc = M_NEED;
		goto out;
	}
	cls = pick_weighted(&m, w, 4);
	switch (cls) {
	case 0: rc = c_field(&m); break;
	case 1: rc = c_flip(&m); break;
	case 2: rc = c_zero(&m); break;
	default:
		/* no key with data (a fresh cache): a flip instead */
		rc = c_data(&m);
		if (rc == 1)
			rc = c_flip(&m);
		break;
	}
	if (rc < 0 || rc == 1) {
		snprintf(err, errlen, "cannot read the image");
		rc = M_NEED;
	}
out:
	free(m.ks);
	free(m.used);
	return rc;
}
