/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crc32c.c - CRC-32C (Castagnoli) for dm-pcache metadata ("kcrc").
 *
 * Register semantics: reflected polynomial 0x82F63B78, the register is
 * used as given (no pre-inversion) and returned as is (no post-XOR), i.e.
 * per byte:
 *
 *     reg ^= b;
 *     repeat 8 times: reg = (reg & 1) ? (reg >> 1) ^ 0x82F63B78 : reg >> 1;
 *
 * Two implementations:
 *
 *  - portable slice-by-8 (any architecture);
 *  - x86-64 SSE4.2 using the crc32 instruction.  The instruction has a
 *    latency of ~3 cycles but a throughput of 1/cycle (or better), so
 *    buffers are cut into rounds of three consecutive blocks that are
 *    processed as three independent streams and then merged.  Merging
 *    uses the linearity of the CRC: with the raw register,
 *
 *        crc(s, A || B) = shift(crc(s, A), |B|) ^ crc(0, B)
 *
 *    where shift(r, n) = r * x^(8n) mod P is the effect of feeding n zero
 *    bytes.  For the fixed block lengths used here shift() is a linear map
 *    on 32 bits, evaluated with four 256-entry lookup tables (no CLMUL).
 *    Large buffers additionally use software prefetch.
 *
 * Tables are built lazily exactly once (C11 atomics, no pthread
 * dependency); the CPU dispatch decision is cached in the same state word.
 */
#include "crc32c.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define PCM_HAVE_SSE42_IMPL 1
#else
#define PCM_HAVE_SSE42_IMPL 0
#endif

#define CRC32C_POLY 0x82F63B78u

/* ------------------------------------------------------------------ */
/* Tables and one-time initialisation                                  */
/* ------------------------------------------------------------------ */

/*
 * slice8[k][n]: register after feeding byte n followed by k zero bytes,
 * starting from a zero register.  slice8[0] is the classic byte table.
 */
static uint32_t slice8[8][256];

#if PCM_HAVE_SSE42_IMPL
/*
 * Block lengths (bytes) of the 3-way interleaved loops; both must be
 * multiples of 64 (the inner loop consumes 64 bytes per stream).  Small
 * blocks keep the three streams within ~1 KiB of each other, so memory is
 * read almost sequentially (friendly to hardware prefetchers), and since
 * every round's streams start from zero, the merge of one round overlaps
 * with the crc32 instructions of the next.  SHORT keeps buffers from 192
 * bytes on the interleaved path.
 */
#define CRC3_LONG  256u
#define CRC3_SHORT 64u

/*
 * Software prefetch distance (bytes) for large buffers.  The main loop
 * prefetches this far ahead of each stream, and only while the prefetched
 * lines lie inside the buffer.
 */
#define CRC3_PREFETCH 12288u

/*
 * Shift operator tables: t[k][b] = (b << 8k) * x^(8*len) mod P, i.e. the
 * effect of feeding len zero bytes to a register holding b << 8k.
 */
struct shift_tab {
	uint32_t t[4][256];
};

/* Shift by len = 1, 2 and 3 blocks of one block length (LONG or SHORT). */
struct shift_set {
	struct shift_tab x1, x2, x3;
};

static struct shift_set shift_long, shift_short;
#endif

/* Implementation / initialisation state. */
enum {
	CRC_STATE_UNINIT = 0,
	CRC_STATE_BUSY,		/* one thread is building the tables */
	CRC_STATE_PORTABLE,	/* ready, portable slice-by-8 selected */
	CRC_STATE_SSE42,	/* ready, single-stream SSE4.2 selected */
	CRC_STATE_SSE42_3WAY,	/* ready, interleaved SSE4.2 selected */
};

static atomic_int crc_state = CRC_STATE_UNINIT;
static atomic_int crc_force_portable = 0;

