/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pcache dump: every on-media structure in device order, then the key log in
 * log order, each with its device offset, CRC verdict and the replica the
 * kernel would pick.  Output is streamed: memory does not grow with the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache dump [--json [-u]] [--what LIST] [--all-replicas] [-q] [-v] DEV\n\n"
	"Prints every on-media structure of DEV with its device offset and CRC verdict:\n"
	"the superblock, cache_info, the cache ctrl tails, every segment's info and gen,\n"
	"then the key log from key_tail (ksets, keys, where and why the log ends).\n\n"
	"  --what LIST        comma-separated subset of: sb, cache-info, cache-ctrl,\n"
	"                     segments, ksets, keys (default: all)\n"
	"  --all-replicas     show both replicas of replicated records (default: the one\n"
	"                     the kernel picks, with a note when the other is invalid)\n"
	"  --json             a JSON array, one object per structure\n"
	"  -u, --human        with --json: sizes, flags and CRCs for people\n"
	"  -q, --quiet        print nothing but errors\n"
	"  -v, --verbose      more detail\n";

enum {
	W_SB = 0x1, W_CI = 0x2, W_CTRL = 0x4, W_SEGS = 0x8, W_KSETS = 0x10, W_KEYS = 0x20,
	W_ALL = 0x3f,
};

static const struct { const char *name; unsigned bit; } what_names[] = {
	{ "sb", W_SB }, { "cache-info", W_CI }, { "cache-ctrl", W_CTRL },
	{ "segments", W_SEGS }, { "ksets", W_KSETS }, { "keys", W_KEYS },
};

struct dump {
	const char *path;
	unsigned what;
	bool all;
	struct pcm_dev *dev;
	uint64_t dev_size;
	struct pcm_cache *c;             /* NULL when the cache does not open */
	struct pcm_open_status st;
	struct cli_stream js;
};

/* ---- one output record: a JSON object or one text line ---- */
struct rec {
	json_object *o;
	char line[768];
	size_t n;
};

static void text_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->n >= sizeof(r->line) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->line + r->n, sizeof(r->line) - r->n, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->n += (size_t)n;
	if (r->n > sizeof(r->line) - 1)
		r->n = sizeof(r->line) - 1;
}

/* Keys are string literals: json-c keeps the pointer instead of a copy per field. */
static void rec_add(struct rec *r, const char *key, struct json_object *v)
{
	json_object_object_add_ex(r->o, key, v, JSON_C_OBJECT_ADD_CONSTANT_KEY);
}

/* has_off false: the record has no device offset (JSON null). */
static void rec_begin(struct rec *r, const char *type, uint64_t off, bool has_off)
{
	r->n = 0;
	r->line[0] = 0;
	if (!cli.json) {
		if (has_off)
			text_add(r, "%-12s @%-11" PRIu64, type, off);
		else
			text_add(r, "%-12s %-12s", type, "-");
		return;
	}
	r->o = json_object_new_object();
	rec_add(r, "type", json_object_new_string(type));
	rec_add(r, "offset", has_off ? cli_json_u64(off) : NULL);
}

static void rec_u64(struct rec *r, const char *key, uint64_t v)
{
	if (cli.json)
		rec_add(r, key, cli_json_u64(v));
	else
		text_add(r, " %s %" PRIu64, key, v);
}

/* Text shows a field that is normally zero only when it is not (or with -v). */
static void rec_u64_nz(struct rec *r, const char *key, uint64_t v)
{
	if (cli.json || v || cli.verbose)
		rec_u64(r, key, v);
}

static void rec_hex(struct rec *r, const char *key, uint64_t v, int width)
{
	if (cli.json)
		rec_add(r, key, cli_json_hex(v, cli.human));
	else
		text_add(r, " %s 0x%0*" PRIx64, key, width, v);
}

static void rec_size(struct rec *r, const char *key, uint64_t v)
{
	if (cli.json)
		rec_add(r, key, cli_json_size(v));
	else
		text_add(r, " %s %" PRIu64, key, v);
}

/* Text shows the word only when true. */
static void rec_bool(struct rec *r, const char *key, bool v)
{
	if (cli.json)
		rec_add(r, key, json_object_new_boolean(v));
	else if (v)
		text_add(r, " %s", key);
}

