/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* State shared by the check passes (check.c, check_meta.c, check_log.c). */
#ifndef PCM_CHECK_INT_H
#define PCM_CHECK_INT_H

#include "pcachemeta.h"

struct chk {
	struct pcm_dev *dev;
	const struct pcm_check_opts *o;
	struct pcm_check_result *res;
	uint64_t size;
	struct pcm_sb sb;
	uint32_t seg_num;
	struct pcm_cache_info ci;
	uint32_t n_segs;
	bool stop;                  /* a problem that ends the kernel's load was found */
	bool crash_at_load;         /* the CRASHES verdict is a BUG inside the load */
};

void chk_report(struct chk *k, enum pcm_problem_code code, uint64_t off, const char *where,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Replica verdicts for one replicated record; reports problems, returns the pick or -1. */
struct rep_codes {
	enum pcm_problem_code both_bad, replica_bad, ambiguous;
};
int chk_replicas(struct chk *k, const uint64_t off[PCM_REPLICAS], size_t size,
		 const struct rep_codes *codes, const char *what, uint8_t raw[PCM_REPLICAS][24]);
/* The same verdict on replicas already read into raw. */
int chk_replicas_judge(struct chk *k, const uint64_t off[PCM_REPLICAS], size_t size,
		       const struct rep_codes *codes, const char *what,
		       uint8_t raw[PCM_REPLICAS][24]);
/* The pick when chk_replicas_judge would report nothing, else -1 (then judge them:
 * lets callers build their `what` text only when there is something to say). */
int chk_replicas_quiet(size_t size, uint8_t raw[PCM_REPLICAS][24]);
bool chk_all_zero(const uint8_t *p, size_t n);

int chk_meta(struct chk *k);       /* superblock, cache_info, chain, tails */
int chk_log(struct chk *k);        /* the key log and keys */
int chk_media(struct chk *k);      /* bad blocks, mapped onto the layout (check_media.c) */

#endif
