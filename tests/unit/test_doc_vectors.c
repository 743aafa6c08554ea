/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_doc_vectors.c - the test vectors of doc/format.md §11, read from the
 * document itself and checked against the library: the CRC rows of §11.1
 * (pcm_crc32c, pcm_kcrc and a bitwise reference), the whole records of §11.2
 * (stored and computed CRC, every field decoded by the codec, the bytes
 * rebuilt from the fields by the encoder and sealed), the replica choices of
 * §11.4 (pcm_replica_pick) and the segment counts of §11.5
 * (pcm_seg_num_for_size, pcm_format_plan).
 *
 * The document is $PCACHE_SRCDIR/doc/format.md, or doc/format.md from the
 * current directory (tests/run-tests.sh runs from the repository root).  The
 * number of rows of each table is fixed below: a table that shrinks, or a row
 * the parser no longer recognises, fails the test instead of passing it
 * vacuously.  Adding a vector means raising its count here.
 */
#include "pcachemeta.h"
#include "tap.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Rows each table of §11 holds today. */
enum {
	WANT_CRC = 11,       /* §11.1 */
	WANT_RECORDS = 15,   /* §11.2 */
	WANT_REPLICAS = 13,  /* §11.4 */
	WANT_SEGNUM = 9,     /* §11.5 */
};

#define MAX_LINES 20000
#define MAX_CELLS 8
#define MAX_BYTES 8192

/* ---- the document ---- */

static char *doc_text;
static char *lines[MAX_LINES];
static int nlines;

static bool load_doc(void)
{
	const char *dir = getenv("PCACHE_SRCDIR");
	char path[4096];
	FILE *f;
	long n;

	if (dir && *dir)
		snprintf(path, sizeof(path), "%s/doc/format.md", dir);
	else
		snprintf(path, sizeof(path), "doc/format.md");
	f = fopen(path, "r");
	if (!ok(f != NULL, "open %s", path))
		return false;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	doc_text = malloc((size_t)n + 1);
	if (!doc_text || fread(doc_text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		return ok(false, "read %s", path);
	}
	fclose(f);
	doc_text[n] = 0;
	for (char *p = doc_text; *p && nlines < MAX_LINES;) {
		char *e = strchr(p, '\n');

		lines[nlines++] = p;
		if (!e)
			break;
		*e = 0;
		p = e + 1;
	}
	diag("%s: %d lines", path, nlines);
	return true;
}

/* [first, end) lines of subsection "### <num> ..." (up to the next heading). */
static bool subsection(const char *num, int *first, int *end)
{
	size_t n = strlen(num);

	for (int i = 0; i < nlines; i++) {
		if (strncmp(lines[i], "### ", 4) || strncmp(lines[i] + 4, num, n) ||
		    lines[i][4 + n] != ' ')
			continue;
		*first = i + 1;
		for (*end = i + 1; *end < nlines; (*end)++)
			if (!strncmp(lines[*end], "## ", 3) || !strncmp(lines[*end], "### ", 4))
				break;
		return true;
	}
	return false;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/*
 * A table row "| id | cell | ... |" whose id is letters and digits: splits a
 * copy of it into cells.  Returns the number of cells, 0 for anything else
 * (text, the header row "| id |", the "|---|" row).
 */
static int row_cells(const char *line, char *buf, size_t size, char *cell[MAX_CELLS])
{
	int n = 0;
	char *p;

	if (strncmp(line, "| ", 2) || strlen(line) >= size)
		return 0;
	strcpy(buf, line);
	p = buf + 1;
	while (n < MAX_CELLS) {
		char *bar = strchr(p, '|');

		if (!bar)
			break;
		*bar = 0;
		cell[n++] = trim(p);
		p = bar + 1;
	}
	if (n < 2 || !isalpha((unsigned char)cell[0][0]) || !strcmp(cell[0], "id"))
		return 0;
	for (const char *c = cell[0]; *c; c++)
		if (!isalnum((unsigned char)*c))
			return 0;
	return n;
}

/* A number: 0x... hexadecimal, else decimal.  false on junk. */
static bool num(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2))
		*v = strtoull(s + 2, &end, 16);
	else
		*v = strtoull(s, &end, 10);
	return !errno && end != s && *trim(end) == 0;
}

