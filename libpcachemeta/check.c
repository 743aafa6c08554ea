/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Check driver and the problem table.  Passes run in the kernel's load
 * order, so the first problem that ends a load is the one the kernel would
 * report; later passes run only while the metadata they need is usable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check_int.h"

/*
 * Remarks are not problems (pcm_problem_def.remark).  A superblock that lays out
 * fewer segments than the device holds is a grown device (§10.1 SB6): the kernel
 * uses what the format laid out, and making a cache larger is not a repair, so
 * fsck -y leaves it and fsck -n must not call such a cache unclean for ever.
 */
#define PCM_REMARK(name) (PCM_P_##name == PCM_P_SB_SEG_NUM_SHORT)

static const struct pcm_problem_def defs[PCM_P_COUNT] = {
#define PCM_X_DEF(name, sev, kr, safe, text) \
	[PCM_P_##name] = { #name, PCM_SEV_##sev, PCM_KR_##kr, safe, text, PCM_REMARK(name) },
	PCM_PROBLEMS(PCM_X_DEF)
#undef PCM_X_DEF
};

const struct pcm_problem_def *pcm_problem_def(enum pcm_problem_code code)
{
	return code < PCM_P_COUNT ? &defs[code] : NULL;
}

const char *pcm_severity_str(enum pcm_severity s)
{
	static const char *const n[] = { "note", "warning", "error", "critical" };
	return s <= PCM_SEV_CRITICAL ? n[s] : "unknown";
}

const char *pcm_kernel_reaction_str(enum pcm_kernel_reaction r)
{
	switch (r) {
	case PCM_KR_IGNORES: return "ignores it";
	case PCM_KR_SILENT: return "accepts it silently (wrong behaviour or data)";
	case PCM_KR_DROPS_KEY: return "skips the key";
	case PCM_KR_ENDS_LOG: return "ends the log there (later keys are ignored)";
	case PCM_KR_REFUSES: return "refuses to load the cache";
	case PCM_KR_RESETS: return "re-initialises the cache (all cached data lost)";
	case PCM_KR_CRASHES: return "crashes (BUG)";
	case PCM_KR_STOPS_WORKER: return "stops writeback or GC";
	}
	return "unknown";
}

/*
 * The first load-ending reaction met in load order decides the verdict.  Most crashes
 * come after a successful load (at the next kset close, or the first read that partly
 * misses a key), so a refusal or reset met later in the walk still decides; an EMPTY
 * key BUGs inside the replay itself (§12.17), so nothing after it counts.
 */
static void note_verdict(struct chk *k, enum pcm_problem_code code)
{
	struct pcm_check_result *res = k->res;
	enum pcm_kernel_reaction kr = defs[code].kernel;
	bool open = res->verdict == PCM_VERDICT_LOADS ||
		    (res->verdict == PCM_VERDICT_CRASHES && !k->crash_at_load);

	if (!open)
		return;
	if (kr == PCM_KR_REFUSES)
		res->verdict = PCM_VERDICT_REFUSES;
	else if (kr == PCM_KR_RESETS)
		res->verdict = PCM_VERDICT_RESETS;
	else if (kr == PCM_KR_CRASHES && res->verdict == PCM_VERDICT_LOADS) {
		res->verdict = PCM_VERDICT_CRASHES;
		k->crash_at_load = code == PCM_P_KEY_EMPTY;
	}
}

void chk_report(struct chk *k, enum pcm_problem_code code, uint64_t off, const char *where,
		const char *fmt, ...)
{
	struct pcm_problem p = { .code = code, .offset = off };
	va_list ap;

	snprintf(p.where, sizeof(p.where), "%s", where ? where : "");
	va_start(ap, fmt);
	vsnprintf(p.detail, sizeof(p.detail), fmt, ap);
	va_end(ap);
	if (defs[code].remark) {
		k->res->remarks++;
		if (k->o->report)
			k->o->report(&p, k->o->arg);
		return;
	}
	if (!k->res->problems ||
	    defs[code].severity > defs[k->res->worst].severity)
		k->res->worst = code;
	k->res->problems++;
	k->res->by_severity[defs[code].severity]++;
	note_verdict(k, code);
	if (k->o->report)
		k->o->report(&p, k->o->arg);
}

bool chk_all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool ambiguous_seqs(uint8_t a, uint8_t b)
{
	return a == b || (uint8_t)(a - b) == 128;
}

int chk_replicas(struct chk *k, const uint64_t off[PCM_REPLICAS], size_t size,
		 const struct rep_codes *codes, const char *what, uint8_t raw[PCM_REPLICAS][24])
{
	for (int i = 0; i < PCM_REPLICAS; i++) {
		int rc = pcm_dev_read(k->dev, off[i], raw[i], size);

		if (rc)
			return rc;
	}
	return chk_replicas_judge(k, off, size, codes, what, raw);
}

int chk_replicas_quiet(size_t size, uint8_t raw[PCM_REPLICAS][24])
{
	const uint8_t *rec[PCM_REPLICAS] = { raw[0], raw[1] };
	bool valid[PCM_REPLICAS];
	int pick = pcm_replica_pick(rec, size, valid);

	if (pick < 0)
		return -1;
	for (int i = 0; i < PCM_REPLICAS; i++)
		if (!valid[i] && !chk_all_zero(raw[i], size))
			return -1;
	if (valid[0] && valid[1] && ambiguous_seqs(raw[0][4], raw[1][4]) &&
	    memcmp(raw[0] + 8, raw[1] + 8, size - 8))
		return -1;
	return pick;
}

int chk_replicas_judge(struct chk *k, const uint64_t off[PCM_REPLICAS], size_t size,
		       const struct rep_codes *codes, const char *what,
		       uint8_t raw[PCM_REPLICAS][24])
{
	const uint8_t *rec[PCM_REPLICAS] = { raw[0], raw[1] };
	bool valid[PCM_REPLICAS];
	char where[64];
	int pick;

	pick = pcm_replica_pick(rec, size, valid);
	if (pick < 0) {
		chk_report(k, codes->both_bad, off[0], what, "replica 0 %s, replica 1 %s",
			   chk_all_zero(raw[0], size) ? "is zero" : "fails its checksum",
			   chk_all_zero(raw[1], size) ? "is zero" : "fails its checksum");
		return -1;
	}
	for (int i = 0; i < PCM_REPLICAS; i++) {
		if (valid[i] || chk_all_zero(raw[i], size))
			continue;   /* a zero replica was simply never written */
		snprintf(where, sizeof(where), "%s replica %d", what, i);
		chk_report(k, codes->replica_bad, off[i], where,
			   "checksum mismatch; the kernel uses replica %d (seq %u)", pick, raw[pick][4]);
	}
	if (valid[0] && valid[1] && ambiguous_seqs(raw[0][4], raw[1][4]) &&
	    memcmp(raw[0] + 8, raw[1] + 8, size - 8))
		chk_report(k, codes->ambiguous, off[0], what,
			   "seqs %u and %u: the kernel takes replica 0, which may be the older",
			   raw[0][4], raw[1][4]);
	return pick;
}

int pcm_check_run(struct pcm_dev *dev, const struct pcm_check_opts *o,
		  struct pcm_check_result *res)
{
	static const struct pcm_check_opts defaults;
	struct chk k = { .dev = dev, .o = o ? o : &defaults, .res = res };
	int rc, mrc;

	memset(res, 0, sizeof(*res));
	k.size = pcm_dev_size(dev);
	rc = chk_meta(&k);
	if (!rc && !k.stop)
		rc = chk_log(&k);
	/* bad blocks: also when the passes above failed (an I/O error may be one) */
	mrc = res->not_pcache ? 0 : chk_media(&k);
	return rc ? rc : mrc;
}
