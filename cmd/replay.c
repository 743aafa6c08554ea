/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache replay: the kernel's load-time replay, offline, and the extent map it yields. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "verdict.h"

static const char usage_text[] =
	"usage: pcache replay [--json [-u]] [--dirty-only] [--no-verify-data]\n"
	"                     [--backing PATH | --backing-size SIZE] [-q] [-v] DEV\n\n"
	"Replays the key log of DEV exactly as the kernel does when it loads the cache, and\n"
	"prints the resulting extent map in logical order, then a summary.  Read-only.\n\n"
	"  --dirty-only       list only extents not yet written back\n"
	"  --no-verify-data   skip the data CRCs the kernel checks at load (the default\n"
	"                     checks them when the cache has data_crc; --verify-data too)\n"
	"  --backing PATH     check key bounds against the size of this backing device\n"
	"  --backing-size SIZE  the same with the size alone\n"
	"  --json             a JSON array: extent objects, then one summary object\n"
	"  -u, --human        with --json: sizes for people\n"
	"  -q, --quiet        print nothing but errors\n"
	"  -v, --verbose      more detail\n";

struct replay_args {
	bool dirty_only;
	struct cli_verdict_opts v;
	const char *dev;
};

struct emit {
	const struct pcm_cache *c;
	const struct replay_args *a;
	struct cli_stream js;
};

static int parse(int argc, char **argv, struct replay_args *a)
{
	static const struct option longopts[] = {
		{ "dirty-only", no_argument, NULL, 'd' },
		VERDICT_LONGOPTS, REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 }
	};
	int opt, rc = -2;

	a->v.verify_data = true;   /* the kernel checks every key's data at load */
	while (rc == -2 && (opt = getopt_long(argc, argv, "uqvVh", longopts, NULL)) != -1) {
		if (opt == 'd') {
			a->dirty_only = true;
			continue;
		}
		rc = cli_verdict_opt(&a->v, opt, optarg);
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
	a->dev = argv[optind];
	return cli_backing_resolve(&a->v.backing, a->dev);
}

static const char *crc_verdict(const struct emit *em, const struct pcm_extent *e)
{
	if (e->flags & PCM_EXT_CRC_BAD)
		return "bad";
	if (e->flags & PCM_EXT_CRC_OK)
		return "ok";
	return em->c->data_crc ? "unchecked" : "off";
}

static const char *state_str(const struct pcm_extent *e)
{
	bool dirty = e->flags & PCM_EXT_DIRTY;

	if (e->flags & PCM_EXT_EMPTY)
		return dirty ? "dirty,empty" : "clean,empty";
	return dirty ? "dirty" : "clean";
}

static void extent_json(struct emit *em, const struct pcm_extent *e)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("extent"));
	json_object_object_add(o, "offset", cli_json_u64(e->off));
	json_object_object_add(o, "length", cli_json_size(e->len));
	json_object_object_add(o, "cache_seg", cli_json_u64(e->cseg));
	json_object_object_add(o, "seg_off", cli_json_u64(e->seg_off));
	json_object_object_add(o, "dirty", json_object_new_boolean(e->flags & PCM_EXT_DIRTY));
	json_object_object_add(o, "data_crc", json_object_new_string(crc_verdict(em, e)));
	if (e->flags & PCM_EXT_EMPTY)
		json_object_object_add(o, "empty", json_object_new_boolean(true));
	cli_stream_add(&em->js, o);
}

static int on_extent(const struct pcm_extent *e, void *arg)
{
	struct emit *em = arg;

	if (em->a->dirty_only && !(e->flags & PCM_EXT_DIRTY))
		return 0;
	if (cli.json)
		extent_json(em, e);
	else if (!cli.quiet)
		printf("%16" PRIu64 " %10" PRIu32 " %9" PRIu32 " %9" PRIu32 "  %-11s %s\n",
		       e->off, e->len, e->cseg, e->seg_off, state_str(e), crc_verdict(em, e));
	return 0;
}

static void summary_text(const struct pcm_cache *c, const struct pcm_replay *r)
{
	printf("live keys %" PRIu64 ", dirty %s, clean %s, segments used %" PRIu32
	       ", key_head %" PRIu32 ":%" PRIu32 ", dirty_tail %" PRIu32 ":%" PRIu32
	       ", key_tail %" PRIu32 ":%" PRIu32 "\n",
	       r->live_extents, CLI_BYTES(r->dirty_bytes), CLI_BYTES(r->clean_bytes), r->segs_used,
	       r->key_head.cseg, r->key_head.seg_off, c->dirty_tail.pos.cseg,
	       c->dirty_tail.pos.seg_off, c->key_tail.pos.cseg, c->key_tail.pos.seg_off);
	if (cli.verbose)
		printf("ksets %" PRIu64 " (%" PRIu64 " LAST), keys %" PRIu64 " (%" PRIu64
		       " stale), log end: %s\n", r->ksets, r->last_ksets, r->keys,
		       r->stale_keys, pcm_walk_stop_str(r->stop));
}

