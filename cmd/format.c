/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache format: write the layout the kernel writes on first load. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "probe.h"

static const char usage_text[] =
	"usage: pcache format [--data-crc | --no-data-crc] [--gc-percent N]\n"
	"                     [--force [--discard-dirty]] [--dry-run] [--json [-u]] [-y] [-q] [-v]\n"
	"                     DEV\n\n"
	"Writes a dm-pcache layout that the kernel loads as an existing, empty cache.\n"
	"A device holding a pcache cache, or anything else libblkid recognises (a file\n"
	"system, swap, an LVM or RAID member, a partition table), is refused without --force.\n\n"
	"  --data-crc         keys carry a CRC of their data (table option data_crc true)\n"
	"  --no-data-crc      keys carry no data CRC (the default, except that --force over a\n"
	"                     pcache cache keeps the data_crc setting of that cache)\n"
	"  --gc-percent N     GC threshold in percent, 0-90 (default 70)\n"
	"  --force            overwrite a device that already holds a pcache cache or\n"
	"                     another signature (which is then erased)\n"
	"  --discard-dirty    with --force: also when it holds dirty data (it is lost)\n"
	"  --dry-run          print what would be written; write nothing\n"
	"  --json             the layout as JSON (an array of one object) instead of text\n"
	"  -u, --human        with --json: sizes and flags for people\n"
	"  -y, --yes          do not ask for confirmation\n"
	"  -q, --quiet        print nothing but errors\n"
	"  -v, --verbose      more detail\n";

/* Where the data_crc setting comes from. */
enum crc_from { CRC_DEFAULT, CRC_OPTION, CRC_KEPT };

struct format_args {
	struct pcm_format_opts o;
	bool force, discard_dirty, dry_run, yes;
	bool crc_given;                /* --data-crc or --no-data-crc */
	const char *dev;
	/* found on the device */
	bool had_cache;                /* the pcache magic */
	int old_crc;                   /* its data_crc: 0, 1, -1 when cache_info cannot be read */
	enum crc_from crc_from;
	struct sig *sigs;              /* what libblkid recognises */
	size_t n_sigs;
};

