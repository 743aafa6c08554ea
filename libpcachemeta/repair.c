/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Repair driver.  Fixes are planned pass by pass on an overlay of the device:
 * check, fix what the metadata passes can, else the first damaged log
 * segment, check again.  The overlay's ordered write log is the plan; a dry
 * run stops there, a real run replays it (repair_apply) with an undo file.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repair_int.h"

#define MAX_PASSES 64

static const enum pcm_problem_code unfixable[] = {
	PCM_P_SB_TOO_SMALL, PCM_P_SB_NO_MAGIC, PCM_P_SB_BAD_MAGIC, PCM_P_SB_SEG_NUM_SHORT,
	PCM_P_LOG_IO, PCM_P_KEY_IO, PCM_P_MEDIA_BADBLOCK,
};

bool pcm_problem_fixable(enum pcm_problem_code code)
{
	for (size_t i = 0; i < sizeof(unfixable) / sizeof(unfixable[0]); i++)
		if (unfixable[i] == code)
			return false;
	return code < PCM_P_COUNT;
}

bool seen_has(const struct rplan *r, enum pcm_problem_code code, uint64_t offset)
{
	for (uint64_t i = 0; i < r->nseen; i++)
		if (r->seen[i].code == code && r->seen[i].offset == offset)
			return true;
	return false;
}

