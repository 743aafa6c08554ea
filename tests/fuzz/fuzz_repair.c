/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: repair on a copy.  pcm_repair_plan (fsck -y, or -p), then
 * the plan's writes applied to an overlay of the image (the device itself is
 * never written) and checked again.  Oracles: applying the plan gives what
 * the plan's own after-check saw; a repair never turns a cache the kernel
 * loads into one it refuses; a clean image gets no action; a plan that
 * fixes everything leaves nothing for a second run.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where x wrote, do x and y read the same?  (Both overlay one image.) */
static void same_where_written(struct pcm_dev *x, struct pcm_dev *y)
{
	static uint8_t a[65536], b[65536];
	uint64_t n;
	const struct pcm_ov_write *w = pcm_dev_overlay_writes(x, &n);

	for (uint64_t i = 0; i < n; i++)
		for (uint64_t at = 0; at < w[i].len; at += sizeof(a)) {
			size_t len = w[i].len - at < sizeof(a) ? w[i].len - at : sizeof(a);

			if (pcm_dev_read(x, w[i].off + at, a, len) || pcm_dev_read(y, w[i].off + at, b, len))
				fz_fail("reading an overlay at %llu", (unsigned long long)(w[i].off + at));
			if (memcmp(a, b, len))
				fz_fail("applied plan differs from the planned image near byte %llu",
					(unsigned long long)(w[i].off + at));
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_image img;
	struct pcm_repair_opts o = { .mode = PCM_REPAIR_ALL };
	struct pcm_repair_plan *plan = NULL, *again = NULL;
	struct pcm_dev *ov = NULL;
	struct { struct pcm_check_result r; } now;
	struct pcm_check_opts co = { .verify_data = true };
	int rc;

	if (fz_image_load(data, size, &img))
		return 0;
	if (img.opts & FZ_OPT_SAFE)
		o.mode = PCM_REPAIR_SAFE;
	o.verify_data = img.opts & FZ_OPT_VERIFY;
	o.backing_size = (img.opts & FZ_OPT_BACKING) ? FZ_BACKING_SIZE : 0;
	co.backing_size = o.backing_size;
	if (pcm_repair_plan(img.dev, &o, &plan))
		goto out;
	if (plan->before.problems == 0 && plan->nact != 0)
		fz_fail("%llu repair actions on a clean image", (unsigned long long)plan->nact);
	if (plan->before.verdict == PCM_VERDICT_LOADS && !plan->before.not_pcache &&
	    plan->after.verdict != PCM_VERDICT_LOADS)
		fz_fail("repair turns a cache the kernel loads into one it does not (worst %s)",
			pcm_problem_def(plan->after.worst)->name);
	if (pcm_dev_overlay(img.dev, &ov))
		goto out;
	rc = pcm_repair_apply(ov, plan, NULL);
	if (rc == -EHWPOISON && (img.opts & FZ_OPT_BADBLOCKS))
		goto out;   /* refused: a write would land on a bad block (nothing written) */
	if (rc)
		fz_fail("applying the plan to an overlay: %d", rc);
	/*
	 * The applied image is byte for byte the planned one (so its check would
	 * be the plan's after-check); a full check of it on every 16th input.
	 */
	same_where_written(plan->ov, ov);
	same_where_written(ov, plan->ov);
	if ((data[size - 1] & 15) == 0 && !pcm_check_run(ov, &co, &now.r)) {
		if (now.r.problems != plan->after.problems || now.r.verdict != plan->after.verdict)
			fz_fail("applied plan: %llu problems, verdict %d; planned %llu, verdict %d",
				(unsigned long long)now.r.problems, (int)now.r.verdict,
				(unsigned long long)plan->after.problems, (int)plan->after.verdict);
	}
	/* after a complete repair the applied image checks clean (shown above), so a second
	 * repair has nothing to do; it is run on every 16th input all the same */
	if (plan->can_fix_all && (data[size - 1] & 15) == 0 &&
	    !pcm_repair_plan(ov, &o, &again) && again->nact != 0)
		fz_fail("a second repair after a complete one plans %llu actions (first: %s)",
			(unsigned long long)again->nact, pcm_problem_def(again->act[0].code)->name);
out:
	pcm_repair_plan_free(again);
	pcm_dev_close(ov);
	pcm_repair_plan_free(plan);
	fz_image_reset(&img);
	return 0;
}