/* Multiply the (reflected) polynomial by x modulo P. */
static uint32_t gf2_mulx(uint32_t a)
{
	return (a & 1u) ? (a >> 1) ^ CRC32C_POLY : a >> 1;
}

#if PCM_HAVE_SSE42_IMPL
/*
 * a * b mod P in the reflected representation, where bit 31 holds the
 * coefficient of x^0 and bit 0 that of x^31.
 */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;
	int i;

	for (i = 0; i < 32; i++) {
		if (a & (0x80000000u >> i))
			prod ^= b;
		b = gf2_mulx(b);
	}
	return prod;
}

/* x^(8*nbytes) mod P, by square-and-multiply. */
static uint32_t gf2_xpow8n(size_t nbytes)
{
	uint32_t result = 0x80000000u;	/* 1 */
	uint32_t base = 0x80000000u >> 8;	/* x^8 */

	while (nbytes) {
		if (nbytes & 1u)
			result = gf2_mulmod(result, base);
		base = gf2_mulmod(base, base);
		nbytes >>= 1;
	}
	return result;
}

static void build_shift_table(struct shift_tab *tab, size_t nbytes)
{
	uint32_t mult = gf2_xpow8n(nbytes);
	uint32_t bit[32];
	int k, b, i;

	/* The map is linear: compute the 32 basis images, then XOR them. */
	for (i = 0; i < 32; i++)
		bit[i] = gf2_mulmod(mult, 1u << i);
	for (k = 0; k < 4; k++) {
		for (b = 0; b < 256; b++) {
			uint32_t v = 0;

			for (i = 0; i < 8; i++)
				if (b & (1 << i))
					v ^= bit[8 * k + i];
			tab->t[k][b] = v;
		}
	}
}
#endif

static void build_tables(void)
{
	int n, k;

	for (n = 0; n < 256; n++) {
		uint32_t r = (uint32_t)n;

		for (k = 0; k < 8; k++)
			r = gf2_mulx(r);
		slice8[0][n] = r;
	}
	for (n = 0; n < 256; n++)
		for (k = 1; k < 8; k++)
			slice8[k][n] = (slice8[k - 1][n] >> 8) ^
				       slice8[0][slice8[k - 1][n] & 0xffu];
#if PCM_HAVE_SSE42_IMPL
	build_shift_table(&shift_long.x1, CRC3_LONG);
	build_shift_table(&shift_long.x2, 2 * (size_t)CRC3_LONG);
	build_shift_table(&shift_long.x3, 3 * (size_t)CRC3_LONG);
	build_shift_table(&shift_short.x1, CRC3_SHORT);
	build_shift_table(&shift_short.x2, 2 * (size_t)CRC3_SHORT);
	build_shift_table(&shift_short.x3, 3 * (size_t)CRC3_SHORT);
#endif
}

