/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_codec.c - unit tests for the libpcachemeta record codec: round trips,
 * the little-endian byte layout of every field (§2), the test
 * vectors of §11.2, seg_num derivation (§1.2), superblock verdicts
 * (§5.5 steps 1-4) and the format plan (§5.2, §5.3).
 */
#include "pcachemeta.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ITERS 20000

/* ---- helpers ---- */

static void hexdump(const char *what, const uint8_t *p, size_t n)
{
	printf("# %s:", what);
	for (size_t i = 0; i < n; i++)
		printf("%s%02x", (i % 16) ? " " : "\n#   ", p[i]);
	printf("\n");
}

static bool bytes_eq(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
	if (!memcmp(got, want, n))
		return true;
	hexdump("got", got, n);
	hexdump("want", want, n);
	(void)what;
	return false;
}

static uint8_t r8(void) { return (uint8_t)tap_rand(); }
static uint64_t r64(void) { return tap_rand(); }

/* A field value: random, but now and then 0 or all ones to hit the edges. */
static uint64_t rfield(void)
{
	switch (tap_rand_below(8)) {
	case 0: return 0;
	case 1: return ~0ull;
	default: return r64();
	}
}

static void rand_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = r8();
}

static void rand_hdr(struct pcm_meta_header *h)
{
	h->crc = (uint32_t)rfield();
	h->seq = (uint8_t)rfield();
	h->version = (uint8_t)rfield();
	h->res = (uint16_t)rfield();
}

static bool hdr_eq(const struct pcm_meta_header *a, const struct pcm_meta_header *b)
{
	return a->crc == b->crc && a->seq == b->seq && a->version == b->version &&
	       a->res == b->res;
}

/* ---- round trips ---- */

