/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache info: the kernel's status line fields and a health verdict, offline. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "verdict.h"

static const char usage_text[] =
	"usage: pcache info [--no-verify-data] [--backing PATH | --backing-size SIZE]\n"
	"                   [--json [-u]] [-q] [-v] DEV\n\n"
	"Shows what 'dmsetup status' would print after the kernel loaded DEV, plus the\n"
	"device, data_crc, cache mode, live keys, dirty and clean bytes and a health verdict\n"
	"(the one 'pcache fsck -n' gives, with the same options).\n\n"
	"  --no-verify-data   skip the data checksums the kernel checks at load\n"
	"  --backing PATH     the backing device: every key is checked against its size\n"
	"  --backing-size SIZE  the same with the size alone\n"
	"  --json             one JSON record (in an array)\n"
	"  -u, --human        with --json: sizes and flags for people\n"
	"  -q, --quiet        print nothing but errors\n"
	"  -v, --verbose      more detail\n";

struct info {
	const struct pcm_cache *c;
	const struct pcm_check_result *r;
	const char *health;
	char detail[400];
	const char *verdict;        /* the sentence fsck -n ends with */
	char vbuf[200];
	const char *path;
	struct cli_verdict_opts v;
};

/* Health: "ok", or the kernel's verdict and the worst problem fsck would report. */
static void judge(struct info *in)
{
	const struct pcm_check_result *r = in->r;
	const struct pcm_problem_def *d = pcm_problem_def(r->worst);

	char b[256];

	in->detail[0] = 0;
	in->verdict = cli_verdict_text(r, r->verdict, &in->v.backing, in->vbuf, sizeof(in->vbuf));
	if (!r->problems) {
		in->health = "ok";
		return;
	}
	in->health = r->verdict == PCM_VERDICT_REFUSES ? "refused" :
		     r->verdict == PCM_VERDICT_RESETS ? "reset" :
		     r->verdict == PCM_VERDICT_CRASHES ? "crashes" : "damaged";
	snprintf(in->detail, sizeof(in->detail), "%s, worst %s (%s); run 'pcache fsck -n%s%s %s'",
		 CLI_COUNT(r->problems, "problem", "problems"), d->name, d->summary,
		 in->v.verify_data ? "" : " --no-verify-data",
		 cli_backing_hint(&in->v.backing, b, sizeof(b)), in->path);
}

static void status_line(const struct info *in, char *buf, size_t len)
{
	const struct pcm_cache *c = in->c;

	snprintf(buf, len, "%x %u %u %u %u %x %u:%u %u:%u %u:%u", c->sb.flags, c->seg_num,
		 c->seg_num, in->r->segs_used, pcm_ci_gc_percent(c->ci.flags), c->ci.flags,
		 in->r->key_head.cseg, in->r->key_head.seg_off, c->dirty_tail.pos.cseg,
		 c->dirty_tail.pos.seg_off, c->key_tail.pos.cseg, c->key_tail.pos.seg_off);
}

static void print_text(const struct info *in, const char *path)
{
	const struct pcm_cache *c = in->c;
	const struct pcm_check_result *r = in->r;
	char st[160];

	printf("device:       %s\n", path);
	printf("device_size:  %s\n", CLI_BYTES(c->dev_size));
	printf("sb_flags:     %x\n", c->sb.flags);
	printf("seg_total:    %u\n", c->seg_num);
	printf("cache_segs:   %u\n", c->seg_num);
	printf("segs_used:    %u\n", r->segs_used);
	printf("gc_percent:   %u\n", pcm_ci_gc_percent(c->ci.flags));
	printf("cache_flags:  %x\n", c->ci.flags);
	printf("key_head:     %u:%u\n", r->key_head.cseg, r->key_head.seg_off);
	printf("dirty_tail:   %u:%u\n", c->dirty_tail.pos.cseg, c->dirty_tail.pos.seg_off);
	printf("key_tail:     %u:%u\n", c->key_tail.pos.cseg, c->key_tail.pos.seg_off);
	printf("data_crc:     %s\n", c->data_crc ? "true" : "false");
	printf("cache_mode:   %s\n", pcm_cache_mode_name(pcm_ci_cache_mode(c->ci.flags)));
	printf("live_keys:    %" PRIu64 "\n", r->live_extents);
	printf("dirty_bytes:  %s\n", CLI_BYTES(r->dirty_bytes));
	printf("clean_bytes:  %s\n", CLI_BYTES(r->clean_bytes));
	printf("health:       %s%s%s\n", in->health, in->detail[0] ? ": " : "", in->detail);
	printf("verdict:      %s\n", in->verdict);
	if (cli.verbose) {
		status_line(in, st, sizeof(st));
		printf("status_line:  %s\n", st);
		printf("n_segs:       %u\n", c->n_segs);
		printf("ksets:        %" PRIu64 " (+%" PRIu64 " LAST)\n", r->ksets, r->last_ksets);
		printf("keys:         %" PRIu64 " (%" PRIu64 " stale)\n", r->keys, r->stale_keys);
	}
}

