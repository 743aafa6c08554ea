/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache undo: put back what a repair's undo file saved. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache undo [--undo FILE2] [--json] [-q] [-v] FILE DEV\n\n"
	"Writes back, newest first, every byte range that a repair saved in FILE\n"
	"(pcache fsck --undo FILE), so DEV is again what it was before the repair.\n"
	"FILE is bound to the device: its size and superblock must match, and every\n"
	"saved range must still hold what the repair wrote; FILE is checked whole\n"
	"before anything is written.\n\n"
	"  --undo FILE2         save every byte range before it is overwritten, so that\n"
	"                       'pcache undo FILE2 DEV' brings back the repaired state\n"
	"  --json               the result as JSON (an array of one object)\n"
	"  -q, --quiet          print nothing but errors\n"
	"  -v, --verbose        more detail\n";

/* The undo played on an overlay (every check made), then written with FILE2 saved first. */
static int apply_saving(const char *file, const char *devpath, const char *undo2,
			struct pcm_dev *dev, uint64_t *n)
{
	struct pcm_undo *u = NULL;
	struct pcm_dev *ov;
	uint64_t nw = 0;
	int rc = pcm_dev_overlay(dev, &ov);

	if (!rc)
		rc = pcm_undo_apply(file, ov, n);
	if (rc) {
		pcm_dev_close(ov);
		return rc;
	}
	pcm_dev_overlay_writes(ov, &nw);   /* FILE2 only when something is written */
	rc = nw ? pcm_undo_create(undo2, dev, &u) : 0;
	if (rc) {
		pcm_dev_close(ov);
		cli_err(undo2, "cannot create undo file: %s", strerror(-rc));
		return 1;
	}
	rc = pcm_overlay_apply(dev, ov, u);
	pcm_undo_close(u);
	pcm_dev_close(ov);
	if (rc) {
		cli_err(devpath, "undo failed while writing: %s", strerror(-rc));
		cli_hint("'pcache undo %s %s' puts back what was written", undo2, devpath);
		return 1;
	}
	return 0;
}

static void print_json(const char *file, const char *devpath, const char *undo2, uint64_t n)
{
	json_object *arr = json_object_new_array(), *o = json_object_new_object();

	json_object_object_add(o, "device", json_object_new_string(devpath));
	json_object_object_add(o, "undo_file", json_object_new_string(file));
	json_object_object_add(o, "ranges_restored", cli_json_u64(n));
	json_object_object_add(o, "saved_to", undo2 && n ? json_object_new_string(undo2) : NULL);
	json_object_array_add(arr, o);
	cli_json_print(arr);
	json_object_put(arr);
}

int cmd_undo(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "undo", required_argument, NULL, 'U' },
		{ "json", no_argument, NULL, 'J' },
		COMMON_LONGOPTS, { 0 }
	};
	const char *undo2 = NULL, *file, *devpath;
	struct pcm_dev *dev;
	uint64_t n = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "qvVh", longopts, NULL)) != -1) {
		if (opt == 'U') {
			undo2 = optarg;
			continue;
		}
		rc = cmd_common_opt(opt, usage_text);
		if (rc != -2)
			return rc < 0 ? EXIT_USAGE : rc;
	}
	if (optind + 2 != argc)
		return cli_usage_error(optind + 2 > argc ? "missing FILE or DEV" : "too many arguments");
	file = argv[optind];
	devpath = argv[optind + 1];
	rc = cli_open_dev(devpath, PCM_DEV_RDWR | PCM_DEV_EXCL, &dev);
	if (rc)
		return rc;
	if (undo2) {
		rc = apply_saving(file, devpath, undo2, dev, &n);
		if (rc > 0) {   /* said */
			pcm_dev_close(dev);
			return EXIT_OPERATIONAL;
		}
	} else {
		rc = pcm_undo_apply(file, dev, &n);
	}
	pcm_dev_close(dev);
	if (rc == -ESTALE) {
		cli_err(file, "belongs to another device or state: %s does not hold what the "
			"repair wrote (size, superblock or a saved range differs)", devpath);
		return EXIT_OPERATIONAL;
	}
	if (rc == -EBADMSG) {
		cli_err(file, "not a pcache undo file, or damaged");
		return EXIT_OPERATIONAL;
	}
	if (rc) {
		cli_err(file, "undo failed: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (cli.json)
		print_json(file, devpath, undo2, n);
	else if (!cli.quiet)
		printf("%s: %s restored from %s\n", devpath, CLI_COUNT(n, "range", "ranges"), file);
	return EXIT_OK;
}
