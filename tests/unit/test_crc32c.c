/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_crc32c.c - unit tests for the libpcachemeta CRC-32C module.
 *
 * Prints one line per check ("ok - ..." / "not ok - ...") and exits
 * non-zero if any check failed.
 */
#include "crc32c.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_checks;
static int n_failed;

static void check(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void check(int cond, const char *fmt, ...)
{
	va_list ap;

	n_checks++;
	if (!cond)
		n_failed++;
	fputs(cond ? "ok - " : "not ok - ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* Naive bitwise reference, straight from the definition. */
static uint32_t ref_crc32c(uint32_t reg, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;
	int k;

	for (i = 0; i < len; i++) {
		reg ^= p[i];
		for (k = 0; k < 8; k++)
			reg = (reg & 1u) ? (reg >> 1) ^ 0x82F63B78u : reg >> 1;
	}
	return reg;
}

/* xorshift64* PRNG, deterministic. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static void fill_random(unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(rng() >> 56);
}

struct vector {
	const char *name;
	const unsigned char *data;
	size_t len;
	uint32_t expect;
};

static void check_vectors(const char *path)
{
	static unsigned char zeros[4096];
	static unsigned char a5[4096];
	static const unsigned char sb[24] = {
		0xdb, 0x12, 0x7f, 0x09, 0x00, 0x00, 0x00, 0x00,
		0xef, 0x96, 0xc5, 0x96, 0xfa, 0x5e, 0xb0, 0x65,
		0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const unsigned char kset[64] = {
		0x14, 0xc6, 0xd6, 0xd4, 0x01, 0x00, 0x00, 0x00,
		0x1a, 0x4f, 0x16, 0x4e, 0xa6, 0x94, 0x68, 0x67,
		[32] = 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	const struct vector v[] = {
		{ "empty", (const unsigned char *)"", 0, 0x0003B15Au },
		{ "4 zero bytes", zeros, 4, 0x80866587u },
		{ "\"123456789\"", (const unsigned char *)"123456789", 9,
		  0xE5868AB2u },
		{ "12 zero bytes", zeros, 12, 0x5F840B80u },
		{ "20 zero bytes", zeros, 20, 0xB9B69066u },
		{ "512 zero bytes", zeros, 512, 0xCCD19953u },
		{ "4096 zero bytes", zeros, 4096, 0x603571B1u },
		{ "4096 bytes of 0xA5", a5, 4096, 0x720503EBu },
		{ "superblock [4,24)", sb + 4, 20, 0x097F12DBu },
		{ "kset [4,64)", kset + 4, 60, 0xD4D6C614u },
	};
	size_t i;
	uint32_t got;

	memset(a5, 0xA5, sizeof(a5));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		got = pcm_kcrc(v[i].data, v[i].len);
		check(got == v[i].expect,
		      "%s: kcrc(%s) = 0x%08X (expect 0x%08X)", path,
		      v[i].name, (unsigned)got, (unsigned)v[i].expect);
	}
	/* NULL with zero length is allowed. */
	got = pcm_kcrc(NULL, 0);
	check(got == PCM_CRC_SEED, "%s: kcrc(NULL, 0) = seed", path);

	got = ~pcm_crc32c(0xFFFFFFFFu, "123456789", 9);
	check(got == 0xE3069283u,
	      "%s: standard CRC-32C check value 0x%08X (expect 0xE3069283)",
	      path, (unsigned)got);
}

/*
 * Compare accelerated, portable and reference on buf[off, off+len);
 * returns 1 if all agree.
 */
static int compare_paths(const unsigned char *buf, size_t len, uint32_t seed)
{
	uint32_t ref = ref_crc32c(seed, buf, len);
	uint32_t fast, port;

	pcm_crc32c_force_portable(0);
	fast = pcm_crc32c(seed, buf, len);
	pcm_crc32c_force_portable(1);
	port = pcm_crc32c(seed, buf, len);
	pcm_crc32c_force_portable(0);
	if (fast != ref || port != ref) {
		fprintf(stdout,
			"# mismatch len=%zu align=%u seed=0x%08X: ref=0x%08X "
			"fast=0x%08X portable=0x%08X\n",
			len, (unsigned)((uintptr_t)buf & 63u), (unsigned)seed,
			(unsigned)ref, (unsigned)fast, (unsigned)port);
		return 0;
	}
	return 1;
}

static void check_random_small(void)
{
	const size_t maxlen = 1100;
	unsigned char *buf = malloc(maxlen + 64);
	size_t len;
	int bad = 0;

	if (!buf) {
		check(0, "malloc for small random buffers");
		return;
	}
	for (len = 0; len <= maxlen; len++) {
		size_t off = (size_t)(rng() % 16);
		uint32_t seed = (len & 1) ? PCM_CRC_SEED : (uint32_t)rng();

		fill_random(buf + off, len);
		if (!compare_paths(buf + off, len, seed))
			bad++;
	}
	check(bad == 0,
	      "random buffers, every length 0..%zu: accelerated == portable == reference (%d mismatches)",
	      maxlen, bad);
	free(buf);
}

static void check_random_large(void)
{
	/*
	 * Exercise the boundaries of the x86 3-way path (rounds of 3 x 64
	 * and 3 x 256 bytes, software prefetch kept 12 KiB inside the
	 * buffer, up to 7 bytes of alignment prologue) plus generic large
	 * sizes.  Lengths up to 1100 are covered exhaustively elsewhere.
	 */
	const size_t lens[] = {
		1535, 1536, 1543, 1544, 2303, 2304, 2311,
		13055, 13056, 13063, 13064, 13056 + 767, 13056 + 768,
		13056 + 775, 24576, 24576 + 1543,
		65536, 65536 + 3, 100000, 1048576 + 7, 3 * 1048576 + 1,
	};
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		size_t off = 1 + (size_t)(rng() % 63);
		unsigned char *buf = malloc(len + 64);

		if (!buf) {
			check(0, "malloc for %zu-byte buffer", len);
			continue;
		}
		fill_random(buf + off, len);
		check(compare_paths(buf + off, len, PCM_CRC_SEED) &&
		      compare_paths(buf + off, len, (uint32_t)rng()),
		      "random %zu-byte buffer at offset %zu: accelerated == portable == reference",
		      len, off);
		free(buf);
	}
}

static void check_chaining(const char *path)
{
	const size_t len = 70000;
	unsigned char *buf = malloc(len);
	int bad = 0, i;

	if (!buf) {
		check(0, "malloc for chaining test");
		return;
	}
	fill_random(buf, len);
	for (i = 0; i < 200; i++) {
		size_t n = (i < 100) ? (size_t)(rng() % 2000)
				     : (size_t)(rng() % (len + 1));
		size_t a = (size_t)(rng() % (n + 1));
		size_t b = a + (size_t)(rng() % (n - a + 1));
		uint32_t seed = (i & 1) ? PCM_CRC_SEED : (uint32_t)rng();
		uint32_t whole = pcm_crc32c(seed, buf, n);
		uint32_t two = pcm_crc32c(pcm_crc32c(seed, buf, a),
					  buf + a, n - a);
		uint32_t three = pcm_crc32c(pcm_crc32c(pcm_crc32c(seed, buf, a),
						       buf + a, b - a),
					    buf + b, n - b);

		if (whole != two || whole != three) {
			printf("# chaining mismatch n=%zu a=%zu b=%zu\n",
			       n, a, b);
			bad++;
		}
	}
	check(bad == 0,
	      "%s: chaining crc(crc(s,A),B) == crc(s,A||B) at random split points (%d mismatches)",
	      path, bad);
	free(buf);
}

int main(void)
{
	const char *fast_name;
	int prev;

	pcm_crc32c_force_portable(0);
	fast_name = pcm_crc32c_impl();
	printf("# accelerated implementation: %s\n", fast_name);

	check_vectors(fast_name);
	check_chaining(fast_name);

	prev = pcm_crc32c_force_portable(1);
	check(prev == 0, "force_portable(1) returns previous state 0");
	check(strcmp(pcm_crc32c_impl(), "slice-by-8") == 0,
	      "impl name while forced portable is \"slice-by-8\" (got \"%s\")",
	      pcm_crc32c_impl());
	check_vectors("slice-by-8 (forced)");
	check_chaining("slice-by-8 (forced)");
	prev = pcm_crc32c_force_portable(0);
	check(prev == 1, "force_portable(0) returns previous state 1");
	check(strcmp(pcm_crc32c_impl(), fast_name) == 0,
	      "impl name restored after force_portable(0)");

	check_random_small();
	check_random_large();

	printf("# %d checks, %d failed\n", n_checks, n_failed);
	return n_failed ? 1 : 0;
}
