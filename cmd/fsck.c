/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache fsck: check a cache offline and explain every problem. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin.h"
#include "verdict.h"

static const char usage_text[] =
	"usage: pcache fsck [-n | -p | -y | --repair] [-f] [--no-verify-data] [--salvage]\n"
	"                   [--backing PATH | --backing-size SIZE] [--undo FILE]\n"
	"                   [--json [-u]] [-q] [-v] DEV\n\n"
	"Checks every structure the kernel reads when it loads DEV, and more, and says\n"
	"what the kernel would do about each problem; with -p or -y it repairs them.\n"
	"Exit (bits OR together): 0 clean, 1 problems fixed, 4 problems left, 8 operational\n"
	"error (cannot open, busy, not a pcache device), 16 usage error, 32 cancelled.\n\n"
	"  -n, --no             check only, open read-only (the default without a terminal)\n"
	"  -p, --preen          fix only what is safe without a person\n"
	"  -y, --yes            fix everything fixable\n"
	"  --repair             on a terminal: ask before each fix; without one: as -p,\n"
	"                       and name what needs -y (none of these, on a terminal: ask)\n"
	"  --dry-run            with -p/-y: print the fixes, write nothing\n"
	"  --salvage            with -y/--repair: keep the valid ksets behind a damaged\n"
	"                       kset, where the kernel ends the log (beyond the kernel)\n"
	"  --undo FILE          save every byte range before it is overwritten (pcache undo)\n"
	"  -f, --force          check a device in use; repair over bad blocks\n"
	"  --no-verify-data     with -n: skip the data checksums the kernel checks at load\n"
	"                       (then the verdict covers the metadata only)\n"
	"  --verify-data        check them (the default when the cache has data_crc)\n"
	"  --backing PATH       the backing device: every key is checked against its size\n"
	"  --backing-size SIZE  the same with the size alone (bytes, or 2G, 512M, ...)\n"
	"  --json               the report as JSON (an array of one object)\n"
	"  -u, --human          with --json: sizes and offsets for people\n"
	"  -q, --quiet          only the problem lines\n"
	"  -v, --verbose        more detail\n";

struct pcm_repair_plan;
static json_object *plan_json(const struct pcm_repair_plan *plan);

#define SHOW_PER_CODE 20u      /* text: problem lines shown per code */
#define KEEP_PER_CODE 1000u    /* JSON: problems kept per code */
#define SHOW_RANGES 20u        /* text without -v: lost ranges shown */

struct fsck_state {
	const char *dev;
	uint64_t per_code[PCM_P_COUNT];
	json_object *problems;     /* JSON mode */
	bool declined, all_yes, quit, dry_run, repairing;
	struct cli_verdict_opts v;   /* --no-verify-data, --backing */
	char opts[300];            /* options as typed that change the check, for hints */
};

enum fsck_mode { MODE_CHECK, MODE_PREEN, MODE_YES, MODE_ASK };

struct fsck_args {
	enum fsck_mode mode;
	bool mode_set, dry_run, force, salvage;
	bool repair_word;          /* --repair: ask on a terminal, else preen and say what is left */
	const char *undo;
	struct pcm_check_opts o;
};

static json_object *problem_json(const struct pcm_problem *p)
{
	const struct pcm_problem_def *d = pcm_problem_def(p->code);
	json_object *o = json_object_new_object();

	json_object_object_add(o, "code", json_object_new_string(d->name));
	json_object_object_add(o, "severity", json_object_new_string(pcm_severity_str(d->severity)));
	json_object_object_add(o, "location", json_object_new_string(p->where));
	json_object_object_add(o, "offset", p->offset == UINT64_MAX ? NULL :
			       cli_json_hex(p->offset, cli.human));
	json_object_object_add(o, "summary", json_object_new_string(d->summary));
	json_object_object_add(o, "detail", json_object_new_string(p->detail));
	json_object_object_add(o, "kernel", json_object_new_string(pcm_kernel_reaction_str(d->kernel)));
	json_object_object_add(o, "safe_to_fix", json_object_new_boolean(d->safe_fix));
	json_object_object_add(o, "fixable", json_object_new_boolean(pcm_problem_fixable(p->code)));
	json_object_object_add(o, "remark", json_object_new_boolean(d->remark));
	return o;
}

