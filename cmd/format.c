/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache format: write the layout the kernel writes on first load. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache format [--data-crc] [--gc-percent N] [--force [--discard-dirty]]\n"
	"                     [--dry-run] [-y] [-q] [-v] DEV\n\n"
	"Writes a dm-pcache layout that the kernel loads as an existing, empty cache.\n\n"
	"  --data-crc         keys carry a CRC of their data (table option data_crc true)\n"
	"  --gc-percent N     GC threshold in percent, 0-90 (default 70)\n"
	"  --force            overwrite a device that already holds a pcache cache\n"
	"  --discard-dirty    with --force: also when it holds dirty data (it is lost)\n"
	"  --dry-run          print what would be written; write nothing\n"
	"  -y, --yes          do not ask for confirmation\n"
	"  -q, --quiet        print nothing but errors\n"
	"  -v, --verbose      more detail\n";

struct format_args {
	struct pcm_format_opts o;
	bool force, discard_dirty, dry_run, yes;
	const char *dev;
};

static int parse(int argc, char **argv, struct format_args *a)
{
	static const struct option longopts[] = {
		{ "data-crc", no_argument, NULL, 'c' },
		{ "gc-percent", required_argument, NULL, 'g' },
		{ "force", no_argument, NULL, 'f' },
		{ "discard-dirty", no_argument, NULL, 'D' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		COMMON_LONGOPTS,
		{ 0 }
	};
	uint64_t v;
	int c, rc;

	a->o.gc_percent = PCM_GC_PERCENT_DEFAULT;
	while ((c = getopt_long(argc, argv, "+fnyqvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': a->o.data_crc = true; break;
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
	char sz[32];
	FILE *f = stdout;

	fprintf(f, "%s %s: %" PRIu64 " bytes (%s), %" PRIu32 " segments of 16 MiB\n",
		a->dry_run ? "would format" : "formatting", a->dev, p->dev_size,
		cli_fmt_size(p->dev_size, sz, sizeof(sz)), p->seg_num);
	fprintf(f, "  superblock  @4096   seg_num %" PRIu32 ", crc 0x%08" PRIx32 "\n",
		p->seg_num, p->sb.crc);
	fprintf(f, "  cache_info  @12288  slot 1, seq 1, n_segs %" PRIu32
		", flags 0x%" PRIx32 " (data_crc %s, gc_percent %u, writeback)\n",
		p->ci.n_segs, p->ci.flags, a->o.data_crc ? "on" : "off", a->o.gc_percent);
	fprintf(f, "  key_tail    @16384  slot 0, seq 1, 0:0\n");
	fprintf(f, "  dirty_tail  @16416  slot 0, seq 1, 0:0\n");
	fprintf(f, "  segments    @20480  %" PRIu32 " x (segment info, gen 0, empty kset)\n",
		p->seg_num);
	fprintf(f, "  zeroed      [8192, 20480) and the first 12 KiB of every segment\n");
	if (a->o.data_crc && cli.verbose)
		fprintf(f, "  table line  0 <sectors> pcache %s <backing> 2 data_crc true\n", a->dev);
}

static void on_progress(uint64_t done, uint64_t total, void *arg)
{
	(void)arg;
	cli_progress("formatting segments", done, total);
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
	if (!a->force) {
		cli_err(a->dev, "already holds a pcache cache: refusing to overwrite it");
		cli_hint("add --force to overwrite (dirty data is kept safe unless --discard-dirty)");
		return EXIT_OPERATIONAL;
	}
	if (a->discard_dirty)
		return EXIT_OK;
	if (pcm_cache_open(dev, &c, NULL) == 0 && pcm_replay_run(c, NULL, &r) == 0 &&
	    !r->failed) {
		uint64_t dirty = r->dirty_bytes;

		pcm_replay_free(r);
		pcm_cache_close(c);
		if (!dirty)
			return EXIT_OK;
		cli_err(a->dev, "holds %" PRIu64 " bytes of dirty data not yet on the backing device",
			dirty);
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

static bool confirm(const struct format_args *a)
{
	char line[16];

	if (a->yes || !isatty(STDIN_FILENO))
		return true;
	fprintf(stderr, "Overwrite the pcache cache on %s? [y/N] ", a->dev);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
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
		cli_err(a.dev, "device too small: %" PRIu64 " bytes, dm-pcache needs at least 512 MiB",
			pcm_dev_size(dev));
		rc = EXIT_OPERATIONAL;
		goto out;
	} else if (rc) {
		cli_err(a.dev, "device too large: more than %u segments of 16 MiB", PCM_SEGS_MAX);
		rc = EXIT_OPERATIONAL;
		goto out;
	}
	rc = check_existing(&a, dev);
	if (rc)
		goto out;
	if (!cli.quiet || a.dry_run)
		describe(&a, &plan);
	if (a.dry_run)
		goto out;
	if (a.force && !confirm(&a)) {
		cli_err(a.dev, "cancelled: nothing written");
		rc = EXIT_CANCELLED;
		goto out;
	}
	rc = pcm_format_write(dev, &plan, on_progress, NULL);
	cli_progress_done();
	if (rc) {
		cli_err(a.dev, "format failed: %s", strerror(-rc));
		rc = EXIT_OPERATIONAL;
	} else if (!cli.quiet) {
		printf("done: %s holds an empty pcache cache\n", a.dev);
	}
out:
	pcm_dev_close(dev);
	return rc;
}