static void rec_str(struct rec *r, const char *key, const char *s)
{
	if (cli.json)
		rec_add(r, key, json_object_new_string(s));
	else
		text_add(r, " %s %s", key, s);
}

/* A record's own log position: flat "cache_seg"/"seg_off" in JSON, "pos C:O" in text. */
static void rec_here(struct rec *r, struct pcm_pos p)
{
	if (cli.json) {
		rec_u64(r, "cache_seg", p.cseg);
		rec_u64(r, "seg_off", p.seg_off);
	} else {
		text_add(r, " pos %" PRIu32 ":%" PRIu32, p.cseg, p.seg_off);
	}
}

static void rec_pos(struct rec *r, const char *key, struct pcm_pos p)
{
	if (cli.json)
		rec_add(r, key, cli_json_pos(p));
	else
		text_add(r, " %s %" PRIu32 ":%" PRIu32, key, p.cseg, p.seg_off);
}

/* "crc" and "crc_ok"; text: crc 0x... ok|BAD, then a wider gap. */
static void rec_crc(struct rec *r, uint32_t crc, bool ok)
{
	if (cli.json) {
		rec_add(r, "crc", cli_json_hex(crc, cli.human));
		rec_add(r, "crc_ok", json_object_new_boolean(ok));
	} else {
		text_add(r, " crc 0x%08" PRIx32 " %s ", crc, ok ? "ok" : "BAD");
	}
}

static void rec_note(struct rec *r, const char *note)
{
	if (cli.json)
		rec_add(r, "note", json_object_new_string(note));
	else
		text_add(r, "  (%s)", note);
}

static void rec_end(struct dump *d, struct rec *r)
{
	if (cli.json)
		cli_stream_add(&d->js, r->o);
	else if (!cli.quiet)
		puts(r->line);
	r->o = NULL;
}

