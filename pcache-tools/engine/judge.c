/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which caches the engine opens, and which it only reads.
 *
 * The engine opens exactly the caches the kernel loads, and the library
 * already says which those are: pcm_check_run() runs every load check of
 * §5.5 in the kernel's order and gives the kernel's verdict.  A cache the
 * kernel refuses or re-initialises is refused with the reason of the problem
 * that ends the kernel's load (the first one met in load order: res.worst
 * ranks by severity and may name a problem the kernel loads, such as lost
 * ksets ahead of a bad key).
 *
 * Some caches the kernel loads and serves as replayed, but its run time then
 * loses or corrupts data (§10.4 TL3 and TL4, §12.24, §12.25, ...).  The
 * engine serves those read-only: the reads are the kernel's, and nothing is
 * written that the kernel's writes would have got wrong.  `pcache fsck -y`
 * repairs every one of them (none is in pcm_problem_fixable()'s exceptions).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine_int.h"

/*
 * Problems on which the kernel loads the cache but its writes, writeback or
 * GC would lose data, and what would go wrong.  The other problems the kernel
 * loads either change nothing or are already in what replay serves; the
 * engine's own differences (§14: stale keys drop no reference, writeback
 * skips them) make KEY_STALE safe to write to.
 */
static const struct {
	enum pcm_problem_code code;
	const char *why;
} hazards[] = {
	/* §12.24: writeback walks from dirty_tail, GC stops only exactly there */
	{ PCM_P_DIRTY_TAIL_OFF_LOG, "the kernel's writeback would copy the wrong data back and "
	  "its GC would reclaim data never written back" },
	/* §10.4 TL3: the first kset written lands at key_tail, over what fsck salvages */
	{ PCM_P_LOG_START_INVALID, "writes would overwrite the ksets there, which fsck can "
	  "recover" },
	/* §10.5 LG3: appends go to key_head, the damaged kset, and then over the lost ones */
	{ PCM_P_LOG_END_CORRUPT, "writes would overwrite the valid ksets behind it, which fsck "
	  "can recover" },
	{ PCM_P_LOG_LOST_KSETS, "writes would overwrite them; fsck can recover them" },
	/* §10.5 LG8: new ksets land on the live data in the log segment */
	{ PCM_P_LOG_DATA_OVERLAP, "new ksets would overwrite that data" },
	/* §12.25: two cache segments on one device segment overwrite each other */
	{ PCM_P_CHAIN_DUPLICATE, "writes to one would overwrite the data and ksets of the "
	  "other" },
	/* §8.3: a reclaim leaves keys current whose seg_gen is not below the new gen */
	{ PCM_P_GEN_BOTH_BAD, "once GC reclaims such a segment, reads would return the data "
	  "written there next" },
	{ PCM_P_KEY_GEN_AHEAD, "once GC reclaims its segment, reads would return the data "
	  "written there next" },
};

static const char *hazard_why(enum pcm_problem_code code)
{
	for (size_t i = 0; i < sizeof(hazards) / sizeof(hazards[0]); i++)
		if (hazards[i].code == code)
			return hazards[i].why;
	return NULL;
}

/* the reactions pcm_check_run turns into a verdict other than LOADS */
enum { J_REFUSES, J_RESETS, J_CRASHES, J_STOPS };

struct judge {
	bool have_stop[J_STOPS], have_hazard;
	enum pcm_problem_code stop[J_STOPS]; /* first problem of each load-ending reaction */
	enum pcm_problem_code hazard;   /* first problem that makes writing unsafe */
};

static void on_problem(const struct pcm_problem *p, void *arg)
{
	struct judge *j = arg;
	enum pcm_kernel_reaction kr = pcm_problem_def(p->code)->kernel;
	int s = kr == PCM_KR_REFUSES ? J_REFUSES : kr == PCM_KR_RESETS ? J_RESETS :
		kr == PCM_KR_CRASHES ? J_CRASHES : J_STOPS;

	if (s != J_STOPS && !j->have_stop[s]) {
		j->have_stop[s] = true;
		j->stop[s] = p->code;
	}
	if (!j->have_hazard && hazard_why(p->code)) {
		j->have_hazard = true;
		j->hazard = p->code;
	}
}

/*
 * The kernel's verdict in one line: "PATH: what the kernel does: why".  A verdict
 * other than LOADS comes only from a problem reported with the matching reaction
 * (on_problem), so the stop of that reaction is set.
 */
static int refuse(const char *path, const struct pcm_check_result *res, const struct judge *j,
		  struct pce_error *err)
{
	int s = res->verdict == PCM_VERDICT_RESETS ? J_RESETS :
		res->verdict == PCM_VERDICT_CRASHES ? J_CRASHES : J_REFUSES;
	const struct pcm_problem_def *d = pcm_problem_def(j->stop[s]);
	bool sb = !strncmp(d->name, "SB_", 3);

	/* not a pcache device at all: fsck has nothing to add, so no -EUCLEAN (hint) */
	return pce_fail(err, res->not_pcache ? -EINVAL : -EUCLEAN, "%s: %s: %s", path,
			sb ? "not a pcache device" :
			d->kernel == PCM_KR_RESETS ? "the kernel would re-initialise the cache, "
			"losing all cached data" :
			d->kernel == PCM_KR_CRASHES ? "the kernel would crash (BUG) on the cache" :
			"the kernel would refuse to load the cache", d->summary);
}

int pce_judge(struct pce *e, const char *path, struct pce_error *err)
{
	struct judge j = { 0 };
	struct pcm_check_opts o = {
		.verify_data = e->flags & PCE_VERIFY_DATA,
		/* the kernel counts the backing device in sectors (§6.5 check 1) */
		.backing_size = e->bk.size / PCM_SECTOR * PCM_SECTOR,
		.report = on_problem, .arg = &j,
	};
	struct pcm_check_result res;
	int rc = pcm_check_run(e->cdev, &o, &res);

	if (rc)
		return pce_fail(err, rc, "%s: cannot read metadata: %s", path, strerror(-rc));
	if (res.verdict != PCM_VERDICT_LOADS)
		return refuse(path, &res, &j, err);
	if (j.have_hazard)
		snprintf(e->ro_why, sizeof(e->ro_why), "%s (%s)", pcm_problem_def(j.hazard)->summary,
			 hazard_why(j.hazard));
	return 0;
}

const char *pce_rdonly_reason(const struct pce *e)
{
	return e->ro_why[0] ? e->ro_why : NULL;
}
