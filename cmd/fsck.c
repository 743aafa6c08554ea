/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache fsck: check a cache offline and explain every problem. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache fsck [-n] [-f] [--verify-data] [--backing PATH] [--json [-u]] [-q] [-v] DEV\n\n"
	"Checks every structure the kernel reads when it loads DEV, and more, and says\n"
	"what the kernel would do about each problem.  Exit: 0 clean, 4 problems found,\n"
	"8 operational error (cannot open, not a pcache device), 16 usage error.\n\n"
	"  -n, --no             check only, open read-only (the default)\n"
	"  -f, --force          check everything even if the cache looks clean (always done)\n"
	"  --verify-data        also verify every key's data checksum (reads all cached data)\n"
	"  --backing PATH       the backing device: key bounds are checked against its size\n"
	"  --json               the report as JSON (an array of one object)\n"
	"  -u, --human          with --json: sizes and offsets for people\n"
	"  -q, --quiet          only the problem lines\n"
	"  -v, --verbose        more detail\n";

#define SHOW_PER_CODE 20u      /* text: problem lines shown per code */
#define KEEP_PER_CODE 1000u    /* JSON: problems kept per code */

struct fsck_state {
	const char *dev;
	uint64_t per_code[PCM_P_COUNT];
	json_object *problems;     /* JSON mode */
	char first[200];           /* the first problem, for the not-a-pcache error */
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
	return o;
}

static void report(const struct pcm_problem *p, void *arg)
{
	struct fsck_state *s = arg;
	const struct pcm_problem_def *d = pcm_problem_def(p->code);
	uint64_t n = ++s->per_code[p->code];

	cli_progress_done();
	if (!s->first[0])
		snprintf(s->first, sizeof(s->first), "%s (%s)", d->summary, p->detail);
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
	printf("%s: %s at %s", pcm_severity_str(d->severity), d->name, p->where);
	if (p->offset != UINT64_MAX)
		printf(" (@%" PRIu64 ")", p->offset);
	printf(": %s: %s; kernel %s\n", d->summary, p->detail, pcm_kernel_reaction_str(d->kernel));
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
	}
	return "unknown";
}

static void summary_text(const struct fsck_state *s, const struct pcm_check_result *r)
{
	static const char *const what[] = {
		"the kernel would load this cache",
		"the kernel would refuse to load this cache",
		"the kernel would re-initialise this cache: all cached data would be lost",
	};

	for (int c = 0; c < PCM_P_COUNT; c++)
		if (s->per_code[c] > SHOW_PER_CODE)
			printf("... %" PRIu64 " more %s problems not shown\n",
			       s->per_code[c] - SHOW_PER_CODE, pcm_problem_def(c)->name);
	if (cli.quiet)
		return;
	if (r->replayed)
		printf("%s: log: %" PRIu64 " ksets, %" PRIu64 " keys, %" PRIu64 " live keys, %"
		       PRIu64 " dirty bytes, %" PRIu64 " clean bytes, key_head %u:%u\n", s->dev,
		       r->ksets, r->keys, r->live_extents, r->dirty_bytes, r->clean_bytes,
		       r->key_head.cseg, r->key_head.seg_off);
	if (!r->problems)
		printf("%s: clean: no problems found; %s\n", s->dev, what[r->verdict]);
	else
		printf("%s: %" PRIu64 " problems (%" PRIu64 " critical, %" PRIu64 " errors, %" PRIu64
		       " warnings, %" PRIu64 " notes); %s\n", s->dev, r->problems,
		       r->by_severity[PCM_SEV_CRITICAL], r->by_severity[PCM_SEV_ERROR],
		       r->by_severity[PCM_SEV_WARNING], r->by_severity[PCM_SEV_NOTE], what[r->verdict]);
	if (r->lost_keys)
		printf("%s: %" PRIu64 " keys in valid ksets lie beyond the end of the log\n", s->dev,
		       r->lost_keys);
}

static void summary_json(struct fsck_state *s, const struct pcm_check_result *r)
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
	json_object_object_add(o, "replayed", json_object_new_boolean(r->replayed));
	json_object_object_add(o, "ksets", cli_json_u64(r->ksets));
	json_object_object_add(o, "keys", cli_json_u64(r->keys));
	json_object_object_add(o, "live_keys", cli_json_u64(r->live_extents));
	json_object_object_add(o, "dirty_bytes", cli_json_size(r->dirty_bytes));
	json_object_object_add(o, "clean_bytes", cli_json_size(r->clean_bytes));
	json_object_object_add(o, "lost_keys", cli_json_u64(r->lost_keys));
	json_object_object_add(o, "key_head", r->replayed ? cli_json_pos(r->key_head) : NULL);
	json_object_object_add(o, "problems", s->problems);
	s->problems = NULL;
	json_object_array_add(arr, o);
	cli_json_print(arr);
	json_object_put(arr);
}

static int backing_size(const char *path, uint64_t *out)
{
	struct pcm_dev *b;
	int rc = cli_open_dev(path, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &b);

	if (rc)
		return rc;
	*out = pcm_dev_size(b);
	pcm_dev_close(b);
	if (!*out) {
		cli_err(path, "backing device is empty");
		return EXIT_OPERATIONAL;
	}
	return EXIT_OK;
}

static int parse(int argc, char **argv, struct pcm_check_opts *o, const char **dev)
{
	static const struct option longopts[] = {
		{ "no", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "verify-data", no_argument, NULL, 'V' },
		{ "backing", required_argument, NULL, 'B' },
		REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 }
	};
	int c, rc;

	while ((c = getopt_long(argc, argv, "+nfuqvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': case 'f': break;
		case 'V': o->verify_data = true; break;
		case 'B':
			rc = backing_size(optarg, &o->backing_size);
			if (rc)
				return rc;
			break;
		default:
			rc = cmd_common_opt(c, usage_text);
			if (rc != -2)
				return rc < 0 ? EXIT_USAGE : rc;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(optind >= argc ? "missing DEV" : "too many arguments");
	*dev = argv[optind];
	return -2;
}

int cmd_fsck(int argc, char **argv)
{
	struct fsck_state s = { 0 };
	struct pcm_check_opts o = { .report = report, .progress = progress, .arg = &s };
	struct pcm_check_result r;
	struct pcm_dev *dev;
	int rc = parse(argc, argv, &o, &s.dev);

	if (rc != -2)
		return rc;
	rc = cli_open_dev(s.dev, PCM_DEV_RDONLY, &dev);
	if (rc)
		return rc;
	if (cli.json)
		s.problems = json_object_new_array();
	rc = pcm_check_run(dev, &o, &r);
	cli_progress_done();
	pcm_dev_close(dev);
	if (rc) {
		json_object_put(s.problems);
		cli_err(s.dev, "check failed: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (r.not_pcache) {
		json_object_put(s.problems);
		cli_err(s.dev, "not a pcache device: %s", s.first);
		return EXIT_OPERATIONAL;
	}
	if (cli.json)
		summary_json(&s, &r);
	else
		summary_text(&s, &r);
	return r.problems ? EXIT_UNCORRECTED : EXIT_OK;
}
