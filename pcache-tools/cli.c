/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct cli_common cli;

void cli_err(const char *dev, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pcache %s: ", cli.cmd ? cli.cmd : "");
	if (dev)
		fprintf(stderr, "%s: ", dev);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_hint(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pcache %s: hint: ", cli.cmd ? cli.cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_note(const char *fmt, ...)
{
	va_list ap;

	if (cli.quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pcache %s: ", cli.cmd ? cli.cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try 'pcache %s --help')\n", cli.cmd ? cli.cmd : "");
	return EXIT_USAGE;
}

int cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	char *end;
	unsigned long long v;
	const char *u;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		u = strchr(units, end[0] & ~0x20);
		if (!u || !end[0])
			return -EINVAL;
		shift = 10u * (unsigned)(u - units + 1);
		end++;
		if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
			end += 2;
		else if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *cli_fmt_size(uint64_t b, char *buf, size_t len)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)b;
	int i = 0;

	while (v >= 1024 && i < 6) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 " B", b);
	else
		snprintf(buf, len, "%.2f %s", v, u[i]);
	return buf;
}

const char *cli_fmt_bytes(uint64_t b, char *buf, size_t len)
{
	char h[32];

	if (b < 1024)
		snprintf(buf, len, "%" PRIu64 " %s", b, b == 1 ? "byte" : "bytes");
	else
		snprintf(buf, len, "%s (%" PRIu64 " bytes)", cli_fmt_size(b, h, sizeof(h)), b);
	return buf;
}

const char *cli_count(uint64_t n, const char *one, const char *many, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64 " %s", n, n == 1 ? one : many);
	return buf;
}

const char *cli_dev_strerror(int err)
{
	switch (-err) {
	case EBUSY: return "device is in use (held open exclusively, e.g. by dm-pcache or another pcache command)";
	case ENODEV: return "not a regular file, block device or dax device";
	default: return strerror(-err);
	}
}

json_object *cli_json_pos(struct pcm_pos p)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "cache_seg", json_object_new_int64(p.cseg));
	json_object_object_add(o, "seg_off", json_object_new_int64(p.seg_off));
	return o;
}

json_object *cli_json_u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

json_object *cli_json_size(uint64_t bytes)
{
	char buf[32];

	if (cli.human)
		return json_object_new_string(cli_fmt_size(bytes, buf, sizeof(buf)));
	return json_object_new_uint64(bytes);
}

json_object *cli_json_hex(uint64_t v, bool human)
{
	char buf[24];

	if (!human)
		return json_object_new_uint64(v);
	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_object_new_string(buf);
}

void cli_json_print(json_object *o)
{
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					     JSON_C_TO_STRING_NOSLASHESCAPE), stdout);
	fputc('\n', stdout);
}

void cli_stream_begin(struct cli_stream *s, FILE *f)
{
	s->f = f;
	s->n = 0;
	fputs("[", f);
}

void cli_stream_add(struct cli_stream *s, json_object *o)
{
	fputs(s->n++ ? ",\n" : "\n", s->f);
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE), s->f);
	json_object_put(o);
}

void cli_stream_end(struct cli_stream *s)
{
	fputs(s->n ? "\n]\n" : "]\n", s->f);
}

static struct timespec progress_last;
static bool progress_shown;

/* Whether to draw now: on a terminal, at most every 200 ms, and always the last. */
static bool progress_due(uint64_t done, uint64_t total)
{
	struct timespec now;

	if (cli.quiet || !isatty(STDERR_FILENO))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (done != total && progress_shown &&
	    (now.tv_sec - progress_last.tv_sec) * 1000000000L +
	    (now.tv_nsec - progress_last.tv_nsec) < 200000000L)
		return false;
	progress_last = now;
	progress_shown = true;
	return true;
}

static double percent(uint64_t done, uint64_t total)
{
	return 100.0 * (double)done / (double)total;
}

void cli_progress(const char *what, uint64_t done, uint64_t total)
{
	if (!progress_due(done, total))
		return;
	if (total)
		fprintf(stderr, "\r%s: %" PRIu64 "/%" PRIu64 " (%.0f%%)", what, done, total,
			percent(done, total));
	else
		fprintf(stderr, "\r%s: %" PRIu64, what, done);
}

void cli_progress_bytes(const char *what, uint64_t done, uint64_t total)
{
	char d[32], t[32];

	if (!progress_due(done, total))
		return;
	cli_fmt_size(done, d, sizeof(d));
	cli_fmt_size(total, t, sizeof(t));
	if (total)
		fprintf(stderr, "\r%s: %11s/%s (%3.0f%%)", what, d, t, percent(done, total));
	else
		fprintf(stderr, "\r%s: %11s", what, d);
}

void cli_progress_done(void)
{
	if (progress_shown)
		fputc('\n', stderr);
	progress_shown = false;
}