static json_object *summary_json(const struct pcm_cache *c, const struct pcm_replay *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("summary"));
	json_object_object_add(o, "live_keys", cli_json_u64(r->live_extents));
	json_object_object_add(o, "dirty_bytes", cli_json_size(r->dirty_bytes));
	json_object_object_add(o, "clean_bytes", cli_json_size(r->clean_bytes));
	json_object_object_add(o, "segs_used", cli_json_u64(r->segs_used));
	json_object_object_add(o, "key_head", cli_json_pos(r->key_head));
	json_object_object_add(o, "dirty_tail", cli_json_pos(c->dirty_tail.pos));
	json_object_object_add(o, "key_tail", cli_json_pos(c->key_tail.pos));
	json_object_object_add(o, "ksets", cli_json_u64(r->ksets));
	json_object_object_add(o, "keys", cli_json_u64(r->keys));
	json_object_object_add(o, "stale_keys", cli_json_u64(r->stale_keys));
	json_object_object_add(o, "log_end", json_object_new_string(pcm_walk_stop_str(r->stop)));
	return o;
}

static void print_map(struct emit *em, const struct pcm_replay *r)
{
	if (cli.json)
		cli_stream_begin(&em->js, stdout);
	else if (!cli.quiet)
		printf("%16s %10s %9s %9s  %-11s %s\n", "offset", "length", "cache_seg",
		       "seg_off", "state", "data_crc");
	pcm_index_foreach(r->idx, on_extent, em);
	if (cli.json) {
		cli_stream_add(&em->js, summary_json(em->c, r));
		cli_stream_end(&em->js);
	} else if (!cli.quiet) {
		summary_text(em->c, r);
	}
}

/* The fsck command that shows the details, with the options that change its checks. */
static void fsck_hint(const struct replay_args *a)
{
	char b[256];

	cli_hint("run 'pcache fsck -n%s%s %s' for details", a->v.verify_data ? "" : " --no-verify-data",
		 cli_backing_hint(&a->v.backing, b, sizeof(b)), a->dev);
}

/* The kernel would not load this cache: say why and where. */
static int refused(const struct replay_args *a, const struct pcm_replay *r)
{
	const char *dev = a->dev;
	const char *why = pcm_replay_error_str(r);

	if (r->dirty_chain_stop < PCM_FAIL_HOPS && r->stop < PCM_FAIL_HOPS && r->bad_key)
		cli_err(dev, "the kernel would refuse this cache: %s (key %u of the kset at %"
			PRIu32 ":%" PRIu32 ")", why, r->bad_key_index, r->bad_key_kset.cseg,
			r->bad_key_kset.seg_off);
	else if (r->dirty_chain_stop < PCM_FAIL_HOPS)
		cli_err(dev, "the kernel would refuse this cache: %s (at %" PRIu32 ":%" PRIu32 ")",
			why, r->key_head.cseg, r->key_head.seg_off);
	else
		cli_err(dev, "the kernel would refuse this cache: %s (walking from dirty_tail)",
			why);
	fsck_hint(a);
	return EXIT_UNCORRECTED;
}

/* The kernel loads it, but the log is damaged: warn and return 4. */
static int warnings(const struct replay_args *a, const struct pcm_cache *c,
		    const struct pcm_replay *r)
{
	const char *dev = a->dev;
	int rc = EXIT_OK;

	if (r->stop != PCM_STOP_TERMINATOR) {
		cli_err(dev, "warning: the log ends early at %" PRIu32 ":%" PRIu32 ": %s",
			r->key_head.cseg, r->key_head.seg_off, pcm_walk_stop_str(r->stop));
		rc = EXIT_UNCORRECTED;
	}
	if (!r->dirty_tail_on_log) {
		cli_err(dev, "warning: dirty_tail %" PRIu32 ":%" PRIu32 " is not on the log "
			"from key_tail %" PRIu32 ":%" PRIu32, c->dirty_tail.pos.cseg,
			c->dirty_tail.pos.seg_off, c->key_tail.pos.cseg, c->key_tail.pos.seg_off);
		rc = EXIT_UNCORRECTED;
	}
	if (rc)
		fsck_hint(a);
	return rc;
}

static int run(const struct replay_args *a, struct pcm_dev *dev, struct pcm_cache *c)
{
	struct pcm_replay_opts o = { .verify_data = a->v.verify_data };
	struct emit em = { .c = c, .a = a };
	struct pcm_replay *r;
	int rc = cli_backing_fits(&a->v.backing, a->dev, dev);

	if (rc)
		return rc;
	c->backing_size = a->v.backing.size;   /* 0 when not known: bounds not checked */
	rc = pcm_replay_run(c, &o, &r);
	if (rc) {
		cli_err(a->dev, "replay failed: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (r->failed) {
		rc = refused(a, r);
	} else {
		print_map(&em, r);
		fflush(stdout);
		rc = warnings(a, c, r);
	}
	pcm_replay_free(r);
	return rc;
}

int cmd_replay(int argc, char **argv)
{
	struct replay_args a = { 0 };
	struct pcm_dev *dev;
	struct pcm_cache *c;
	int rc = parse(argc, argv, &a);

	if (rc != -2)
		return rc;
	rc = cli_open_cache(a.dev, PCM_DEV_RDONLY, &dev, &c);
	if (rc)
		return rc;
	rc = run(&a, dev, c);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return rc;
}