static void test_round_trips(void)
{
	uint8_t buf[64], buf2[64], raw[64];
	int bad_sb = 0, bad_ci = 0, bad_pos = 0, bad_si = 0, bad_gen = 0, bad_kh = 0, bad_key = 0;
	int badb_sb = 0, badb_ci = 0, badb_pos = 0, badb_si = 0, badb_gen = 0, badb_kh = 0,
	    badb_key = 0;

	for (int it = 0; it < ITERS; it++) {
		/* struct -> bytes -> struct */
		struct pcm_sb sb = { (uint32_t)rfield(), (uint32_t)rfield(), rfield(),
				     (uint32_t)rfield(), (uint32_t)rfield() }, sb2;
		struct pcm_cache_info ci, ci2;
		struct pcm_pos_rec p, p2;
		struct pcm_seg_info si, si2;
		struct pcm_seg_gen g, g2;
		struct pcm_kset_hdr kh, kh2;
		struct pcm_key k, k2;

		memset(&sb2, 0x5A, sizeof(sb2));
		pcm_sb_encode(&sb, buf);
		pcm_sb_decode(buf, &sb2);
		if (sb.crc != sb2.crc || sb.flags != sb2.flags || sb.magic != sb2.magic ||
		    sb.seg_num != sb2.seg_num || sb.pad != sb2.pad)
			bad_sb++;

		rand_hdr(&ci.h);
		ci.seg_id = (uint32_t)rfield();
		ci.n_segs = (uint32_t)rfield();
		ci.flags = (uint32_t)rfield();
		ci.reserved = (uint32_t)rfield();
		memset(&ci2, 0x5A, sizeof(ci2));
		pcm_cache_info_encode(&ci, buf);
		pcm_cache_info_decode(buf, &ci2);
		if (!hdr_eq(&ci.h, &ci2.h) || ci.seg_id != ci2.seg_id || ci.n_segs != ci2.n_segs ||
		    ci.flags != ci2.flags || ci.reserved != ci2.reserved)
			bad_ci++;

		rand_hdr(&p.h);
		p.pos.cseg = (uint32_t)rfield();
		p.pos.seg_off = (uint32_t)rfield();
		memset(&p2, 0x5A, sizeof(p2));
		pcm_pos_rec_encode(&p, buf);
		pcm_pos_rec_decode(buf, &p2);
		if (!hdr_eq(&p.h, &p2.h) || !pcm_pos_eq(p.pos, p2.pos))
			bad_pos++;

		rand_hdr(&si.h);
		si.flags = (uint32_t)rfield();
		si.next_seg = (uint32_t)rfield();
		memset(&si2, 0x5A, sizeof(si2));
		pcm_seg_info_encode(&si, buf);
		pcm_seg_info_decode(buf, &si2);
		if (!hdr_eq(&si.h, &si2.h) || si.flags != si2.flags || si.next_seg != si2.next_seg)
			bad_si++;

		rand_hdr(&g.h);
		g.gen = rfield();
		memset(&g2, 0x5A, sizeof(g2));
		pcm_seg_gen_encode(&g, buf);
		pcm_seg_gen_decode(buf, &g2);
		if (!hdr_eq(&g.h, &g2.h) || g.gen != g2.gen)
			bad_gen++;

		kh.crc = (uint32_t)rfield();
		kh.key_num = (uint32_t)rfield();
		kh.magic = rfield();
		kh.flags = rfield();
		memset(&kh2, 0x5A, sizeof(kh2));
		pcm_kset_hdr_encode(&kh, buf);
		pcm_kset_hdr_decode(buf, &kh2);
		if (kh.crc != kh2.crc || kh.key_num != kh2.key_num || kh.magic != kh2.magic ||
		    kh.flags != kh2.flags)
			bad_kh++;

		k.off = rfield();
		k.len = (uint32_t)rfield();
		k.flags = (uint32_t)rfield();
		k.cseg = (uint32_t)rfield();
		k.seg_off = (uint32_t)rfield();
		k.seg_gen = rfield();
		k.data_crc = (uint32_t)rfield();
		k.reserved = (uint32_t)rfield();
		memset(&k2, 0x5A, sizeof(k2));
		pcm_key_encode(&k, buf);
		pcm_key_decode(buf, &k2);
		if (k.off != k2.off || k.len != k2.len || k.flags != k2.flags ||
		    k.cseg != k2.cseg || k.seg_off != k2.seg_off || k.seg_gen != k2.seg_gen ||
		    k.data_crc != k2.data_crc || k.reserved != k2.reserved)
			bad_key++;

		/* bytes -> struct -> bytes (buffers pre-filled differently) */
		rand_bytes(raw, sizeof(raw));
#define BYTES_RT(T, dec, enc, size, counter) do {                          \
			T s_;                                               \
			memset(buf2, 0xC3, sizeof(buf2));                   \
			dec(raw, &s_);                                      \
			enc(&s_, buf2);                                     \
			if (memcmp(raw, buf2, size) || buf2[size] != 0xC3)  \
				counter++;                                  \
		} while (0)
		BYTES_RT(struct pcm_sb, pcm_sb_decode, pcm_sb_encode, PCM_SB_SIZE, badb_sb);
		BYTES_RT(struct pcm_cache_info, pcm_cache_info_decode, pcm_cache_info_encode,
			 PCM_CACHE_INFO_SIZE, badb_ci);
		BYTES_RT(struct pcm_pos_rec, pcm_pos_rec_decode, pcm_pos_rec_encode,
			 PCM_POS_SIZE, badb_pos);
		BYTES_RT(struct pcm_seg_info, pcm_seg_info_decode, pcm_seg_info_encode,
			 PCM_SEG_INFO_SIZE, badb_si);
		BYTES_RT(struct pcm_seg_gen, pcm_seg_gen_decode, pcm_seg_gen_encode,
			 PCM_SEG_GEN_SIZE, badb_gen);
		BYTES_RT(struct pcm_kset_hdr, pcm_kset_hdr_decode, pcm_kset_hdr_encode,
			 PCM_KSET_HDR_SIZE, badb_kh);
		BYTES_RT(struct pcm_key, pcm_key_decode, pcm_key_encode, PCM_KEY_SIZE, badb_key);
#undef BYTES_RT
	}
	ok(!bad_sb, "sb: decode(encode(x)) == x for %d random values (%d mismatches)", ITERS, bad_sb);
	ok(!bad_ci, "cache_info: decode(encode(x)) == x (%d mismatches)", bad_ci);
	ok(!bad_pos, "pos_rec: decode(encode(x)) == x (%d mismatches)", bad_pos);
	ok(!bad_si, "seg_info: decode(encode(x)) == x (%d mismatches)", bad_si);
	ok(!bad_gen, "seg_gen: decode(encode(x)) == x (%d mismatches)", bad_gen);
	ok(!bad_kh, "kset_hdr: decode(encode(x)) == x (%d mismatches)", bad_kh);
	ok(!bad_key, "key: decode(encode(x)) == x (%d mismatches)", bad_key);
	ok(!badb_sb, "sb: encode(decode(b)) == b, nothing written past 24 bytes (%d mismatches)",
	   badb_sb);
	ok(!badb_ci, "cache_info: encode(decode(b)) == b, exactly 24 bytes (%d mismatches)", badb_ci);
	ok(!badb_pos, "pos_rec: encode(decode(b)) == b, exactly 16 bytes (%d mismatches)", badb_pos);
	ok(!badb_si, "seg_info: encode(decode(b)) == b, exactly 16 bytes (%d mismatches)", badb_si);
	ok(!badb_gen, "seg_gen: encode(decode(b)) == b, exactly 16 bytes (%d mismatches)", badb_gen);
	ok(!badb_kh, "kset_hdr: encode(decode(b)) == b, exactly 24 bytes (%d mismatches)", badb_kh);
	ok(!badb_key, "key: encode(decode(b)) == b, exactly 40 bytes (%d mismatches)", badb_key);
}

/* ---- field layout ---- */

/* A value whose little-endian bytes are distinct and non-zero: 0x11, 0x22, ... */
static uint64_t pattern(unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)(0x11u * (i + 1)) << (8 * i);
	return v;
}

