/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the kernel would do with a cache, said the same way by every command, and on
 * what it rests: the backing device's size (every key must fit in it) and the data
 * checksums (checked at load when the cache has data_crc).
 */
#ifndef PCACHE_VERDICT_H
#define PCACHE_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "pcachemeta.h"

/* --backing PATH or --backing-size SIZE, as typed and as resolved. */
struct cli_backing {
	const char *arg;        /* as typed, or NULL: the backing device is not known */
	bool is_size;           /* --backing-size */
	bool known;             /* resolved: size is valid */
	uint64_t size;          /* bytes, whole sectors */
};

/* Records option c's argument (--backing or --backing-size); returns -2 or an exit code. */
int cli_backing_opt(struct cli_backing *b, const char *arg, bool is_size);

/*
 * What a verdict is checked against, the options fsck, info and replay share:
 * --verify-data / --no-verify-data (verified by default, as the kernel does at
 * load) and --backing PATH / --backing-size SIZE.
 */
struct cli_verdict_opts {
	bool verify_data;
	struct cli_backing backing;
};
enum { CLI_OPT_VERIFY = 0x200, CLI_OPT_NO_VERIFY, CLI_OPT_BACKING, CLI_OPT_BACKING_SIZE };
#define VERDICT_LONGOPTS \
	{ "verify-data", no_argument, NULL, CLI_OPT_VERIFY }, \
	{ "no-verify-data", no_argument, NULL, CLI_OPT_NO_VERIFY }, \
	{ "backing", required_argument, NULL, CLI_OPT_BACKING }, \
	{ "backing-size", required_argument, NULL, CLI_OPT_BACKING_SIZE }
/* Handles option c if it is one of those: -2 (go on) or an exit code; -1 if it is not. */
int cli_verdict_opt(struct cli_verdict_opts *v, int c, const char *arg);
/* Resolves the size; refuses the cache device itself as its backing.  Exit code or -2. */
int cli_backing_resolve(struct cli_backing *b, const char *dev);
/*
 * A key past the end of the backing device makes the kernel refuse the cache; the
 * kernel never writes one, so a smaller backing device is the wrong device, not
 * damage: says so with both sizes.  Returns EXIT_OK or EXIT_OPERATIONAL.
 */
int cli_backing_fits(const struct cli_backing *b, const char *devpath, struct pcm_dev *dev);
/* " --backing X" / " --backing-size X" / "" for hints. */
const char *cli_backing_hint(const struct cli_backing *b, char *buf, size_t len);

/* The kernel's verdict v for the cache r describes, with what it was not checked against. */
const char *cli_verdict_text(const struct pcm_check_result *r, enum pcm_kernel_verdict v,
			     const struct cli_backing *b, char *buf, size_t len);

#endif