static void print_json(const struct info *in, const char *path)
{
	const struct pcm_cache *c = in->c;
	const struct pcm_check_result *r = in->r;
	json_object *arr = json_object_new_array(), *o = json_object_new_object();
	char st[160];

	status_line(in, st, sizeof(st));
	json_object_object_add(o, "device", json_object_new_string(path));
	json_object_object_add(o, "device_size", cli_json_size(c->dev_size));
	json_object_object_add(o, "sb_flags", cli_json_hex(c->sb.flags, cli.human));
	json_object_object_add(o, "seg_total", cli_json_u64(c->seg_num));
	json_object_object_add(o, "cache_segs", cli_json_u64(c->seg_num));
	json_object_object_add(o, "segs_used", cli_json_u64(r->segs_used));
	json_object_object_add(o, "gc_percent", cli_json_u64(pcm_ci_gc_percent(c->ci.flags)));
	json_object_object_add(o, "cache_flags", cli_json_hex(c->ci.flags, cli.human));
	json_object_object_add(o, "key_head", cli_json_pos(r->key_head));
	json_object_object_add(o, "dirty_tail", cli_json_pos(c->dirty_tail.pos));
	json_object_object_add(o, "key_tail", cli_json_pos(c->key_tail.pos));
	json_object_object_add(o, "data_crc", json_object_new_boolean(c->data_crc));
	json_object_object_add(o, "cache_mode",
			       json_object_new_string(pcm_cache_mode_name(pcm_ci_cache_mode(c->ci.flags))));
	json_object_object_add(o, "n_segs", cli_json_u64(c->n_segs));
	json_object_object_add(o, "live_keys", cli_json_u64(r->live_extents));
	json_object_object_add(o, "dirty_bytes", cli_json_size(r->dirty_bytes));
	json_object_object_add(o, "clean_bytes", cli_json_size(r->clean_bytes));
	json_object_object_add(o, "ksets", cli_json_u64(r->ksets));
	json_object_object_add(o, "keys", cli_json_u64(r->keys));
	json_object_object_add(o, "stale_keys", cli_json_u64(r->stale_keys));
	json_object_object_add(o, "health", json_object_new_string(in->health));
	json_object_object_add(o, "health_detail", json_object_new_string(in->detail));
	json_object_object_add(o, "verdict", json_object_new_string(in->verdict));
	json_object_object_add(o, "data_verified", json_object_new_boolean(r->data_verified));
	json_object_object_add(o, "max_key_end", cli_json_size(r->max_key_end));
	json_object_object_add(o, "backing_size", in->v.backing.known ?
			       cli_json_size(in->v.backing.size) : NULL);
	json_object_object_add(o, "status_line", json_object_new_string(st));
	json_object_array_add(arr, o);
	cli_json_print(arr);
	json_object_put(arr);
}

static int parse(int argc, char **argv, struct info *in)
{
	static const struct option longopts[] = {
		VERDICT_LONGOPTS, REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 }
	};
	int opt, rc = -2;

	in->v.verify_data = true;   /* the kernel checks every key's data at load */
	while (rc == -2 && (opt = getopt_long(argc, argv, "uqvVh", longopts, NULL)) != -1) {
		rc = cli_verdict_opt(&in->v, opt, optarg);
		if (rc == -1) {
			rc = cmd_common_opt(opt, usage_text);
			if (rc != -2)
				return rc < 0 ? EXIT_USAGE : rc;
		}
	}
	if (rc != -2)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error(optind >= argc ? "missing DEV" : "too many arguments");
	in->path = argv[optind];
	return cli_backing_resolve(&in->v.backing, in->path);
}

int cmd_info(int argc, char **argv)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_check_result r;
	struct info in = { 0 };
	struct pcm_check_opts o = { 0 };
	int rc = parse(argc, argv, &in);

	if (rc != -2)
		return rc;
	rc = cli_open_cache(in.path, PCM_DEV_RDONLY, &dev, &c);
	if (rc)
		return rc;
	o.verify_data = in.v.verify_data;
	rc = cli_backing_fits(&in.v.backing, in.path, dev);
	if (rc)
		goto out;
	rc = pcm_check_run(dev, &o, &r);
	if (rc) {
		cli_err(in.path, "metadata check failed: %s", strerror(-rc));
		rc = EXIT_OPERATIONAL;
		goto out;
	}
	in.c = c;
	in.r = &r;
	judge(&in);
	if (cli.json)
		print_json(&in, in.path);
	else if (!cli.quiet)
		print_text(&in, in.path);
out:
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return rc;
}