static int parse(int argc, char **argv, struct format_args *a)
{
	static const struct option longopts[] = {
		{ "data-crc", no_argument, NULL, 'c' },
		{ "no-data-crc", no_argument, NULL, 'C' },
		{ "gc-percent", required_argument, NULL, 'g' },
		{ "force", no_argument, NULL, 'f' },
		{ "discard-dirty", no_argument, NULL, 'D' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		REPORT_LONGOPTS,
		COMMON_LONGOPTS,
		{ 0 }
	};
	uint64_t v;
	int c, rc;

	a->o.gc_percent = PCM_GC_PERCENT_DEFAULT;
	while ((c = getopt_long(argc, argv, "fnyuqvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
		case 'C':
			a->o.data_crc = c == 'c';
			a->crc_given = true;
			break;
		case 'g':
			if (cli_parse_uint(optarg, PCM_GC_PERCENT_MAX, &v))
				return cli_usage_error("--gc-percent: '%s' is not a number from 0 to 90",
						       optarg);
			a->o.gc_percent = (unsigned)v;
			break;
		case 'f': a->force = true; break;
		case 'D': a->discard_dirty = true; break;
		case 'n': a->dry_run = true; break;
		case 'y': a->yes = true; break;
		default:
			rc = cmd_common_opt(c, usage_text);
			if (rc != -2)
				return rc < 0 ? EXIT_USAGE : rc;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(optind >= argc ? "missing DEV" : "too many arguments");
	if (a->discard_dirty && !a->force)
		return cli_usage_error("--discard-dirty needs --force");
	a->dev = argv[optind];
	return -2;
}

static void describe(const struct format_args *a, const struct pcm_format_plan *p)
{
	char what[256];
	FILE *f = stdout;

	fprintf(f, "%s %s: %s, %" PRIu32 " segments of 16 MiB\n",
		a->dry_run ? "would format" : "formatting", a->dev, CLI_BYTES(p->dev_size), p->seg_num);
	fprintf(f, "  superblock  @4096   seg_num %" PRIu32 ", crc 0x%08" PRIx32 "\n",
		p->seg_num, p->sb.crc);
	fprintf(f, "  cache_info  @12288  slot 1, seq 1, n_segs %" PRIu32
		", flags 0x%" PRIx32 " (data_crc %s, gc_percent %u, writeback)\n",
		p->ci.n_segs, p->ci.flags, a->o.data_crc ? "on" : "off", a->o.gc_percent);
	fprintf(f, "  key_tail    @16384  slot 0, seq 1, 0:0\n");
	fprintf(f, "  dirty_tail  @16416  slot 0, seq 1, 0:0\n");
	fprintf(f, "  segments    @20480  %" PRIu32 " x (segment info, gen 0, empty kset)\n",
		p->seg_num);
	fprintf(f, "  zeroed      [0, 4096), [8192, 20480) and the first 12 KiB of every segment\n");
	for (size_t i = 0; i < a->n_sigs; i++)
		fprintf(f, "  erased      %s, magic at %" PRIu64 "\n",
			sig_str(&a->sigs[i], what, sizeof(what)), a->sigs[i].offset);
	if (a->o.data_crc && cli.verbose)
		fprintf(f, "  table line  0 <sectors> pcache %s <backing> 2 data_crc true\n", a->dev);
}

/* ---- --json ---- */

static json_object *record_json(const char *name, uint64_t off, uint64_t len, int slot, int seq)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "record", json_object_new_string(name));
	json_object_object_add(o, "offset", cli_json_u64(off));
	json_object_object_add(o, "length", cli_json_size(len));
	json_object_object_add(o, "slot", slot < 0 ? NULL : json_object_new_int(slot));
	json_object_object_add(o, "seq", seq < 0 ? NULL : json_object_new_int(seq));
	return o;
}

static json_object *range_json(uint64_t off, uint64_t len)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "offset", cli_json_u64(off));
	json_object_object_add(o, "length", cli_json_size(len));
	return o;
}

static json_object *str_or_null(const char *s)
{
	return *s ? json_object_new_string(s) : NULL;
}