/*
 * Checks that buf (size bytes) holds pattern(width) little-endian at off and
 * zero everywhere else.
 */
static bool layout_ok(const uint8_t *buf, size_t size, size_t off, unsigned width)
{
	for (size_t i = 0; i < size; i++) {
		uint8_t want = (i >= off && i < off + width) ? (uint8_t)(0x11u * (i - off + 1)) : 0;

		if (buf[i] != want) {
			hexdump("encoded", buf, size);
			return false;
		}
	}
	return true;
}

/*
 * For one field: encoding a zero struct with only that field set puts its
 * little-endian bytes at off and nothing else; decoding those bytes gives
 * back only that field.  Z is a zero-filled struct of type T.
 */
#define FIELD(T, enc, dec, size, field, off, width) do {                           \
		T s_, d_;                                                          \
		uint8_t b_[64];                                                    \
		memset(&s_, 0, sizeof(s_));                                        \
		s_.field = pattern(width);                                         \
		memset(b_, 0xEE, sizeof(b_));                                      \
		enc(&s_, b_);                                                      \
		ok(layout_ok(b_, size, off, width) && b_[size] == 0xEE,           \
		   #T "." #field ": encoded little-endian at bytes [%d, %d)",      \
		   off, off + width);                                              \
		memset(&d_, 0x77, sizeof(d_));                                     \
		dec(b_, &d_);                                                      \
		ok(same_##T(&s_, &d_),                                                     \
		   #T "." #field ": decoded from bytes [%d, %d)", off, off + width);\
	} while (0)

typedef struct pcm_sb sb_t;
typedef struct pcm_cache_info ci_t;
typedef struct pcm_pos_rec pos_t;
typedef struct pcm_seg_info si_t;
typedef struct pcm_seg_gen gen_t;
typedef struct pcm_kset_hdr kh_t;
typedef struct pcm_key key_t_;

/* Field-wise equality (memcmp may differ on padding bytes of the host struct). */
static bool same_sb_t(const sb_t *a, const sb_t *b)
{
	return a->crc == b->crc && a->flags == b->flags && a->magic == b->magic &&
	       a->seg_num == b->seg_num && a->pad == b->pad;
}
static bool same_ci_t(const ci_t *a, const ci_t *b)
{
	return hdr_eq(&a->h, &b->h) && a->seg_id == b->seg_id && a->n_segs == b->n_segs &&
	       a->flags == b->flags && a->reserved == b->reserved;
}
static bool same_pos_t(const pos_t *a, const pos_t *b)
{
	return hdr_eq(&a->h, &b->h) && pcm_pos_eq(a->pos, b->pos);
}
static bool same_si_t(const si_t *a, const si_t *b)
{
	return hdr_eq(&a->h, &b->h) && a->flags == b->flags && a->next_seg == b->next_seg;
}
static bool same_gen_t(const gen_t *a, const gen_t *b)
{
	return hdr_eq(&a->h, &b->h) && a->gen == b->gen;
}
static bool same_kh_t(const kh_t *a, const kh_t *b)
{
	return a->crc == b->crc && a->key_num == b->key_num && a->magic == b->magic &&
	       a->flags == b->flags;
}
static bool same_key_t_(const key_t_ *a, const key_t_ *b)
{
	return a->off == b->off && a->len == b->len && a->flags == b->flags &&
	       a->cseg == b->cseg && a->seg_off == b->seg_off && a->seg_gen == b->seg_gen &&
	       a->data_crc == b->data_crc && a->reserved == b->reserved;
}

