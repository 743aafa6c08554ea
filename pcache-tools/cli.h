/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the pcache commands share: exit codes, error lines, sizes, JSON output. */
#ifndef PCACHE_CLI_H
#define PCACHE_CLI_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pcachemeta.h"

/* Exit codes (doc/exit-codes.md): bits OR together, as e2fsck's. */
enum {
	EXIT_OK = 0,
	EXIT_FIXED = 1,
	EXIT_UNCORRECTED = 4,
	EXIT_OPERATIONAL = 8,
	EXIT_USAGE = 16,
	EXIT_CANCELLED = 32,
};

struct cli_common {
	const char *cmd;      /* "format", "info", ... */
	int quiet, verbose;
	bool json, human;
	char **argv;          /* the command's argv, for option errors */
};

extern struct cli_common cli;

/* `pcache CMD: DEV: what: why` on stderr; dev may be NULL. */
void cli_err(const char *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, plus a hint line `pcache CMD: hint: ...`. */
void cli_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Informational line on stderr unless quiet. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: prints the error and `try 'pcache CMD --help'`, returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "64M", "1G", "4096", "1.5T" -> bytes; -EINVAL on junk. */
int cli_parse_size(const char *s, uint64_t *out);
/* 1073741824 -> "1.00 GiB"; buf of at least 32 bytes. */
const char *cli_fmt_size(uint64_t bytes, char *buf, size_t len);
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* 2147483648 -> "2.00 GiB (2147483648 bytes)": a size for people, exact too. */
const char *cli_fmt_bytes(uint64_t bytes, char *buf, size_t len);
/* cli_fmt_bytes in a temporary buffer, for a printf argument: the form every text output uses. */
#define CLI_BYTES(b) cli_fmt_bytes((b), (char[64]){ 0 }, 64)
/* "1 problem", "2 problems": n and the word in the right number. */
const char *cli_count(uint64_t n, const char *one, const char *many, char *buf, size_t len);
#define CLI_COUNT(n, one, many) cli_count((n), (one), (many), (char[48]){ 0 }, 48)

/*
 * The error line for a device someone else holds, naming the holder: "PATH: cannot open:
 * in use by WHO" (plus how to release a dm table).  WHO as pcm_dev_open() found it
 * (pcm_dev_errmsg()), or looked up now (pcm_dev_holder()) when NULL or "".
 */
void cli_err_busy(const char *path, const char *who);
/* Opens DEV, printing the error line on failure; returns an exit code. */
int cli_open_dev(const char *path, unsigned flags, struct pcm_dev **dev);
/*
 * The superblock of dev in words, the same in every command: CLI_SB_OK (a pcache
 * superblock that fits the device; buf untouched), CLI_SB_NOT_PCACHE ("not a pcache
 * device: ...") or CLI_SB_BAD (a pcache superblock the kernel refuses: corrupt, or a
 * truncated device).  buf gets the whole phrase.
 */
enum cli_sb_kind { CLI_SB_OK = 0, CLI_SB_NOT_PCACHE, CLI_SB_BAD };
enum cli_sb_kind cli_sb_words(struct pcm_dev *dev, char *buf, size_t len);
/* Opens DEV and its cache (load checks), printing the error line; returns an exit code. */
int cli_open_cache(const char *path, unsigned dev_flags, struct pcm_dev **dev,
		   struct pcm_cache **cache);
/* True when a and b name the same file or device (a cache used as its own backing). */
bool cli_same_device(const char *a, const char *b);
/* Size of a backing device as the kernel sees it (whole sectors); refuses empty or dax. */
int cli_backing_size(const char *path, uint64_t *size);
/* Message for an errno from pcm_dev_open, with the device busy case spelled out. */
const char *cli_dev_strerror(int err);
/* The same for path: also a character device that is not a dax device (-EINVAL). */
const char *cli_open_strerror(const char *path, int err);

/* JSON helpers: every emitter writes an array at the top level. */
json_object *cli_json_pos(struct pcm_pos p);
json_object *cli_json_size(uint64_t bytes);       /* raw number, or string with --human */
json_object *cli_json_u64(uint64_t v);
json_object *cli_json_hex(uint64_t v, bool human); /* number, or "0x..." with --human */
void cli_json_print(json_object *o);               /* pretty, newline, puts */

/* Progress on a terminal (stderr), rate-limited; no-op when not a tty or quiet. */
void cli_progress(const char *what, uint64_t done, uint64_t total);
/* Same for done and total in bytes, shown for people ("3.50 MiB/7.18 MiB (49%)"). */
void cli_progress_bytes(const char *what, uint64_t done, uint64_t total);
void cli_progress_done(void);

/* Streaming JSON array: "[\n" elem ",\n" elem ... "\n]\n" without holding the array. */
struct cli_stream {
	FILE *f;
	uint64_t n;
};
void cli_stream_begin(struct cli_stream *s, FILE *f);
void cli_stream_add(struct cli_stream *s, json_object *o);   /* consumes o */
void cli_stream_end(struct cli_stream *s);

#endif
