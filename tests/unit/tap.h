/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tap.h - tiny TAP-style helpers shared by the unit test programs.
 *
 * Every check prints one line, "ok - description" or "not ok - description";
 * tap_done() prints a summary comment and returns the exit status (0 when
 * nothing failed).  Everything is static so each test program stays
 * standalone.  Also a deterministic PRNG (xorshift64*) for random tests.
 */
#ifndef PCM_TEST_TAP_H
#define PCM_TEST_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static int tap_checks;
static int tap_failed;

static inline bool ok(bool cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	tap_checks++;
	if (!cond)
		tap_failed++;
	fputs(cond ? "ok - " : "not ok - ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	return cond;
}

/* A diagnostic line ("# ..."), not a check. */
static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

static inline int tap_done(void)
{
	printf("# %d checks, %d failed\n", tap_checks, tap_failed);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

/* Deterministic xorshift64* PRNG. */
static uint64_t tap_rng_state = 0x9E3779B97F4A7C15ull;

static inline void tap_srand(uint64_t seed)
{
	tap_rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static inline uint64_t tap_rand(void)
{
	tap_rng_state ^= tap_rng_state >> 12;
	tap_rng_state ^= tap_rng_state << 25;
	tap_rng_state ^= tap_rng_state >> 27;
	return tap_rng_state * 0x2545F4914F6CDD1Dull;
}

/* Uniform-ish value in [0, n); n > 0. */
static inline uint64_t tap_rand_below(uint64_t n)
{
	return tap_rand() % n;
}

#endif