/* ---- helpers ---- */
static int read_error(struct dump *d, const char *what, uint64_t off, int rc)
{
	if (rc == -ERANGE)
		cli_err(d->path, "cannot read %s at offset %" PRIu64 ": past the end of the %s "
			"device", what, off, CLI_BYTES(d->dev_size));
	else
		cli_err(d->path, "cannot read %s at offset %" PRIu64 ": %s", what, off,
			strerror(-rc));
	return EXIT_OPERATIONAL;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- superblock ---- */
static int dump_sb(struct dump *d)
{
	uint8_t raw[PCM_SB_SIZE];
	struct pcm_sb sb;
	struct rec r;
	char why[256];
	int rc = pcm_read_sb(d->dev, &sb, raw);

	if (rc)
		return read_error(d, "the superblock", PCM_SB_OFF, rc);
	if (d->what & W_SB) {
		rec_begin(&r, "superblock", PCM_SB_OFF, true);
		rec_crc(&r, sb.crc, pcm_record_crc_ok(raw, sizeof(raw)));
		rec_u64(&r, "seg_num", sb.seg_num);
		rec_hex(&r, "flags", sb.flags, 0);
		rec_hex(&r, "magic", sb.magic, 0);
		rec_u64_nz(&r, "pad", sb.pad);
		rec_str(&r, "verdict", pcm_sb_verdict_str(pcm_sb_check(&sb, d->dev_size)));
		rec_end(d, &r);
	}
	if (sb.magic == PCM_SB_MAGIC)
		return EXIT_OK;
	cli_sb_words(d->dev, why, sizeof(why));
	cli_err(d->path, "%s", why);
	return EXIT_OPERATIONAL;
}

/* ---- replicated records ---- */
_Static_assert(sizeof(struct pcm_cache_info) == 24 && sizeof(struct pcm_pos_rec) == 16 &&
	       sizeof(struct pcm_seg_info) == 16 && sizeof(struct pcm_seg_gen) == 16,
	       "decoded replicated records must have no padding (all_zero)");

struct pair {
	const char *type;
	uint64_t off[PCM_REPLICAS];
	const void *recs;                /* PCM_REPLICAS decoded records */
	size_t size;                     /* of one decoded record */
	const struct pcm_rep_state *st;
	void (*fields)(struct rec *r, const void *one, bool ok);
	int64_t cseg, dseg;              /* segment records: -1 when not known */
};

static void header_fields(struct rec *r, const struct pcm_meta_header *h, bool ok)
{
	rec_crc(r, h->crc, ok);
	rec_u64(r, "seq", h->seq);
	rec_u64_nz(r, "version", h->version);
	rec_u64_nz(r, "res", h->res);
}

static void replica_note(struct dump *d, const struct pair *p, int i, struct rec *r)
{
	int other = !i;
	char note[48];

	if (p->st->pick < 0) {
		rec_note(r, "no valid replica");
		return;
	}
	if (d->all || p->st->valid[other])
		return;
	snprintf(note, sizeof(note), "replica %d %s", other,
		 all_zero((const char *)p->recs + other * p->size, p->size) ?
		 "empty: never written" : "invalid: crc mismatch");
	rec_note(r, note);
}

static void emit_replica(struct dump *d, const struct pair *p, int i)
{
	struct rec r;

	rec_begin(&r, p->type, p->off[i], true);
	if (p->cseg >= 0)
		rec_u64(&r, "cache_seg", (uint64_t)p->cseg);
	if (p->dseg >= 0)
		rec_u64(&r, "dev_seg", (uint64_t)p->dseg);
	rec_u64(&r, "replica", (uint64_t)i);
	rec_bool(&r, "picked", i == p->st->pick);
	p->fields(&r, (const char *)p->recs + i * p->size, p->st->valid[i]);
	replica_note(d, p, i, &r);
	rec_end(d, &r);
}

static void emit_pair(struct dump *d, const struct pair *p)
{
	for (int i = 0; i < PCM_REPLICAS; i++)
		if (d->all || p->st->pick < 0 || i == p->st->pick)
			emit_replica(d, p, i);
}

static void ci_fields(struct rec *r, const void *one, bool ok)
{
	const struct pcm_cache_info *ci = one;

	header_fields(r, &ci->h, ok);
	rec_u64(r, "seg_id", ci->seg_id);
	rec_u64(r, "n_segs", ci->n_segs);
	rec_hex(r, "flags", ci->flags, 0);
	rec_bool(r, "data_crc", ci->flags & PCM_CI_F_DATA_CRC);
	rec_bool(r, "init_done", ci->flags & PCM_CI_F_INIT_DONE);
	rec_str(r, "cache_mode", pcm_cache_mode_name(pcm_ci_cache_mode(ci->flags)));
	rec_u64(r, "gc_percent", pcm_ci_gc_percent(ci->flags));
	rec_u64_nz(r, "reserved", ci->reserved);
}

static int dump_cache_info(struct dump *d)
{
	struct pcm_cache_info ci[PCM_REPLICAS];
	struct pcm_rep_state st;
	int rc = pcm_read_cache_info(d->dev, ci, &st);

	if (rc)
		return read_error(d, "cache_info", PCM_CACHE_INFO_OFF, rc);
	emit_pair(d, &(struct pair){
		.type = "cache_info", .recs = ci, .size = sizeof(ci[0]), .st = &st,
		.off = { PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT },
		.fields = ci_fields, .cseg = -1, .dseg = -1 });
	return EXIT_OK;
}

static void tail_fields(struct rec *r, const void *one, bool ok)
{
	const struct pcm_pos_rec *p = one;

	header_fields(r, &p->h, ok);
	rec_u64(r, "cache_seg", p->pos.cseg);
	rec_u64(r, "seg_off", p->pos.seg_off);
}

static int dump_ctrl(struct dump *d)
{
	static const char *const names[] = { "key_tail", "dirty_tail" };
	struct pcm_pos_rec p[PCM_REPLICAS];
	struct pcm_rep_state st;

	for (int which = 0; which < 2; which++) {
		uint64_t off = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;
		int rc = pcm_read_tail(d->dev, which, p, &st);

		if (rc)
			return read_error(d, names[which], off, rc);
		emit_pair(d, &(struct pair){
			.type = names[which], .recs = p, .size = sizeof(p[0]), .st = &st,
			.off = { off, off + PCM_POS_SIZE }, .fields = tail_fields,
			.cseg = -1, .dseg = -1 });
	}
	return EXIT_OK;
}

/* ---- segments ---- */
static void seg_info_fields(struct rec *r, const void *one, bool ok)
{
	const struct pcm_seg_info *si = one;

	header_fields(r, &si->h, ok);
	rec_hex(r, "flags", si->flags, 0);
	rec_bool(r, "has_next", si->flags & PCM_SEGI_F_HAS_NEXT);
	rec_u64(r, "seg_type", (si->flags & PCM_SEGI_TYPE_MASK) >> PCM_SEGI_TYPE_SHIFT);
	rec_u64(r, "next_seg", si->next_seg);
}

static void seg_gen_fields(struct rec *r, const void *one, bool ok)
{
	const struct pcm_seg_gen *g = one;

	header_fields(r, &g->h, ok);
	rec_u64(r, "gen", g->gen);
}

static int dump_segment(struct dump *d, int64_t cseg, uint32_t dseg)
{
	uint64_t base = pcm_seg_base(dseg), goff = base + PCM_SEG_CTRL_OFF;
	struct pcm_seg_info si[PCM_REPLICAS];
	struct pcm_seg_gen g[PCM_REPLICAS];
	struct pcm_rep_state st;
	int rc = pcm_read_seg_info(d->dev, dseg, si, &st);

	if (rc)
		return read_error(d, "segment info", base, rc);
	emit_pair(d, &(struct pair){
		.type = "segment_info", .recs = si, .size = sizeof(si[0]), .st = &st,
		.off = { base, base + PCM_SEG_INFO_SLOT }, .fields = seg_info_fields,
		.cseg = cseg, .dseg = dseg });
	rc = pcm_read_seg_gen(d->dev, dseg, g, &st);
	if (rc)
		return read_error(d, "segment gen", goff, rc);
	emit_pair(d, &(struct pair){
		.type = "segment_gen", .recs = g, .size = sizeof(g[0]), .st = &st,
		.off = { goff, goff + PCM_SEG_GEN_SIZE }, .fields = seg_gen_fields,
		.cseg = cseg, .dseg = dseg });
	return EXIT_OK;
}

/* Without an opened cache: every device segment the superblock names and the device holds. */
static int dump_dev_segments(struct dump *d)
{
	struct pcm_sb sb;
	uint64_t fit = d->dev_size > PCM_SEGMENTS_OFF ?
		       (d->dev_size - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE : 0;
	uint64_t n;
	int rc = pcm_read_sb(d->dev, &sb, NULL);

	if (rc)
		return read_error(d, "the superblock", PCM_SB_OFF, rc);
	n = sb.seg_num < fit ? sb.seg_num : fit;
	cli_err(d->path, "warning: the cache does not open: %s; listing %" PRIu64
		" device segments in device order", pcm_open_error_str(&d->st), n);
	for (uint64_t i = 0; i < n; i++) {
		rc = dump_segment(d, -1, (uint32_t)i);
		if (rc)
			return rc;
	}
	return EXIT_OK;
}

static int dump_segments(struct dump *d)
{
	if (!d->c)
		return dump_dev_segments(d);
	for (uint32_t i = 0; i < d->c->n_segs; i++) {
		int rc = dump_segment(d, i, d->c->dseg[i]);

		if (rc)
			return rc;
	}
	return EXIT_OK;
}

/* ---- the key log ---- */
static void tail_marks(const struct dump *d, struct rec *r, struct pcm_pos pos)
{
	rec_bool(r, "at_key_tail", pcm_pos_eq(pos, d->c->key_tail.pos));
	rec_bool(r, "at_dirty_tail", pcm_pos_eq(pos, d->c->dirty_tail.pos));
}

/* A kset header at w->pos; crc_ok false for the one that ended the log on its CRC. */
static void emit_kset(struct dump *d, const struct pcm_walk *w, bool crc_ok)
{
	const struct pcm_kset_hdr *h = &w->hdr;
	bool last = h->flags & PCM_KSET_F_LAST;
	struct rec r;

	rec_begin(&r, "kset", pcm_pos_dev_off(d->c, w->pos.cseg, w->pos.seg_off), true);
	rec_here(&r, w->pos);
	rec_crc(&r, h->crc, crc_ok);
	if (!crc_ok && !cli.json)
		text_add(&r, "(expected 0x%08" PRIx32 ") ",
			 pcm_kcrc(w->data + 4, pcm_kset_size(h) - 4));
	else if (!crc_ok)
		rec_add(&r, "crc_expected", cli_json_hex(
			pcm_kcrc(w->data + 4, pcm_kset_size(h) - 4), cli.human));
	rec_u64(&r, last ? "next_cache_seg" : "key_num", h->key_num);
	rec_hex(&r, "flags", h->flags, 0);
	rec_bool(&r, "last", last);
	rec_size(&r, "size", pcm_kset_size(h));
	tail_marks(d, &r, w->pos);
	rec_end(d, &r);
}

static void emit_key(struct dump *d, const struct pcm_walk *w, unsigned i)
{
	const struct pcm_cache *c = d->c;
	struct pcm_key k;
	struct rec r;

	pcm_walk_key(w, i, &k);
	rec_begin(&r, "key", pcm_pos_dev_off(c, w->pos.cseg, w->pos.seg_off) +
		  PCM_KSET_HDR_SIZE + (uint64_t)i * PCM_KEY_SIZE, true);
	rec_u64(&r, "index", i);
	rec_u64(&r, "off", k.off);
	rec_size(&r, "len", k.len);
	rec_hex(&r, "flags", k.flags, 0);
	rec_bool(&r, "clean", k.flags & PCM_KEY_F_CLEAN);
	rec_bool(&r, "empty", k.flags & PCM_KEY_F_EMPTY);
	rec_u64(&r, "cache_seg", k.cseg);
	rec_u64(&r, "seg_off", k.seg_off);
	rec_u64(&r, "seg_gen", k.seg_gen);
	rec_hex(&r, "data_crc", k.data_crc, 8);
	rec_u64_nz(&r, "reserved", k.reserved);
	rec_bool(&r, "stale", k.cseg < c->n_segs && k.seg_gen < c->gen[k.cseg]);
	rec_str(&r, "verdict", pcm_key_verdict_str(pcm_key_check(c, &k, false)));
	rec_end(d, &r);
}

static void emit_log_end(struct dump *d, const struct pcm_walk *w, enum pcm_walk_event ev)
{
	struct rec r;

	rec_begin(&r, "log_end", pcm_pos_dev_off(d->c, w->pos.cseg, w->pos.seg_off), true);
	if (cli.json)
		rec_bool(&r, "walked", true);
	rec_pos(&r, "key_head", w->pos);
	rec_bool(&r, "clean_end", w->stop == PCM_STOP_TERMINATOR);
	rec_bool(&r, "refused", ev == PCM_WALK_FAIL);
	rec_u64(&r, "ksets", w->ksets);
	rec_u64(&r, "keys", w->keys);
	tail_marks(d, &r, w->pos);
	rec_str(&r, "stop", pcm_walk_stop_str(w->stop));
	rec_end(d, &r);
}

/* The record that ended the walk, when it is a kset header (bad CRC or a refused one). */
static void emit_stop_kset(struct dump *d, const struct pcm_walk *w)
{
	switch (w->stop) {
	case PCM_STOP_CRC:
		emit_kset(d, w, false);
		break;
	case PCM_FAIL_HOPS:
	case PCM_FAIL_NEXT_RANGE:
	case PCM_FAIL_OVERSIZE:
		emit_kset(d, w, true);
		break;
	default:
		break;
	}
}

static int log_not_walked(struct dump *d)
{
	struct rec r;
	char why[256];

	if (!(d->what & W_KSETS))
		return EXIT_OK;
	snprintf(why, sizeof(why), "the cache does not open: %s", pcm_open_error_str(&d->st));
	rec_begin(&r, "log_end", 0, false);
	if (cli.json) {
		rec_bool(&r, "walked", false);
		rec_str(&r, "reason", why);
	} else {
		text_add(&r, " not walked: %s", why);
	}
	rec_end(d, &r);
	return EXIT_OK;
}

static int dump_log(struct dump *d)
{
	struct pcm_walk *w;
	enum pcm_walk_event ev;
	int rc = EXIT_OK;

	if (!d->c)
		return log_not_walked(d);
	w = malloc(sizeof(*w));
	if (!w) {
		cli_err(d->path, "cannot walk the key log: %s", strerror(ENOMEM));
		return EXIT_OPERATIONAL;
	}
	pcm_walk_init(w, d->c, d->c->key_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST) {
		if (d->what & W_KSETS)
			emit_kset(d, w, true);
		for (unsigned i = 0; ev == PCM_WALK_KSET && (d->what & W_KEYS) &&
		     i < w->hdr.key_num; i++)
			emit_key(d, w, i);
	}
	if (d->what & W_KSETS) {
		emit_stop_kset(d, w);
		emit_log_end(d, w, ev);
	}
	if (w->stop == PCM_FAIL_IO)
		rc = read_error(d, "the key log", pcm_pos_dev_off(d->c, w->pos.cseg,
								   w->pos.seg_off), w->err);
	free(w);
	return rc;
}

/* ---- command line ---- */
static int parse_what(const char *list, unsigned *what)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int rc = -2;

	*what = 0;
	for (tok = strtok_r(copy, ",", &save); tok && rc == -2; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(what_names) / sizeof(what_names[0]); i++)
			if (!strcmp(tok, what_names[i].name))
				break;
		if (i == sizeof(what_names) / sizeof(what_names[0]))
			rc = cli_usage_error("--what: unknown structure '%s' (known: sb, cache-info, "
					     "cache-ctrl, segments, ksets, keys)", tok);
		else
			*what |= what_names[i].bit;
	}
	if (rc == -2 && !*what)
		rc = cli_usage_error("--what: empty list");
	free(copy);
	return rc;
}

