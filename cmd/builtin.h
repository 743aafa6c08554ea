/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One function per subcommand, git's builtin.h style. */
#ifndef PCACHE_BUILTIN_H
#define PCACHE_BUILTIN_H

#include <getopt.h>

#include "cli.h"

int cmd_format(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_undo(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Options every command takes; handled by cmd_common_opt(). */
#define COMMON_LONGOPTS \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "verbose", no_argument, NULL, 'v' }, \
	{ "version", no_argument, NULL, 'V' }, \
	{ "help", no_argument, NULL, 'h' }
#define REPORT_LONGOPTS \
	{ "json", no_argument, NULL, 'J' }, \
	{ "human", no_argument, NULL, 'u' }

/*
 * Handles -q, -v, -V, -h, --json, -u and getopt errors.  Returns -1 when the
 * option is not a common one, else the exit code to return (or -2 to go on).
 */
int cmd_common_opt(int c, const char *usage);

#endif