static void report(const struct pcm_problem *p, void *arg)
{
	struct fsck_state *s = arg;
	const struct pcm_problem_def *d = pcm_problem_def(p->code);
	uint64_t n = ++s->per_code[p->code];

	cli_progress_done();
	if (p->code == PCM_P_SB_NO_MAGIC || p->code == PCM_P_SB_BAD_MAGIC ||
	    p->code == PCM_P_SB_TOO_SMALL)
		return;   /* said once, as the error line */
	if (s->problems) {
		if (n <= KEEP_PER_CODE)
			json_object_array_add(s->problems, problem_json(p));
		return;
	}
	if (n > SHOW_PER_CODE)
		return;
	/* a remark is not a problem: its own word, so that scripts counting problems skip it */
	printf("%s: %s at %s", d->remark ? "remark" : pcm_severity_str(d->severity), d->name,
	       p->where);
	if (p->offset != UINT64_MAX)
		printf(" (@%" PRIu64 ")", p->offset);
	if (p->code == PCM_P_MEDIA_BADBLOCK)   /* the detail says what the kernel does */
		printf(": %s: %s\n", d->summary, p->detail);
	else
		printf(": %s: %s; kernel %s\n", d->summary, p->detail,
		       pcm_kernel_reaction_str(d->kernel));
}

static void progress(uint64_t done, void *arg)
{
	(void)arg;
	if (done % 256 == 0)
		cli_progress("checking the log: ksets", done, 0);
}

static const char *verdict_str(enum pcm_kernel_verdict v)
{
	switch (v) {
	case PCM_VERDICT_LOADS: return "loads";
	case PCM_VERDICT_REFUSES: return "refuses";
	case PCM_VERDICT_RESETS: return "resets";
	case PCM_VERDICT_CRASHES: return "crashes";
	}
	return "unknown";
}

static void summary_text(const struct fsck_state *s, const struct pcm_check_result *r)
{
	char buf[200];
	const char *v;

	for (int c = 0; c < PCM_P_COUNT; c++)
		if (s->per_code[c] > SHOW_PER_CODE)
			printf("... %" PRIu64 " more %s problems not shown\n",
			       s->per_code[c] - SHOW_PER_CODE, pcm_problem_def(c)->name);
	if (cli.quiet)
		return;
	if (r->replayed)
		printf("%s: log: %s, %s, %s, dirty %s, clean %s, key_head %u:%u\n", s->dev,
		       CLI_COUNT(r->ksets, "kset", "ksets"), CLI_COUNT(r->keys, "key", "keys"),
		       CLI_COUNT(r->live_extents, "live extent", "live extents"),
		       CLI_BYTES(r->dirty_bytes), CLI_BYTES(r->clean_bytes),
		       r->key_head.cseg, r->key_head.seg_off);
	v = cli_verdict_text(r, r->verdict, &s->v.backing, buf, sizeof(buf));
	if (!r->problems && r->replayed && r->data_crc && !r->data_verified)
		printf("%s: metadata clean; data not verified (--no-verify-data)\n", s->dev);
	else if (!r->problems && r->remarks)
		printf("%s: clean: no problems found (%s); %s\n", s->dev,
		       CLI_COUNT(r->remarks, "remark", "remarks"), v);
	else if (!r->problems)
		printf("%s: clean: no problems found; %s\n", s->dev, v);
	else
		printf("%s: %s (%" PRIu64 " critical, %s, %s, %s); %s\n", s->dev,
		       CLI_COUNT(r->problems, "problem", "problems"),
		       r->by_severity[PCM_SEV_CRITICAL],
		       CLI_COUNT(r->by_severity[PCM_SEV_ERROR], "error", "errors"),
		       CLI_COUNT(r->by_severity[PCM_SEV_WARNING], "warning", "warnings"),
		       CLI_COUNT(r->by_severity[PCM_SEV_NOTE], "note", "notes"), v);
	if (r->lost_keys)
		printf("%s: %s in valid ksets %s beyond the end of the log\n", s->dev,
		       CLI_COUNT(r->lost_keys, "key", "keys"), r->lost_keys == 1 ? "lies" : "lie");
}