static void test_layout(void)
{
	/* §2.2 superblock */
	FIELD(sb_t, pcm_sb_encode, pcm_sb_decode, 24, crc, 0, 4);
	FIELD(sb_t, pcm_sb_encode, pcm_sb_decode, 24, flags, 4, 4);
	FIELD(sb_t, pcm_sb_encode, pcm_sb_decode, 24, magic, 8, 8);
	FIELD(sb_t, pcm_sb_encode, pcm_sb_decode, 24, seg_num, 16, 4);
	FIELD(sb_t, pcm_sb_encode, pcm_sb_decode, 24, pad, 20, 4);
	/* §2.1 + §2.3 cache_info */
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, h.crc, 0, 4);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, h.seq, 4, 1);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, h.version, 5, 1);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, h.res, 6, 2);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, seg_id, 8, 4);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, n_segs, 12, 4);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, flags, 16, 4);
	FIELD(ci_t, pcm_cache_info_encode, pcm_cache_info_decode, 24, reserved, 20, 4);
	/* §2.4 position record */
	FIELD(pos_t, pcm_pos_rec_encode, pcm_pos_rec_decode, 16, h.crc, 0, 4);
	FIELD(pos_t, pcm_pos_rec_encode, pcm_pos_rec_decode, 16, h.seq, 4, 1);
	FIELD(pos_t, pcm_pos_rec_encode, pcm_pos_rec_decode, 16, h.version, 5, 1);
	FIELD(pos_t, pcm_pos_rec_encode, pcm_pos_rec_decode, 16, h.res, 6, 2);
	FIELD(pos_t, pcm_pos_rec_encode, pcm_pos_rec_decode, 16, pos.cseg, 8, 4);
	FIELD(pos_t, pcm_pos_rec_encode, pcm_pos_rec_decode, 16, pos.seg_off, 12, 4);
	/* §2.5 segment info */
	FIELD(si_t, pcm_seg_info_encode, pcm_seg_info_decode, 16, h.crc, 0, 4);
	FIELD(si_t, pcm_seg_info_encode, pcm_seg_info_decode, 16, h.seq, 4, 1);
	FIELD(si_t, pcm_seg_info_encode, pcm_seg_info_decode, 16, h.version, 5, 1);
	FIELD(si_t, pcm_seg_info_encode, pcm_seg_info_decode, 16, h.res, 6, 2);
	FIELD(si_t, pcm_seg_info_encode, pcm_seg_info_decode, 16, flags, 8, 4);
	FIELD(si_t, pcm_seg_info_encode, pcm_seg_info_decode, 16, next_seg, 12, 4);
	/* §2.6 segment gen */
	FIELD(gen_t, pcm_seg_gen_encode, pcm_seg_gen_decode, 16, h.crc, 0, 4);
	FIELD(gen_t, pcm_seg_gen_encode, pcm_seg_gen_decode, 16, h.seq, 4, 1);
	FIELD(gen_t, pcm_seg_gen_encode, pcm_seg_gen_decode, 16, h.version, 5, 1);
	FIELD(gen_t, pcm_seg_gen_encode, pcm_seg_gen_decode, 16, h.res, 6, 2);
	FIELD(gen_t, pcm_seg_gen_encode, pcm_seg_gen_decode, 16, gen, 8, 8);
	/* §2.7 kset header */
	FIELD(kh_t, pcm_kset_hdr_encode, pcm_kset_hdr_decode, 24, crc, 0, 4);
	FIELD(kh_t, pcm_kset_hdr_encode, pcm_kset_hdr_decode, 24, key_num, 4, 4);
	FIELD(kh_t, pcm_kset_hdr_encode, pcm_kset_hdr_decode, 24, magic, 8, 8);
	FIELD(kh_t, pcm_kset_hdr_encode, pcm_kset_hdr_decode, 24, flags, 16, 8);
	/* §2.8 key */
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, off, 0, 8);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, len, 8, 4);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, flags, 12, 4);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, cseg, 16, 4);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, seg_off, 20, 4);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, seg_gen, 24, 8);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, data_crc, 32, 4);
	FIELD(key_t_, pcm_key_encode, pcm_key_decode, 40, reserved, 36, 4);

	/* magic constants as bytes (§2.2, §2.7) */
	{
		static const uint8_t sbm[8] = { 0xef, 0x96, 0xc5, 0x96, 0xfa, 0x5e, 0xb0, 0x65 };
		static const uint8_t ksm[8] = { 0x1a, 0x4f, 0x16, 0x4e, 0xa6, 0x94, 0x68, 0x67 };
		struct pcm_sb sb = { .magic = PCM_SB_MAGIC };
		struct pcm_kset_hdr kh = { .magic = PCM_KSET_MAGIC };
		uint8_t b[24];

		pcm_sb_encode(&sb, b);
		ok(!memcmp(b + 8, sbm, 8), "superblock magic bytes are ef 96 c5 96 fa 5e b0 65");
		pcm_kset_hdr_encode(&kh, b);
		ok(!memcmp(b + 8, ksm, 8), "kset magic bytes are 1a 4f 16 4e a6 94 68 67");
	}
}

/* ---- §11.2 vectors ---- */