/* Hex bytes "hh hh hh*N ..." or "(empty)" appended to out; false on junk. */
static bool hex_bytes(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	char buf[1024], *save = NULL, *tok;

	if (!strcmp(s, "(empty)"))
		return true;
	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *star = strchr(tok, '*'), *end;
		unsigned long b, rep = 1;

		if (star) {
			uint64_t r;

			*star = 0;
			if (!num(star + 1, &r) || r > cap)
				return false;
			rep = (unsigned long)r;
		}
		if (strlen(tok) != 2)
			return false;
		b = strtoul(tok, &end, 16);
		if (*end)
			return false;
		for (unsigned long i = 0; i < rep; i++) {
			if (*n >= cap)
				return false;
			out[(*n)++] = (uint8_t)b;
		}
	}
	return true;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* §0.1 written out bit by bit, independent of the library's tables and SSE4.2 path. */
static uint32_t ref_crc(uint32_t reg, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		reg ^= p[i];
		for (int b = 0; b < 8; b++)
			reg = (reg & 1) ? (reg >> 1) ^ 0x82F63B78u : reg >> 1;
	}
	return reg;
}

/* ---- §11.1 CRC ---- */

static void test_crc(void)
{
	static uint8_t data[MAX_BYTES];
	char buf[2048], *c[MAX_CELLS];
	int first, end, found = 0;

	if (!ok(subsection("11.1", &first, &end), "doc/format.md has §11.1"))
		return;
	for (int i = first; i < end; i++) {
		uint64_t start, x, want;
		size_t n = 0;
		uint32_t got, ref;
		bool good;

		if (row_cells(lines[i], buf, sizeof(buf), c) < 5)
			continue;
		found++;
		if (!ok(hex_bytes(c[1], data, sizeof(data), &n) && num(c[2], &start) &&
			num(c[3], &x) && num(c[4], &want),
			"§11.1 %s: row parses: '%s'", c[0], lines[i]))
			continue;
		got = pcm_crc32c((uint32_t)start, data, n) ^ (uint32_t)x;
		ref = ref_crc((uint32_t)start, data, n) ^ (uint32_t)x;
		good = got == want && ref == want;
		if (start == PCM_CRC_SEED && x == 0)
			good = good && pcm_kcrc(data, n) == want;
		ok(good, "§11.1 %s: R(0x%08llX, %zu bytes) ^ 0x%08llX = 0x%08llX (library 0x%08X, bitwise 0x%08X)",
		   c[0], (unsigned long long)start, n, (unsigned long long)x,
		   (unsigned long long)want, got, ref);
	}
	ok(found == WANT_CRC, "§11.1: %d CRC vectors found, %d expected", found, WANT_CRC);
}

/* ---- §11.2 records ---- */

enum rec_kind { R_SB, R_CI, R_POS, R_SEGINFO, R_GEN, R_KSET, R_KEY };

static const struct { const char *name; enum rec_kind kind; } rec_names[] = {
	{ "sb", R_SB }, { "cache_info", R_CI }, { "pos", R_POS }, { "seg_info", R_SEGINFO },
	{ "seg_gen", R_GEN }, { "kset", R_KSET }, { "key", R_KEY },
};

/* A decoded record of any kind. */
struct rec {
	struct pcm_sb sb;
	struct pcm_cache_info ci;
	struct pcm_pos_rec pos;
	struct pcm_seg_info si;
	struct pcm_seg_gen gen;
	struct pcm_kset_hdr kh;
	struct pcm_key key[PCM_KSET_KEYS_MAX];
};