static void summary_json(struct fsck_state *s, const struct pcm_check_result *r,
			 const struct pcm_repair_plan *plan)
{
	json_object *arr = json_object_new_array(), *o = json_object_new_object();

	json_object_object_add(o, "device", json_object_new_string(s->dev));
	json_object_object_add(o, "clean", json_object_new_boolean(r->problems == 0));
	json_object_object_add(o, "kernel_verdict", json_object_new_string(verdict_str(r->verdict)));
	json_object_object_add(o, "problem_count", cli_json_u64(r->problems));
	json_object_object_add(o, "critical", cli_json_u64(r->by_severity[PCM_SEV_CRITICAL]));
	json_object_object_add(o, "errors", cli_json_u64(r->by_severity[PCM_SEV_ERROR]));
	json_object_object_add(o, "warnings", cli_json_u64(r->by_severity[PCM_SEV_WARNING]));
	json_object_object_add(o, "notes", cli_json_u64(r->by_severity[PCM_SEV_NOTE]));
	json_object_object_add(o, "remarks", cli_json_u64(r->remarks));
	json_object_object_add(o, "replayed", json_object_new_boolean(r->replayed));
	json_object_object_add(o, "ksets", cli_json_u64(r->ksets));
	json_object_object_add(o, "keys", cli_json_u64(r->keys));
	json_object_object_add(o, "live_keys", cli_json_u64(r->live_extents));
	json_object_object_add(o, "dirty_bytes", cli_json_size(r->dirty_bytes));
	json_object_object_add(o, "clean_bytes", cli_json_size(r->clean_bytes));
	json_object_object_add(o, "lost_keys", cli_json_u64(r->lost_keys));
	json_object_object_add(o, "key_head", r->replayed ? cli_json_pos(r->key_head) : NULL);
	json_object_object_add(o, "data_verified", json_object_new_boolean(r->data_verified));
	json_object_object_add(o, "max_key_end", r->replayed ? cli_json_size(r->max_key_end) : NULL);
	json_object_object_add(o, "backing_size", s->v.backing.known ?
			       cli_json_size(s->v.backing.size) : NULL);
	json_object_object_add(o, "problems", json_object_get(s->problems));
	if (plan)
		json_object_object_add(o, "repair", plan_json(plan));
	json_object_array_add(arr, o);
	cli_json_print(arr);
	json_object_put(arr);
}


/* Valid ksets the log ends before, as the kernel's does; --salvage keeps them. */
static json_object *behind_json(const struct pcm_repair_plan *plan)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ksets", cli_json_u64(plan->behind_ksets));
	json_object_object_add(o, "keys", cli_json_u64(plan->behind_keys));
	return o;
}

/* null when the log could not be read before the repair */
static json_object *ranges_json(const struct pcm_repair_plan *plan, const struct pcm_range *v,
				uint64_t n)
{
	json_object *a;

	if (!plan->lost_ranges_known)
		return NULL;
	a = json_object_new_array();
	for (uint64_t i = 0; i < n; i++) {
		json_object *r = json_object_new_object();

		json_object_object_add(r, "offset", cli_json_hex(v[i].off, cli.human));
		json_object_object_add(r, "length", cli_json_size(v[i].len));
		json_object_array_add(a, r);
	}
	return a;
}

