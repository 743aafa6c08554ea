/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Giving mutated bytes valid CRCs again, so that a mutation reaches the checks
 * behind the CRCs.  Shared by the fuzz targets (tests/fuzz/fuzz_common.c) and
 * the convergence test (tests/unit/test_converge.c); both work on buffers and
 * write back what changed themselves.  Header only, like tap.h: the unit test
 * programs are built from one source file each.
 */
#ifndef PCM_TEST_RESEAL_H
#define PCM_TEST_RESEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcachemeta.h"

static inline bool reseal_all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * A replicated record or the superblock (size bytes): sealed again unless it is
 * all zero (never written: it stays so) or already valid.  True when it changed.
 */
static inline bool reseal_record(uint8_t *rec, size_t size)
{
	if (reseal_all_zero(rec, size) || pcm_record_crc_ok(rec, size))
		return false;
	pcm_record_seal(rec, size);
	return true;
}

/* A plain load, not memcmp: libFuzzer's memcmp hook would cost more than the scan. */
static inline uint64_t reseal_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/*
 * buf holds n bytes of a data area starting at an 8-aligned offset.  Every kset
 * header at an 8-aligned offset below scan_end (rounded up to 8) with the kset
 * magic, a key_num the walk accepts and a size that fits buf is sealed again;
 * changed(o, arg) is told of each (its 4 CRC bytes at buf + o changed).
 * Descending: an outer kset is sealed after a header lying inside its keys.
 */
static inline void reseal_ksets(uint8_t *buf, size_t n, size_t scan_end,
				void (*changed)(size_t o, void *arg), void *arg)
{
	for (size_t k = (scan_end + 7) / 8; k-- > 0;) {
		size_t o = k * 8;
		struct pcm_kset_hdr h;
		uint64_t size;

		if (o + PCM_KSET_HDR_SIZE > n || reseal_le64(buf + o + 8) != PCM_KSET_MAGIC)
			continue;
		pcm_kset_hdr_decode(buf + o, &h);
		if (!(h.flags & PCM_KSET_F_LAST) && h.key_num > PCM_KSET_KEYS_MAX)
			continue;
		size = pcm_kset_size(&h);
		if (size > n - o || pcm_record_crc_ok(buf + o, size))
			continue;
		pcm_record_seal(buf + o, size);
		if (changed)
			changed(o, arg);
	}
}

#endif