static json_object *layout_json(const struct format_args *a, const struct pcm_format_plan *p)
{
	static const char *const from[] = { "default", "option", "existing_cache" };
	json_object *o = json_object_new_object(), *recs = json_object_new_array();
	json_object *zeroed = json_object_new_array(), *segs = json_object_new_object();
	json_object *sigs = json_object_new_array();
	struct pcm_pos zero = { 0 };

	json_object_object_add(o, "device", json_object_new_string(a->dev));
	json_object_object_add(o, "dry_run", json_object_new_boolean(a->dry_run));
	json_object_object_add(o, "device_size", cli_json_size(p->dev_size));
	json_object_object_add(o, "seg_total", json_object_new_int64(p->seg_num));
	json_object_object_add(o, "n_segs", json_object_new_int64(p->ci.n_segs));
	json_object_object_add(o, "data_crc", json_object_new_boolean(a->o.data_crc));
	json_object_object_add(o, "data_crc_from", json_object_new_string(from[a->crc_from]));
	json_object_object_add(o, "gc_percent", json_object_new_int(a->o.gc_percent));
	json_object_object_add(o, "cache_mode", json_object_new_string(
		pcm_cache_mode_name(pcm_ci_cache_mode(p->ci.flags))));
	json_object_object_add(o, "cache_flags", cli_json_hex(p->ci.flags, cli.human));
	json_object_object_add(o, "sb_crc", cli_json_hex(p->sb.crc, cli.human));
	json_object_object_add(o, "key_head", cli_json_pos(zero));
	json_object_object_add(o, "dirty_tail", cli_json_pos(zero));
	json_object_object_add(o, "key_tail", cli_json_pos(zero));
	json_object_array_add(recs, record_json("superblock", PCM_SB_OFF, PCM_SB_SIZE, -1, -1));
	json_object_array_add(recs, record_json("cache_info", PCM_CACHE_INFO_OFF +
						PCM_CACHE_INFO_SLOT, PCM_CACHE_INFO_SIZE, 1, 1));
	json_object_array_add(recs, record_json("key_tail", PCM_KEY_TAIL_OFF, PCM_POS_SIZE, 0, 1));
	json_object_array_add(recs, record_json("dirty_tail", PCM_DIRTY_TAIL_OFF, PCM_POS_SIZE, 0,
						1));
	json_object_object_add(o, "records", recs);
	json_object_object_add(segs, "offset", cli_json_u64(PCM_SEGMENTS_OFF));
	json_object_object_add(segs, "count", json_object_new_int64(p->seg_num));
	json_object_object_add(segs, "size", cli_json_size(PCM_SEG_SIZE));
	json_object_object_add(segs, "gen", json_object_new_int(0));
	json_object_object_add(segs, "zeroed_per_segment",
			       cli_json_size(PCM_DATA_OFF + PCM_KSET_HDR_SIZE));
	json_object_object_add(o, "segments", segs);
	json_object_array_add(zeroed, range_json(0, PCM_SB_OFF));
	json_object_array_add(zeroed, range_json(PCM_CACHE_INFO_OFF,
						 PCM_META_END - PCM_CACHE_INFO_OFF));
	json_object_object_add(o, "zeroed", zeroed);
	for (size_t i = 0; i < a->n_sigs; i++) {
		const struct sig *g = &a->sigs[i];
		json_object *x = json_object_new_object();

		json_object_object_add(x, "signature", json_object_new_string(g->type));
		json_object_object_add(x, "kind", json_object_new_string(g->kind));
		json_object_object_add(x, "uuid", str_or_null(g->uuid));
		json_object_object_add(x, "label", str_or_null(g->label));
		json_object_object_add(x, "offset", cli_json_u64(g->offset));
		json_object_object_add(x, "length", cli_json_size(g->length));
		json_object_array_add(sigs, x);
	}
	json_object_object_add(o, "erased", sigs);
	return o;
}

static void print_json(const struct format_args *a, const struct pcm_format_plan *p)
{
	json_object *arr = json_object_new_array();

	json_object_array_add(arr, layout_json(a, p));
	cli_json_print(arr);
	json_object_put(arr);
}

static void on_progress(uint64_t done, uint64_t total, void *arg)
{
	(void)arg;
	cli_progress("formatting segments", done, total);
}

/* The data_crc of the cache on dev: 0 or 1, -1 when its cache_info cannot be read. */
static int existing_data_crc(struct pcm_dev *dev)
{
	struct pcm_cache_info ci[PCM_REPLICAS];
	struct pcm_rep_state rs;

	if (pcm_read_cache_info(dev, ci, &rs) || rs.pick < 0 ||
	    !(ci[rs.pick].flags & PCM_CI_F_INIT_DONE))
		return -1;
	return !!(ci[rs.pick].flags & PCM_CI_F_DATA_CRC);
}