static int detect_impl(void)
{
#if PCM_HAVE_SSE42_IMPL
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		return CRC_STATE_SSE42_3WAY;
#endif
	return CRC_STATE_PORTABLE;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Slow path: build tables / detect CPU once; returns the ready state. */
static int crc_init_slow(void)
{
	int expected = CRC_STATE_UNINIT;
	int s;

	if (atomic_compare_exchange_strong_explicit(&crc_state, &expected,
						    CRC_STATE_BUSY,
						    memory_order_acq_rel,
						    memory_order_acquire)) {
		build_tables();
		s = detect_impl();
		atomic_store_explicit(&crc_state, s, memory_order_release);
		return s;
	}
	/* Someone else is (or was) initialising: wait for the result. */
	while ((s = atomic_load_explicit(&crc_state, memory_order_acquire)) ==
	       CRC_STATE_BUSY)
		cpu_relax();
	return s;
}

static inline int crc_ready_state(void)
{
	int s = atomic_load_explicit(&crc_state, memory_order_acquire);

	if (s <= CRC_STATE_BUSY)
		s = crc_init_slow();
	return s;
}

/* ------------------------------------------------------------------ */
/* Portable slice-by-8                                                  */
/* ------------------------------------------------------------------ */

static inline uint32_t load_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t crc32c_slice8(uint32_t crc, const unsigned char *p,
			      size_t len)
{
	/* Byte-wise up to 8-byte alignment. */
	while (len && ((uintptr_t)p & 7u)) {
		crc = (crc >> 8) ^ slice8[0][(crc ^ *p++) & 0xffu];
		len--;
	}
	while (len >= 8) {
		uint32_t lo = load_le32(p) ^ crc;
		uint32_t hi = load_le32(p + 4);

		crc = slice8[7][lo & 0xffu] ^
		      slice8[6][(lo >> 8) & 0xffu] ^
		      slice8[5][(lo >> 16) & 0xffu] ^
		      slice8[4][lo >> 24] ^
		      slice8[3][hi & 0xffu] ^
		      slice8[2][(hi >> 8) & 0xffu] ^
		      slice8[1][(hi >> 16) & 0xffu] ^
		      slice8[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ slice8[0][(crc ^ *p++) & 0xffu];
	return crc;
}

/* ------------------------------------------------------------------ */
/* x86-64 SSE4.2                                                        */
/* ------------------------------------------------------------------ */

#if PCM_HAVE_SSE42_IMPL

#define PCM_TARGET_SSE42 __attribute__((target("sse4.2")))

static inline uint64_t load_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));	/* x86 is little-endian */
	return v;
}

static inline uint32_t shift_apply(const struct shift_tab *tab, uint32_t crc)
{
	return tab->t[0][crc & 0xffu] ^ tab->t[1][(crc >> 8) & 0xffu] ^
	       tab->t[2][(crc >> 16) & 0xffu] ^ tab->t[3][crc >> 24];
}

/* Single stream: latency bound (8 bytes per ~3 cycles). */
PCM_TARGET_SSE42
static uint32_t crc32c_sse42_1way(uint32_t crc, const unsigned char *p,
				  size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		c = _mm_crc32_u64(c, load_u64(p));
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c;
	if (len & 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		crc = _mm_crc32_u32(crc, w);
		p += 4;
	}
	if (len & 2) {
		uint16_t h;

		memcpy(&h, p, 2);
		crc = _mm_crc32_u16(crc, h);
		p += 2;
	}
	if (len & 1)
		crc = _mm_crc32_u8(crc, *p);
	return crc;
}

/* Feed 16 bytes at offset 'off' of each of the three blocks. */
#define CRC3_STEP(off)							\
	do {								\
		c0 = _mm_crc32_u64(c0, load_u64(p + (off)));		\
		c1 = _mm_crc32_u64(c1, load_u64(p + blk + (off)));	\
		c2 = _mm_crc32_u64(c2, load_u64(p + 2 * blk + (off)));	\
		c0 = _mm_crc32_u64(c0, load_u64(p + (off) + 8));	\
		c1 = _mm_crc32_u64(c1, load_u64(p + blk + (off) + 8));	\
		c2 = _mm_crc32_u64(c2, load_u64(p + 2 * blk + (off) + 8)); \
	} while (0)

/*
 * Process rounds of 3 consecutive blocks of 'blk' bytes while more than
 * 'keep' bytes remain after the round.  The three blocks are independent
 * streams, so their crc32 instructions overlap; the round is then merged
 * into the running CRC with the shift tables in 'sh'.  With 'prefetch',
 * issue software prefetches CRC3_PREFETCH bytes ahead (callers pass
 * keep >= CRC3_PREFETCH so that they stay within the buffer).
 * Always inlined so that blk/prefetch are compile-time constants.
 */