static int parse(int argc, char **argv, struct dump *d)
{
	static const struct option longopts[] = {
		{ "what", required_argument, NULL, 'w' },
		{ "all-replicas", no_argument, NULL, 'a' },
		REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 }
	};
	int opt, rc;

	d->what = W_ALL;
	while ((opt = getopt_long(argc, argv, "uqvVh", longopts, NULL)) != -1) {
		if (opt == 'w')
			rc = parse_what(optarg, &d->what);
		else if (opt == 'a')
			rc = (d->all = true, -2);
		else
			rc = cmd_common_opt(opt, usage_text);
		if (rc != -2)
			return rc < 0 ? EXIT_USAGE : rc;
	}
	if (optind + 1 != argc)
		return cli_usage_error(optind >= argc ? "missing DEV" : "too many arguments");
	d->path = argv[optind];
	return -2;
}

static int dump_all(struct dump *d)
{
	int rc = dump_sb(d);

	if (!rc && (d->what & W_CI))
		rc = dump_cache_info(d);
	if (!rc && (d->what & W_CTRL))
		rc = dump_ctrl(d);
	if (!rc && (d->what & W_SEGS))
		rc = dump_segments(d);
	if (!rc && (d->what & (W_KSETS | W_KEYS)))
		rc = dump_log(d);
	return rc;
}

int cmd_dump(int argc, char **argv)
{
	struct dump d = { 0 };
	int rc = parse(argc, argv, &d);

	if (rc != -2)
		return rc;
	rc = cli_open_dev(d.path, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &d.dev);
	if (rc)
		return rc;
	d.dev_size = pcm_dev_size(d.dev);
	if (d.dev_size < PCM_SB_OFF + PCM_SB_SIZE) {
		char why[256];

		cli_sb_words(d.dev, why, sizeof(why));
		cli_err(d.path, "%s", why);
		pcm_dev_close(d.dev);
		return EXIT_OPERATIONAL;
	}
	if (pcm_cache_open(d.dev, &d.c, &d.st))
		d.c = NULL;
	if (cli.json)
		cli_stream_begin(&d.js, stdout);
	rc = dump_all(&d);
	if (cli.json)
		cli_stream_end(&d.js);
	pcm_cache_close(d.c);
	pcm_dev_close(d.dev);
	return rc;
}