static json_object *plan_json(const struct pcm_repair_plan *plan)
{
	json_object *o = json_object_new_object(), *acts = json_object_new_array();

	for (uint64_t i = 0; i < plan->nact; i++) {
		const struct pcm_repair_action *a = &plan->act[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "code", json_object_new_string(pcm_problem_def(a->code)->name));
		json_object_object_add(j, "location", json_object_new_string(a->where));
		json_object_object_add(j, "action", json_object_new_string(a->what));
		json_object_object_add(j, "writes", cli_json_u64(a->nwrites));
		json_object_object_add(j, "lost_keys", cli_json_u64(a->lost_keys));
		json_object_object_add(j, "lost_dirty_bytes", cli_json_size(a->lost_dirty_bytes));
		json_object_object_add(j, "lost_ksets", cli_json_u64(a->lost_ksets));
		json_object_array_add(acts, j);
	}
	json_object_object_add(o, "actions", acts);
	json_object_object_add(o, "lost_keys", cli_json_u64(plan->lost_keys));
	json_object_object_add(o, "lost_dirty_bytes", cli_json_size(plan->lost_dirty_bytes));
	json_object_object_add(o, "lost_ksets", cli_json_u64(plan->lost_ksets));
	json_object_object_add(o, "dropped_behind_damage", behind_json(plan));
	json_object_object_add(o, "lost_bytes", plan->lost_ranges_known ?
			       cli_json_size(plan->lost_bytes) : NULL);
	json_object_object_add(o, "lost_ranges", ranges_json(plan, plan->lost_ranges,
							    plan->nlost_ranges));
	json_object_object_add(o, "suspect_bytes", plan->lost_ranges_known ?
			       cli_json_size(plan->suspect_bytes) : NULL);
	json_object_object_add(o, "suspect_ranges", ranges_json(plan, plan->suspect_ranges,
							       plan->nsuspect_ranges));
	json_object_object_add(o, "remaining_problems", cli_json_u64(plan->after.problems));
	json_object_object_add(o, "kernel_verdict_after",
			       json_object_new_string(verdict_str(plan->after.verdict)));
	return o;
}

/*
 * Interactive mode: one question per fix, e2fsck style (y, n, a = yes to all), and
 * q = no to this one and all later ones (the end of input too).
 */
static bool ask(const struct pcm_problem *p, const char *what, void *arg)
{
	struct fsck_state *s = arg;
	char line[16];
	int c;

	if (s->all_yes)
		return true;
	if (!s->quit) {
		fprintf(stderr, "%s at %s: %s.\nFix: %s? [y/n/a/q] ", pcm_problem_def(p->code)->name,
			p->where, p->detail, what);
		if (!fgets(line, sizeof(line), stdin)) {
			fputc('\n', stderr);
			line[0] = 'q';
		} else if (!strchr(line, '\n')) {
			while ((c = getchar()) != EOF && c != '\n')
				;   /* the rest of a long answer is not the next one */
		}
		if (line[0] == 'a' || line[0] == 'A')
			s->all_yes = true;
		if (line[0] == 'y' || line[0] == 'Y' || s->all_yes)
			return true;
		if (line[0] == 'q' || line[0] == 'Q')
			s->quit = true;
	}
	s->declined = true;
	return false;
}

static void ranges_text(const struct pcm_range *v, uint64_t n)
{
	for (uint64_t i = 0; i < n && (cli.verbose || i < SHOW_RANGES); i++)
		printf("  %" PRIu64 " +%" PRIu64 "\n", v[i].off, v[i].len);
	if (!cli.verbose && n > SHOW_RANGES)
		printf("  ... %" PRIu64 " more (-v or --json lists them all)\n", n - SHOW_RANGES);
}

