/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: `pcache dump` itself (cmd_dump from cmd/dump.c, linked in
 * with the rest of the pcache program, whose main is renamed), in JSON or
 * text, with or without --all-replicas, all structures or a --what subset (byte 0
 * bits 5-6), on the image's /proc/self/fd path.
 * Its output goes to /dev/null; the JSON objects are still built, streamed
 * and freed.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!freopen("/dev/null", "w", stdout))
		return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_image img;
	char *args[10];
	int n = 0, rc;

	if (fz_image_load(data, size, &img))
		return 0;
	args[n++] = (char *)"dump";
	if (!(img.opts & FZ_OPT_TEXT))
		args[n++] = (char *)"--json";
	if ((img.opts & FZ_OPT_HUMAN) && !(img.opts & FZ_OPT_TEXT))
		args[n++] = (char *)"-u";
	if (img.opts & FZ_OPT_ALL)
		args[n++] = (char *)"--all-replicas";
	if ((img.opts & FZ_OPT_TEXT) && (img.opts & FZ_OPT_VERIFY))
		args[n++] = (char *)"-v";
	if (img.image & FZ_IMG_WHAT) {
		static const char *const what[] = { NULL, "sb,cache-info,cache-ctrl", "ksets,keys",
						    "segments,keys" };

		args[n++] = (char *)"--what";
		args[n++] = (char *)what[(img.image & FZ_IMG_WHAT) >> 5];
	}
	args[n++] = (char *)img.path;
	args[n] = NULL;
	memset(&cli, 0, sizeof(cli));
	cli.cmd = "dump";
	cli.argv = args;
	optind = 0;
	opterr = 0;
	rc = cmd_dump(n, args);
	if (rc != EXIT_OK && rc != EXIT_OPERATIONAL)
		fz_fail("pcache dump exited %d", rc);
	fflush(stdout);
	fz_image_reset(&img);
	return 0;
}
