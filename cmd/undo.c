/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache undo: put back what a repair's undo file saved. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache undo [-q] [-v] FILE DEV\n\n"
	"Writes back, newest first, every byte range that a repair saved in FILE\n"
	"(pcache fsck --undo FILE), so DEV is again what it was before the repair.\n"
	"FILE is bound to the device: its size and superblock must match.\n";

int cmd_undo(int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_LONGOPTS, { 0 } };
	struct pcm_dev *dev;
	uint64_t n = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "+qvh", longopts, NULL)) != -1) {
		rc = cmd_common_opt(opt, usage_text);
		if (rc != -2)
			return rc < 0 ? EXIT_USAGE : rc;
	}
	if (optind + 2 != argc)
		return cli_usage_error(optind + 2 > argc ? "missing FILE or DEV" : "too many arguments");
	rc = cli_open_dev(argv[optind + 1], PCM_DEV_RDWR | PCM_DEV_EXCL, &dev);
	if (rc)
		return rc;
	rc = pcm_undo_apply(argv[optind], dev, &n);
	pcm_dev_close(dev);
	if (rc == -ESTALE) {
		cli_err(argv[optind], "belongs to another device or state: %s does not hold what the "
			"repair wrote (size, superblock or a saved range differs)", argv[optind + 1]);
		return EXIT_OPERATIONAL;
	}
	if (rc == -EBADMSG) {
		cli_err(argv[optind], "not a pcache undo file, or damaged");
		return EXIT_OPERATIONAL;
	}
	if (rc) {
		cli_err(argv[optind], "undo failed: %s", strerror(-rc));
		return EXIT_OPERATIONAL;
	}
	if (!cli.quiet)
		printf("%s: %" PRIu64 " ranges restored from %s\n", argv[optind + 1], n, argv[optind]);
	return EXIT_OK;
}