/* Which bytes lose their newest version (-v: all of them), and what --salvage would keep. */
static void lost_ranges_text(const struct fsck_state *s, const struct pcm_repair_plan *plan)
{
	const char *verb = s->dry_run ? "would lose" : "lost";

	if (!plan->lost_ranges_known && (plan->lost_keys || plan->lost_ksets))
		printf("%s: which byte ranges lose their newest version is not known (the log "
		       "could not be read before the repair)\n", s->dev);
	if (plan->nlost_ranges) {
		printf("%s: %s in %s %s their newest version (reads there return older cached "
		       "data or the backing device):\n", s->dev,
		       cli_fmt_bytes(plan->lost_bytes, (char[64]){ 0 }, 64),
		       CLI_COUNT(plan->nlost_ranges, "range", "ranges"), verb);
		ranges_text(plan->lost_ranges, plan->nlost_ranges);
	}
	if (plan->nsuspect_ranges) {
		printf("%s: %s in %s probably %s their newest version%s (the keys of "
		       "corrupt ksets read without trusting them, and keys whose data "
		       "cannot be found):\n", s->dev,
		       cli_fmt_bytes(plan->suspect_bytes, (char[64]){ 0 }, 64),
		       CLI_COUNT(plan->nsuspect_ranges, "range", "ranges"), verb,
		       plan->nlost_ranges ? " too" : "");
		ranges_text(plan->suspect_ranges, plan->nsuspect_ranges);
	}
	if (plan->lost_ranges_known && !plan->nlost_ranges && !plan->nsuspect_ranges &&
	    (plan->lost_keys || plan->lost_ksets))
		printf("%s: no byte range loses its newest version that the log shows (what "
		       "the lost %s held was overwritten later or could not be read)\n", s->dev,
		       plan->lost_keys ? "keys" : "corrupt ksets");
	fflush(stdout);   /* the hint after the lines it is about */
	if (plan->behind_ksets)
		cli_hint("%" PRIu64 " valid kset%s (%s) behind the damage %s dropped, as the "
			 "kernel drops them; 'pcache fsck -y --salvage%s %s' keeps them instead, "
			 "beyond the kernel (ranges the damaged kset held then show older data)",
			 plan->behind_ksets, plan->behind_ksets == 1 ? "" : "s",
			 CLI_COUNT(plan->behind_keys, "key", "keys"),
			 plan->behind_ksets == 1 ? "is" : "are", s->opts, s->dev);
}

static void plan_text(const struct fsck_state *s, const struct pcm_repair_plan *plan)
{
	const struct pcm_check_result *b = &plan->before, *a = &plan->after;
	char v[200];

	for (uint64_t i = 0; i < plan->nact; i++)
		printf("%s: %s at %s: %s\n", s->dry_run ? "would fix" : "fixed",
		       pcm_problem_def(plan->act[i].code)->name, plan->act[i].where,
		       plan->act[i].what);
	if (plan->held_seg_num)
		printf("not fixed: SB_SEG_NUM_RANGE: %s is smaller than its superblock says (a "
		       "truncated image, or the wrong device?); -f rewrites seg_num to %u and gives "
		       "up the segments past the end\n", s->dev, plan->seg_num_fit);
	if (cli.quiet)
		return;
	if (plan->nact || plan->lost_keys || plan->lost_ksets)
		printf("%s: %s: %s, %s of dirty data, %s%s\n", s->dev,
		       s->dry_run ? "the repair would lose" : "lost to the repair",
		       CLI_COUNT(plan->lost_keys, "key", "keys"),
		       CLI_BYTES(plan->lost_dirty_bytes),
		       CLI_COUNT(plan->lost_ksets, "corrupt kset", "corrupt ksets"),
		       plan->behind_keys || (!plan->lost_keys && !plan->lost_ksets) ? "" :
		       " (they were unusable)");
	if (plan->nact || plan->lost_keys || plan->lost_ksets)
		lost_ranges_text(s, plan);
	printf("%s: %s found, %s %s; %s %s; %s\n", s->dev,
	       CLI_COUNT(b->problems, "problem", "problems"),
	       CLI_COUNT(plan->nact, "change", "changes"),
	       s->dry_run ? "planned (nothing written)" : "made",
	       CLI_COUNT(a->problems, "problem", "problems"), a->problems == 1 ? "remains" : "remain",
	       cli_verdict_text(a, a->verdict, &s->v.backing, v, sizeof(v)));
}

