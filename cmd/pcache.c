/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pcache: the dispatcher.  Each subcommand lives in cmd/<name>.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "format", cmd_format, "write a new cache layout the kernel accepts as formatted" },
	{ "info", cmd_info, "show the status of a cache (what dmsetup status would say)" },
	{ "dump", cmd_dump, "print every on-media structure with its checksum verdict" },
	{ "replay", cmd_replay, "replay the key log and print the extent map" },
	{ "fsck", cmd_fsck, "check a cache, explain every problem, repair it" },
	{ "undo", cmd_undo, "put back what a repair's undo file saved" },
	{ "flush", cmd_flush, "write the dirty data back to the backing device, offline" },
	{ "list", cmd_list, "list pmem namespaces and dax devices, and the caches on them" },
	{ "shell", cmd_shell, "inspect (and with -w change) on-media structures, xfs_db style" },
	{ "serve", cmd_serve, "serve the cache as an NBD block device (nbdkit), without the kernel" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pcache [--version] [--help] <command> [<args>]\n\n"
		   "Userspace tools for Linux dm-pcache caches.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "   %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "   %-10s %s\n", "help", "show the manual page of a command");
	fprintf(f, "\n'pcache <command> --help' lists a command's options.\n"
		   "Exit codes: 0 ok, 1 fixed, 4 problems left, 8 operational error,\n"
		   "16 usage error, 32 cancelled.\n");
}

static void print_version(void)
{
	printf("pcache %s (libpcachemeta, crc32c %s)\n", PCACHE_VERSION, pcm_crc32c_impl());
}

int cmd_common_opt(int c, const char *usage_text)
{
	switch (c) {
	case 'q':
		cli.quiet++;
		return -2;
	case 'v':
		cli.verbose++;
		return -2;
	case 'J':
		cli.json = true;
		return -2;
	case 'u':
		cli.human = true;
		return -2;
	case 'h':
		fputs(usage_text, stdout);
		return EXIT_OK;
	case 'V':
		print_version();
		return EXIT_OK;
	case '?':
	case ':':
		fprintf(stderr, "pcache %s: option '%s': unknown, or its argument is missing\n%s",
			cli.cmd, cli.argv && optind > 0 ? cli.argv[optind - 1] : "?", usage_text);
		return EXIT_USAGE;
	}
	return -1;
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* `pcache help CMD`: the man page if man can find it, else the command's --help. */
static int help(int argc, char **argv)
{
	char page[64];
	const struct command *c;

	if (argc < 2) {
		usage(stdout);
		return EXIT_OK;
	}
	c = find(argv[1]);
	if (!c) {
		fprintf(stderr, "pcache help: %s: no such command\n", argv[1]);
		return EXIT_USAGE;
	}
	snprintf(page, sizeof(page), "pcache-%s", c->name);
	if (isatty(STDOUT_FILENO)) {
		char cmdline[128];

		snprintf(cmdline, sizeof(cmdline), "man %s 2>/dev/null", page);
		if (system(cmdline) == 0)
			return EXIT_OK;
	}
	char *args[] = { argv[1], (char *)"--help", NULL };
	cli.cmd = c->name;
	cli.argv = args;
	return c->fn(2, args);
}

/*
 * The errno of the first write to standard output that failed.  A command whose output
 * outgrows the stdio buffer meets the error while it runs; by the end errno says
 * something else, so the writes to a file or pipe go through out_write() to keep it.
 */
static int out_errno;

static ssize_t out_write(void *cookie, const char *buf, size_t n)
{
	size_t done = 0;
	ssize_t w;

	(void)cookie;
	while (done < n) {
		w = write(STDOUT_FILENO, buf + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (!out_errno)
				out_errno = errno;
			return done ? (ssize_t)done : -1;
		}
		done += (size_t)w;
	}
	return (ssize_t)done;
}

/* Standard output through out_write(), unless it is a terminal (left as it is). */
static void watch_stdout(void)
{
	FILE *f;

	if (isatty(STDOUT_FILENO))
		return;
	f = fopencookie(NULL, "w", (cookie_io_functions_t){ .write = out_write });
	if (f)
		stdout = f;
}

/*
 * Output that never reached its file is a failure (coreutils' close_stdout): a full
 * disk or a closed pipe must not end in exit 0.  Returns rc with EXIT_OPERATIONAL
 * added when stdout could not be written.
 */
static int finish_stdout(const char *cmd, int rc)
{
	int err = 0;

	if (fflush(stdout) != 0 || ferror(stdout))
		err = out_errno ? out_errno : errno ? errno : EIO;
	if (fclose(stdout) != 0 && !err)
		err = out_errno ? out_errno : errno ? errno : EIO;
	if (!err)
		return rc;
	if (cmd)
		fprintf(stderr, "pcache %s: write error: %s\n", cmd, strerror(err));
	else
		fprintf(stderr, "pcache: write error: %s\n", strerror(err));
	return rc | EXIT_OPERATIONAL;
}

static int dispatch(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")) {
		print_version();
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "help"))
		return help(argc - 1, argv + 1);
	c = find(argv[1]);
	if (!c) {
		fprintf(stderr, "pcache: '%s' is not a pcache command (see 'pcache --help')\n",
			argv[1]);
		return EXIT_USAGE;
	}
	cli.cmd = c->name;
	cli.argv = argv + 1;
	opterr = 0;
	return c->fn(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
	int rc;

	watch_stdout();
	rc = dispatch(argc, argv);

	errno = 0;
	return finish_stdout(cli.cmd, rc);
}
