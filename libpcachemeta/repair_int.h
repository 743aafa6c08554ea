/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* State shared by the repair planner (repair.c, repair_meta.c, repair_log.c). */
#ifndef PCM_REPAIR_INT_H
#define PCM_REPAIR_INT_H

#include "pcachemeta.h"

struct seen {
	enum pcm_problem_code code;
	uint64_t offset;
};

struct rplan {
	struct pcm_dev *ov;
	const struct pcm_repair_opts *o;
	struct pcm_repair_plan *plan;
	struct pcm_problem *probs;
	uint64_t nprobs, capprobs;
	struct seen *seen;          /* problems already fixed, declined or given up */
	uint64_t nseen, capseen;
	struct pcm_repair_action *cur;
	uint64_t *kgen;             /* fix_meta pass: highest key seg_gen per cseg */
	uint32_t nkgen;
	bool kgen_done;
	/* the log as far as it reads before any log fix (repair_lost.c) */
	struct pcm_cache *base_c;
	struct pcm_replay *base_r;
};

/*
 * Starts an action for problem p: false when it is not allowed (mode, -p's
 * safe set, the person said no) or was handled before.  what describes it.
 */
bool act_begin(struct rplan *r, const struct pcm_problem *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void act_end(struct rplan *r);
/* Marks a problem as handled without an action (so later passes skip it). */
int seen_add(struct rplan *r, enum pcm_problem_code code, uint64_t offset);
bool seen_has(const struct rplan *r, enum pcm_problem_code code, uint64_t offset);

/* Rewrites replica `slot` of a record with `rec` (payload), seq and crc set. */
int rec_write(struct pcm_dev *dev, uint64_t off, uint8_t *rec, size_t size, uint8_t seq);
/* Advance-then-write of a replicated record whose payload is new (§3.3). */
int rec_update(struct pcm_dev *dev, uint64_t off0, uint64_t off1, size_t size, uint8_t *rec);
/* Writes a tail (0 key, 1 dirty) to the slot not holding the newest valid copy. */
int tail_write(struct pcm_dev *dev, int which, struct pcm_pos pos);

int fix_meta(struct rplan *r);     /* returns the number of actions taken, or -errno */
int fix_log(struct rplan *r);
/*
 * The baseline of lost_ranges: the log of dev as far as it can be read.  Taken
 * from the device first; if it cannot be read there (a superblock to fix, say),
 * from the overlay just before the first log fix.  -ENOMEM only.
 */
int lost_baseline(struct rplan *r, struct pcm_dev *dev);
/* Fills the plan's lost ranges against the baseline; frees it.  -ENOMEM only. */
int lost_ranges(struct rplan *r);

#endif