static int apply(struct fsck_state *s, struct fsck_args *a, struct pcm_dev *dev,
		 const struct pcm_repair_plan *plan)
{
	struct pcm_undo *u = NULL;
	sigset_t block, old;
	int rc = a->undo ? pcm_undo_create(a->undo, dev, &u) : 0;

	if (rc) {
		cli_err(a->undo, "cannot create undo file: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	/* a repair stopped half way is safe, but one finished is what was promised */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	rc = pcm_repair_apply(dev, plan, u);
	sigprocmask(SIG_SETMASK, &old, NULL);
	pcm_undo_close(u);
	if (rc) {
		cli_err(s->dev, "repair failed while writing: %s", strerror(-rc));
		if (a->undo)
			cli_hint("'pcache undo %s %s' puts back what was written", a->undo, s->dev);
		return EXIT_OPERATIONAL;
	}
	return EXIT_OK;
}

/* Index of the action owning write w of the plan, for messages. */
static const struct pcm_repair_action *write_action(const struct pcm_repair_plan *plan, uint64_t w)
{
	for (uint64_t i = 0; i < plan->nact; i++)
		if (w >= plan->act[i].first_write && w - plan->act[i].first_write < plan->act[i].nwrites)
			return &plan->act[i];
	return NULL;
}

/* Planned writes over bad blocks: refused (true) unless -f; dry runs only say so. */
static bool badblocks_refuse(struct fsck_state *s, const struct fsck_args *a, struct pcm_dev *dev,
			     const struct pcm_repair_plan *plan)
{
	const struct pcm_repair_action *act;
	const struct pcm_ov_write *w;
	struct pcm_badblock bb;
	uint64_t wi, n;
	int rc = pcm_repair_badblock_conflict(dev, plan, &wi, &bb);

	if (rc < 0) {
		cli_err(s->dev, "cannot read the bad block list: %s: nothing was changed", strerror(-rc));
		return true;
	}
	if (rc == 0)
		return false;
	w = pcm_dev_overlay_writes(plan->ov, &n);
	act = write_action(plan, wi);
	if (a->force || a->dry_run) {
		if (!cli.quiet)
			fprintf(stderr, "pcache fsck: %s: %s over the bad block at %" PRIu64 " (%" PRIu64
				" bytes)%s\n", s->dev, a->dry_run ? "the repair would write" : "writing",
				bb.off, bb.len, a->force ? " as --force asks" : "; a real run needs --force");
		return false;
	}
	cli_err(s->dev, "refusing to repair: %s%s%s writes %zu bytes at %" PRIu64 ", on the bad block "
		"at %" PRIu64 " (%" PRIu64 " bytes): nothing was written",
		act ? pcm_problem_def(act->code)->name : "a fix", act ? " at " : "",
		act ? act->where : "", w[wi].len, w[wi].off, bb.off, bb.len);
	cli_hint("clear the bad blocks first ('ndctl clear-errors' on the namespace, or 'ndctl "
		 "start-scrub' to rescan them), or rewrite the range; -f/--force writes anyway");
	return true;
}

/* No cache to check: said once, in the words every command uses. */
static void say_not_pcache(const struct fsck_state *s, struct pcm_dev *dev)
{
	char why[256];

	cli_sb_words(dev, why, sizeof(why));
	cli_err(s->dev, "%s%s", why, s->dry_run || !s->repairing ? "" : ": nothing was changed");
}

static bool is_pcache(struct fsck_state *s, struct pcm_dev *dev)
{
	char why[256];

	if (cli_sb_words(dev, why, sizeof(why)) != CLI_SB_NOT_PCACHE)
		return true;
	say_not_pcache(s, dev);
	return false;
}

/* After a failed open: how to look at a device in use anyway. */
static int busy_hint(const struct fsck_state *s, int rc, bool reading)
{
	char name[160];

	if (!reading)
		return rc;
	if (pcm_dev_busy_holder(s->dev, name, sizeof(name)) > 0)
		cli_hint("'pcache fsck -n -f%s %s' checks it anyway (a cache in use changes while it "
			 "is read)", s->opts, s->dev);
	return rc;
}

static int repair(struct fsck_state *s, struct fsck_args *a)
{
	struct pcm_repair_opts ro = {
		.mode = a->mode == MODE_PREEN ? PCM_REPAIR_SAFE :
			a->mode == MODE_YES ? PCM_REPAIR_ALL : PCM_REPAIR_ASK,
		.verify_data = s->v.verify_data,
		.ask = ask, .report = report, .arg = s, .force = a->force,
		/* a person at the prompt decides; -y and -p need -f for it */
		.keep_seg_num = a->mode != MODE_ASK && !a->force,
		.salvage = a->salvage,
	};
	struct pcm_repair_plan *plan = NULL;
	struct pcm_dev *dev;
	int rc = cli_open_dev(s->dev, a->dry_run ? PCM_DEV_RDONLY | (a->force ? 0 : PCM_DEV_EXCL) :
			      PCM_DEV_RDWR | PCM_DEV_EXCL, &dev);

	s->dry_run = a->dry_run;
	s->repairing = true;
	if (rc)
		return busy_hint(s, rc, a->dry_run);
	if (!is_pcache(s, dev) || (rc = cli_backing_fits(&s->v.backing, s->dev, dev))) {
		pcm_dev_close(dev);
		return EXIT_OPERATIONAL;
	}
	rc = pcm_repair_plan(dev, &ro, &plan);
	if (rc) {
		cli_err(s->dev, "repair planning failed: %s", strerror(-rc));
		pcm_dev_close(dev);
		return EXIT_OPERATIONAL;
	}
	if (plan->before.not_pcache) {
		say_not_pcache(s, dev);
		rc = EXIT_OPERATIONAL;
	} else if (plan->nact && badblocks_refuse(s, a, dev, plan)) {
		rc = EXIT_OPERATIONAL;
	} else if (plan->nact && !a->dry_run) {
		rc = apply(s, a, dev, plan);
	}
	if (!rc) {
		if (cli.json)
			summary_json(s, &plan->before, plan);
		else
			plan_text(s, plan);
		if (a->repair_word && a->mode == MODE_PREEN && plan->after.problems && !cli.json)
			printf("%s: %s need%s a person: run 'pcache fsck -y%s %s', or 'pcache fsck "
			       "--repair%s %s' on a terminal to be asked\n", s->dev,
			       CLI_COUNT(plan->after.problems, "problem", "problems"),
			       plan->after.problems == 1 ? "s" : "", s->opts, s->dev, s->opts, s->dev);
		/* a dry run fixed nothing: what it found is still there */
		rc = a->dry_run ? (plan->before.problems ? EXIT_UNCORRECTED : EXIT_OK) :
		     (plan->nact ? EXIT_FIXED : 0) |
		     (plan->after.problems ? EXIT_UNCORRECTED : 0) |
		     (s->declined ? EXIT_CANCELLED : 0);
	}
	pcm_repair_plan_free(plan);
	pcm_dev_close(dev);
	return rc;
}

static int set_mode(struct fsck_args *a, enum fsck_mode m)
{
	if (a->mode_set && a->mode != m)
		return cli_usage_error("-n, -p, -y and --repair exclude each other");
	a->mode = m;
	a->mode_set = true;
	return -2;
}

enum { OPT_DRY_RUN = 256, OPT_UNDO, OPT_REPAIR, OPT_SALVAGE };

static int parse_opts(int argc, char **argv, struct fsck_args *a, struct cli_verdict_opts *v)
{
	static const struct option longopts[] = {
		{ "no", no_argument, NULL, 'n' },
		{ "preen", no_argument, NULL, 'p' },
		{ "yes", no_argument, NULL, 'y' },
		{ "repair", no_argument, NULL, OPT_REPAIR },
		{ "force", no_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "undo", required_argument, NULL, OPT_UNDO },
		{ "salvage", no_argument, NULL, OPT_SALVAGE },
		VERDICT_LONGOPTS, REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 }
	};
	int c, rc = -2;

	v->verify_data = true;   /* the kernel checks every key's data at load */
	while (rc == -2 && (c = getopt_long(argc, argv, "npyfuqvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': rc = set_mode(a, MODE_CHECK); break;
		case 'p': rc = set_mode(a, MODE_PREEN); break;
		case 'y': rc = set_mode(a, MODE_YES); break;
		case OPT_REPAIR: a->repair_word = true; break;
		case 'f': a->force = true; break;
		case OPT_DRY_RUN: a->dry_run = true; break;
		case OPT_UNDO: a->undo = optarg; break;
		case OPT_SALVAGE: a->salvage = true; break;
		default:
			rc = cli_verdict_opt(v, c, optarg);
			if (rc != -1)
				break;
			rc = cmd_common_opt(c, usage_text);
			if (rc != -2)
				return rc < 0 ? EXIT_USAGE : rc;
		}
	}
	return rc;
}

/* The options that change what is checked, as typed, for hints (" -f --backing X"). */
static void hint_opts(struct fsck_state *s, const struct fsck_args *a)
{
	char b[256];

	snprintf(s->opts, sizeof(s->opts), "%s%s%s", a->force ? " -f" : "",
		 s->v.verify_data ? "" : " --no-verify-data",
		 cli_backing_hint(&s->v.backing, b, sizeof(b)));
}

static int parse(int argc, char **argv, struct fsck_args *a, struct fsck_state *s)
{
	bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	int rc = parse_opts(argc, argv, a, &s->v);

	if (rc != -2)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error(optind >= argc ? "missing DEV" : "too many arguments");
	if (a->repair_word && a->mode_set)
		return cli_usage_error("-n, -p, -y and --repair exclude each other");
	if (a->repair_word)
		a->mode = tty ? MODE_ASK : MODE_PREEN;
	else if (!a->mode_set)
		a->mode = tty ? MODE_ASK : MODE_CHECK;
	/* a repair decides which keys to keep by their data: it always checks it */
	if (a->mode != MODE_CHECK && !s->v.verify_data)
		return cli_usage_error("--no-verify-data goes with -n: a repair always checks the "
				       "data checksums the kernel checks");
	if (a->mode == MODE_CHECK && (a->undo || a->dry_run || a->salvage))
		return cli_usage_error("--undo, --dry-run and --salvage go with -p, -y, --repair "
				       "or the interactive mode");
	s->dev = argv[optind];
	hint_opts(s, a);
	return cli_backing_resolve(&s->v.backing, s->dev);
}

static int check_only(struct fsck_state *s, struct fsck_args *a)
{
	struct pcm_check_result r;
	struct pcm_dev *dev;
	/* exclusive unless -f: a cache in use changes while it is read */
	int rc = cli_open_dev(s->dev, PCM_DEV_RDONLY | (a->force ? 0 : PCM_DEV_EXCL), &dev);

	if (rc)
		return busy_hint(s, rc, true);
	if ((rc = cli_backing_fits(&s->v.backing, s->dev, dev))) {
		pcm_dev_close(dev);
		return rc;
	}
	a->o.verify_data = s->v.verify_data;
	a->o.report = report;
	a->o.progress = progress;
	a->o.arg = s;
	rc = pcm_check_run(dev, &a->o, &r);
	cli_progress_done();
	if (!rc && r.not_pcache)
		say_not_pcache(s, dev);
	pcm_dev_close(dev);
	if (rc) {
		cli_err(s->dev, "check failed: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (r.not_pcache)
		return EXIT_OPERATIONAL;
	if (cli.json)
		summary_json(s, &r, NULL);
	else
		summary_text(s, &r);
	return r.problems ? EXIT_UNCORRECTED : EXIT_OK;
}

int cmd_fsck(int argc, char **argv)
{
	struct fsck_state s = { 0 };
	struct fsck_args a = { 0 };
	int rc = parse(argc, argv, &a, &s);

	if (rc != -2)
		return rc;
	if (cli.json)
		s.problems = json_object_new_array();
	rc = a.mode == MODE_CHECK ? check_only(&s, &a) : repair(&s, &a);
	json_object_put(s.problems);
	return rc;
}