struct field {
	const char *name;
	size_t off;      /* in struct rec (keys: in struct pcm_key) */
	size_t width;
};

#define F(n, m) { n, offsetof(struct rec, m), sizeof(((struct rec *)0)->m) }
#define FK(n, m) { n, offsetof(struct pcm_key, m), sizeof(((struct pcm_key *)0)->m) }

static const struct field f_sb[] = {
	F("flags", sb.flags), F("magic", sb.magic), F("seg_num", sb.seg_num), F("pad", sb.pad),
	{ NULL, 0, 0 },
};
static const struct field f_ci[] = {
	F("seq", ci.h.seq), F("version", ci.h.version), F("res", ci.h.res),
	F("seg_id", ci.seg_id), F("n_segs", ci.n_segs), F("flags", ci.flags),
	F("reserved", ci.reserved), { NULL, 0, 0 },
};
static const struct field f_pos[] = {
	F("seq", pos.h.seq), F("version", pos.h.version), F("res", pos.h.res),
	F("cseg", pos.pos.cseg), F("seg_off", pos.pos.seg_off), { NULL, 0, 0 },
};
static const struct field f_si[] = {
	F("seq", si.h.seq), F("version", si.h.version), F("res", si.h.res),
	F("flags", si.flags), F("next_seg", si.next_seg), { NULL, 0, 0 },
};
static const struct field f_gen[] = {
	F("seq", gen.h.seq), F("version", gen.h.version), F("res", gen.h.res),
	F("gen", gen.gen), { NULL, 0, 0 },
};
static const struct field f_kset[] = {
	F("key_num", kh.key_num), F("magic", kh.magic), F("flags", kh.flags), { NULL, 0, 0 },
};
static const struct field f_key[] = {
	FK("off", off), FK("len", len), FK("flags", flags), FK("cseg", cseg),
	FK("seg_off", seg_off), FK("seg_gen", seg_gen), FK("data_crc", data_crc),
	FK("reserved", reserved), { NULL, 0, 0 },
};

static const struct field *fields_of(enum rec_kind k)
{
	switch (k) {
	case R_SB: return f_sb;
	case R_CI: return f_ci;
	case R_POS: return f_pos;
	case R_SEGINFO: return f_si;
	case R_GEN: return f_gen;
	case R_KSET: return f_kset;
	case R_KEY: return f_key;
	}
	return NULL;
}

static void decode(enum rec_kind k, const uint8_t *b, size_t size, struct rec *r)
{
	memset(r, 0, sizeof(*r));
	switch (k) {
	case R_SB: pcm_sb_decode(b, &r->sb); break;
	case R_CI: pcm_cache_info_decode(b, &r->ci); break;
	case R_POS: pcm_pos_rec_decode(b, &r->pos); break;
	case R_SEGINFO: pcm_seg_info_decode(b, &r->si); break;
	case R_GEN: pcm_seg_gen_decode(b, &r->gen); break;
	case R_KEY: pcm_key_decode(b, &r->key[0]); break;
	case R_KSET:
		pcm_kset_hdr_decode(b, &r->kh);
		for (size_t i = 0; PCM_KSET_HDR_SIZE + (i + 1) * PCM_KEY_SIZE <= size &&
				   i < PCM_KSET_KEYS_MAX; i++)
			pcm_key_decode(b + PCM_KSET_HDR_SIZE + i * PCM_KEY_SIZE, &r->key[i]);
		break;
	}
}

static void encode(enum rec_kind k, const struct rec *r, uint8_t *b, size_t size)
{
	switch (k) {
	case R_SB: pcm_sb_encode(&r->sb, b); break;
	case R_CI: pcm_cache_info_encode(&r->ci, b); break;
	case R_POS: pcm_pos_rec_encode(&r->pos, b); break;
	case R_SEGINFO: pcm_seg_info_encode(&r->si, b); break;
	case R_GEN: pcm_seg_gen_encode(&r->gen, b); break;
	case R_KEY: pcm_key_encode(&r->key[0], b); break;
	case R_KSET:
		pcm_kset_hdr_encode(&r->kh, b);
		for (size_t i = 0; PCM_KSET_HDR_SIZE + (i + 1) * PCM_KEY_SIZE <= size &&
				   i < PCM_KSET_KEYS_MAX; i++)
			pcm_key_encode(&r->key[i], b + PCM_KSET_HDR_SIZE + i * PCM_KEY_SIZE);
		break;
	}
}

