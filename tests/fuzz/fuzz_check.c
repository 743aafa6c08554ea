/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: pcm_check_run (fsck -n) with every problem reported through
 * the callback, and the result's own consistency.
 */
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	uint64_t n, by_sev[4], remarks;
};

static void report(const struct pcm_problem *p, void *arg)
{
	struct ctx *x = arg;
	const struct pcm_problem_def *d = pcm_problem_def(p->code);

	if (!d || !d->name || !d->summary)
		fz_fail("problem code %d has no definition", (int)p->code);
	if (!memchr(p->where, 0, sizeof(p->where)) || !memchr(p->detail, 0, sizeof(p->detail)))
		fz_fail("problem %s: unterminated text", d->name);
	if (d->severity > PCM_SEV_CRITICAL)
		fz_fail("problem %s: severity %d", d->name, (int)d->severity);
	if (d->remark) {   /* reported, never counted as a problem */
		x->remarks++;
		return;
	}
	x->by_sev[d->severity]++;
	x->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_image img;
	struct ctx x = { 0 };
	struct pcm_check_opts o = { .report = report, .arg = &x };
	struct pcm_check_result res;

	if (fz_image_load(data, size, &img))
		return 0;
	o.verify_data = img.opts & FZ_OPT_VERIFY;
	o.backing_size = (img.opts & FZ_OPT_BACKING) ? FZ_BACKING_SIZE : 0;
	if (!pcm_check_run(img.dev, &o, &res)) {
		if (res.remarks != x.remarks)
			fz_fail("%llu remarks counted, %llu reported",
				(unsigned long long)res.remarks, (unsigned long long)x.remarks);
		if (res.problems != x.n)
			fz_fail("%llu problems counted, %llu reported",
				(unsigned long long)res.problems, (unsigned long long)x.n);
		for (int i = 0; i < 4; i++)
			if (res.by_severity[i] != x.by_sev[i])
				fz_fail("severity %d: %llu counted, %llu reported", i,
					(unsigned long long)res.by_severity[i],
					(unsigned long long)x.by_sev[i]);
		if (res.problems == 0 && res.verdict != PCM_VERDICT_LOADS)
			fz_fail("no problem, but verdict %d", (int)res.verdict);
		if (res.verdict != PCM_VERDICT_LOADS && res.by_severity[PCM_SEV_ERROR] == 0 &&
		    res.by_severity[PCM_SEV_CRITICAL] == 0)
			fz_fail("verdict %d with no error or critical problem", (int)res.verdict);
	}
	fz_image_reset(&img);
	return 0;
}
