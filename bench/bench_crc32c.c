/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_crc32c.c - throughput of pcm_kcrc() versus a plain memory read.
 *
 * Allocates a 64 MiB buffer of pseudo-random data, then measures (best
 * of 5 runs, CLOCK_MONOTONIC):
 *   - a read-bound loop summing the buffer as uint64 words;
 *   - pcm_kcrc() with the run-time selected implementation;
 *   - pcm_kcrc() with the portable implementation forced.
 */
#define _POSIX_C_SOURCE 200809L

#include "crc32c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUF_SIZE (64u << 20)
#define RUNS 5

/* Results are accumulated here so no measured work can be elided. */
static volatile uint64_t sink;

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t read_sum(const unsigned char *buf, size_t len)
{
	uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, w[4];
	size_t i;

	for (i = 0; i + 32 <= len; i += 32) {
		memcpy(w, buf + i, sizeof(w));
		s0 += w[0];
		s1 += w[1];
		s2 += w[2];
		s3 += w[3];
	}
	return s0 + s1 + s2 + s3;
}

static double best_read(const unsigned char *buf, size_t len)
{
	double best = 1e30;
	int r;

	for (r = 0; r < RUNS; r++) {
		double t0 = now_sec(), dt;

		sink += read_sum(buf, len);
		dt = now_sec() - t0;
		if (dt < best)
			best = dt;
	}
	return best;
}

static double best_crc(const unsigned char *buf, size_t len)
{
	double best = 1e30;
	int r;

	for (r = 0; r < RUNS; r++) {
		double t0 = now_sec(), dt;

		sink += pcm_kcrc(buf, len);
		dt = now_sec() - t0;
		if (dt < best)
			best = dt;
	}
	return best;
}

static double gbps(size_t len, double sec)
{
	return sec > 0 ? (double)len / sec / 1e9 : 0.0;
}

int main(void)
{
	unsigned char *buf = malloc(BUF_SIZE);
	uint64_t x = 0x243F6A8885A308D3ull;
	double t_read, t_fast, t_port, read_bw, bw;
	size_t i;

	if (!buf) {
		fprintf(stderr, "bench_crc32c: cannot allocate %u bytes\n",
			BUF_SIZE);
		return 1;
	}
	for (i = 0; i + 8 <= BUF_SIZE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}

	/* Warm up: page faults, table init, CPU dispatch. */
	sink += read_sum(buf, BUF_SIZE);
	sink += pcm_kcrc(buf, BUF_SIZE);

	t_read = best_read(buf, BUF_SIZE);
	read_bw = gbps(BUF_SIZE, t_read);

	pcm_crc32c_force_portable(0);
	t_fast = best_crc(buf, BUF_SIZE);
	bw = gbps(BUF_SIZE, t_fast);
	printf("crc32c impl=%s: %.1f GB/s; read bound: %.1f GB/s; ratio %.2f\n",
	       pcm_crc32c_impl(), bw, read_bw, bw / read_bw);

	pcm_crc32c_force_portable(1);
	t_port = best_crc(buf, BUF_SIZE);
	bw = gbps(BUF_SIZE, t_port);
	printf("crc32c impl=%s: %.1f GB/s; read bound: %.1f GB/s; ratio %.2f\n",
	       pcm_crc32c_impl(), bw, read_bw, bw / read_bw);
	pcm_crc32c_force_portable(0);

	printf("buffer %u MiB, best of %d runs, checksum 0x%08X\n",
	       BUF_SIZE >> 20, RUNS, (unsigned)pcm_kcrc(buf, BUF_SIZE));
	free(buf);
	return 0;
}
