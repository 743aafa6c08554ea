/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crc32c.h - CRC-32C (Castagnoli) as used by dm-pcache ("kcrc").
 *
 * Internal header of libpcachemeta.
 *
 * Semantics are those of the Linux kernel library function
 * crc32c(seed, buf, len): reflected polynomial 0x82F63B78, the register
 * starts at the seed as-is (no inversion) and there is no final XOR.
 * dm-pcache seeds every metadata/data CRC with PCM_CRC_SEED.
 *
 * The standard (iSCSI / RFC 3720) CRC-32C of a buffer is therefore
 * ~pcm_crc32c(0xFFFFFFFF, buf, len).
 *
 * All functions are thread-safe; the lookup tables and the CPU dispatch
 * decision are initialised lazily, exactly once.
 */
#ifndef PCM_CRC32C_H
#define PCM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seed used by dm-pcache for all of its CRCs. */
#define PCM_CRC_SEED 0x0003B15Au

/*
 * Raw register update: no inversion on entry or exit.
 * Chainable: pcm_crc32c(pcm_crc32c(s, A), B) == pcm_crc32c(s, A || B).
 * buf may be NULL when len == 0.
 */
uint32_t pcm_crc32c(uint32_t crc, const void *buf, size_t len);

/* Convenience: pcm_crc32c(PCM_CRC_SEED, buf, len). */
uint32_t pcm_kcrc(const void *buf, size_t len);

/*
 * Name of the implementation selected at run time ("sse4.2-3way",
 * "sse4.2", "slice-by-8"), for diagnostics and bench output.  Reflects
 * pcm_crc32c_force_portable().  The returned string is static.
 */
const char *pcm_crc32c_impl(void);

/*
 * Force the portable implementation (on != 0) or return to automatic
 * selection (on == 0).  Intended for tests comparing both paths.
 * Returns the previous state (0 or 1).
 */
int pcm_crc32c_force_portable(int on);

#ifdef __cplusplus
}
#endif

#endif /* PCM_CRC32C_H */