/* An existing cache is overwritten only with --force, never over dirty data unless told. */
static int check_existing(struct format_args *a, struct pcm_dev *dev)
{
	struct pcm_sb sb;
	struct pcm_cache *c = NULL;
	struct pcm_replay *r = NULL;
	int rc = pcm_read_sb(dev, &sb, NULL);

	if (rc) {
		cli_err(a->dev, "cannot read superblock: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (sb.magic != PCM_SB_MAGIC)
		return EXIT_OK;
	a->had_cache = true;
	if (!a->force) {
		cli_err(a->dev, "already holds a pcache cache: refusing to overwrite it");
		cli_hint("add --force to overwrite (dirty data is kept safe unless --discard-dirty)");
		return EXIT_OPERATIONAL;
	}
	a->old_crc = existing_data_crc(dev);
	if (a->discard_dirty)
		return EXIT_OK;
	if (pcm_cache_open(dev, &c, NULL) == 0 && pcm_replay_run(c, NULL, &r) == 0 &&
	    !r->failed) {
		uint64_t dirty = r->dirty_bytes;

		pcm_replay_free(r);
		pcm_cache_close(c);
		if (!dirty)
			return EXIT_OK;
		cli_err(a->dev, "holds %s of dirty data not yet on the backing device",
			CLI_BYTES(dirty));
		cli_hint("run 'pcache flush %s BACKING' first, or add --discard-dirty to lose it",
			 a->dev);
		return EXIT_OPERATIONAL;
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
	cli_err(a->dev, "holds a pcache cache whose metadata cannot be read: it may hold dirty data");
	cli_hint("run 'pcache fsck %s', or add --discard-dirty to lose whatever it holds", a->dev);
	return EXIT_OPERATIONAL;
}

/*
 * --force over a pcache cache keeps its data_crc unless an option says otherwise: the
 * dm table that loaded it names that setting, and must name the same for the new one.
 */
static void choose_data_crc(struct format_args *a)
{
	const char *on = a->o.data_crc ? "on" : "off";

	a->crc_from = a->crc_given ? CRC_OPTION : CRC_DEFAULT;
	if (!a->had_cache)
		return;
	if (!a->crc_given && a->old_crc >= 0) {
		a->o.data_crc = a->old_crc;
		a->crc_from = CRC_KEPT;
		cli_note("pcache format: %s: data_crc %s (kept from the existing cache; %s turns it "
			 "%s)", a->dev, a->old_crc ? "on" : "off",
			 a->old_crc ? "--no-data-crc" : "--data-crc", a->old_crc ? "off" : "on");
	} else if (!a->crc_given) {
		cli_note("pcache format: %s: data_crc off (the cache_info of the existing cache "
			 "cannot be read; --data-crc turns it on)", a->dev);
	} else if (a->old_crc < 0) {
		cli_note("pcache format: %s: data_crc %s (%s)", a->dev, on,
			 a->o.data_crc ? "--data-crc" : "--no-data-crc");
	} else {
		cli_note("pcache format: %s: data_crc %s (%s; the existing cache has it %s%s)", a->dev,
			 on, a->o.data_crc ? "--data-crc" : "--no-data-crc",
			 a->old_crc ? "on" : "off", a->old_crc == a->o.data_crc ? " too" : "");
	}
}

/* Anything else on the device (a file system, swap, LVM, ...) needs --force too. */
static int check_signatures(struct format_args *a)
{
	char what[1024];
	int rc = sig_probe(a->dev, &a->sigs, &a->n_sigs);

	if (rc && !a->force) {
		cli_err(a->dev, "cannot look for other signatures (libblkid): %s", strerror(-rc));
		cli_hint("add --force to format it without looking");
		return EXIT_OPERATIONAL;
	}
	if (rc) {
		cli_err(a->dev, "warning: cannot look for other signatures (libblkid): %s",
			strerror(-rc));
		return EXIT_OK;
	}
	if (!a->n_sigs || a->force)
		return EXIT_OK;
	cli_err(a->dev, "holds %s: refusing to overwrite it",
		sig_list_str(a->sigs, a->n_sigs, what, sizeof(what)));
	cli_hint("add --force to overwrite %s", a->n_sigs == 1 ? "it" : "them");
	return EXIT_OPERATIONAL;
}

/* What format writes itself: signatures there are not erased over it afterwards. */
static bool in_layout(uint64_t off, uint64_t len, void *arg)
{
	const struct pcm_format_plan *p = arg;
	uint64_t end = off + (len ? len : 1), seg;

	if (off < PCM_SB_OFF + PCM_SB_SIZE && end > PCM_SB_OFF)
		return true;
	if (off < PCM_META_END && end > PCM_CACHE_INFO_OFF)
		return true;
	if (off < PCM_SEGMENTS_OFF)
		return false;
	seg = (off - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE;
	return seg < p->seg_num && off - pcm_seg_base((uint32_t)seg) < PCM_DATA_OFF +
	       PCM_KSET_HDR_SIZE;
}

/* After the layout: what is left of the signatures found lies in unused data areas. */
static int erase_signatures(const struct format_args *a, struct pcm_format_plan *p)
{
	size_t n;
	int rc;

	if (!a->n_sigs)
		return EXIT_OK;
	rc = sig_erase(a->dev, in_layout, p, &n);
	if (rc) {
		cli_err(a->dev, "formatted, but the old signatures cannot be erased: %s",
			strerror(-rc));
		cli_hint("'wipefs -n %s' lists them", a->dev);
		return EXIT_OPERATIONAL;
	}
	if (cli.verbose)
		cli_note("pcache format: %s: %zu old %s erased outside the layout", a->dev, n,
			 n == 1 ? "signature" : "signatures");
	return EXIT_OK;
}

static bool confirm(const struct format_args *a)
{
	char line[16], what[1024] = "everything";

	if (a->yes || !isatty(STDIN_FILENO))
		return true;
	if (a->had_cache || a->n_sigs)
		snprintf(what, sizeof(what), "%s%s", a->had_cache ? "the pcache cache" : "",
			 a->had_cache && a->n_sigs ? " and " : "");
	if (a->n_sigs) {
		size_t used = strlen(what);

		sig_list_str(a->sigs, a->n_sigs, what + used, sizeof(what) - used);
	}
	fprintf(stderr, "Overwrite %s on %s? [y/N] ", what, a->dev);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

static int write_layout(struct format_args *a, struct pcm_dev *dev, struct pcm_format_plan *plan)
{
	int rc;

	if (a->force && !confirm(a)) {
		cli_err(a->dev, "cancelled: nothing written");
		return EXIT_CANCELLED;
	}
	rc = pcm_format_write(dev, plan, on_progress, NULL);
	cli_progress_done();
	if (rc) {
		cli_err(a->dev, "format failed: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	return erase_signatures(a, plan);
}

int cmd_format(int argc, char **argv)
{
	struct format_args a = { 0 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	int rc = parse(argc, argv, &a);

	if (rc != -2)
		return rc;
	rc = cli_open_dev(a.dev, a.dry_run ? PCM_DEV_RDONLY : PCM_DEV_RDWR | PCM_DEV_EXCL, &dev);
	if (rc)
		return rc;
	rc = pcm_format_plan(pcm_dev_size(dev), &a.o, &plan);
	if (rc == -ENOSPC) {
		cli_err(a.dev, "device too small: %s, dm-pcache needs at least 512 MiB",
			cli_fmt_bytes(pcm_dev_size(dev), (char[64]){ 0 }, 64));
		rc = EXIT_OPERATIONAL;
		goto out;
	} else if (rc) {
		cli_err(a.dev, "device too large: more than %u segments of 16 MiB", PCM_SEGS_MAX);
		rc = EXIT_OPERATIONAL;
		goto out;
	}
	rc = check_existing(&a, dev);
	if (!rc)
		rc = check_signatures(&a);
	if (rc)
		goto out;
	choose_data_crc(&a);
	pcm_format_plan(pcm_dev_size(dev), &a.o, &plan);   /* the same, with the final data_crc */
	if (!cli.json && (!cli.quiet || a.dry_run))
		describe(&a, &plan);
	if (!a.dry_run)
		rc = write_layout(&a, dev, &plan);
	if (rc)
		goto out;
	if (cli.json)
		print_json(&a, &plan);
	else if (!cli.quiet && !a.dry_run)
		printf("done: %s holds an empty pcache cache\n", a.dev);
out:
	free(a.sigs);
	pcm_dev_close(dev);
	return rc;
}
