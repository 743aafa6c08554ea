/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pcache shell: an inspector of the on-media structures, in the style of
 * xfs_db and debugfs.  Commands come from -c, from standard input when it is
 * not a terminal, or from a readline prompt (history, tab completion).  With
 * -w, `set` changes one field of a record, recomputes its CRC and saves the
 * old bytes to an undo file first.
 *
 * Records are shown and changed through a table of their fields: a field is a
 * little-endian integer at a byte offset of the record, or a bit field inside
 * one, so what `sb` or `cache_info` print are exactly the names `set` takes.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache shell [-w [--undo FILE]] [-c COMMANDS] [-q] [-v] DEV\n\n"
	"Inspects the on-media structures of DEV, in the style of xfs_db and debugfs:\n"
	"'help' lists the commands.  Read-only unless -w.  Commands come from -c\n"
	"(separated by ';'), else from standard input when it is not a terminal, else\n"
	"from a prompt with history (~/.pcache_history) and tab completion.\n"
	"Exit: 0, 4 when a command of -c or standard input failed, 8 when DEV cannot be\n"
	"opened, 16 usage error.\n\n"
	"  -w, --write              open DEV read-write and exclusively: 'set' changes\n"
	"                           fields\n"
	"  --undo FILE              with -w: where 'set' saves the bytes it overwrites\n"
	"                           (default: DEV.pcache-undo-TIMESTAMP)\n"
	"  -c, --command COMMANDS   run COMMANDS ('cmd; cmd; ...') and exit\n"
	"  -q, --quiet              no banner, no notes\n"
	"  -v, --verbose            'walk' lists the keys of each kset too\n";

#define MAX_ARGS 16
#define HISTORY_MAX 1000
#define HEX_MAX (64u << 20)   /* bytes one hex/xd command shows at most */

/* ---- records: kinds and their fields ---- */
enum { F_DEC, F_HEX, F_CRC };

struct fdef {
	const char *name;
	uint8_t off, width;       /* little-endian integer at [off, off + width) */
	uint8_t shift, bits;      /* bits 0: the whole integer, else a bit field of it */
	uint8_t fmt;
};

#define HDR_FIELDS \
	{ "crc", 0, 4, 0, 0, F_CRC }, { "seq", 4, 1, 0, 0, F_DEC }, \
	{ "version", 5, 1, 0, 0, F_DEC }, { "res", 6, 2, 0, 0, F_DEC }

static const struct fdef sb_fields[] = {
	{ "crc", 0, 4, 0, 0, F_CRC },
	{ "flags", 4, 4, 0, 0, F_HEX },
	{ "bigendian", 4, 4, 0, 1, F_DEC },
	{ "magic", 8, 8, 0, 0, F_HEX },
	{ "seg_num", 16, 4, 0, 0, F_DEC },
	{ "pad", 20, 4, 0, 0, F_DEC },
	{ NULL, 0, 0, 0, 0, 0 },
};

static const struct fdef ci_fields[] = {
	HDR_FIELDS,
	{ "seg_id", 8, 4, 0, 0, F_DEC },
	{ "n_segs", 12, 4, 0, 0, F_DEC },
	{ "flags", 16, 4, 0, 0, F_HEX },
	{ "data_crc", 16, 4, 0, 1, F_DEC },
	{ "init_done", 16, 4, 1, 1, F_DEC },
	{ "cache_mode", 16, 4, PCM_CI_MODE_SHIFT, 4, F_DEC },
	{ "gc_percent", 16, 4, PCM_CI_GC_SHIFT, 7, F_DEC },
	{ "reserved", 20, 4, 0, 0, F_DEC },
	{ NULL, 0, 0, 0, 0, 0 },
};

static const struct fdef pos_fields[] = {
	HDR_FIELDS,
	{ "cache_seg", 8, 4, 0, 0, F_DEC },
	{ "seg_off", 12, 4, 0, 0, F_DEC },
	{ NULL, 0, 0, 0, 0, 0 },
};

static const struct fdef si_fields[] = {
	HDR_FIELDS,
	{ "flags", 8, 4, 0, 0, F_HEX },
	{ "has_next", 8, 4, 0, 1, F_DEC },
	{ "seg_type", 8, 4, PCM_SEGI_TYPE_SHIFT, 4, F_DEC },
	{ "next_seg", 12, 4, 0, 0, F_DEC },
	{ NULL, 0, 0, 0, 0, 0 },
};

static const struct fdef gen_fields[] = {
	HDR_FIELDS,
	{ "gen", 8, 8, 0, 0, F_DEC },
	{ NULL, 0, 0, 0, 0, 0 },
};

enum kind { K_SB, K_CI, K_KEY_TAIL, K_DIRTY_TAIL, K_SEGINFO, K_GEN, K_COUNT };

static const struct kdef {
	const char *name;
	unsigned size;
	bool replicated, per_seg;
	const struct fdef *fields;
} kinds[K_COUNT] = {
	[K_SB] = { "sb", PCM_SB_SIZE, false, false, sb_fields },
	[K_CI] = { "cache_info", PCM_CACHE_INFO_SIZE, true, false, ci_fields },
	[K_KEY_TAIL] = { "key_tail", PCM_POS_SIZE, true, false, pos_fields },
	[K_DIRTY_TAIL] = { "dirty_tail", PCM_POS_SIZE, true, false, pos_fields },
	[K_SEGINFO] = { "seginfo", PCM_SEG_INFO_SIZE, true, true, si_fields },
	[K_GEN] = { "gen", PCM_SEG_GEN_SIZE, true, true, gen_fields },
};