static const uint8_t V3[24] = {
	0xdb, 0x12, 0x7f, 0x09, 0x00, 0x00, 0x00, 0x00, 0xef, 0x96, 0xc5, 0x96, 0xfa, 0x5e, 0xb0, 0x65,
	0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V3b[24] = {
	0x42, 0x77, 0x7f, 0x04, 0x00, 0x00, 0x00, 0x00, 0xef, 0x96, 0xc5, 0x96, 0xfa, 0x5e, 0xb0, 0x65,
	0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V4[24] = {
	0x4b, 0x4e, 0x99, 0xef, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00,
	0x82, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V4c[24] = {
	0x6c, 0x33, 0xa5, 0xa6, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00,
	0x83, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V5[16] = {
	0xb0, 0xdf, 0xf5, 0x6e, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V7[16] = {
	0xfe, 0x25, 0x8d, 0xfc, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V8[16] = {
	0x31, 0x8e, 0x66, 0x3b, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
};
static const uint8_t V9[24] = {
	0x51, 0x1c, 0x18, 0x84, 0x01, 0x00, 0x00, 0x00, 0x1a, 0x4f, 0x16, 0x4e, 0xa6, 0x94, 0x68, 0x67,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t V10[64] = {
	0x14, 0xc6, 0xd6, 0xd4, 0x01, 0x00, 0x00, 0x00, 0x1a, 0x4f, 0x16, 0x4e, 0xa6, 0x94, 0x68, 0x67,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* Seals, compares with the vector, checks crc_ok, and that one flipped bit breaks it. */
static void check_vector(const char *name, uint8_t *built, const uint8_t *vec, size_t size,
			 uint32_t crc)
{
	uint8_t t[64];

	pcm_record_seal(built, size);
	ok(bytes_eq(name, built, vec, size), "%s: built from fields + seal == vector bytes", name);
	ok(pcm_record_crc(vec, size) == crc, "%s: pcm_record_crc = 0x%08X (expect 0x%08X)", name,
	   pcm_record_crc(vec, size), crc);
	ok(pcm_record_crc_ok(vec, size), "%s: pcm_record_crc_ok on the vector", name);
	memcpy(t, vec, size);
	t[size - 1] ^= 0x80;
	ok(!pcm_record_crc_ok(t, size), "%s: last byte flipped -> crc not ok", name);
	memcpy(t, vec, size);
	t[0] ^= 0x01;
	ok(!pcm_record_crc_ok(t, size), "%s: crc byte flipped -> crc not ok", name);
}

static void test_vectors(void)
{
	uint8_t b[64];

	{	/* V3 / V3b */
		struct pcm_sb sb = { .magic = PCM_SB_MAGIC, .seg_num = 63 }, d;

		memset(b, 0xEE, sizeof(b));
		pcm_sb_encode(&sb, b);
		check_vector("V3 superblock seg_num 63", b, V3, 24, 0x097F12DB);
		pcm_sb_decode(V3, &d);
		ok(d.crc == 0x097F12DB && d.flags == 0 && d.magic == PCM_SB_MAGIC &&
		   d.seg_num == 63 && d.pad == 0, "V3: decoded fields");
		sb.seg_num = 31;
		pcm_sb_encode(&sb, b);
		check_vector("V3b superblock seg_num 31", b, V3b, 24, 0x047F7742);
		pcm_sb_decode(V3b, &d);
		ok(d.crc == 0x047F7742 && d.magic == PCM_SB_MAGIC && d.seg_num == 31,
		   "V3b: decoded fields");
	}
	{	/* V4 / V4c */
		struct pcm_cache_info ci = { .h.seq = 1, .seg_id = 0, .n_segs = 63, .flags = 0x1182 };
		struct pcm_cache_info d;

		pcm_cache_info_encode(&ci, b);
		check_vector("V4 cache_info flags 0x1182", b, V4, 24, 0xEF994E4B);
		pcm_cache_info_decode(V4, &d);
		ok(d.h.crc == 0xEF994E4B && d.h.seq == 1 && d.h.version == 0 && d.h.res == 0 &&
		   d.seg_id == 0 && d.n_segs == 63 && d.flags == 0x1182 && d.reserved == 0,
		   "V4: decoded fields");
		ok(pcm_ci_gc_percent(d.flags) == 70 && pcm_ci_cache_mode(d.flags) == 0 &&
		   (d.flags & PCM_CI_F_INIT_DONE) && !(d.flags & PCM_CI_F_DATA_CRC),
		   "V4: gc_percent 70, mode writeback, INIT_DONE, no DATA_CRC");
		ci.flags = 0x1183;
		pcm_cache_info_encode(&ci, b);
		check_vector("V4c cache_info flags 0x1183", b, V4c, 24, 0xA6A5336C);
		pcm_cache_info_decode(V4c, &d);
		ok(d.h.crc == 0xA6A5336C && d.h.seq == 1 && d.n_segs == 63 && d.flags == 0x1183 &&
		   (d.flags & PCM_CI_F_DATA_CRC), "V4c: decoded fields (DATA_CRC set)");
	}
	{	/* V5 / V6 */
		struct pcm_pos_rec p = { .h.seq = 1 }, d;
		struct pcm_seg_gen g = { .h.seq = 1, .gen = 0 }, dg;

		pcm_pos_rec_encode(&p, b);
		check_vector("V5 position {seq 1, 0:0}", b, V5, 16, 0x6EF5DFB0);
		pcm_pos_rec_decode(V5, &d);
		ok(d.h.crc == 0x6EF5DFB0 && d.h.seq == 1 && d.pos.cseg == 0 && d.pos.seg_off == 0,
		   "V5: decoded fields");
		pcm_seg_gen_encode(&g, b);
		check_vector("V6 gen {seq 1, gen 0}", b, V5, 16, 0x6EF5DFB0);
		pcm_seg_gen_decode(V5, &dg);
		ok(dg.h.crc == 0x6EF5DFB0 && dg.h.seq == 1 && dg.gen == 0, "V6: decoded fields");
	}
	{	/* V7 / V8 */
		struct pcm_seg_info si = { .h.seq = 1, .flags = 0x2, .next_seg = 0 }, d;

		pcm_seg_info_encode(&si, b);
		check_vector("V7 seg_info {seq 1, flags 2, next 0}", b, V7, 16, 0xFC8D25FE);
		pcm_seg_info_decode(V7, &d);
		ok(d.h.seq == 1 && d.flags == 2 && d.next_seg == 0 &&
		   ((d.flags & PCM_SEGI_TYPE_MASK) >> PCM_SEGI_TYPE_SHIFT) == PCM_SEGI_TYPE_DATA &&
		   !(d.flags & PCM_SEGI_F_HAS_NEXT), "V7: decoded fields (type data, no HAS_NEXT)");
		si = (struct pcm_seg_info){ .h.seq = 2, .flags = 0x3, .next_seg = 1 };
		pcm_seg_info_encode(&si, b);
		check_vector("V8 seg_info {seq 2, flags 3, next 1}", b, V8, 16, 0x3B668E31);
		pcm_seg_info_decode(V8, &d);
		ok(d.h.crc == 0x3B668E31 && d.h.seq == 2 && d.flags == 3 && d.next_seg == 1 &&
		   (d.flags & PCM_SEGI_F_HAS_NEXT), "V8: decoded fields (HAS_NEXT)");
	}
	{	/* V9 LAST kset */
		struct pcm_kset_hdr kh = { .key_num = 1, .magic = PCM_KSET_MAGIC,
					   .flags = PCM_KSET_F_LAST }, d;

		pcm_kset_hdr_encode(&kh, b);
		ok(pcm_kset_size(&kh) == 24, "V9: LAST kset size is 24 whatever key_num says");
		check_vector("V9 LAST kset -> cseg 1", b, V9, 24, 0x84181C51);
		pcm_kset_hdr_decode(V9, &d);
		ok(d.crc == 0x84181C51 && d.key_num == 1 && d.magic == PCM_KSET_MAGIC &&
		   d.flags == PCM_KSET_F_LAST, "V9: decoded fields");
		ok(pcm_kcrc(V9 + 4, 20) == 0x84181C51, "V9: kcrc over [4, 24)");
	}
	{	/* V10 normal kset with one key */
		struct pcm_kset_hdr kh = { .key_num = 1, .magic = PCM_KSET_MAGIC }, d;
		struct pcm_key k = { .off = 0, .len = 4096, .cseg = 1 }, dk;

		memset(b, 0xEE, sizeof(b));
		pcm_kset_hdr_encode(&kh, b);
		pcm_key_encode(&k, b + PCM_KSET_HDR_SIZE);
		ok(pcm_kset_size(&kh) == 64, "V10: kset size 24 + 40 x 1 = 64");
		check_vector("V10 kset, one key", b, V10, 64, 0xD4D6C614);
		ok(pcm_kcrc(V10 + 4, 60) == 0xD4D6C614, "V10: kcrc over [4, 64)");
		pcm_kset_hdr_decode(V10, &d);
		pcm_key_decode(V10 + 24, &dk);
		ok(d.crc == 0xD4D6C614 && d.key_num == 1 && d.magic == PCM_KSET_MAGIC && d.flags == 0,
		   "V10: decoded header");
		ok(dk.off == 0 && dk.len == 4096 && dk.flags == 0 && dk.cseg == 1 && dk.seg_off == 0 &&
		   dk.seg_gen == 0 && dk.data_crc == 0 && dk.reserved == 0, "V10: decoded key");
	}
	{	/* zero records never validate (§3.1) */
		uint8_t z[24] = { 0 };

		ok(!pcm_record_crc_ok(z, 16) && !pcm_record_crc_ok(z, 24),
		   "zero-filled 16- and 24-byte records are not crc-valid");
		ok(pcm_record_crc(z, 16) == 0x5F840B80 && pcm_record_crc(z, 24) == 0xB9B69066,
		   "crc of zero records: Z12 0x5F840B80, Z20 0xB9B69066");
	}
}

/* ---- seg_num (§1.2) ---- */

static void test_seg_num(void)
{
	static const struct { uint64_t size; uint32_t want; } t[] = {
		{ 536870912ull, 31 },
		{ 536891392ull, 32 },
		{ 536891391ull, 31 },
		{ 1071644672ull, 63 },
		{ 1073741824ull, 63 },
		{ 17592186044416ull, 1048575 },
		{ 17592186064896ull, 1048576 },
		{ 20480ull + 16777216ull, 1 },
		{ 20480ull + 16777215ull, 0 },
		{ 0, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		uint32_t n = pcm_seg_num_for_size(t[i].size);

		ok(n == t[i].want, "pcm_seg_num_for_size(%llu) = %u (expect %u)",
		   (unsigned long long)t[i].size, n, t[i].want);
	}
	ok(pcm_seg_num_for_size(17592202842112ull) > PCM_SEGS_MAX,
	   "pcm_seg_num_for_size(17592202842112) = %u > 1048576",
	   pcm_seg_num_for_size(17592202842112ull));
}

/* ---- superblock verdicts ---- */

static struct pcm_sb sealed_sb(uint32_t flags, uint64_t magic, uint32_t seg_num)
{
	struct pcm_sb sb = { .flags = flags, .magic = magic, .seg_num = seg_num };
	uint8_t b[24];

	pcm_sb_encode(&sb, b);
	pcm_record_seal(b, sizeof(b));
	pcm_sb_decode(b, &sb);
	return sb;
}

struct sb_case {
	const char *name;
	struct pcm_sb sb;
	uint64_t size;
	enum pcm_sb_verdict want;
};

static void test_sb_check(void)
{
	const uint64_t S = 1071644672ull;
	struct pcm_sb sb;
	struct sb_case t[12];
	int n = 0;

	t[n++] = (struct sb_case){ "valid, 63 segs, 1071644672", sealed_sb(0, PCM_SB_MAGIC, 63), S,
				PCM_SB_OK };
	t[n++] = (struct sb_case){ "valid sb on a 511 MiB device", sealed_sb(0, PCM_SB_MAGIC, 31),
				536870912ull - 512, PCM_SB_TOO_SMALL };
	t[n++] = (struct sb_case){ "magic 0", sealed_sb(0, 0, 63), S, PCM_SB_UNFORMATTED };
	t[n++] = (struct sb_case){ "all-zero sb", (struct pcm_sb){ 0 }, S, PCM_SB_UNFORMATTED };
	t[n++] = (struct sb_case){ "bad magic (sealed)", sealed_sb(0, PCM_SB_MAGIC ^ 1, 63), S,
				PCM_SB_BAD_MAGIC };
	sb = sealed_sb(0, PCM_SB_MAGIC, 63);
	sb.crc ^= 0x100;
	t[n++] = (struct sb_case){ "bad crc", sb, S, PCM_SB_BAD_CRC };
	sb = sealed_sb(0, PCM_SB_MAGIC, 63);
	sb.pad = 1;
	t[n++] = (struct sb_case){ "pad changed without resealing (pad is in the crc)", sb, S,
				PCM_SB_BAD_CRC };
	t[n++] = (struct sb_case){ "BIGENDIAN flag (sealed)", sealed_sb(PCM_SB_F_BIGENDIAN,
				PCM_SB_MAGIC, 63), S, PCM_SB_BIGENDIAN };
	t[n++] = (struct sb_case){ "seg_num 0 (sealed)", sealed_sb(0, PCM_SB_MAGIC, 0), S,
				PCM_SB_BAD_SEG_NUM };
	t[n++] = (struct sb_case){ "seg_num 64 > 63 for the size", sealed_sb(0, PCM_SB_MAGIC, 64),
				S, PCM_SB_BAD_SEG_NUM };
	t[n++] = (struct sb_case){ "seg_num 1048577 on a huge device",
				sealed_sb(0, PCM_SB_MAGIC, 1048577), 1ull << 50,
				PCM_SB_BAD_SEG_NUM };
	t[n++] = (struct sb_case){ "seg_num 1048576 on 17592186064896 B",
				sealed_sb(0, PCM_SB_MAGIC, 1048576), 17592186064896ull, PCM_SB_OK };

	for (int i = 0; i < n; i++) {
		enum pcm_sb_verdict v = pcm_sb_check(&t[i].sb, t[i].size);

		ok(v == t[i].want, "pcm_sb_check: %s -> %d (%s), expect %d (%s)", t[i].name, v,
		   pcm_sb_verdict_str(v), t[i].want, pcm_sb_verdict_str(t[i].want));
	}
	/* other flag bits are ignored (§2.2) */
	ok(pcm_sb_check(&(struct pcm_sb){ 0 }, S) == PCM_SB_UNFORMATTED, "zero sb is unformatted");
	sb = sealed_sb(0xFFFFFFFEu, PCM_SB_MAGIC, 63);
	ok(pcm_sb_check(&sb, S) == PCM_SB_OK, "flags bits other than BIGENDIAN are ignored");
	{
		struct pcm_sb d;

		pcm_sb_decode(V3, &d);
		ok(pcm_sb_check(&d, 1073741824ull) == PCM_SB_OK && pcm_sb_check(&d, S) == PCM_SB_OK,
		   "V3 is valid on 1 GiB and on 1071644672 B");
		pcm_sb_decode(V3b, &d);
		ok(pcm_sb_check(&d, 536870912ull) == PCM_SB_OK, "V3b is valid on 512 MiB");
	}
}

/* ---- format plan ---- */

static void test_format_plan(void)
{
	struct pcm_format_opts o = { .data_crc = false, .gc_percent = PCM_GC_PERCENT_DEFAULT };
	struct pcm_format_plan p;
	uint8_t b[24];
	int rc;

	rc = pcm_format_plan(1071644672ull, &o, &p);
	ok(rc == 0, "plan 1071644672 nocrc: rc %d", rc);
	ok(p.seg_num == 63 && p.sb.seg_num == 63 && p.sb.magic == PCM_SB_MAGIC && p.sb.flags == 0 &&
	   p.dev_size == 1071644672ull, "plan 1071644672: seg_num 63, magic, flags 0");
	ok(p.sb.crc == 0x097F12DB, "plan 1071644672: sb crc 0x%08X (expect 0x097F12DB)", p.sb.crc);
	pcm_sb_encode(&p.sb, b);
	ok(bytes_eq("V3", b, V3, 24), "plan 1071644672: encoded sb == V3");
	ok(p.ci.flags == 0x1182, "plan nocrc: cache_info flags 0x%X (expect 0x1182)", p.ci.flags);
	ok(p.ci.n_segs == 63 && p.ci.seg_id == 0 && p.ci.h.seq == 1, "plan: ci n_segs 63, seg_id 0, seq 1");
	pcm_cache_info_encode(&p.ci, b);
	pcm_record_seal(b, 24);
	ok(bytes_eq("V4", b, V4, 24), "plan nocrc: sealed cache_info == V4");

	o.data_crc = true;
	rc = pcm_format_plan(1073741824ull, &o, &p);
	ok(rc == 0 && p.seg_num == 63, "plan 1 GiB crc: rc %d seg_num %u", rc, p.seg_num);
	ok(p.sb.crc == 0x097F12DB, "plan 1 GiB: sb crc 0x%08X (expect 0x097F12DB)", p.sb.crc);
	ok(p.ci.flags == 0x1183, "plan crc: cache_info flags 0x%X (expect 0x1183)", p.ci.flags);
	pcm_cache_info_encode(&p.ci, b);
	pcm_record_seal(b, 24);
	ok(bytes_eq("V4c", b, V4c, 24), "plan crc: sealed cache_info == V4c");

	rc = pcm_format_plan(536870912ull, &o, &p);
	ok(rc == 0 && p.seg_num == 31 && p.sb.crc == 0x047F7742,
	   "plan 512 MiB: seg_num 31, sb crc 0x047F7742 (V3b)");

	o.gc_percent = 90;
	rc = pcm_format_plan(1071644672ull, &o, &p);
	ok(rc == 0 && pcm_ci_gc_percent(p.ci.flags) == 90, "plan gc_percent 90 accepted");
	o.gc_percent = 0;
	rc = pcm_format_plan(1071644672ull, &o, &p);
	ok(rc == 0 && pcm_ci_gc_percent(p.ci.flags) == 0, "plan gc_percent 0 accepted");
	o.gc_percent = 91;
	rc = pcm_format_plan(1071644672ull, &o, &p);
	ok(rc < 0, "plan gc_percent 91 refused (rc %d)", rc);

	o.gc_percent = 70;
	rc = pcm_format_plan(536870912ull - 1, &o, &p);
	ok(rc == -ENOSPC, "plan 512 MiB - 1 refused with -ENOSPC (rc %d)", rc);
	rc = pcm_format_plan(0, &o, &p);
	ok(rc == -ENOSPC, "plan size 0 refused with -ENOSPC (rc %d)", rc);
	rc = pcm_format_plan(17592186064896ull, &o, &p);
	ok(rc == 0 && p.seg_num == 1048576, "plan 17592186064896 B: seg_num 1048576 (rc %d)", rc);
	rc = pcm_format_plan(17592202842112ull, &o, &p);
	ok(rc < 0, "plan 17592202842112 B (seg_num > 2^20) refused (rc %d)", rc);
}

/* ---- misc derived values ---- */

static void test_misc(void)
{
	struct pcm_kset_hdr kh = { .key_num = 128 };

	ok(pcm_kset_size(&kh) == PCM_KSET_SIZE_MAX && PCM_KSET_SIZE_MAX == 5144,
	   "kset of 128 keys is 5144 bytes");
	kh.key_num = 0xFFFFFFFFu;
	ok(pcm_kset_size(&kh) == 24 + 40ull * 0xFFFFFFFFu, "kset size does not overflow 32 bits");
	ok(pcm_seg_base(0) == 20480 && pcm_seg_base(1) == 20480 + 16777216ull &&
	   pcm_seg_base(1048575) == 20480 + 1048575ull * 16777216ull, "pcm_seg_base");
	ok(!strcmp(pcm_cache_mode_name(0), "writeback") && !strcmp(pcm_cache_mode_name(3), "writeonly") &&
	   !strcmp(pcm_cache_mode_name(4), "unknown"), "pcm_cache_mode_name");
	ok(pcm_ci_gc_percent(0x1182) == 70 && pcm_ci_gc_percent(PCM_CI_GC_MASK) == 127 &&
	   pcm_ci_cache_mode(3u << PCM_CI_MODE_SHIFT) == 3, "gc_percent / cache mode extraction");
}

int main(void)
{
	tap_srand(0xC0DEC0DE12345678ull);
	test_round_trips();
	test_layout();
	test_vectors();
	test_seg_num();
	test_sb_check();
	test_format_plan();
	test_misc();
	return tap_done();
}