int seen_add(struct rplan *r, enum pcm_problem_code code, uint64_t offset)
{
	if (r->nseen == r->capseen) {
		uint64_t cap = r->capseen ? r->capseen * 2 : 64;
		struct seen *s = realloc(r->seen, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		r->seen = s;
		r->capseen = cap;
	}
	r->seen[r->nseen++] = (struct seen){ code, offset };
	return 0;
}

static bool allowed(struct rplan *r, const struct pcm_problem *p, const char *what)
{
	switch (r->o->mode) {
	case PCM_REPAIR_SAFE: return pcm_problem_def(p->code)->safe_fix;
	case PCM_REPAIR_ALL: return true;
	case PCM_REPAIR_ASK: return r->o->ask && r->o->ask(p, what, r->o->arg);
	}
	return false;
}

bool act_begin(struct rplan *r, const struct pcm_problem *p, const char *fmt, ...)
{
	struct pcm_repair_plan *plan = r->plan;
	struct pcm_repair_action a = { .code = p->code };
	va_list ap;

	if (seen_has(r, p->code, p->offset) || seen_add(r, p->code, p->offset))
		return false;
	va_start(ap, fmt);
	vsnprintf(a.what, sizeof(a.what), fmt, ap);
	va_end(ap);
	snprintf(a.where, sizeof(a.where), "%s", p->where);
	if (!allowed(r, p, a.what))
		return false;
	struct pcm_repair_action *n = realloc(plan->act, (plan->nact + 1) * sizeof(*n));

	if (!n)
		return false;
	plan->act = n;
	pcm_dev_overlay_writes(r->ov, &a.first_write);
	plan->act[plan->nact] = a;
	r->cur = &plan->act[plan->nact++];
	return true;
}

void act_end(struct rplan *r)
{
	uint64_t n;

	pcm_dev_overlay_writes(r->ov, &n);
	r->cur->nwrites = n - r->cur->first_write;
	r->plan->lost_keys += r->cur->lost_keys;
	r->plan->lost_dirty_bytes += r->cur->lost_dirty_bytes;
	r->plan->lost_ksets += r->cur->lost_ksets;
	r->plan->behind_ksets += r->cur->behind_ksets;
	r->plan->behind_keys += r->cur->behind_keys;
	r->cur = NULL;
}

static void collect(const struct pcm_problem *p, void *arg)
{
	struct rplan *r = arg;

	if (r->nprobs == r->capprobs) {
		uint64_t cap = r->capprobs ? r->capprobs * 2 : 64;
		struct pcm_problem *n = realloc(r->probs, cap * sizeof(*n));

		if (!n)
			return;
		r->probs = n;
		r->capprobs = cap;
	}
	r->probs[r->nprobs++] = *p;
}

static int recheck(struct rplan *r, struct pcm_check_result *res)
{
	struct pcm_check_opts co = { .verify_data = true, .backing_size = r->o->backing_size,
				     .report = collect, .arg = r };

	r->nprobs = 0;
	return pcm_check_run(r->ov, &co, res);
}

static uint64_t ov_nwrites(struct rplan *r)
{
	uint64_t n = 0;

	pcm_dev_overlay_writes(r->ov, &n);
	return n;
}

/* Check, fix, check again.  Sets *fresh when nothing was written to the overlay after
 * the last check, so that its result can stand as the plan's after-check. */
static int plan_passes(struct rplan *r, struct pcm_check_result *last, bool *fresh)
{
	uint64_t seen = 0;
	int rc = 0, n;

	for (int pass = 0; pass < MAX_PASSES; pass++) {
		rc = recheck(r, last);
		if (rc)
			return rc;
		seen = ov_nwrites(r);
		if (pass == 0) {
			r->plan->before = *last;
			for (uint64_t i = 0; r->o->report && i < r->nprobs; i++)
				r->o->report(&r->probs[i], r->o->arg);
		}
		if (!last->problems || last->not_pcache)
			break;
		n = fix_meta(r);
		if (n == 0)
			n = lost_baseline(r, r->ov);
		if (n == 0)
			n = fix_log(r);
		if (n <= 0) {
			rc = n;
			break;
		}
	}
	*fresh = !rc && ov_nwrites(r) == seen;
	return rc;
}

int pcm_repair_plan(struct pcm_dev *dev, const struct pcm_repair_opts *o,
		    struct pcm_repair_plan **out)
{
	struct rplan r = { .o = o };
	bool fresh = false;
	int rc;

	r.plan = calloc(1, sizeof(*r.plan));
	if (!r.plan)
		return -ENOMEM;
	rc = pcm_dev_overlay(dev, &r.plan->ov);
	r.ov = r.plan->ov;
	if (!rc)
		rc = lost_baseline(&r, dev);
	if (!rc)
		rc = plan_passes(&r, &r.plan->after, &fresh);
	if (!rc && !fresh)
		rc = recheck(&r, &r.plan->after);
	if (!rc)
		rc = lost_ranges(&r);
	else
		lost_ranges(&r);   /* frees the baseline */
	free(r.probs);
	free(r.seen);
	if (rc) {
		pcm_repair_plan_free(r.plan);
		return rc;
	}
	r.plan->can_fix_all = r.plan->after.problems == 0;
	r.plan->force = o->force;
	*out = r.plan;
	return 0;
}

void pcm_repair_plan_free(struct pcm_repair_plan *p)
{
	if (!p)
		return;
	pcm_dev_close(p->ov);
	free(p->act);
	free(p->lost_ranges);
	free(p->suspect_ranges);
	free(p);
}

int pcm_overlay_apply(struct pcm_dev *dev, struct pcm_dev *ov, struct pcm_undo *u)
{
	uint64_t n;
	const struct pcm_ov_write *w = pcm_dev_overlay_writes(ov, &n);
	int rc = 0;

	for (uint64_t i = 0; !rc && i < n; i++) {
		if (u)
			rc = pcm_undo_save(u, dev, w[i].off, w[i].len, w[i].data);
		if (!rc)
			rc = pcm_dev_write(dev, w[i].off, w[i].data, w[i].len);
		if (!rc)
			rc = pcm_dev_persist(dev, w[i].off, w[i].len);
	}
	if (!rc && u)
		rc = pcm_undo_finish(u, dev);
	return rc;
}

int pcm_repair_apply(struct pcm_dev *dev, const struct pcm_repair_plan *p, struct pcm_undo *u)
{
	int rc;

	/* bad blocks: nothing is written unless forced (pcm_repair_badblock_conflict) */
	if (!p->force) {
		rc = pcm_repair_badblock_conflict(dev, p, NULL, NULL);
		if (rc)
			return rc > 0 ? -EHWPOISON : rc;
	}
	return pcm_overlay_apply(dev, p->ov, u);
}