static uint64_t get_le(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = width; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t field_max(const struct fdef *f)
{
	unsigned bits = f->bits ? f->bits : 8u * f->width;

	return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

static uint64_t field_get(const uint8_t *raw, const struct fdef *f)
{
	uint64_t v = get_le(raw + f->off, f->width);

	return f->bits ? (v >> f->shift) & field_max(f) : v;
}

static void field_set(uint8_t *raw, const struct fdef *f, uint64_t v)
{
	uint64_t old = get_le(raw + f->off, f->width), m = field_max(f);

	if (f->bits)
		v = (old & ~(m << f->shift)) | (v & m) << f->shift;
	put_le(raw + f->off, f->width, v);
}

static const struct fdef *field_find(enum kind k, const char *name)
{
	for (const struct fdef *f = kinds[k].fields; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

static int kind_find(const char *name)
{
	for (int k = 0; k < K_COUNT; k++)
		if (!strcmp(kinds[k].name, name))
			return k;
	return -1;
}

/* ---- the shell's state ---- */
struct sh {
	const char *path;
	bool writable, interactive;
	struct pcm_dev *dev;
	uint64_t dev_size;
	struct pcm_cache *c;          /* NULL when the cache does not open */
	bool relaxed;                 /* opened with bad tails taken as 0:0 */
	char why[192];                /* why the cache does not open (strictly) */
	struct pcm_replay *replay;    /* for hex, made on first use */
	struct pcm_walk *w;           /* walk state, NULL before the first walk */
	bool walk_started;
	const char *undo_opt;
	char *undo_path;
	struct pcm_undo *undo;
	unsigned changes;
	bool quit;
	const char *cmd;              /* the command running, for error lines */
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sh_err(struct sh *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sh_err(struct sh *s, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "pcache shell: ");
	if (s->cmd)
		fprintf(stderr, "%s: ", s->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Command results: 0 done, -1 failed (the error line is printed). */
#define FAIL(s, ...) (sh_err((s), __VA_ARGS__), -1)

/* 123, 0x7b, 4k, 1M, 2G (binary units); 0755 is decimal. */
static int parse_num(const char *arg, uint64_t *out)
{
	const char *digits;
	bool hex;
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!arg || !*arg || *arg == '-' || *arg == '+')
		return -EINVAL;
	/* 0x... hexadecimal, else decimal (a leading 0 is not octal) */
	hex = arg[0] == '0' && (arg[1] == 'x' || arg[1] == 'X');
	digits = arg + (hex ? 2 : 0);
	if (!isxdigit((unsigned char)*digits))
		return -EINVAL;
	errno = 0;
	v = strtoull(digits, &end, hex ? 16 : 10);
	if (errno || end == digits)
		return -EINVAL;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int num_arg(struct sh *s, const char *what, const char *arg, uint64_t max, uint64_t *out)
{
	if (parse_num(arg, out))
		return FAIL(s, "%s: '%s' is not a number", what, arg ? arg : "");
	if (*out > max)
		return FAIL(s, "%s: %s is too large (at most %" PRIu64 ")", what, arg, max);
	return 0;
}

static bool need_cache(struct sh *s)
{
	if (s->c)
		return true;
	sh_err(s, "needs the cache, which does not open: %s", s->why);
	return false;
}

/* C:O, or key_tail / dirty_tail. */
static int pos_arg(struct sh *s, const char *arg, struct pcm_pos *p)
{
	uint64_t c, o;
	char buf[64], *colon;

	if (arg && s->c && !strcmp(arg, "key_tail")) {
		*p = s->c->key_tail.pos;
		return 0;
	}
	if (arg && s->c && !strcmp(arg, "dirty_tail")) {
		*p = s->c->dirty_tail.pos;
		return 0;
	}
	if (!arg || strlen(arg) >= sizeof(buf))
		return FAIL(s, "a position is CACHE_SEG:SEG_OFF, key_tail or dirty_tail");
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (!colon)
		return FAIL(s, "'%s' is not a position (CACHE_SEG:SEG_OFF)", arg);
	*colon = 0;
	if (parse_num(buf, &c) || parse_num(colon + 1, &o) || c > UINT32_MAX || o > UINT32_MAX)
		return FAIL(s, "'%s' is not a position (CACHE_SEG:SEG_OFF)", arg);
	*p = (struct pcm_pos){ (uint32_t)c, (uint32_t)o };
	return 0;
}

static int dev_error(struct sh *s, const char *what, uint64_t off, int rc)
{
	if (rc == -ERANGE)
		return FAIL(s, "cannot read %s at offset %" PRIu64 ": past the end of the %s "
			    "device", what, off, CLI_BYTES(s->dev_size));
	return FAIL(s, "cannot read %s at offset %" PRIu64 ": %s", what, off, strerror(-rc));
}

/* ---- opening (and reopening after a change) ---- */
static void sh_forget(struct sh *s)
{
	pcm_replay_free(s->replay);
	s->replay = NULL;
	s->walk_started = false;
	pcm_cache_close(s->c);
	s->c = NULL;
}

static void sh_load(struct sh *s)
{
	struct pcm_open_status st;

	sh_forget(s);
	s->why[0] = 0;
	s->relaxed = false;
	if (pcm_cache_open(s->dev, &s->c, &st) == 0)
		return;
	s->c = NULL;
	snprintf(s->why, sizeof(s->why), "%s", pcm_open_error_str(&st));
	if (st.err == PCM_OPEN_TAIL && pcm_cache_open_relaxed(s->dev, &s->c) == 0) {
		s->relaxed = true;
		return;
	}
	s->c = NULL;
}

static void sh_announce(struct sh *s)
{
	if (!s->why[0] || cli.quiet)
		return;
	fflush(stdout);
	if (s->relaxed)
		fprintf(stderr, "pcache shell: %s: warning: the kernel would not load this cache: "
			"%s; bad tails are taken as 0:0 here\n", s->path, s->why);
	else
		fprintf(stderr, "pcache shell: %s: warning: the cache does not open: %s; kset, key, "
			"walk, map and hex are unavailable, seg takes device segments\n", s->path,
			s->why);
}

/* ---- reading records ---- */
struct rrec {
	enum kind k;
	int64_t cseg;            /* -1: not a segment record, or addressed by device segment */
	uint32_t dseg;
	int n;                   /* replicas: 1 or 2 */
	uint64_t off[PCM_REPLICAS];
	uint8_t raw[PCM_REPLICAS][PCM_CACHE_INFO_SIZE];
	bool valid[PCM_REPLICAS];
	int pick;
};

static uint64_t rec_off(enum kind k, uint32_t dseg, int replica)
{
	switch (k) {
	case K_SB: return PCM_SB_OFF;
	case K_CI: return PCM_CACHE_INFO_OFF + (uint64_t)replica * PCM_CACHE_INFO_SLOT;
	case K_KEY_TAIL: return PCM_KEY_TAIL_OFF + (uint64_t)replica * PCM_POS_SIZE;
	case K_DIRTY_TAIL: return PCM_DIRTY_TAIL_OFF + (uint64_t)replica * PCM_POS_SIZE;
	case K_SEGINFO: return pcm_seg_base(dseg) + (uint64_t)replica * PCM_SEG_INFO_SLOT;
	case K_GEN: return pcm_seg_base(dseg) + PCM_SEG_CTRL_OFF + (uint64_t)replica * PCM_SEG_GEN_SIZE;
	default: return 0;
	}
}

/* Device segments the superblock names and the device holds. */
static uint64_t dev_segs(struct sh *s)
{
	struct pcm_sb sb;
	uint64_t fit = s->dev_size > PCM_SEGMENTS_OFF ? (s->dev_size - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE : 0;

	if (pcm_read_sb(s->dev, &sb, NULL))
		return 0;
	return sb.seg_num < fit ? sb.seg_num : fit;
}

/* Segment argument: a cache segment, or a device segment when the cache does not open. */
static int seg_arg(struct sh *s, const char *arg, int64_t *cseg, uint32_t *dseg)
{
	uint64_t n;

	if (!arg)
		return FAIL(s, "missing segment number");
	if (parse_num(arg, &n))
		return FAIL(s, "'%s' is not a segment number", arg);
	if (s->c) {
		if (n >= s->c->n_segs)
			return FAIL(s, "cache segment %" PRIu64 " out of range (n_segs %u)", n,
				    s->c->n_segs);
		*cseg = (int64_t)n;
		*dseg = s->c->dseg[n];
		return 0;
	}
	if (n >= dev_segs(s))
		return FAIL(s, "device segment %" PRIu64 " out of range (%" PRIu64 " on the device)",
			    n, dev_segs(s));
	*cseg = -1;
	*dseg = (uint32_t)n;
	return 0;
}

static int rrec_read(struct sh *s, struct rrec *r)
{
	const struct kdef *kd = &kinds[r->k];
	const uint8_t *recs[PCM_REPLICAS];

	r->n = kd->replicated ? PCM_REPLICAS : 1;
	for (int i = 0; i < r->n; i++) {
		int rc;

		r->off[i] = rec_off(r->k, r->dseg, i);
		rc = pcm_dev_read(s->dev, r->off[i], r->raw[i], kd->size);
		if (rc)
			return dev_error(s, kd->name, r->off[i], rc);
		r->valid[i] = pcm_record_crc_ok(r->raw[i], kd->size);
		recs[i] = r->raw[i];
	}
	if (kd->replicated) {
		r->pick = pcm_replica_pick(recs, kd->size, r->valid);
	} else {
		r->pick = 0;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void value_str(const struct fdef *f, uint64_t v, char *buf, size_t len)
{
	if (f->fmt == F_CRC)
		snprintf(buf, len, "0x%08" PRIx64, v);
	else if (f->fmt == F_HEX)
		snprintf(buf, len, "0x%" PRIx64, v);
	else
		snprintf(buf, len, "%" PRIu64, v);
}

/* A field's value; a CRC with its verdict. */
static void field_value(const uint8_t *raw, unsigned size, const struct fdef *f, bool valid,
			char *buf, size_t len)
{
	uint64_t v = field_get(raw, f);

	if (f->fmt != F_CRC)
		value_str(f, v, buf, len);
	else if (valid)
		snprintf(buf, len, "0x%08" PRIx64 " ok", v);
	else
		snprintf(buf, len, "0x%08" PRIx64 " BAD (expected 0x%08" PRIx32 ")", v,
			 pcm_record_crc(raw, size));
}

/* One field a line (sb, cache_info): `name value`; bit fields indented under their word. */
static void rec_print_full(const struct rrec *r, int i)
{
	const struct kdef *kd = &kinds[r->k];
	char v[96];

	for (const struct fdef *f = kd->fields; f->name; f++) {
		field_value(r->raw[i], kd->size, f, r->valid[i], v, sizeof(v));
		printf("%s%-*s %s", f->bits ? "  " : "", f->bits ? 10 : 12, f->name, v);
		if (!strcmp(f->name, "cache_mode"))
			printf(" (%s)", pcm_cache_mode_name((unsigned)field_get(r->raw[i], f)));
		if (!strcmp(f->name, "magic"))
			printf(field_get(r->raw[i], f) == PCM_SB_MAGIC ? " (pcache)" :
			       field_get(r->raw[i], f) ? " (not pcache)" : " (unformatted)");
		putchar('\n');
	}
}

/* All fields on one line (ctrl, seg): version and res only when not zero. */
static void rec_print_line(const struct rrec *r, int i)
{
	const struct kdef *kd = &kinds[r->k];
	char v[96];

	printf("%-10s replica %d @%-10" PRIu64, kd->name, i, r->off[i]);
	for (const struct fdef *f = kd->fields; f->name; f++) {
		if ((!strcmp(f->name, "version") || !strcmp(f->name, "res")) && !field_get(r->raw[i], f))
			continue;
		field_value(r->raw[i], kd->size, f, r->valid[i], v, sizeof(v));
		printf(" %s %s", f->name, v);
	}
	if (r->n > 1 && i == r->pick)
		printf(" picked");
	else if (r->n > 1 && !r->valid[i])
		printf(all_zero(r->raw[i], kd->size) ? " (empty: never written)" : " (invalid)");
	putchar('\n');
}

/* ---- sb, cache_info, ctrl, seg ---- */
static int do_sb(struct sh *s, int argc, char **argv)
{
	struct rrec r = { .k = K_SB, .cseg = -1 };
	struct pcm_sb sb;

	(void)argv;
	if (argc > 1)
		return FAIL(s, "takes no arguments");
	if (rrec_read(s, &r))
		return -1;
	pcm_sb_decode(r.raw[0], &sb);
	printf("superblock @%u\n", PCM_SB_OFF);
	rec_print_full(&r, 0);
	printf("%-12s %s\n", "verdict", pcm_sb_verdict_str(pcm_sb_check(&sb, s->dev_size)));
	return 0;
}

static int do_cache_info(struct sh *s, int argc, char **argv)
{
	struct rrec r = { .k = K_CI, .cseg = -1 };
	uint64_t n;
	int i;

	if (argc != 1 && !(argc == 3 && !strcmp(argv[1], "replica")))
		return FAIL(s, "usage: cache_info [replica N]");
	if (argc == 3 && num_arg(s, "replica", argv[2], PCM_REPLICAS - 1, &n))
		return -1;
	if (rrec_read(s, &r))
		return -1;
	i = argc == 3 ? (int)n : r.pick < 0 ? 0 : r.pick;
	printf("cache_info replica %d @%" PRIu64, i, r.off[i]);
	if (r.pick < 0)
		printf(" (no valid replica: the kernel re-initialises the cache)");
	else if (i == r.pick)
		printf(" (picked; replica %d %s)", !i,
		       r.valid[!i] ? "valid" : all_zero(r.raw[!i], PCM_CACHE_INFO_SIZE) ?
		       "empty: never written" : "invalid");
	else
		printf(" (not picked: the kernel reads replica %d)", r.pick);
	putchar('\n');
	rec_print_full(&r, i);
	return 0;
}

static int do_ctrl(struct sh *s, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return FAIL(s, "takes no arguments");
	for (enum kind k = K_KEY_TAIL; k <= K_DIRTY_TAIL; k++) {
		struct rrec r = { .k = k, .cseg = -1 };

		if (rrec_read(s, &r))
			return -1;
		for (int i = 0; i < r.n; i++)
			rec_print_line(&r, i);
	}
	if (s->c)
		printf("key_tail %u:%u dirty_tail %u:%u (as the kernel reads them)%s\n",
		       s->c->key_tail.pos.cseg, s->c->key_tail.pos.seg_off,
		       s->c->dirty_tail.pos.cseg, s->c->dirty_tail.pos.seg_off,
		       s->relaxed ? ": invalid tails taken as 0:0" : "");
	return 0;
}

static int do_seg(struct sh *s, int argc, char **argv)
{
	int64_t cseg;
	uint32_t dseg;

	if (argc != 2)
		return FAIL(s, "usage: seg N (a cache segment)");
	if (seg_arg(s, argv[1], &cseg, &dseg))
		return -1;
	if (cseg >= 0)
		printf("cache segment %" PRId64 ": device segment %u @%" PRIu64 ", data @%" PRIu64
		       ", gen %" PRIu64 "\n", cseg, dseg, pcm_seg_base(dseg),
		       pcm_seg_base(dseg) + PCM_DATA_OFF, s->c->gen[cseg]);
	else
		printf("device segment %u @%" PRIu64 " (the cache does not open: addressed by "
		       "device segment)\n", dseg, pcm_seg_base(dseg));
	for (enum kind k = K_SEGINFO; k <= K_GEN; k++) {
		struct rrec r = { .k = k, .cseg = cseg, .dseg = dseg };

		if (rrec_read(s, &r))
			return -1;
		for (int i = 0; i < r.n; i++)
			rec_print_line(&r, i);
	}
	if (cseg >= 0 && s->c->key_tail.pos.cseg == cseg)
		printf("holds key_tail (%u:%u)\n", s->c->key_tail.pos.cseg, s->c->key_tail.pos.seg_off);
	if (cseg >= 0 && s->c->dirty_tail.pos.cseg == cseg)
		printf("holds dirty_tail (%u:%u)\n", s->c->dirty_tail.pos.cseg,
		       s->c->dirty_tail.pos.seg_off);
	return 0;
}

/* ---- ksets and keys ---- */
struct kset {
	struct pcm_pos pos;
	uint64_t dev_off;
	struct pcm_kset_hdr h;
	uint64_t size;
	bool terminator;
	bool crc_ok;
	uint32_t crc_calc;
	uint8_t buf[PCM_KSET_SIZE_MAX];
};

/*
 * Reads the kset at p.  Returns 0 for a kset (k->crc_ok tells its CRC verdict) or a
 * terminator (k->terminator), -1 with the error printed when there is none there.
 */
static int kset_read(struct sh *s, struct pcm_pos p, struct kset *k)
{
	int rc;

	if (!need_cache(s))
		return -1;
	if (p.cseg >= s->c->n_segs)
		return FAIL(s, "%u:%u: cache segment %u out of range (n_segs %u)", p.cseg,
			    p.seg_off, p.cseg, s->c->n_segs);
	if ((uint64_t)p.seg_off + PCM_KSET_HDR_SIZE > PCM_DATA_SIZE)
		return FAIL(s, "%u:%u: no room for a kset header: the data area is %s",
			    p.cseg, p.seg_off, CLI_BYTES(PCM_DATA_SIZE));
	k->pos = p;
	k->dev_off = pcm_pos_dev_off(s->c, p.cseg, p.seg_off);
	rc = pcm_dev_read(s->dev, k->dev_off, k->buf, PCM_KSET_HDR_SIZE);
	if (rc)
		return dev_error(s, "a kset header", k->dev_off, rc);
	pcm_kset_hdr_decode(k->buf, &k->h);
	k->terminator = all_zero(k->buf, PCM_KSET_HDR_SIZE);
	if (k->terminator)
		return 0;
	if (k->h.magic != PCM_KSET_MAGIC)
		return FAIL(s, "%u:%u @%" PRIu64 ": not a kset (magic 0x%016" PRIx64 ", not 0x%016"
			    PRIx64 ")", p.cseg, p.seg_off, k->dev_off, k->h.magic,
			    (uint64_t)PCM_KSET_MAGIC);
	if (!(k->h.flags & PCM_KSET_F_LAST) && k->h.key_num > PCM_KSET_KEYS_MAX)
		return FAIL(s, "%u:%u @%" PRIu64 ": key_num %u is more than %u: not a kset the "
			    "kernel reads", p.cseg, p.seg_off, k->dev_off, k->h.key_num,
			    PCM_KSET_KEYS_MAX);
	k->size = pcm_kset_size(&k->h);
	if (p.seg_off + k->size > PCM_DATA_SIZE)
		return FAIL(s, "%u:%u @%" PRIu64 ": a kset of %s runs past the end of its "
			    "segment's data area", p.cseg, p.seg_off, k->dev_off, CLI_BYTES(k->size));
	if (k->size > PCM_KSET_HDR_SIZE) {
		rc = pcm_dev_read(s->dev, k->dev_off + PCM_KSET_HDR_SIZE, k->buf + PCM_KSET_HDR_SIZE,
				  k->size - PCM_KSET_HDR_SIZE);
		if (rc)
			return dev_error(s, "a kset", k->dev_off, rc);
	}
	k->crc_calc = pcm_kcrc(k->buf + 4, k->size - 4);
	k->crc_ok = k->crc_calc == k->h.crc;
	return 0;
}

static void tail_marks(const struct sh *s, struct pcm_pos p)
{
	if (pcm_pos_eq(p, s->c->key_tail.pos))
		printf(" at_key_tail");
	if (pcm_pos_eq(p, s->c->dirty_tail.pos))
		printf(" at_dirty_tail");
}

static void kset_print_hdr(const struct sh *s, struct pcm_pos p, uint64_t dev_off,
			   const struct pcm_kset_hdr *h, bool crc_ok, uint32_t crc_calc)
{
	bool last = h->flags & PCM_KSET_F_LAST;

	printf("kset %u:%u @%" PRIu64 " crc 0x%08" PRIx32 " %s", p.cseg, p.seg_off, dev_off,
	       h->crc, crc_ok ? "ok" : "BAD");
	if (!crc_ok)
		printf(" (expected 0x%08" PRIx32 ")", crc_calc);
	if (last)
		printf(" LAST next_cache_seg %u", h->key_num);
	else
		printf(" key_num %u", h->key_num);
	printf(" flags 0x%" PRIx64 " size %" PRIu64, h->flags, pcm_kset_size(h));
	tail_marks(s, p);
	putchar('\n');
}

static void key_print_line(const struct sh *s, unsigned i, uint64_t dev_off, const struct pcm_key *k)
{
	const struct pcm_cache *c = s->c;

	printf("  key %3u @%" PRIu64 " off %" PRIu64 " len %u flags 0x%x%s cache_seg %u seg_off %u "
	       "seg_gen %" PRIu64 " data_crc 0x%08" PRIx32, i, dev_off, k->off, k->len, k->flags,
	       k->flags & PCM_KEY_F_CLEAN ? " (clean)" : k->flags & PCM_KEY_F_EMPTY ? " (empty)" : "",
	       k->cseg, k->seg_off, k->seg_gen, k->data_crc);
	if (k->reserved)
		printf(" reserved %u", k->reserved);
	printf(" %s", pcm_key_verdict_str(pcm_key_check(c, k, false)));
	if (k->cseg < c->n_segs && k->seg_gen < c->gen[k->cseg])
		printf(" stale");
	putchar('\n');
}

static int do_kset(struct sh *s, int argc, char **argv)
{
	struct pcm_pos p;
	struct kset *k;
	int rc = 0;

	if (argc != 2)
		return FAIL(s, "usage: kset CACHE_SEG:SEG_OFF");
	if (pos_arg(s, argv[1], &p))
		return -1;
	k = malloc(sizeof(*k));
	if (!k)
		return FAIL(s, "%s", strerror(ENOMEM));
	if (kset_read(s, p, k)) {
		rc = -1;
	} else if (k->terminator) {
		printf("kset %u:%u @%" PRIu64 ": terminator (24 zero bytes): the log ends here\n",
		       p.cseg, p.seg_off, k->dev_off);
	} else {
		kset_print_hdr(s, p, k->dev_off, &k->h, k->crc_ok, k->crc_calc);
		if (k->h.flags & PCM_KSET_F_LAST) {
			printf("LAST kset: the log goes on at %u:0\n", k->h.key_num);
		} else {
			printf("%u keys:\n", k->h.key_num);
			for (unsigned i = 0; i < k->h.key_num && !interrupted; i++) {
				struct pcm_key key;
				size_t at = PCM_KSET_HDR_SIZE + (size_t)i * PCM_KEY_SIZE;

				pcm_key_decode(k->buf + at, &key);
				key_print_line(s, i, k->dev_off + at, &key);
			}
		}
	}
	free(k);
	return rc;
}

static int do_key(struct sh *s, int argc, char **argv)
{
	struct pcm_pos p;
	struct pcm_key key;
	struct kset *k;
	uint64_t i, at;
	int rc = -1;

	if (argc != 3)
		return FAIL(s, "usage: key CACHE_SEG:SEG_OFF INDEX");
	if (pos_arg(s, argv[1], &p) || num_arg(s, "index", argv[2], PCM_KSET_KEYS_MAX - 1, &i))
		return -1;
	k = malloc(sizeof(*k));
	if (!k)
		return FAIL(s, "%s", strerror(ENOMEM));
	if (kset_read(s, p, k))
		goto out;
	if (k->terminator || (k->h.flags & PCM_KSET_F_LAST)) {
		sh_err(s, "%u:%u: %s: it has no keys", p.cseg, p.seg_off,
		       k->terminator ? "a terminator" : "a LAST kset");
		goto out;
	}
	if (i >= k->h.key_num) {
		sh_err(s, "%u:%u: the kset has %u keys: no key %" PRIu64, p.cseg, p.seg_off,
		       k->h.key_num, i);
		goto out;
	}
	at = PCM_KSET_HDR_SIZE + i * PCM_KEY_SIZE;
	pcm_key_decode(k->buf + at, &key);
	printf("key %" PRIu64 " of kset %u:%u @%" PRIu64 "%s\n", i, p.cseg, p.seg_off,
	       k->dev_off + at, k->crc_ok ? "" : " (the kset's crc is BAD)");
	printf("%-12s %" PRIu64 "\n", "off", key.off);
	printf("%-12s %u\n", "len", key.len);
	printf("%-12s 0x%x%s\n", "flags", key.flags,
	       key.flags & PCM_KEY_F_CLEAN ? " (clean)" : key.flags & PCM_KEY_F_EMPTY ? " (empty)" :
	       key.flags ? "" : " (dirty write)");
	printf("%-12s %u\n", "cache_seg", key.cseg);
	printf("%-12s %u\n", "seg_off", key.seg_off);
	printf("%-12s %" PRIu64 "%s\n", "seg_gen", key.seg_gen,
	       key.cseg < s->c->n_segs && key.seg_gen < s->c->gen[key.cseg] ?
	       " (stale: older than its segment's gen)" : "");
	printf("%-12s 0x%08" PRIx32 "\n", "data_crc", key.data_crc);
	printf("%-12s %u\n", "reserved", key.reserved);
	if (key.cseg < s->c->n_segs && key.seg_off < PCM_DATA_SIZE)
		printf("%-12s @%" PRIu64 "\n", "data", pcm_pos_dev_off(s->c, key.cseg, key.seg_off));
	printf("%-12s %s\n", "verdict",
	       pcm_key_verdict_str(pcm_key_check(s->c, &key, s->c->data_crc)));
	rc = 0;
out:
	free(k);
	return rc;
}

static int do_crc(struct sh *s, int argc, char **argv);

/* ---- walk ---- */
static int do_walk(struct sh *s, int argc, char **argv)
{
	enum pcm_walk_event ev = PCM_WALK_KSET;
	uint64_t n = 10;

	if (!need_cache(s))
		return -1;
	if (!s->w) {
		s->w = malloc(sizeof(*s->w));
		if (!s->w)
			return FAIL(s, "%s", strerror(ENOMEM));
	}
	if (argc > 1 && !strcmp(argv[1], "reset")) {
		struct pcm_pos p = s->c->key_tail.pos;

		if (argc > 3 || (argc == 3 && pos_arg(s, argv[2], &p)))
			return argc > 3 ? FAIL(s, "usage: walk reset [CACHE_SEG:SEG_OFF]") : -1;
		if (p.cseg >= s->c->n_segs)
			return FAIL(s, "cache segment %u out of range (n_segs %u)", p.cseg,
				    s->c->n_segs);
		pcm_walk_init(s->w, s->c, p);
		s->walk_started = true;
		printf("walk reset to %u:%u\n", p.cseg, p.seg_off);
		return 0;
	}
	if (argc > 2)
		return FAIL(s, "usage: walk [N] | walk reset [CACHE_SEG:SEG_OFF]");
	if (argc == 2 && num_arg(s, "N", argv[1], UINT32_MAX, &n))
		return -1;
	if (!s->walk_started || s->w->done) {
		if (s->walk_started)
			printf("(the last walk ended: starting again from key_tail)\n");
		pcm_walk_init(s->w, s->c, s->c->key_tail.pos);
		s->walk_started = true;
		printf("walking the log from key_tail %u:%u\n", s->c->key_tail.pos.cseg,
		       s->c->key_tail.pos.seg_off);
	}
	for (uint64_t i = 0; i < n && !interrupted; i++) {
		struct pcm_walk *w = s->w;

		ev = pcm_walk_next(w);
		if (ev == PCM_WALK_KSET || ev == PCM_WALK_LAST) {
			uint64_t at = pcm_pos_dev_off(s->c, w->pos.cseg, w->pos.seg_off);

			kset_print_hdr(s, w->pos, at, &w->hdr, true, w->hdr.crc);
			for (unsigned k = 0; ev == PCM_WALK_KSET && cli.verbose && k < w->hdr.key_num; k++) {
				struct pcm_key key;

				pcm_walk_key(w, k, &key);
				key_print_line(s, k, at + PCM_KSET_HDR_SIZE + (uint64_t)k * PCM_KEY_SIZE, &key);
			}
			continue;
		}
		if (ev == PCM_WALK_FAIL && w->stop == PCM_FAIL_IO)
			return FAIL(s, "I/O error at %u:%u: %s", w->pos.cseg, w->pos.seg_off,
				    strerror(-w->err));
		printf("%s at %u:%u @%" PRIu64 ": %s (%" PRIu64 " ksets, %" PRIu64 " keys walked)\n",
		       ev == PCM_WALK_FAIL ? "the kernel refuses the log" : "end of the log",
		       w->pos.cseg, w->pos.seg_off,
		       pcm_pos_dev_off(s->c, w->pos.cseg, w->pos.seg_off),
		       pcm_walk_stop_str(w->stop), w->ksets, w->keys);
		if (w->stop == PCM_STOP_CRC) {
			char pos[32], *args[] = { (char *)"crc", pos, NULL };

			snprintf(pos, sizeof(pos), "%u:%u", w->pos.cseg, w->pos.seg_off);
			do_crc(s, 2, args);
		}
		break;
	}
	return 0;
}

/* ---- map, hex, xd ---- */
struct map_find {
	uint64_t off;
	bool found;
	struct pcm_pos kset;
	unsigned index;
	struct pcm_key key;
};

static int map_on_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *k,
		      enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct map_find *m = arg;

	(void)dirty;
	if (v == PCM_KEY_OK && !stale && !(k->flags & PCM_KEY_F_EMPTY) &&
	    m->off >= k->off && m->off - k->off < k->len) {
		m->found = true;
		m->kset = w->pos;
		m->index = i;
		m->key = *k;
	}
	return 0;
}

static int replay(struct sh *s, struct map_find *m, struct pcm_replay **out)
{
	struct pcm_replay_opts o = { .keep_going = true, .on_key = m ? map_on_key : NULL, .arg = m };
	int rc = pcm_replay_run(s->c, &o, out);

	if (rc)
		return FAIL(s, "replay failed: %s", strerror(-rc));
	if ((*out)->failed && !cli.quiet) {
		fflush(stdout);
		fprintf(stderr, "pcache shell: %s: warning: the kernel would refuse to load this "
			"cache (%s); this is the map as far as the log could be replayed\n",
			s->cmd, pcm_replay_error_str(*out));
	}
	return 0;
}

static const char *extent_state(const struct pcm_extent *e)
{
	return e->flags & PCM_EXT_DIRTY ? "dirty" : e->flags & PCM_EXT_CLEAN ? "clean" :
	       "written back";
}

static int do_map(struct sh *s, int argc, char **argv)
{
	struct map_find m = { 0 };
	struct pcm_replay *r;
	const struct pcm_extent *e;
	uint64_t off;

	if (argc != 2)
		return FAIL(s, "usage: map OFFSET (a logical byte offset on the backing device)");
	if (!need_cache(s) || num_arg(s, "OFFSET", argv[1], UINT64_MAX, &off))
		return -1;
	m.off = off;
	if (replay(s, &m, &r))
		return -1;
	e = pcm_index_lookup(r->idx, off);
	if (!e) {
		printf("%" PRIu64 ": not cached (reads go to the backing device)\n", off);
	} else {
		uint64_t in = off - e->off;

		printf("%" PRIu64 ": extent off %" PRIu64 " len %u cache_seg %u seg_off %u seg_gen %"
		       PRIu64 " %s", off, e->off, e->len, e->cseg, e->seg_off, e->seg_gen,
		       extent_state(e));
		if (e->cseg < s->c->n_segs)
			printf(" (byte %" PRIu64 " of it @%" PRIu64 ")", in,
			       pcm_pos_dev_off(s->c, e->cseg, (uint32_t)(e->seg_off + in)));
		putchar('\n');
		if (m.found && m.key.cseg == e->cseg &&
		    (int64_t)(e->off - m.key.off) == (int64_t)e->seg_off - (int64_t)m.key.seg_off)
			printf("from key %u of kset %u:%u: off %" PRIu64 " len %u cache_seg %u "
			       "seg_off %u\n", m.index, m.kset.cseg, m.kset.seg_off, m.key.off,
			       m.key.len, m.key.cseg, m.key.seg_off);
	}
	pcm_replay_free(r);
	return 0;
}

static void hexdump(uint64_t base, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		size_t k, m = n - i < 16 ? n - i : 16;

		printf("%010" PRIx64 " ", base + i);
		for (k = 0; k < 16; k++) {
			if (k == 8)
				putchar(' ');
			if (k < m)
				printf(" %02x", b[i + k]);
			else
				printf("   ");
		}
		printf("  |");
		for (k = 0; k < m; k++)
			putchar(isprint(b[i + k]) && b[i + k] < 0x7f ? b[i + k] : '.');
		printf("|\n");
	}
}

/* Prints len bytes of the device from dev_off, labelled from label. */
static int dump_bytes(struct sh *s, uint64_t dev_off, uint64_t label, uint64_t len)
{
	uint8_t buf[4096];

	while (len && !interrupted) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		int rc = pcm_dev_read(s->dev, dev_off, buf, n);

		if (rc)
			return dev_error(s, "device bytes", dev_off, rc);
		hexdump(label, buf, n);
		dev_off += n;
		label += n;
		len -= n;
	}
	return 0;
}

static int do_hex(struct sh *s, int argc, char **argv)
{
	const struct pcm_extent *e;
	uint64_t off, len, avail;

	if (argc != 3)
		return FAIL(s, "usage: hex OFFSET LEN (a logical byte offset on the backing device)");
	if (!need_cache(s) || num_arg(s, "OFFSET", argv[1], UINT64_MAX, &off) ||
	    num_arg(s, "LEN", argv[2], HEX_MAX, &len))
		return -1;
	if (!s->replay && replay(s, NULL, &s->replay))
		return -1;
	e = pcm_index_lookup(s->replay->idx, off);
	if (!e)
		return FAIL(s, "%" PRIu64 ": not cached (see 'map')", off);
	if (e->cseg >= s->c->n_segs || (uint64_t)e->seg_off + e->len > PCM_DATA_SIZE)
		return FAIL(s, "%" PRIu64 ": the extent points outside the cache", off);
	avail = e->off + e->len - off;
	printf("%" PRIu64 ": cache_seg %u seg_off %" PRIu64 " @%" PRIu64 " (%s)", off, e->cseg,
	       e->seg_off + (off - e->off), pcm_pos_dev_off(s->c, e->cseg, e->seg_off) + (off - e->off),
	       extent_state(e));
	if (len > avail) {
		printf(": the extent ends after %s", CLI_BYTES(avail));
		len = avail;
	}
	putchar('\n');
	return dump_bytes(s, pcm_pos_dev_off(s->c, e->cseg, e->seg_off) + (off - e->off), off, len);
}

static int do_xd(struct sh *s, int argc, char **argv)
{
	uint64_t off, len;

	if (argc != 3)
		return FAIL(s, "usage: xd DEVOFF LEN (raw device bytes)");
	if (num_arg(s, "DEVOFF", argv[1], UINT64_MAX, &off) || num_arg(s, "LEN", argv[2], HEX_MAX, &len))
		return -1;
	if (off >= s->dev_size)
		return FAIL(s, "offset %" PRIu64 " is past the end of the %s device", off,
			    CLI_BYTES(s->dev_size));
	if (len > s->dev_size - off) {
		printf("the device ends after %s:\n", CLI_BYTES(s->dev_size - off));
		len = s->dev_size - off;
	}
	return dump_bytes(s, off, off, len);
}

/* ---- crc ---- */
/* KIND [N] -> a record; returns the number of arguments used, or -1. */
static int rec_args(struct sh *s, int argc, char **argv, struct rrec *r)
{
	int k = argc > 0 ? kind_find(argv[0]) : -1;

	if (k < 0)
		return FAIL(s, "'%s' is not a record (sb, cache_info, key_tail, dirty_tail, "
			    "seginfo N, gen N)", argc > 0 ? argv[0] : "");
	memset(r, 0, sizeof(*r));
	r->k = (enum kind)k;
	r->cseg = -1;
	if (!kinds[k].per_seg)
		return 1;
	if (argc < 2)
		return FAIL(s, "%s: missing segment number", argv[0]);
	return seg_arg(s, argv[1], &r->cseg, &r->dseg) ? -1 : 2;
}

static int do_crc(struct sh *s, int argc, char **argv)
{
	struct kset *k;
	struct pcm_pos p;
	struct rrec r;
	int rc;

	if (argc < 2)
		return FAIL(s, "usage: crc CACHE_SEG:SEG_OFF | crc RECORD [N]");
	if (kind_find(argv[1]) >= 0) {
		int used = rec_args(s, argc - 1, argv + 1, &r);

		if (used < 0)
			return -1;
		if (used + 1 != argc)
			return FAIL(s, "too many arguments");
		if (rrec_read(s, &r))
			return -1;
		for (int i = 0; i < r.n; i++)
			printf("%s replica %d @%" PRIu64 ": crc 0x%08" PRIx64 ", computed 0x%08" PRIx32
			       ": %s%s\n", kinds[r.k].name, i, r.off[i], get_le(r.raw[i], 4),
			       pcm_record_crc(r.raw[i], kinds[r.k].size), r.valid[i] ? "ok" : "BAD",
			       r.n > 1 && i == r.pick ? " (picked)" : "");
		return 0;
	}
	if (argc != 2)
		return FAIL(s, "usage: crc CACHE_SEG:SEG_OFF | crc RECORD [N]");
	if (pos_arg(s, argv[1], &p))
		return -1;
	k = malloc(sizeof(*k));
	if (!k)
		return FAIL(s, "%s", strerror(ENOMEM));
	rc = kset_read(s, p, k);
	if (!rc && k->terminator)
		rc = FAIL(s, "%u:%u: a terminator (24 zero bytes), not a kset", p.cseg, p.seg_off);
	else if (!rc)
		printf("kset %u:%u @%" PRIu64 ": crc 0x%08" PRIx32 ", computed 0x%08" PRIx32
		       " over %s: %s\n", p.cseg, p.seg_off, k->dev_off, k->h.crc, k->crc_calc,
		       CLI_BYTES(k->size - 4), k->crc_ok ? "ok" : "BAD");
	free(k);
	return rc;
}

/* ---- set ---- */
static int undo_open(struct sh *s)
{
	char ts[32];
	struct stat st;
	struct tm tm;
	time_t t = time(NULL);
	int rc;

	if (s->undo)
		return 0;
	if (s->undo_opt) {
		s->undo_path = strdup(s->undo_opt);
	} else {
		const char *base = strrchr(s->path, '/');

		localtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y%m%d-%H%M%S", &tm);
		/* next to an image; in the current directory for a device node */
		if (stat(s->path, &st) == 0 && S_ISREG(st.st_mode))
			base = s->path;
		else
			base = base ? base + 1 : s->path;
		if (asprintf(&s->undo_path, "%s.pcache-undo-%s", base, ts) < 0)
			s->undo_path = NULL;
	}
	if (!s->undo_path)
		return FAIL(s, "%s", strerror(ENOMEM));
	rc = pcm_undo_create(s->undo_path, s->dev, &s->undo);
	if (rc) {
		sh_err(s, "cannot create the undo file %s: %s%s; nothing written", s->undo_path,
		       strerror(-rc), rc == -EEXIST ? " (choose another with --undo)" : "");
		free(s->undo_path);
		s->undo_path = NULL;
		return -1;
	}
	if (!cli.quiet) {
		fflush(stdout);
		fprintf(stderr, "pcache shell: %s: saving what 'set' overwrites to %s\n", s->path,
			s->undo_path);
	}
	return 0;
}

static int write_record(struct sh *s, uint64_t off, const uint8_t *raw, size_t size)
{
	int rc;

	if (undo_open(s))
		return -1;
	rc = pcm_undo_save(s->undo, s->dev, off, size, raw);
	if (rc)
		return FAIL(s, "cannot save to the undo file %s: %s; nothing written", s->undo_path,
			    strerror(-rc));
	rc = pcm_dev_write(s->dev, off, raw, size);
	if (!rc)
		rc = pcm_dev_persist(s->dev, off, size);
	if (rc)
		return FAIL(s, "cannot write %zu bytes at offset %" PRIu64 ": %s", size, off,
			    strerror(-rc));
	s->changes++;
	rc = pcm_undo_finish(s->undo, s->dev);
	if (rc)
		return FAIL(s, "written, but the undo file %s could not be sealed: %s", s->undo_path,
			    strerror(-rc));
	return 0;
}

static const char set_usage[] =
	"usage: set sb|cache_info|key_tail|dirty_tail|seginfo N|gen N [replica R] FIELD VALUE";

static int do_set(struct sh *s, int argc, char **argv)
{
	struct rrec r;
	const struct kdef *kd;
	const struct fdef *f;
	uint8_t rec[PCM_CACHE_INFO_SIZE];
	uint64_t v, rep = 0;
	int used, base, slot, a;
	bool explicit_replica = false;
	char before[96], after[96];

	if (!s->writable)
		return FAIL(s, "the device is open read-only: start the shell with -w to change it");
	if (argc < 2)
		return FAIL(s, "%s", set_usage);
	used = rec_args(s, argc - 1, argv + 1, &r);
	if (used < 0)
		return -1;
	kd = &kinds[r.k];
	a = 1 + used;
	if (a < argc && !strcmp(argv[a], "replica")) {
		if (!kd->replicated)
			return FAIL(s, "%s has a single copy: no replica to choose", kd->name);
		if (num_arg(s, "replica", a + 1 < argc ? argv[a + 1] : NULL, PCM_REPLICAS - 1, &rep))
			return -1;
		explicit_replica = true;
		a += 2;
	}
	if (argc - a != 2)
		return FAIL(s, "%s", set_usage);
	f = field_find(r.k, argv[a]);
	if (!f) {
		char names[256] = "";

		for (const struct fdef *g = kd->fields; g->name; g++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
				 g == kd->fields ? "" : ", ", g->name);
		return FAIL(s, "%s has no field '%s' (fields: %s)", kd->name, argv[a], names);
	}
	if (num_arg(s, f->name, argv[a + 1], field_max(f), &v))
		return -1;
	if (rrec_read(s, &r))
		return -1;
	/*
	 * The picked replica is changed and written, as the kernel writes, to the other slot
	 * with seq + 1 (with no valid replica: replica 0's fields, to slot 1).  An explicit
	 * replica is changed in place, seq kept.
	 */
	if (explicit_replica)
		base = slot = (int)rep;
	else if (!kd->replicated)
		base = slot = 0;
	else {
		base = r.pick < 0 ? 0 : r.pick;
		slot = 1 - base;
	}
	memcpy(rec, r.raw[base], kd->size);
	value_str(f, field_get(rec, f), before, sizeof(before));
	if (kd->replicated && !explicit_replica && strcmp(f->name, "seq"))
		rec[4] = (uint8_t)(rec[4] + 1);
	field_set(rec, f, v);
	if (f->fmt != F_CRC)
		pcm_record_seal(rec, kd->size);
	value_str(f, v, after, sizeof(after));
	if (write_record(s, r.off[slot], rec, kd->size))
		return -1;
	printf("%s", kd->name);
	if (r.cseg >= 0)
		printf(" %" PRId64, r.cseg);
	else if (kd->per_seg)
		printf(" (device segment %u)", r.dseg);
	if (kd->replicated)
		printf(" replica %d", slot);
	printf(" @%" PRIu64 ": %s %s -> %s", r.off[slot], f->name, before, after);
	if (kd->replicated && strcmp(f->name, "seq"))
		printf(", seq %u", rec[4]);
	if (f->fmt != F_CRC)
		printf(", crc 0x%08" PRIx64, get_le(rec, 4));
	printf("\n");
	/* what the kernel reads now */
	if (kd->replicated) {
		struct rrec now = r;

		if (rrec_read(s, &now))
			return -1;
		printf("the kernel now reads %s\n", now.pick < 0 ? "no valid replica" :
		       now.pick == 0 ? "replica 0" : "replica 1");
	}
	sh_load(s);
	sh_announce(s);
	return 0;
}

/* ---- help, quit, the command table ---- */
static int do_help(struct sh *s, int argc, char **argv);

static int do_quit(struct sh *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	s->quit = true;
	return 0;
}

static const struct shcmd {
	const char *name;
	int (*fn)(struct sh *s, int argc, char **argv);
	const char *args;
	const char *help;
} shcmds[] = {
	{ "sb", do_sb, "", "the superblock, field by field, and its verdict" },
	{ "cache_info", do_cache_info, "[replica N]",
	  "the cache_info replica the kernel picks (or replica N)" },
	{ "ctrl", do_ctrl, "", "both replicas of key_tail and dirty_tail" },
	{ "seg", do_seg, "N", "segment info and gen replicas of cache segment N" },
	{ "kset", do_kset, "C:O", "the kset at position C:O (or key_tail), with its keys" },
	{ "key", do_key, "C:O I", "key I of the kset at C:O, field by field" },
	{ "walk", do_walk, "[N] | reset [C:O]",
	  "the next N ksets of the log (10), from key_tail at first" },
	{ "map", do_map, "OFFSET", "the extent and key mapping a logical byte offset" },
	{ "hex", do_hex, "OFFSET LEN", "cached bytes of the extent mapping logical OFFSET" },
	{ "xd", do_xd, "DEVOFF LEN", "raw device bytes" },
	{ "crc", do_crc, "C:O | RECORD [N]", "verify the CRC of a kset or a record" },
	{ "set", do_set, "RECORD [N] [replica R] FIELD VALUE",
	  "change a field (needs -w); 'help set' lists the fields" },
	{ "help", do_help, "[COMMAND]", "this list" },
	{ "quit", do_quit, "", "leave (also: exit, q, Ctrl-D)" },
	{ "exit", do_quit, NULL, NULL },
	{ "q", do_quit, NULL, NULL },
};

#define N_SHCMDS (sizeof(shcmds) / sizeof(shcmds[0]))

static const struct shcmd *shcmd_find(const char *name)
{
	for (size_t i = 0; i < N_SHCMDS; i++)
		if (!strcmp(shcmds[i].name, name))
			return &shcmds[i];
	return NULL;
}

static int do_help(struct sh *s, int argc, char **argv)
{
	if (argc > 1) {
		const struct shcmd *c = shcmd_find(argv[1]);

		if (!c)
			return FAIL(s, "'%s' is not a shell command", argv[1]);
		if (c->help)
			printf("%s %s\n    %s\n", c->name, c->args, c->help);
		else
			printf("%s: leave the shell\n", c->name);
		if (c->fn == do_set) {
			for (int k = 0; k < K_COUNT; k++) {
				printf("  %-10s%s", kinds[k].name, kinds[k].per_seg ? " N" : "  ");
				for (const struct fdef *f = kinds[k].fields; f->name; f++)
					printf(" %s", f->name);
				putchar('\n');
			}
		}
		return 0;
	}
	for (size_t i = 0; i < N_SHCMDS; i++) {
		char head[64];

		if (!shcmds[i].help)
			continue;
		snprintf(head, sizeof(head), "%s %s", shcmds[i].name, shcmds[i].args);
		if (strlen(head) > 24)
			printf("  %s\n  %-24s %s\n", head, "", shcmds[i].help);
		else
			printf("  %-24s %s\n", head, shcmds[i].help);
	}
	printf("Numbers: decimal, 0x hex, or with K, M, G, T.  Positions C:O are a cache segment\n"
	       "and an offset in its data area.  ';' separates commands, '#' starts a comment.\n");
	return 0;
}

/* ---- running lines ---- */
/* Runs every command of a line; returns the number that failed. */
static unsigned run_line(struct sh *s, char *line)
{
	unsigned failed = 0;
	char *hash = strchr(line, '#'), *save = NULL, *part;

	if (hash)
		*hash = 0;
	for (part = strtok_r(line, ";", &save); part && !s->quit; part = strtok_r(NULL, ";", &save)) {
		char *argv[MAX_ARGS + 1], *wsave = NULL, *tok;
		const struct shcmd *c;
		int argc = 0;

		for (tok = strtok_r(part, " \t\r\n", &wsave); tok; tok = strtok_r(NULL, " \t\r\n", &wsave)) {
			if (argc == MAX_ARGS)
				break;
			argv[argc++] = tok;
		}
		argv[argc] = NULL;
		if (!argc)
			continue;
		s->cmd = argv[0];
		c = shcmd_find(argv[0]);
		if (tok) {
			sh_err(s, "too many arguments");
			failed++;
		} else if (!c) {
			s->cmd = NULL;
			sh_err(s, "%s: not a command ('help' lists them)", argv[0]);
			failed++;
		} else if (c->fn(s, argc, argv)) {
			failed++;
		}
		s->cmd = NULL;
		if (interrupted && !s->interactive)
			break;
		if (interrupted) {
			interrupted = 0;
			printf("(interrupted)\n");
		}
	}
	fflush(stdout);
	return failed;
}

/* ---- readline: completion ---- */
static const char *const *compl_words;
static const char *compl_list[64];

static char *compl_gen(const char *text, int state)
{
	static size_t i, len;

	if (!state) {
		i = 0;
		len = strlen(text);
	}
	while (compl_words && compl_words[i]) {
		const char *w = compl_words[i++];

		if (!strncmp(w, text, len))
			return strdup(w);
	}
	return NULL;
}

static void compl_set_commands(void)
{
	size_t n = 0;

	for (size_t i = 0; i < N_SHCMDS && n < 63; i++)
		compl_list[n++] = shcmds[i].name;
	compl_list[n] = NULL;
	compl_words = compl_list;
}

static void compl_set_kinds(void)
{
	size_t n = 0;

	for (int k = 0; k < K_COUNT; k++)
		compl_list[n++] = kinds[k].name;
	compl_list[n] = NULL;
	compl_words = compl_list;
}

static void compl_set_fields(enum kind k, bool with_replica)
{
	size_t n = 0;

	if (with_replica && kinds[k].replicated)
		compl_list[n++] = "replica";
	for (const struct fdef *f = kinds[k].fields; f->name && n < 63; f++)
		compl_list[n++] = f->name;
	compl_list[n] = NULL;
	compl_words = compl_list;
}

static void compl_set_one(const char *w)
{
	compl_list[0] = w;
	compl_list[1] = NULL;
	compl_words = compl_list;
}

/* What the word being completed is, from the words before it in this command. */
static void compl_choose(char **w, int n)
{
	int k;

	compl_words = NULL;
	if (n == 0) {
		compl_set_commands();
		return;
	}
	if (!strcmp(w[0], "help") && n == 1) {
		compl_set_commands();
	} else if (!strcmp(w[0], "cache_info") && n == 1) {
		compl_set_one("replica");
	} else if (!strcmp(w[0], "walk") && n == 1) {
		compl_set_one("reset");
	} else if (!strcmp(w[0], "kset") || !strcmp(w[0], "key") || (!strcmp(w[0], "walk") && n == 2)) {
		static const char *const tails[] = { "key_tail", "dirty_tail", NULL };

		if (n == 1 || !strcmp(w[0], "walk"))
			compl_words = tails;
	} else if ((!strcmp(w[0], "set") || !strcmp(w[0], "crc")) && n == 1) {
		compl_set_kinds();
	} else if (!strcmp(w[0], "set") && (k = kind_find(w[1])) >= 0) {
		int a = kinds[k].per_seg ? 3 : 2;   /* index of the word after RECORD [N] */

		if (n == a)
			compl_set_fields((enum kind)k, true);
		else if (n == a + 2 && !strcmp(w[a], "replica"))
			compl_set_fields((enum kind)k, false);
	}
}

static char **sh_completion(const char *text, int start, int end)
{
	char *line, *save = NULL, *tok, *w[MAX_ARGS];
	char *seg;
	int n = 0;

	(void)end;
	rl_attempted_completion_over = 1;
	line = strndup(rl_line_buffer, (size_t)start);
	if (!line)
		return NULL;
	seg = strrchr(line, ';');
	seg = seg ? seg + 1 : line;
	for (tok = strtok_r(seg, " \t", &save); tok && n < MAX_ARGS; tok = strtok_r(NULL, " \t", &save))
		w[n++] = tok;
	compl_choose(w, n);
	free(line);
	if (!compl_words)
		return NULL;
	return rl_completion_matches(text, compl_gen);
}

/* Ctrl-C at the prompt: drop the line, show a new prompt. */
static int on_rl_signal(void)
{
	if (interrupted) {
		interrupted = 0;
		rl_replace_line("", 0);
		rl_crlf();
		rl_on_new_line();
		rl_redisplay();
	}
	return 0;
}

static char *history_path(void)
{
	const char *home = getenv("HOME");
	char *p;

	if (!home || !*home)
		return NULL;
	if (asprintf(&p, "%s/.pcache_history", home) < 0)
		return NULL;
	return p;
}

/* The line without surrounding blanks (completion leaves one at the end), once. */
static void add_line_to_history(const char *line)
{
	size_t n;
	char *t;
	HIST_ENTRY *last;

	while (*line == ' ' || *line == '\t')
		line++;
	n = strlen(line);
	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	if (!n || !(t = strndup(line, n)))
		return;
	last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
	if (!last || strcmp(last->line, t))
		add_history(t);
	free(t);
}

static void interactive(struct sh *s)
{
	char *hist = history_path(), *line;
	const char *prompt = s->writable ? "pcache[w]> " : "pcache> ";

	rl_readline_name = "pcache";
	rl_attempted_completion_function = sh_completion;
	rl_signal_event_hook = on_rl_signal;
	rl_completer_word_break_characters = (char *)" \t;";
	using_history();
	stifle_history(HISTORY_MAX);
	if (hist)
		read_history(hist);
	while (!s->quit && (line = readline(prompt))) {
		add_line_to_history(line);
		interrupted = 0;
		run_line(s, line);
		free(line);
	}
	if (!s->quit)
		putchar('\n');   /* Ctrl-D */
	if (hist) {
		write_history(hist);
		history_truncate_file(hist, HISTORY_MAX);
	}
	free(hist);
}

static unsigned from_stream(struct sh *s, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned failed = 0;

	while (!s->quit && !interrupted && getline(&line, &cap, f) >= 0)
		failed += run_line(s, line);
	free(line);
	return failed;
}

/* ---- the command ---- */
static int parse(int argc, char **argv, struct sh *s, const char **cmds)
{
	static const struct option longopts[] = {
		{ "write", no_argument, NULL, 'w' },
		{ "command", required_argument, NULL, 'c' },
		{ "undo", required_argument, NULL, 'U' },
		COMMON_LONGOPTS, { 0 }
	};
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "wc:qvVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'w': s->writable = true; continue;
		case 'c': *cmds = optarg; continue;
		case 'U': s->undo_opt = optarg; continue;
		}
		rc = cmd_common_opt(opt, usage_text);
		if (rc != -2)
			return rc < 0 ? EXIT_USAGE : rc;
	}
	if (optind + 1 != argc)
		return cli_usage_error(optind >= argc ? "missing DEV" : "too many arguments");
	if (s->undo_opt && !s->writable)
		return cli_usage_error("--undo goes with -w");
	s->path = argv[optind];
	return -2;
}

int cmd_shell(int argc, char **argv)
{
	struct sh s = { 0 };
	const char *cmds = NULL;
	struct sigaction sa;
	unsigned failed = 0;
	int rc = parse(argc, argv, &s, &cmds);

	if (rc != -2)
		return rc;
	rc = cli_open_dev(s.path, (s.writable ? PCM_DEV_RDWR | PCM_DEV_EXCL : PCM_DEV_RDONLY) |
			  PCM_DEV_NOMAP, &s.dev);
	if (rc)
		return rc;
	s.dev_size = pcm_dev_size(s.dev);
	if (s.dev_size < PCM_SB_OFF + PCM_SB_SIZE) {
		char why[256];

		cli_sb_words(s.dev, why, sizeof(why));
		cli_err(s.path, "%s", why);
		pcm_dev_close(s.dev);
		return EXIT_OPERATIONAL;
	}
	s.interactive = !cmds && isatty(STDIN_FILENO);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sh_load(&s);
	if (s.interactive && !cli.quiet) {
		printf("pcache shell on %s: %s, %s", s.path,
		       s.writable ? "read-write" : "read-only", CLI_BYTES(s.dev_size));
		if (s.c)
			printf(", %u cache segments, data_crc %s", s.c->n_segs,
			       s.c->data_crc ? "on" : "off");
		printf("; 'help' lists the commands\n");
	}
	sh_announce(&s);
	if (cmds) {
		char *copy = strdup(cmds);

		failed = copy ? run_line(&s, copy) : 1;
		free(copy);
	} else if (s.interactive) {
		interactive(&s);
	} else {
		failed = from_stream(&s, stdin);
	}
	if (s.undo) {
		pcm_undo_close(s.undo);
		if (!cli.quiet)
			fprintf(stderr, "pcache shell: %s: %u change%s saved in %s; 'pcache undo %s %s' "
				"puts %s back\n", s.path, s.changes, s.changes == 1 ? "" : "s",
				s.undo_path, s.undo_path, s.path, s.changes == 1 ? "it" : "them");
	}
	free(s.undo_path);
	sh_forget(&s);
	free(s.w);
	pcm_dev_close(s.dev);
	if (interrupted && !s.interactive)
		return EXIT_CANCELLED;
	return failed ? EXIT_UNCORRECTED : EXIT_OK;
}