PCM_TARGET_SSE42 __attribute__((always_inline))
static inline uint32_t crc3_rounds(uint32_t crc, const unsigned char **pp,
				   size_t *plen, const size_t blk,
				   const size_t keep, const int prefetch,
				   const struct shift_set *sh)
{
	const unsigned char *p = *pp;
	size_t len = *plen;

	while (len >= 3 * blk + keep) {
		uint64_t c0 = 0, c1 = 0, c2 = 0;
		const unsigned char *end = p + blk;

		do {
			if (prefetch) {
				const char *q = (const char *)p + CRC3_PREFETCH;

				_mm_prefetch(q, _MM_HINT_T0);
				_mm_prefetch(q + blk, _MM_HINT_T0);
				_mm_prefetch(q + 2 * blk, _MM_HINT_T0);
			}
			CRC3_STEP(0);
			CRC3_STEP(16);
			CRC3_STEP(32);
			CRC3_STEP(48);
			p += 64;
		} while (p < end);
		/*
		 * With A, B, C the zero-seeded CRCs of the three blocks:
		 *   crc(s, A||B||C) = s*x^(24 blk) ^ A*x^(16 blk) ^
		 *                     B*x^(8 blk) ^ C   (mod P)
		 * Nothing in the next round depends on this merge, so it
		 * executes in the shadow of the next round's crc32 chains.
		 */
		crc = shift_apply(&sh->x3, crc) ^
		      shift_apply(&sh->x2, (uint32_t)c0) ^
		      shift_apply(&sh->x1, (uint32_t)c1) ^ (uint32_t)c2;
		p += 2 * blk;
		len -= 3 * blk;
	}
	*pp = p;
	*plen = len;
	return crc;
}

#undef CRC3_STEP

PCM_TARGET_SSE42
static uint32_t crc32c_sse42_3way(uint32_t crc, const unsigned char *p,
				  size_t len)
{
	if (len >= 3 * CRC3_SHORT + 7) {
		/* Align to 8 bytes so no load straddles a cache line. */
		while ((uintptr_t)p & 7u) {
			crc = _mm_crc32_u8(crc, *p++);
			len--;
		}
		crc = crc3_rounds(crc, &p, &len, CRC3_LONG, CRC3_PREFETCH, 1,
				  &shift_long);
		crc = crc3_rounds(crc, &p, &len, CRC3_LONG, 0, 0, &shift_long);
		crc = crc3_rounds(crc, &p, &len, CRC3_SHORT, 0, 0,
				  &shift_short);
	}
	return crc32c_sse42_1way(crc, p, len);
}

#endif /* PCM_HAVE_SSE42_IMPL */

/* ------------------------------------------------------------------ */
/* Public API                                                           */
/* ------------------------------------------------------------------ */

uint32_t pcm_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	int s;

	if (len == 0)
		return crc;
	s = crc_ready_state();
	if (atomic_load_explicit(&crc_force_portable, memory_order_relaxed))
		s = CRC_STATE_PORTABLE;
	switch (s) {
#if PCM_HAVE_SSE42_IMPL
	case CRC_STATE_SSE42_3WAY:
		return crc32c_sse42_3way(crc, p, len);
	case CRC_STATE_SSE42:
		return crc32c_sse42_1way(crc, p, len);
#endif
	default:
		return crc32c_slice8(crc, p, len);
	}
}

uint32_t pcm_kcrc(const void *buf, size_t len)
{
	return pcm_crc32c(PCM_CRC_SEED, buf, len);
}

const char *pcm_crc32c_impl(void)
{
	int s = crc_ready_state();

	if (atomic_load_explicit(&crc_force_portable, memory_order_relaxed))
		s = CRC_STATE_PORTABLE;
	switch (s) {
	case CRC_STATE_SSE42_3WAY:
		return "sse4.2-3way";
	case CRC_STATE_SSE42:
		return "sse4.2";
	default:
		return "slice-by-8";
	}
}

int pcm_crc32c_force_portable(int on)
{
	return atomic_exchange_explicit(&crc_force_portable, on ? 1 : 0,
					memory_order_relaxed);
}