static uint64_t get_field(const void *base, const struct field *f)
{
	const uint8_t *p = (const uint8_t *)base + f->off;

	switch (f->width) {
	case 1: return *p;
	case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
	case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
	default: { uint64_t v; memcpy(&v, p, 8); return v; }
	}
}

static void set_field(void *base, const struct field *f, uint64_t v)
{
	uint8_t *p = (uint8_t *)base + f->off;

	switch (f->width) {
	case 1: *p = (uint8_t)v; break;
	case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
	case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
	default: memcpy(p, &v, 8); break;
	}
}

/*
 * Finds "name" (or "kN.name" for a key of a kset) and where it lives in r.
 * Returns the field and sets *base, or NULL for an unknown name.
 */
static const struct field *find_field(enum rec_kind k, const char *name, struct rec *r,
				      void **base)
{
	const struct field *f = fields_of(k);

	*base = r;
	if (k == R_KEY) {
		f = f_key;
		*base = &r->key[0];
	} else if (k == R_KSET && name[0] == 'k' && isdigit((unsigned char)name[1])) {
		char *dot;
		unsigned long i = strtoul(name + 1, &dot, 10);

		if (*dot != '.' || i >= PCM_KSET_KEYS_MAX)
			return NULL;
		f = f_key;
		*base = &r->key[i];
		name = dot + 1;
	}
	for (; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/* The hex block of §11.2: id at column 0 starts a vector, indented lines continue it. */
struct vec_bytes {
	char id[16];
	uint8_t b[MAX_BYTES];
	size_t n;
	bool bad;
};

static struct vec_bytes blocks[64];
static int nblocks;

static void read_blocks(int first, int end)
{
	bool in = false;
	struct vec_bytes *cur = NULL;

	for (int i = first; i < end; i++) {
		const char *l = lines[i];
		char buf[256], *p;

		if (!strncmp(l, "```", 3)) {
			in = !in;
			cur = NULL;
			continue;
		}
		if (!in || strlen(l) >= sizeof(buf))
			continue;
		strcpy(buf, l);
		p = trim(buf);
		if (!*p)
			continue;
		if (!isspace((unsigned char)l[0])) {
			size_t k = strcspn(p, " \t");

			if (nblocks == (int)ARRAY_SIZE(blocks) || k >= sizeof(cur->id)) {
				cur = NULL;
				continue;
			}
			cur = &blocks[nblocks++];
			memcpy(cur->id, p, k);
			cur->id[k] = 0;
			p = trim(p + k);
		}
		if (cur && !hex_bytes(p, cur->b, sizeof(cur->b), &cur->n))
			cur->bad = true;
	}
}

static const struct vec_bytes *block_of(const char *id)
{
	const struct vec_bytes *found = NULL;

	for (int i = 0; i < nblocks; i++)
		if (!strcmp(blocks[i].id, id)) {
			if (found)
				return NULL;   /* twice: ambiguous */
			found = &blocks[i];
		}
	return found;
}

static void check_record(char **c)
{
	const char *id = c[0];
	const struct vec_bytes *vb = block_of(id);
	enum rec_kind kind = R_SB;
	bool known = false, has_crc = strcmp(c[3], "-") != 0, fields_ok = true;
	uint64_t size = 0, crc = 0;
	static struct rec dec, built;
	static uint8_t out[MAX_BYTES];
	char fbuf[2048], *save = NULL, *tok;

	for (size_t i = 0; i < ARRAY_SIZE(rec_names); i++)
		if (!strcmp(rec_names[i].name, c[1])) {
			kind = rec_names[i].kind;
			known = true;
		}
	if (!ok(known && num(c[2], &size) && (!has_crc || num(c[3], &crc)),
		"§11.2 %s: record '%s', size '%s', crc '%s' parse", id, c[1], c[2], c[3]))
		return;
	if (!ok(vb && !vb->bad && vb->n == size, "§11.2 %s: its bytes are in the block, %llu of them",
		id, (unsigned long long)size))
		return;
	if (has_crc) {
		uint32_t lib = pcm_record_crc(vb->b, vb->n), ref = ref_crc(PCM_CRC_SEED, vb->b + 4,
								      vb->n - 4);

		ok(get_le32(vb->b) == crc && lib == crc && ref == crc && pcm_record_crc_ok(vb->b, vb->n),
		   "§11.2 %s: crc 0x%08llX is stored and is kcrc of bytes [4, %llu) (library 0x%08X, bitwise 0x%08X)",
		   id, (unsigned long long)crc, (unsigned long long)size, lib, ref);
	}
	decode(kind, vb->b, vb->n, &dec);
	memset(&built, 0, sizeof(built));
	if (strlen(c[4]) >= sizeof(fbuf)) {
		ok(false, "§11.2 %s: fields cell too long", id);
		return;
	}
	strcpy(fbuf, c[4]);
	for (tok = strtok_r(fbuf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		const struct field *f;
		void *db, *bb;
		uint64_t want;

		if (!eq || !num(eq + 1, &want)) {
			fields_ok = ok(false, "§11.2 %s: field '%s' is not name=number", id, tok);
			continue;
		}
		*eq = 0;
		f = find_field(kind, tok, &dec, &db);
		if (!f || !find_field(kind, tok, &built, &bb)) {
			fields_ok = ok(false, "§11.2 %s: no field '%s' in a %s record", id, tok, c[1]);
			continue;
		}
		if (get_field(db, f) != want) {
			fields_ok = ok(false, "§11.2 %s: decoded %s = 0x%llx, the table says 0x%llx", id,
				       tok, (unsigned long long)get_field(db, f),
				       (unsigned long long)want);
		}
		set_field(bb, f, want);
	}
	ok(fields_ok, "§11.2 %s: the codec decodes every field of the table from the bytes", id);
	if (kind == R_KSET)
		ok(pcm_kset_size(&dec.kh) == size, "§11.2 %s: kset size %llu = pcm_kset_size()", id,
		   (unsigned long long)size);
	memset(out, 0xEE, sizeof(out));
	encode(kind, &built, out, vb->n);
	if (has_crc)
		pcm_record_seal(out, vb->n);
	ok(!memcmp(out, vb->b, vb->n), "§11.2 %s: the fields, encoded%s, give exactly the bytes", id,
	   has_crc ? " and sealed" : "");
}

static void test_records(void)
{
	char buf[2048], *c[MAX_CELLS];
	int first, end, found = 0;

	if (!ok(subsection("11.2", &first, &end), "doc/format.md has §11.2"))
		return;
	read_blocks(first, end);
	for (int i = first; i < end; i++) {
		if (row_cells(lines[i], buf, sizeof(buf), c) < 5)
			continue;
		found++;
		check_record(c);
	}
	ok(found == WANT_RECORDS, "§11.2: %d record vectors found, %d expected", found, WANT_RECORDS);
	ok(nblocks == found, "§11.2: %d byte blocks for %d table rows", nblocks, found);
}

/* ---- §11.4 replica choice ---- */

/* "seq N" -> a valid gen record with that seq; "invalid" -> one failing its CRC. */
static bool make_replica(const char *cell, uint8_t rec[PCM_SEG_GEN_SIZE], uint64_t gen)
{
	struct pcm_seg_gen g = { .gen = gen };
	uint64_t seq;

	if (!strcmp(cell, "invalid")) {
		pcm_seg_gen_encode(&g, rec);
		pcm_record_seal(rec, PCM_SEG_GEN_SIZE);
		rec[PCM_SEG_GEN_SIZE - 1] ^= 0x5A;
		return true;
	}
	if (strncmp(cell, "seq ", 4) || !num(cell + 4, &seq) || seq > 255)
		return false;
	g.h.seq = (uint8_t)seq;
	pcm_seg_gen_encode(&g, rec);
	pcm_record_seal(rec, PCM_SEG_GEN_SIZE);
	return true;
}

static void test_replicas(void)
{
	char buf[512], *c[MAX_CELLS];
	int first, end, found = 0;

	if (!ok(subsection("11.4", &first, &end), "doc/format.md has §11.4"))
		return;
	for (int i = first; i < end; i++) {
		uint8_t r0[PCM_SEG_GEN_SIZE], r1[PCM_SEG_GEN_SIZE];
		const uint8_t *rec[PCM_REPLICAS] = { r0, r1 };
		bool valid[PCM_REPLICAS];
		int want, got;

		if (row_cells(lines[i], buf, sizeof(buf), c) < 4)
			continue;
		found++;
		want = !strcmp(c[3], "none") ? -1 : !strcmp(c[3], "0") ? 0 : !strcmp(c[3], "1") ? 1 : -2;
		if (!ok(want > -2 && make_replica(c[1], r0, 100) && make_replica(c[2], r1, 200),
			"§11.4 %s: row parses: '%s'", c[0], lines[i]))
			continue;
		got = pcm_replica_pick(rec, PCM_SEG_GEN_SIZE, valid);
		ok(got == want && valid[0] == !!strcmp(c[1], "invalid") &&
		   valid[1] == !!strcmp(c[2], "invalid"),
		   "§11.4 %s: %s / %s -> the kernel reads %s (pcm_replica_pick: %d)", c[0], c[1], c[2],
		   c[3], got);
	}
	ok(found == WANT_REPLICAS, "§11.4: %d replica cases found, %d expected", found, WANT_REPLICAS);
}

/* ---- §11.5 segment count ---- */

static void test_seg_num(void)
{
	char buf[512], *c[MAX_CELLS];
	int first, end, found = 0;

	if (!ok(subsection("11.5", &first, &end), "doc/format.md has §11.5"))
		return;
	for (int i = first; i < end; i++) {
		struct pcm_format_opts o = { .gc_percent = PCM_GC_PERCENT_DEFAULT };
		struct pcm_format_plan plan;
		uint64_t size, segs;
		int want_rc, rc;

		if (row_cells(lines[i], buf, sizeof(buf), c) < 4)
			continue;
		found++;
		want_rc = !strcmp(c[3], "accepted") ? 0 : !strcmp(c[3], "too small") ? -ENOSPC :
			  !strcmp(c[3], "too many") ? -EFBIG : 1;
		if (!ok(want_rc != 1 && num(c[1], &size) && num(c[2], &segs),
			"§11.5 %s: row parses: '%s'", c[0], lines[i]))
			continue;
		ok(pcm_seg_num_for_size(size) == segs, "§11.5 %s: %llu bytes -> seg_num %llu (pcm_seg_num_for_size: %u)",
		   c[0], (unsigned long long)size, (unsigned long long)segs, pcm_seg_num_for_size(size));
		rc = pcm_format_plan(size, &o, &plan);
		ok(rc == want_rc && (rc || plan.seg_num == segs),
		   "§11.5 %s: format of %llu bytes: %s (pcm_format_plan: %d)", c[0],
		   (unsigned long long)size, c[3], rc);
	}
	ok(found == WANT_SEGNUM, "§11.5: %d segment counts found, %d expected", found, WANT_SEGNUM);
}

int main(void)
{
	if (load_doc()) {
		test_crc();
		test_records();
		test_replicas();
		test_seg_num();
	}
	free(doc_text);
	return tap_done();
}
