/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mutate: one seeded random mutation of a dm-pcache image, for the differential
 * fuzzing of the kernel suite (tests/kernel/scenarios/j-fuzz.sh).  Linked into the
 * corrupt tool (tests/tools/corrupt.c), which offers it as `corrupt IMG mutate:SEED`.
 */
#ifndef PCACHE_TESTS_MUTATE_H
#define PCACHE_TESTS_MUTATE_H

#include <stddef.h>
#include <stdint.h>

#include "pcachemeta.h"

/*
 * Writes buf over [off, off + len) and reports every changed byte in corrupt's
 * `corrupt: NAME: @OFF +LEN: OLD -> NEW (what)` form; returns 0 or corrupt's exit code.
 */
typedef int (*mutate_put_fn)(void *arg, uint64_t off, const void *buf, size_t len,
			     const char *what);

/*
 * Applies the mutation SEED picks to the cache c (opened on dev) through put.
 * The `what` of every write starts with the class: `field:` (one field of a
 * metadata record set to another value, its CRC made valid again), `flip:` (bits
 * flipped inside a metadata structure, CRC untouched), `zero:` (a range of a
 * metadata structure zeroed) or `data:` (bits flipped in the data of a key).
 * Returns 0, or 8 with a message in err when the image has nothing to mutate.
 */
int mutate_apply(struct pcm_dev *dev, const struct pcm_cache *c, uint64_t seed,
		 mutate_put_fn put, void *arg, char *err, size_t errlen);

#endif
