/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * corrupt: applies one named corruption to a dm-pcache image, for the fsck
 * corruption corpus (tests/corrupt/).  Structures are located with
 * libpcachemeta (replica picks, the segment chain, the key log walk); where a
 * case needs a record that is wrong but checksum-valid, it is re-encoded and
 * sealed with the library.  Every byte changed is reported on stdout as
 *
 *   corrupt: NAME: @OFFSET +LEN: OLD -> NEW (what)
 *
 * Exit: 0 applied, 8 the image lacks the structure the case needs (or I/O
 * error), 16 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mutate.h"
#include "pcachemeta.h"

enum { C_OK = 0, C_NEED = 8, C_USAGE = 16 };

#define MAX_ARGS 4

struct kent {
	struct pcm_pos pos;
	struct pcm_kset_hdr hdr;
	bool last;
};

struct ctx {
	const char *img, *name;
	struct pcm_dev *dev;
	struct pcm_cache *c;
	unsigned nargs;
	uint64_t args[MAX_ARGS];
	/* the log from key_tail, in walk order (normal and LAST ksets) */
	struct kent *ks;
	size_t nks, capks;
	struct pcm_pos head;          /* where the walk stopped */
	enum pcm_walk_stop stop;
	bool walked;
};

/* ---- output and byte-level writes ---- */

static void hexstr(char *out, size_t cap, const uint8_t *p, size_t n)
{
	size_t shown = n > 32 ? 32 : n, o = 0;

	for (size_t i = 0; i < shown && o + 3 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
	if (shown < n && o + 4 < cap)
		snprintf(out + o, cap - o, "...");
}

static int fail(struct ctx *x, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctx *x, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "corrupt: %s: %s: ", x->img, x->name ? x->name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/*
 * Writes new over [off, off+len) where it differs from the device, one
 * stdout line per changed run (runs closer than 8 bytes are merged).
 */
static int put(struct ctx *x, uint64_t off, const void *newbuf, size_t len, const char *what)
{
	const uint8_t *nb = newbuf;
	uint8_t *old = malloc(len ? len : 1);
	char ho[80], hn[80];
	bool any = false;
	int rc;

	if (!old)
		return fail(x, C_NEED, "out of memory");
	rc = pcm_dev_read(x->dev, off, old, len);
	if (rc) {
		free(old);
		return fail(x, C_NEED, "read @%" PRIu64 ": %s", off, strerror(-rc));
	}
	for (size_t i = 0; i < len;) {
		size_t j, gap;

		if (old[i] == nb[i]) {
			i++;
			continue;
		}
		for (j = i + 1, gap = 0; j < len && gap < 8; j++)
			gap = old[j] == nb[j] ? gap + 1 : 0;
		j -= gap;
		rc = pcm_dev_write(x->dev, off + i, nb + i, j - i);
		if (rc) {
			free(old);
			return fail(x, C_NEED, "write @%" PRIu64 ": %s", off + i, strerror(-rc));
		}
		hexstr(ho, sizeof(ho), old + i, j - i);
		hexstr(hn, sizeof(hn), nb + i, j - i);
		printf("corrupt: %s: @%" PRIu64 " +%zu: %s -> %s (%s)\n", x->name, off + i, j - i,
		       ho, hn, what);
		any = true;
		i = j;
	}
	free(old);
	if (!any)
		printf("corrupt: %s: @%" PRIu64 " +%zu: unchanged (%s)\n", x->name, off, len, what);
	return C_OK;
}

static int get(struct ctx *x, uint64_t off, void *buf, size_t len)
{
	int rc = pcm_dev_read(x->dev, off, buf, len);

	return rc ? fail(x, C_NEED, "read @%" PRIu64 ": %s", off, strerror(-rc)) : C_OK;
}

/* Inverts one byte. */
static int flip(struct ctx *x, uint64_t off, const char *what)
{
	uint8_t b;
	int rc = get(x, off, &b, 1);

	if (rc)
		return rc;
	b ^= 0xff;
	return put(x, off, &b, 1, what);
}

static uint64_t arg(const struct ctx *x, unsigned i, uint64_t def)
{
	return i < x->nargs ? x->args[i] : def;
}

/* ---- the cache, the log ---- */

static int need_cache(struct ctx *x)
{
	struct pcm_open_status st;
	int rc;

	if (x->c)
		return C_OK;
	rc = pcm_cache_open(x->dev, &x->c, &st);
	if (rc)
		return fail(x, C_NEED, "cannot open the cache: %s", pcm_open_error_str(&st));
	return C_OK;
}

static int need_walk(struct ctx *x)
{
	struct pcm_walk *w;
	enum pcm_walk_event ev;
	int rc = need_cache(x);

	if (rc || x->walked)
		return rc;
	w = malloc(sizeof(*w));
	if (!w)
		return fail(x, C_NEED, "out of memory");
	pcm_walk_init(w, x->c, x->c->key_tail.pos);
	while ((ev = pcm_walk_next(w)) == PCM_WALK_KSET || ev == PCM_WALK_LAST) {
		if (x->nks == x->capks) {
			size_t cap = x->capks ? 2 * x->capks : 256;
			struct kent *k = realloc(x->ks, cap * sizeof(*k));

			if (!k) {
				free(w);
				return fail(x, C_NEED, "out of memory");
			}
			x->ks = k;
			x->capks = cap;
		}
		x->ks[x->nks++] = (struct kent){ w->pos, w->hdr, ev == PCM_WALK_LAST };
	}
	x->head = w->pos;
	x->stop = w->stop;
	x->walked = true;
	free(w);
	return C_OK;
}

static uint64_t dev_off(const struct ctx *x, struct pcm_pos p)
{
	return pcm_pos_dev_off(x->c, p.cseg, p.seg_off);
}

/* The n-th normal kset of the log (0 = the first, -1 = the last), or NULL. */
static const struct kent *nth_kset(const struct ctx *x, uint64_t n)
{
	if ((int64_t)n < 0) {
		for (size_t i = x->nks; i-- > 0;)
			if (!x->ks[i].last && ++n == 0)
				return &x->ks[i];
		return NULL;
	}
	for (size_t i = 0; i < x->nks; i++)
		if (!x->ks[i].last && n-- == 0)
			return &x->ks[i];
	return NULL;
}

static int need_kset(struct ctx *x, uint64_t n, const struct kent **out)
{
	int rc = need_walk(x);

	if (rc)
		return rc;
	*out = nth_kset(x, n);
	if (!*out)
		return fail(x, C_NEED, "the log has no kset #%" PRIu64, n);
	return C_OK;
}

/* The log must end at a clean terminator with room for `room` bytes after it. */
static int need_head(struct ctx *x, uint32_t room)
{
	int rc = need_walk(x);

	if (rc)
		return rc;
	if (x->stop != PCM_STOP_TERMINATOR)
		return fail(x, C_NEED, "the log does not end at a terminator (%s)",
			    pcm_walk_stop_str(x->stop));
	if (PCM_DATA_SIZE - x->head.seg_off < room)
		return fail(x, C_NEED, "no room after the log end");
	return C_OK;
}

/* ---- replicated records ---- */

struct rep {
	uint64_t off[PCM_REPLICAS];
	size_t size;
	uint8_t raw[PCM_REPLICAS][24];
	bool valid[PCM_REPLICAS];
	int pick;
	const char *what;
};

static int rep_load(struct ctx *x, struct rep *r, uint64_t off0, uint64_t off1, size_t size,
		    const char *what)
{
	const uint8_t *rec[PCM_REPLICAS] = { r->raw[0], r->raw[1] };
	int rc;

	memset(r, 0, sizeof(*r));
	r->off[0] = off0;
	r->off[1] = off1;
	r->size = size;
	r->what = what;
	if ((rc = get(x, off0, r->raw[0], size)) || (rc = get(x, off1, r->raw[1], size)))
		return rc;
	r->pick = pcm_replica_pick(rec, size, r->valid);
	if (r->pick < 0)
		return fail(x, C_NEED, "%s has no valid replica", what);
	return C_OK;
}

static int rep_ci(struct ctx *x, struct rep *r)
{
	return rep_load(x, r, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT,
			PCM_CACHE_INFO_SIZE, "cache_info");
}

static int rep_tail(struct ctx *x, struct rep *r, int which)
{
	uint64_t b = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;

	return rep_load(x, r, b, b + PCM_POS_SIZE, PCM_POS_SIZE, which ? "dirty_tail" : "key_tail");
}

static int cseg_dseg(struct ctx *x, uint64_t cseg, uint32_t *d)
{
	int rc = need_cache(x);

	if (rc)
		return rc;
	if (cseg >= x->c->n_segs)
		return fail(x, C_NEED, "no cache segment %" PRIu64 " (n_segs %u)", cseg,
			    x->c->n_segs);
	*d = x->c->dseg[cseg];
	return C_OK;
}

static int rep_seginfo(struct ctx *x, struct rep *r, uint64_t cseg)
{
	uint32_t d = 0;
	int rc = cseg_dseg(x, cseg, &d);

	return rc ? rc : rep_load(x, r, pcm_seg_base(d), pcm_seg_base(d) + PCM_SEG_INFO_SLOT,
				  PCM_SEG_INFO_SIZE, "segment info");
}

static int rep_gen(struct ctx *x, struct rep *r, uint64_t cseg)
{
	uint32_t d = 0;
	uint64_t b;
	int rc = cseg_dseg(x, cseg, &d);

	if (rc)
		return rc;
	b = pcm_seg_base(d) + PCM_SEG_CTRL_OFF;
	return rep_load(x, r, b, b + PCM_SEG_GEN_SIZE, PCM_SEG_GEN_SIZE, "segment gen");
}

/* Writes rec (sealed) into slot i. */
static int rep_put(struct ctx *x, const struct rep *r, int i, uint8_t *rec, const char *why)
{
	char what[96];

	pcm_record_seal(rec, r->size);
	snprintf(what, sizeof(what), "%s replica %d: %s", r->what, i, why);
	return put(x, r->off[i], rec, r->size, what);
}

/* Breaks the checksum of replica i. */
static int rep_break(struct ctx *x, const struct rep *r, int i)
{
	char what[96];

	snprintf(what, sizeof(what), "%s replica %d: checksum broken", r->what, i);
	return flip(x, r->off[i], what);
}

/* Writes a valid copy of the picked replica, seq + 1, into the other slot; returns its slot. */
static int rep_newer_copy(struct ctx *x, struct rep *r)
{
	int o = 1 - r->pick, rc;
	uint8_t rec[24];

	memcpy(rec, r->raw[r->pick], r->size);
	rec[4] = (uint8_t)(rec[4] + 1);
	rc = rep_put(x, r, o, rec, "newer valid copy of the picked replica");
	if (rc)
		return -rc;
	memcpy(r->raw[o], rec, r->size);
	r->valid[o] = true;
	r->pick = o;
	return o;
}

/* ---- superblock ---- */

typedef void (*sb_fn)(struct pcm_sb *sb, uint64_t dev_size);

static int sb_edit(struct ctx *x, sb_fn fn, bool seal, const char *why)
{
	uint8_t raw[PCM_SB_SIZE];
	struct pcm_sb sb;
	int rc = get(x, PCM_SB_OFF, raw, sizeof(raw));

	if (rc)
		return rc;
	pcm_sb_decode(raw, &sb);
	fn(&sb, pcm_dev_size(x->dev));
	pcm_sb_encode(&sb, raw);        /* the crc field as it was on media */
	if (seal)
		pcm_record_seal(raw, PCM_SB_SIZE);
	return put(x, PCM_SB_OFF, raw, sizeof(raw), why);
}

static void sb_magic_zero(struct pcm_sb *sb, uint64_t s) { (void)s; sb->magic = 0; }
static void sb_magic_garbage(struct pcm_sb *sb, uint64_t s)
{
	(void)s;
	sb->magic = 0x0123456789ABCDEFull;
}
static void sb_bigendian(struct pcm_sb *sb, uint64_t s) { (void)s; sb->flags |= PCM_SB_F_BIGENDIAN; }
static void sb_seg_zero(struct pcm_sb *sb, uint64_t s) { (void)s; sb->seg_num = 0; }
static void sb_seg_huge(struct pcm_sb *sb, uint64_t s) { (void)s; sb->seg_num = PCM_SEGS_MAX + 1; }
static void sb_seg_short(struct pcm_sb *sb, uint64_t s) { sb->seg_num = pcm_seg_num_for_size(s) - 1; }
static void sb_flags_unknown(struct pcm_sb *sb, uint64_t s) { (void)s; sb->flags |= 0x10; }
static void sb_pad(struct pcm_sb *sb, uint64_t s) { (void)s; sb->pad = 0xDEAD; }

static int c_sb_magic_zero(struct ctx *x)
{
	return sb_edit(x, sb_magic_zero, false, "superblock magic zeroed, crc kept");
}
static int c_sb_magic_garbage(struct ctx *x)
{
	return sb_edit(x, sb_magic_garbage, false, "superblock magic replaced, crc kept");
}
static int c_sb_crc(struct ctx *x) { return flip(x, PCM_SB_OFF, "superblock checksum broken"); }
static int c_sb_bigendian(struct ctx *x)
{
	return sb_edit(x, sb_bigendian, true, "superblock BIGENDIAN flag, resealed");
}
static int c_sb_seg_num_zero(struct ctx *x)
{
	return sb_edit(x, sb_seg_zero, true, "superblock seg_num 0, resealed");
}
static int c_sb_seg_num_huge(struct ctx *x)
{
	return sb_edit(x, sb_seg_huge, true, "superblock seg_num 2^20+1, resealed");
}
static int c_sb_seg_num_short(struct ctx *x)
{
	return sb_edit(x, sb_seg_short, true, "superblock seg_num one less than fits, resealed");
}
static int c_sb_flags_unknown(struct ctx *x)
{
	return sb_edit(x, sb_flags_unknown, true, "superblock flags bit 4, resealed");
}
static int c_sb_pad(struct ctx *x)
{
	return sb_edit(x, sb_pad, true, "superblock padding 0xdead, resealed");
}

/* seg_num and n_segs both one less than fits: a device grown after format. */
static int c_sb_grown(struct ctx *x)
{
	struct rep r;
	struct pcm_cache_info ci;
	uint8_t rec[24];
	int rc = sb_edit(x, sb_seg_short, true, "superblock seg_num one less than fits, resealed");

	if (rc || (rc = rep_ci(x, &r)))
		return rc;
	pcm_cache_info_decode(r.raw[r.pick], &ci);
	ci.n_segs = pcm_seg_num_for_size(pcm_dev_size(x->dev)) - 1;
	pcm_cache_info_encode(&ci, rec);
	return rep_put(x, &r, r.pick, rec, "n_segs = new seg_num, resealed");
}

/* Shrinks the image file: the device no longer holds what the superblock says. */
static int shrink(struct ctx *x, uint64_t to)
{
	uint64_t from = pcm_dev_size(x->dev);

	if (to >= from)
		return fail(x, C_NEED, "image is only %" PRIu64 " bytes", from);
	if (truncate(x->img, (off_t)to))
		return fail(x, C_NEED, "truncate: %s", strerror(errno));
	printf("corrupt: %s: device size %" PRIu64 " -> %" PRIu64 " (file truncated)\n", x->name,
	       from, to);
	return C_OK;
}

static int c_dev_shrink(struct ctx *x) { return shrink(x, PCM_DEV_SIZE_MIN - 4096); }
static int c_dev_shrink_segs(struct ctx *x) { return shrink(x, 600ull << 20); }

/* ---- cache_info ---- */

typedef void (*ci_fn)(struct pcm_cache_info *ci);

/* Edits the picked cache_info replica in place and reseals it. */
static int ci_edit(struct ctx *x, ci_fn fn, const char *why)
{
	struct rep r;
	struct pcm_cache_info ci;
	uint8_t rec[24];
	int rc = rep_ci(x, &r);

	if (rc)
		return rc;
	pcm_cache_info_decode(r.raw[r.pick], &ci);
	fn(&ci);
	pcm_cache_info_encode(&ci, rec);
	return rep_put(x, &r, r.pick, rec, why);
}

static void ci_not_init(struct pcm_cache_info *ci) { ci->flags &= ~PCM_CI_F_INIT_DONE; }
static void ci_nsegs_zero(struct pcm_cache_info *ci) { ci->n_segs = 0; }
static void ci_nsegs_big(struct pcm_cache_info *ci) { ci->n_segs += 1; }
static void ci_nsegs_short(struct pcm_cache_info *ci) { ci->n_segs -= 1; }
static void ci_mode(struct pcm_cache_info *ci)
{
	ci->flags = (ci->flags & ~PCM_CI_MODE_MASK) | (1u << PCM_CI_MODE_SHIFT);
}
static void ci_gc95(struct pcm_cache_info *ci)
{
	ci->flags = (ci->flags & ~PCM_CI_GC_MASK) | (95u << PCM_CI_GC_SHIFT);
}
static void ci_gc120(struct pcm_cache_info *ci)
{
	ci->flags = (ci->flags & ~PCM_CI_GC_MASK) | (120u << PCM_CI_GC_SHIFT);
}
static void ci_reserved(struct pcm_cache_info *ci) { ci->reserved = 1; }
static void ci_flags_unknown(struct pcm_cache_info *ci) { ci->flags |= 1u << 13; }

static int c_ci_not_init_done(struct ctx *x) { return ci_edit(x, ci_not_init, "INIT_DONE cleared"); }
static int c_ci_n_segs_zero(struct ctx *x) { return ci_edit(x, ci_nsegs_zero, "n_segs 0"); }
static int c_ci_n_segs_big(struct ctx *x) { return ci_edit(x, ci_nsegs_big, "n_segs = seg_num + 1"); }
static int c_ci_n_segs_short(struct ctx *x) { return ci_edit(x, ci_nsegs_short, "n_segs - 1"); }
static int c_ci_cache_mode(struct ctx *x) { return ci_edit(x, ci_mode, "cache mode 1"); }

/* n_segs N (default 2): fewer segments than the log and its keys use. */
static int c_ci_n_segs_small(struct ctx *x)
{
	struct rep r;
	struct pcm_cache_info ci;
	uint8_t rec[24];
	int rc = rep_ci(x, &r);

	if (rc)
		return rc;
	pcm_cache_info_decode(r.raw[r.pick], &ci);
	ci.n_segs = (uint32_t)arg(x, 0, 2);
	pcm_cache_info_encode(&ci, rec);
	return rep_put(x, &r, r.pick, rec, "n_segs smaller than the log uses");
}
static int c_ci_gc95(struct ctx *x) { return ci_edit(x, ci_gc95, "gc_percent 95"); }
static int c_ci_gc120(struct ctx *x) { return ci_edit(x, ci_gc120, "gc_percent 120"); }
static int c_ci_reserved(struct ctx *x) { return ci_edit(x, ci_reserved, "reserved 1"); }
static int c_ci_flags_unknown(struct ctx *x) { return ci_edit(x, ci_flags_unknown, "flags bit 13"); }

/* A newer valid copy goes into the other slot, then replica `victim` is broken. */
static int ci_one_bad(struct ctx *x, int victim)
{
	struct rep r;
	int rc = rep_ci(x, &r);

	if (rc)
		return rc;
	if (!(r.valid[0] && r.valid[1]) && (rc = rep_newer_copy(x, &r)) < 0)
		return -rc;
	return rep_break(x, &r, victim);
}

static int c_ci_replica0_crc(struct ctx *x) { return ci_one_bad(x, 0); }
static int c_ci_replica1_crc(struct ctx *x) { return ci_one_bad(x, 1); }

static int c_ci_both_crc(struct ctx *x)
{
	struct rep r;
	int rc = rep_ci(x, &r);

	for (int i = 0; !rc && i < PCM_REPLICAS; i++)
		if (r.valid[i])
			rc = rep_break(x, &r, i);
	return rc;
}

/* The other slot gets the same seq but different contents (gc_percent 50). */
static int c_ci_seq_ambiguous(struct ctx *x)
{
	struct rep r;
	struct pcm_cache_info ci;
	uint8_t rec[24];
	int rc = rep_ci(x, &r);

	if (rc)
		return rc;
	pcm_cache_info_decode(r.raw[r.pick], &ci);
	ci.flags = (ci.flags & ~PCM_CI_GC_MASK) | (50u << PCM_CI_GC_SHIFT);
	pcm_cache_info_encode(&ci, rec);
	return rep_put(x, &r, 1 - r.pick, rec, "same seq as the picked replica, gc_percent 50");
}

/* ---- segment chain and per-segment records ---- */

static int c_chain_no_next(struct ctx *x)
{
	struct rep r;
	struct pcm_seg_info si;
	uint8_t rec[24];
	int rc = rep_seginfo(x, &r, arg(x, 0, 3));

	if (rc)
		return rc;
	pcm_seg_info_decode(r.raw[r.pick], &si);
	si.flags &= ~PCM_SEGI_F_HAS_NEXT;
	si.next_seg = 0;
	pcm_seg_info_encode(&si, rec);
	return rep_put(x, &r, r.pick, rec, "HAS_NEXT cleared, next_seg 0");
}

static int c_chain_range(struct ctx *x)
{
	struct rep r;
	struct pcm_seg_info si;
	uint8_t rec[24];
	int rc = rep_seginfo(x, &r, arg(x, 0, 5));

	if (rc)
		return rc;
	pcm_seg_info_decode(r.raw[r.pick], &si);
	si.flags |= PCM_SEGI_F_HAS_NEXT;
	si.next_seg = x->c->seg_num + 10;
	pcm_seg_info_encode(&si, rec);
	return rep_put(x, &r, r.pick, rec, "next_seg = seg_num + 10");
}

/* The last chain member maps to the device segment of cache segment 0. */
static int c_chain_duplicate(struct ctx *x)
{
	struct rep r;
	struct pcm_seg_info si;
	uint8_t rec[24];
	int rc = need_cache(x);

	if (rc)
		return rc;
	if (x->c->n_segs < 2)
		return fail(x, C_NEED, "chain too short");
	rc = rep_seginfo(x, &r, x->c->n_segs - 2);
	if (rc)
		return rc;
	pcm_seg_info_decode(r.raw[r.pick], &si);
	si.flags |= PCM_SEGI_F_HAS_NEXT;
	si.next_seg = x->c->dseg[0];
	pcm_seg_info_encode(&si, rec);
	return rep_put(x, &r, r.pick, rec, "next_seg = device segment of cache segment 0");
}

static int c_seginfo_both_crc(struct ctx *x)
{
	struct rep r;
	int rc = rep_seginfo(x, &r, arg(x, 0, 7));

	for (int i = 0; !rc && i < PCM_REPLICAS; i++)
		if (r.valid[i])
			rc = rep_break(x, &r, i);
	return rc;
}

/* Breaks the replica the kernel does not pick (writing an older valid one first if needed). */
static int rep_break_unpicked(struct ctx *x, struct rep *r)
{
	int o = 1 - r->pick, rc;

	if (!r->valid[o]) {
		uint8_t rec[24];

		memcpy(rec, r->raw[r->pick], r->size);
		rec[4] = (uint8_t)(rec[4] - 1);
		rc = rep_put(x, r, o, rec, "older valid copy of the picked replica");
		if (rc)
			return rc;
	}
	return rep_break(x, r, o);
}

static int c_seginfo_replica_crc(struct ctx *x)
{
	struct rep r;
	int rc = rep_seginfo(x, &r, arg(x, 0, 7));

	return rc ? rc : rep_break_unpicked(x, &r);
}

static int c_seginfo_seq_ambiguous(struct ctx *x)
{
	struct rep r;
	struct pcm_seg_info si;
	uint8_t rec[24];
	int rc = rep_seginfo(x, &r, arg(x, 0, 7));

	if (rc)
		return rc;
	if (r.pick != 0)
		return fail(x, C_NEED, "segment info replica 0 is not the picked one");
	pcm_seg_info_decode(r.raw[0], &si);
	if (!(si.flags & PCM_SEGI_F_HAS_NEXT))
		return fail(x, C_NEED, "segment has no successor");
	si.flags &= ~PCM_SEGI_F_HAS_NEXT;
	si.next_seg = 0;
	pcm_seg_info_encode(&si, rec);
	rec[4] = r.raw[0][4];
	return rep_put(x, &r, 1, rec, "same seq as replica 0, without HAS_NEXT");
}

static int c_seg_type(struct ctx *x)
{
	struct rep r;
	struct pcm_seg_info si;
	uint8_t rec[24];
	int rc = rep_seginfo(x, &r, arg(x, 0, 7));

	if (rc)
		return rc;
	pcm_seg_info_decode(r.raw[r.pick], &si);
	si.flags = (si.flags & ~PCM_SEGI_TYPE_MASK) | (2u << PCM_SEGI_TYPE_SHIFT);
	pcm_seg_info_encode(&si, rec);
	return rep_put(x, &r, r.pick, rec, "segment type 2");
}

static int c_gen_both_crc(struct ctx *x)
{
	struct rep r;
	int rc = rep_gen(x, &r, arg(x, 0, 7));

	for (int i = 0; !rc && i < PCM_REPLICAS; i++)
		if (r.valid[i])
			rc = rep_break(x, &r, i);
	return rc;
}

/* A newer copy of the same gen goes into the other slot; the old picked one is broken. */
static int c_gen_replica_crc(struct ctx *x)
{
	struct rep r;
	int rc = rep_gen(x, &r, arg(x, 0, 7)), old;

	if (rc)
		return rc;
	old = r.pick;
	if ((rc = rep_newer_copy(x, &r)) < 0)
		return -rc;
	return rep_break(x, &r, old);
}

/* Replica 0 gets the picked seq with gen + 1: the kernel takes replica 0. */
static int c_gen_seq_ambiguous(struct ctx *x)
{
	struct rep r;
	struct pcm_seg_gen g;
	uint8_t rec[24];
	int rc = rep_gen(x, &r, arg(x, 0, 7));

	if (rc)
		return rc;
	pcm_seg_gen_decode(r.raw[r.pick], &g);
	g.gen++;
	pcm_seg_gen_encode(&g, rec);
	return rep_put(x, &r, 1 - r.pick, rec, "same seq as the picked replica, gen + 1");
}

static int c_meta_nonzero(struct ctx *x)
{
	uint32_t d = 0;
	uint8_t b = 0x5a;
	int rc = cseg_dseg(x, arg(x, 0, 7), &d);

	return rc ? rc : put(x, pcm_seg_base(d) + PCM_SEG_CTRL_OFF + 32 + 10, &b, 1,
			     "byte in the segment ctrl reserved area");
}

static int c_meta_nonzero_dev(struct ctx *x)
{
	uint8_t b = 0x5a;

	return put(x, 16500, &b, 1, "byte in the unused cache ctrl area");
}

/* Bytes the kernel never reads nor writes: [0, 4096) and [4120, 8192). Not a problem. */
static int c_meta_untouched(struct ctx *x)
{
	uint8_t b = 0x5a;
	int rc = put(x, 100, &b, 1, "byte before the superblock");

	return rc ? rc : put(x, 6000, &b, 1, "byte after the superblock");
}

/* ---- tails ---- */

static int tail_both_bad(struct ctx *x, int which)
{
	struct rep r;
	int rc = rep_tail(x, &r, which);

	for (int i = 0; !rc && i < PCM_REPLICAS; i++)
		if (r.valid[i])
			rc = rep_break(x, &r, i);
	return rc;
}

static int tail_one_bad(struct ctx *x, int which)
{
	struct rep r;
	int rc = rep_tail(x, &r, which), old;

	if (rc)
		return rc;
	old = r.pick;
	if ((rc = rep_newer_copy(x, &r)) < 0)
		return -rc;
	return rep_break(x, &r, old);
}

/* A newer valid tail replica (other slot, seq + 1) holding pos. */
static int tail_set(struct ctx *x, int which, struct pcm_pos pos, const char *why)
{
	struct rep r;
	struct pcm_pos_rec p;
	uint8_t rec[24];
	int rc = rep_tail(x, &r, which);

	if (rc)
		return rc;
	pcm_pos_rec_decode(r.raw[r.pick], &p);
	p.h.seq++;
	p.pos = pos;
	pcm_pos_rec_encode(&p, rec);
	return rep_put(x, &r, 1 - r.pick, rec, why);
}

static int c_tail_key_both_crc(struct ctx *x) { return tail_both_bad(x, 0); }
static int c_tail_dirty_both_crc(struct ctx *x) { return tail_both_bad(x, 1); }
static int c_tail_key_replica_crc(struct ctx *x) { return tail_one_bad(x, 0); }
static int c_tail_dirty_replica_crc(struct ctx *x) { return tail_one_bad(x, 1); }

static int c_tail_key_range(struct ctx *x)
{
	return tail_set(x, 0, (struct pcm_pos){ 0, PCM_DATA_SIZE }, "newer copy, seg_off = data size");
}

static int c_tail_dirty_range(struct ctx *x)
{
	int rc = need_cache(x);

	return rc ? rc : tail_set(x, 1, (struct pcm_pos){ x->c->n_segs + 7, 0 },
				  "newer copy, cseg = n_segs + 7");
}

/* The other dirty_tail slot gets the picked seq and another position. */
static int c_tail_seq_ambiguous(struct ctx *x)
{
	struct rep r;
	struct pcm_pos_rec p;
	uint8_t rec[24];
	int rc = rep_tail(x, &r, 1);

	if (rc)
		return rc;
	pcm_pos_rec_decode(r.raw[r.pick], &p);
	p.pos.seg_off += 24;
	pcm_pos_rec_encode(&p, rec);
	return rep_put(x, &r, 1 - r.pick, rec, "same seq as the picked replica, seg_off + 24");
}

static int c_dirty_tail_off_log(struct ctx *x)
{
	const struct kent *k;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	if (rc)
		return rc;
	return tail_set(x, 1, (struct pcm_pos){ k->pos.cseg, k->pos.seg_off + 24 + 40 * 3 },
			"newer copy inside a kset (at its key 3)");
}

static int c_dirty_tail_past_head(struct ctx *x)
{
	int rc = need_head(x, 4096 + 24);

	if (rc)
		return rc;
	return tail_set(x, 1, (struct pcm_pos){ x->head.cseg, x->head.seg_off + 4096 },
			"newer copy 4096 bytes past key_head");
}

/* dirty_tail at key_head: everything written back (a clean state, not a problem). */
static int c_dirty_tail_at_head(struct ctx *x)
{
	int rc = need_head(x, 24);

	return rc ? rc : tail_set(x, 1, x->head, "newer copy at key_head");
}

/* Both tails at key_head: everything written back and collected (not a problem). */
static int c_tails_at_head(struct ctx *x)
{
	int rc = need_head(x, 24);

	if (!rc)
		rc = tail_set(x, 1, x->head, "newer copy at key_head");
	return rc ? rc : tail_set(x, 0, x->head, "newer copy at key_head");
}

static int first_last(struct ctx *x, struct pcm_pos *at)
{
	int rc = need_walk(x);

	if (rc)
		return rc;
	for (size_t i = 0; i < x->nks; i++)
		if (x->ks[i].last) {
			*at = x->ks[i].pos;
			return C_OK;
		}
	return fail(x, C_NEED, "the log has no LAST kset");
}

/* dirty_tail at the first LAST kset of the log (a valid state). */
static int c_dirty_tail_at_last(struct ctx *x)
{
	struct pcm_pos at;
	int rc = first_last(x, &at);

	return rc ? rc : tail_set(x, 1, at, "newer copy at the first LAST kset");
}

/* Both tails at the first LAST kset (a valid state). */
static int c_tails_at_last(struct ctx *x)
{
	struct pcm_pos at;
	int rc = first_last(x, &at);

	if (!rc)
		rc = tail_set(x, 1, at, "newer copy at the first LAST kset");
	return rc ? rc : tail_set(x, 0, at, "newer copy at the first LAST kset");
}

static int c_key_tail_mid_kset(struct ctx *x)
{
	const struct kent *k;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	if (rc)
		return rc;
	return tail_set(x, 0, (struct pcm_pos){ k->pos.cseg, k->pos.seg_off + 64 },
			"newer copy 64 bytes into a kset");
}

/* key_tail moves forward to kset N, dirty_tail stays behind it. */
static int c_key_tail_past_dirty(struct ctx *x)
{
	const struct kent *k;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	if (rc)
		return rc;
	if (pcm_pos_eq(k->pos, x->c->dirty_tail.pos))
		return fail(x, C_NEED, "dirty_tail is at that kset");
	return tail_set(x, 0, k->pos, "newer copy at a later kset boundary");
}

/* ---- ksets ---- */

/* Reads kset k (header + keys) into buf (PCM_KSET_SIZE_MAX). */
static int kset_read(struct ctx *x, const struct kent *k, uint8_t *buf)
{
	return get(x, dev_off(x, k->pos), buf, (size_t)pcm_kset_size(&k->hdr));
}

/* Encodes header h into buf (header + keys) with the crc over its size. */
static void kset_seal(const struct pcm_kset_hdr *h, uint8_t *buf)
{
	struct pcm_kset_hdr n = *h;

	pcm_kset_hdr_encode(&n, buf);
	n.crc = pcm_kcrc(buf + 4, (size_t)pcm_kset_size(h) - 4);
	pcm_kset_hdr_encode(&n, buf);
}

static int c_kset_crc(struct ctx *x)
{
	const struct kent *k;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	return rc ? rc : flip(x, dev_off(x, k->pos) + 24 + 5, "byte in the first key of a kset");
}

static int c_kset_magic(struct ctx *x)
{
	const struct kent *k;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	return rc ? rc : flip(x, dev_off(x, k->pos) + 8, "kset magic byte");
}

static int c_kset_first_crc(struct ctx *x)
{
	int rc = need_walk(x);

	if (rc)
		return rc;
	if (!x->nks)
		return fail(x, C_NEED, "the log is empty");
	return flip(x, dev_off(x, x->ks[0].pos), "checksum of the kset at key_tail");
}

static int c_kset_key_num_200(struct ctx *x)
{
	const struct kent *k;
	struct pcm_kset_hdr h;
	uint32_t sz = 24 + 40 * 200;
	uint8_t *buf;
	uint64_t off;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	if (rc)
		return rc;
	if (PCM_DATA_SIZE - k->pos.seg_off < sz)
		return fail(x, C_NEED, "kset too close to the segment end");
	buf = malloc(sz);
	if (!buf)
		return fail(x, C_NEED, "out of memory");
	off = dev_off(x, k->pos);
	rc = get(x, off, buf, sz);
	if (!rc) {
		h = k->hdr;
		h.key_num = 200;
		kset_seal(&h, buf);
		rc = put(x, off, buf, 24, "kset key_num 200, crc over 200 keys");
	}
	free(buf);
	return rc;
}

static int c_kset_flags(struct ctx *x)
{
	const struct kent *k;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_kset_hdr h;
	int rc = need_kset(x, arg(x, 0, 2), &k);

	if (rc || (rc = kset_read(x, k, buf)))
		return rc;
	h = k->hdr;
	h.flags |= 0x4;
	kset_seal(&h, buf);
	return put(x, dev_off(x, k->pos), buf, 24, "kset flags bit 2, resealed");
}

/* An empty kset (key_num 0, valid crc) at key_head, a terminator after it. */
static int c_kset_empty(struct ctx *x)
{
	uint8_t buf[48] = { 0 };
	struct pcm_kset_hdr h = { .magic = PCM_KSET_MAGIC };
	int rc = need_head(x, sizeof(buf));

	if (rc)
		return rc;
	pcm_kset_hdr_encode(&h, buf);
	kset_seal(&h, buf);
	return put(x, dev_off(x, x->head), buf, sizeof(buf),
		   "kset with 0 keys at key_head, terminator after it");
}

static int write_last(struct ctx *x, struct pcm_pos at, uint32_t next, const char *why)
{
	uint8_t buf[24];
	struct pcm_kset_hdr h = { .key_num = next, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };

	pcm_kset_hdr_encode(&h, buf);
	kset_seal(&h, buf);
	return put(x, dev_off(x, at), buf, sizeof(buf), why);
}

static int c_last_next_range(struct ctx *x)
{
	int rc = need_head(x, 24);

	return rc ? rc : write_last(x, x->head, x->c->n_segs, "LAST kset at key_head, next = n_segs");
}

static int c_last_loop(struct ctx *x)
{
	int rc = need_head(x, 24);

	return rc ? rc : write_last(x, x->head, x->head.cseg,
				    "LAST kset at key_head, next = its own segment");
}

/* Kset N overwritten by a LAST kset naming the segment its first key's data is in. */
static int c_last_data(struct ctx *x)
{
	const struct kent *ks;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_key k;
	int rc = need_kset(x, arg(x, 0, 2), &ks);

	if (rc || (rc = kset_read(x, ks, buf)))
		return rc;
	pcm_key_decode(buf + PCM_KSET_HDR_SIZE, &k);
	return write_last(x, ks->pos, k.cseg, "a kset overwritten by a LAST kset naming a data segment");
}

static int c_last_crc(struct ctx *x)
{
	int rc = need_walk(x);

	if (rc)
		return rc;
	for (size_t i = 0; i < x->nks; i++)
		if (x->ks[i].last)
			return flip(x, dev_off(x, x->ks[i].pos) + 4, "next field of the first LAST kset");
	return fail(x, C_NEED, "the log has no LAST kset");
}

/* The first LAST names its own segment, whose offset 0 holds the log (checksum not resealed). */
static int c_last_self(struct ctx *x)
{
	int rc = need_walk(x);
	uint8_t le[4];

	if (rc)
		return rc;
	for (size_t i = 0; i < x->nks; i++)
		if (x->ks[i].last) {
			uint32_t self = x->ks[i].pos.cseg;

			le[0] = (uint8_t)self;
			le[1] = (uint8_t)(self >> 8);
			le[2] = (uint8_t)(self >> 16);
			le[3] = (uint8_t)(self >> 24);
			return put(x, dev_off(x, x->ks[i].pos) + 4, le, sizeof(le),
				   "next field of the first LAST kset: its own segment");
		}
	return fail(x, C_NEED, "the log has no LAST kset");
}

/*
 * key_tail and dirty_tail (newer copies) move to cseg SEG at `avail` bytes
 * before the end of its data area, where a kset is written; the kernel's
 * buffer is zero there, so bytes past the end count as zero in the crc.
 */
static int crafted_at_end(struct ctx *x, uint32_t avail, const uint8_t *kset, uint32_t ksize,
			  const char *why, bool key_tail)
{
	uint8_t buf[PCM_KSET_SIZE_MAX] = { 0 };
	struct pcm_kset_hdr h;
	uint64_t cseg = arg(x, 0, 1);
	struct pcm_pos at = { (uint32_t)cseg, PCM_DATA_SIZE - avail };
	uint32_t d = 0;
	int rc = cseg_dseg(x, cseg, &d);

	if (rc)
		return rc;
	memcpy(buf, kset, ksize);
	pcm_kset_hdr_decode(buf, &h);
	kset_seal(&h, buf);
	rc = put(x, dev_off(x, at), buf, avail < ksize ? avail : ksize, why);
	if (!rc && key_tail)
		rc = tail_set(x, 0, at, "newer key_tail at the crafted kset");
	if (!rc)
		rc = tail_set(x, 1, at, "newer dirty_tail at the crafted kset");
	return rc;
}

static int tails_to_end(struct ctx *x, uint32_t avail, const uint8_t *kset, uint32_t ksize,
			const char *why)
{
	return crafted_at_end(x, avail, kset, ksize, why, true);
}

static int c_kset_oversize(struct ctx *x)
{
	uint8_t k[PCM_KSET_SIZE_MAX] = { 0 };
	struct pcm_kset_hdr h = { .key_num = 128, .magic = PCM_KSET_MAGIC };

	pcm_kset_hdr_encode(&h, k);
	return tails_to_end(x, 2048, k, PCM_KSET_SIZE_MAX,
			    "128-key kset 2048 bytes before the data area end");
}

/* The same kset off the log, dirty_tail alone moved there: the dirty_tail walk fails. */
static int c_dirty_tail_oversize(struct ctx *x)
{
	uint8_t k[PCM_KSET_SIZE_MAX] = { 0 };
	struct pcm_kset_hdr h = { .key_num = 128, .magic = PCM_KSET_MAGIC };

	pcm_kset_hdr_encode(&h, k);
	return crafted_at_end(x, 2048, k, PCM_KSET_SIZE_MAX,
			      "128-key kset 2048 bytes before the data area end", false);
}

/* The same oversized kset with a broken checksum: the kernel ends the log there. */
static int c_kset_oversize_badcrc(struct ctx *x)
{
	struct pcm_pos at = { (uint32_t)arg(x, 0, 1), PCM_DATA_SIZE - 2048 };
	int rc = c_kset_oversize(x);

	return rc ? rc : flip(x, dev_off(x, at), "checksum of the oversized kset");
}

/* A valid one-key kset leaving LEFT (default 16) bytes in its segment. */
static int c_kset_no_room(struct ctx *x)
{
	uint8_t k[64] = { 0 };
	struct pcm_kset_hdr h = { .key_num = 1, .magic = PCM_KSET_MAGIC };
	struct pcm_key key = { .off = 0, .len = 4096, .cseg = 0, .seg_off = 0 };
	int rc = need_cache(x);

	if (rc)
		return rc;
	key.cseg = (uint32_t)(arg(x, 0, 1) + 1) % x->c->n_segs;
	key.seg_gen = x->c->gen[key.cseg];
	if (x->c->data_crc)
		return fail(x, C_NEED, "needs an image without DATA_CRC");
	if (arg(x, 1, 16) > 4096)
		return fail(x, C_USAGE, "LEFT is at most 4096");
	pcm_kset_hdr_encode(&h, k);
	pcm_key_encode(&key, k + 24);
	return tails_to_end(x, (uint32_t)(sizeof(k) + arg(x, 1, 16)), k, sizeof(k),
			    "one-key kset LEFT bytes before the data area end");
}

/* Both tails LEFT (default 1) bytes before the data area end, over non-zero bytes:
 * the kernel loads an empty log and BUGs at its first kset close. */
static int c_tail_no_room(struct ctx *x)
{
	uint8_t junk[PCM_KSET_HDR_SIZE];
	uint64_t left = arg(x, 1, 1);
	struct pcm_pos at = { (uint32_t)arg(x, 0, 1), 0 };
	uint32_t d = 0;
	int rc = cseg_dseg(x, at.cseg, &d);

	if (rc)
		return rc;
	if (left < 1 || left >= PCM_KSET_HDR_SIZE)
		return fail(x, C_USAGE, "LEFT must be 1..23");
	at.seg_off = PCM_DATA_SIZE - (uint32_t)left;
	memset(junk, 0x09, sizeof(junk));
	rc = put(x, dev_off(x, at), junk, (uint32_t)left, "non-zero bytes at the data area end");
	if (!rc)
		rc = tail_set(x, 0, at, "newer key_tail LEFT bytes before the end");
	return rc ? rc : tail_set(x, 1, at, "newer dirty_tail LEFT bytes before the end");
}

/* ---- keys ---- */

typedef int (*key_fn)(struct ctx *x, struct pcm_key *k, const char **why);

/* Rewrites key K of kset N through fn and reseals the kset. */
static int key_edit(struct ctx *x, key_fn fn)
{
	const struct kent *ks;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_key k;
	uint64_t n = arg(x, 0, 2), ki = arg(x, 1, 3);
	const char *why = "key rewritten";
	char what[128];
	int rc = need_kset(x, n, &ks);

	if (rc || (rc = kset_read(x, ks, buf)))
		return rc;
	if (ki >= ks->hdr.key_num)
		return fail(x, C_NEED, "kset #%" PRIu64 " has no key %" PRIu64, n, ki);
	pcm_key_decode(buf + 24 + 40 * ki, &k);
	rc = fn(x, &k, &why);
	if (rc)
		return rc;
	pcm_key_encode(&k, buf + 24 + 40 * ki);
	kset_seal(&ks->hdr, buf);
	snprintf(what, sizeof(what), "kset %u:%u key %" PRIu64 ": %s, kset resealed",
		 ks->pos.cseg, ks->pos.seg_off, ki, why);
	return put(x, dev_off(x, ks->pos), buf, (size_t)pcm_kset_size(&ks->hdr), what);
}

static int k_len_zero(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->len = 0;
	*why = "len 0";
	return 0;
}

static int k_seg_range(struct ctx *x, struct pcm_key *k, const char **why)
{
	k->cseg = x->c->n_segs;
	*why = "cseg = n_segs";
	return 0;
}

static int k_seg_off(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->seg_off = ((PCM_DATA_SIZE - k->len) / PCM_SECTOR + 1) * PCM_SECTOR;
	*why = "seg_off: data runs 512 bytes past the data area";
	return 0;
}

static int k_empty(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->flags |= PCM_KEY_F_EMPTY;
	*why = "EMPTY flag";
	return 0;
}

static int k_gen_ahead(struct ctx *x, struct pcm_key *k, const char **why)
{
	k->seg_gen = x->c->gen[k->cseg] + 3;
	*why = "seg_gen = segment gen + 3";
	return 0;
}

static int k_unaligned(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->off += 1;
	*why = "off + 1";
	return 0;
}

/* The key moved so that its middle sits on the next 4 MiB boundary (it must hold 2 sectors). */
static int k_window(struct ctx *x, struct pcm_key *k, const char **why)
{
	uint64_t half = k->len / 2 / PCM_SECTOR * PCM_SECTOR;

	if (!half)
		return fail(x, C_NEED, "the key holds less than two sectors");
	k->off = (((k->off >> PCM_WINDOW_SHIFT) + 1) << PCM_WINDOW_SHIFT) - half;
	*why = "off moved across a 4 MiB window boundary";
	return 0;
}

static int k_flags(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->flags |= 0x8;
	*why = "flags bit 3";
	return 0;
}

static int k_reserved(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->reserved = 0x77;
	*why = "reserved 0x77";
	return 0;
}

static int k_crc_field(struct ctx *x, struct pcm_key *k, const char **why)
{
	if (x->c->data_crc)
		return fail(x, C_NEED, "needs an image without DATA_CRC");
	k->data_crc = 0x12345678;
	*why = "data_crc set without DATA_CRC";
	return 0;
}

static int k_off_huge(struct ctx *x, struct pcm_key *k, const char **why)
{
	(void)x;
	k->off = 1ull << 40;
	*why = "off 1 TiB";
	return 0;
}

static int k_in_log(struct ctx *x, struct pcm_key *k, const char **why)
{
	k->cseg = x->c->key_tail.pos.cseg;
	k->seg_off = 8u << 20;
	k->seg_gen = x->c->gen[k->cseg];
	*why = "data in the log segment at 8 MiB";
	return 0;
}

static int c_key_len_zero(struct ctx *x) { return key_edit(x, k_len_zero); }
static int c_key_seg_range(struct ctx *x) { return key_edit(x, k_seg_range); }
static int c_key_seg_off(struct ctx *x) { return key_edit(x, k_seg_off); }
static int c_key_empty_flag(struct ctx *x) { return key_edit(x, k_empty); }
static int c_key_gen_ahead(struct ctx *x) { return key_edit(x, k_gen_ahead); }
static int c_key_unaligned(struct ctx *x) { return key_edit(x, k_unaligned); }
static int c_key_window(struct ctx *x) { return key_edit(x, k_window); }
static int c_key_flags(struct ctx *x) { return key_edit(x, k_flags); }
static int c_key_reserved(struct ctx *x) { return key_edit(x, k_reserved); }
static int c_key_crc_field(struct ctx *x) { return key_edit(x, k_crc_field); }
static int c_key_in_log(struct ctx *x) { return key_edit(x, k_in_log); }
static int c_key_off_huge(struct ctx *x) { return key_edit(x, k_off_huge); }

/* Key K+1 of kset N is pointed at key K's data (same segment, offset and gen). */
static int c_key_alias(struct ctx *x)
{
	const struct kent *ks;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_key a, b;
	uint64_t n = arg(x, 0, 2), ki = arg(x, 1, 3);
	char what[128];
	int rc = need_kset(x, n, &ks);

	if (rc || (rc = kset_read(x, ks, buf)))
		return rc;
	if (ki + 1 >= ks->hdr.key_num)
		return fail(x, C_NEED, "kset #%" PRIu64 " has no key %" PRIu64, n, ki + 1);
	pcm_key_decode(buf + 24 + 40 * ki, &a);
	pcm_key_decode(buf + 24 + 40 * (ki + 1), &b);
	if ((uint64_t)a.seg_off + b.len > PCM_DATA_SIZE)
		return fail(x, C_NEED, "key %" PRIu64 " does not fit at key %" PRIu64 "'s data",
			    ki + 1, ki);
	b.cseg = a.cseg;
	b.seg_off = a.seg_off;
	b.seg_gen = a.seg_gen;
	pcm_key_encode(&b, buf + 24 + 40 * (ki + 1));
	kset_seal(&ks->hdr, buf);
	snprintf(what, sizeof(what), "kset %u:%u key %" PRIu64 " uses key %" PRIu64
		 "'s data, kset resealed", ks->pos.cseg, ks->pos.seg_off, ki + 1, ki);
	return put(x, dev_off(x, ks->pos), buf, (size_t)pcm_kset_size(&ks->hdr), what);
}

/* One byte of the data of key K of kset N inverted. */
static int c_key_data_crc(struct ctx *x)
{
	const struct kent *ks;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_key k;
	uint64_t n = arg(x, 0, 2), ki = arg(x, 1, 3);
	int rc = need_kset(x, n, &ks);

	if (rc || (rc = kset_read(x, ks, buf)))
		return rc;
	if (ki >= ks->hdr.key_num)
		return fail(x, C_NEED, "kset #%" PRIu64 " has no key %" PRIu64, n, ki);
	pcm_key_decode(buf + 24 + 40 * ki, &k);
	if (k.cseg >= x->c->n_segs || !k.len || (uint64_t)k.seg_off + k.len > PCM_DATA_SIZE)
		return fail(x, C_NEED, "key %" PRIu64 " does not point at cache data", ki);
	return flip(x, pcm_pos_dev_off(x->c, k.cseg, k.seg_off + k.len / 2),
		    "a data byte of a key");
}

/* The gen of key K's segment moves past its seg_gen (newer valid gen replica). */
static int c_key_stale(struct ctx *x)
{
	const struct kent *ks;
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_key k;
	struct pcm_seg_gen g;
	struct rep r;
	uint8_t rec[24];
	uint64_t n = arg(x, 0, 2), ki = arg(x, 1, 3);
	int rc = need_kset(x, n, &ks);

	if (rc || (rc = kset_read(x, ks, buf)))
		return rc;
	if (ki >= ks->hdr.key_num)
		return fail(x, C_NEED, "kset #%" PRIu64 " has no key %" PRIu64, n, ki);
	pcm_key_decode(buf + 24 + 40 * ki, &k);
	if ((rc = rep_gen(x, &r, k.cseg)))
		return rc;
	pcm_seg_gen_decode(r.raw[r.pick], &g);
	g.h.seq++;
	g.gen = k.seg_gen + 1;
	pcm_seg_gen_encode(&g, rec);
	return rep_put(x, &r, 1 - r.pick, rec, "newer gen = key seg_gen + 1");
}

/* The key's segment was reclaimed and rewritten: gen bumped and its data changed. */
static int c_key_stale_reused(struct ctx *x)
{
	int rc = c_key_stale(x);

	return rc ? rc : c_key_data_crc(x);
}

/* ---- random mutations (mutate.c) ---- */

static int mutate_put(void *arg, uint64_t off, const void *buf, size_t len, const char *what)
{
	return put(arg, off, buf, len, what);
}

/* One seeded random mutation of a structure the kernel reads (mutate.h). */
static int c_mutate(struct ctx *x)
{
	char err[128];
	int rc = need_cache(x);

	if (rc)
		return rc;
	if (x->nargs < 1)
		return fail(x, C_USAGE, "needs a seed (mutate:SEED)");
	rc = mutate_apply(x->dev, x->c, x->args[0], mutate_put, x, err, sizeof(err));
	return rc ? fail(x, rc, "%s", err) : C_OK;
}

/* ---- the table ---- */

struct corruption {
	const char *name;
	int (*fn)(struct ctx *x);
	const char *help;
};

static const struct corruption table[] = {
	{ "sb-magic-zero", c_sb_magic_zero, "superblock magic 0 (crc kept)" },
	{ "sb-magic-garbage", c_sb_magic_garbage, "superblock magic wrong (crc kept)" },
	{ "sb-crc", c_sb_crc, "superblock checksum broken" },
	{ "sb-bigendian", c_sb_bigendian, "BIGENDIAN flag, valid crc" },
	{ "sb-seg-num-zero", c_sb_seg_num_zero, "seg_num 0, valid crc" },
	{ "sb-seg-num-huge", c_sb_seg_num_huge, "seg_num 2^20+1, valid crc" },
	{ "sb-seg-num-short", c_sb_seg_num_short, "seg_num one less than fits, valid crc" },
	{ "sb-grown", c_sb_grown, "seg_num and n_segs one less than fits (grown device)" },
	{ "sb-flags-unknown", c_sb_flags_unknown, "superblock flags bit 4, valid crc" },
	{ "sb-pad", c_sb_pad, "superblock padding non-zero, valid crc" },
	{ "dev-shrink", c_dev_shrink, "image truncated below 512 MiB" },
	{ "dev-shrink-segs", c_dev_shrink_segs, "image truncated to 600 MiB" },
	{ "ci-replica0-crc", c_ci_replica0_crc, "cache_info replica 0 broken, replica 1 valid" },
	{ "ci-replica1-crc", c_ci_replica1_crc, "cache_info replica 1 broken, replica 0 valid" },
	{ "ci-both-crc", c_ci_both_crc, "every cache_info replica broken" },
	{ "ci-not-init-done", c_ci_not_init_done, "INIT_DONE cleared, valid crc" },
	{ "ci-n-segs-zero", c_ci_n_segs_zero, "n_segs 0, valid crc" },
	{ "ci-n-segs-big", c_ci_n_segs_big, "n_segs = seg_num + 1, valid crc" },
	{ "ci-n-segs-short", c_ci_n_segs_short, "n_segs = seg_num - 1, valid crc" },
	{ "ci-n-segs-small", c_ci_n_segs_small, "[N=2] n_segs N, valid crc" },
	{ "ci-cache-mode", c_ci_cache_mode, "cache mode 1, valid crc" },
	{ "ci-gc-percent-95", c_ci_gc95, "gc_percent 95, valid crc" },
	{ "ci-gc-percent-120", c_ci_gc120, "gc_percent 120, valid crc" },
	{ "ci-reserved", c_ci_reserved, "cache_info reserved 1, valid crc" },
	{ "ci-flags-unknown", c_ci_flags_unknown, "cache_info flags bit 13, valid crc" },
	{ "ci-seq-ambiguous", c_ci_seq_ambiguous, "both replicas valid, same seq, different" },
	{ "chain-no-next", c_chain_no_next, "[SEG=3] segment info without HAS_NEXT, valid crc" },
	{ "chain-range", c_chain_range, "[SEG=5] next_seg past seg_num, valid crc" },
	{ "chain-duplicate", c_chain_duplicate, "last chain member = cache segment 0's" },
	{ "seginfo-both-crc", c_seginfo_both_crc, "[SEG=7] both segment info replicas broken" },
	{ "seginfo-replica-crc", c_seginfo_replica_crc, "[SEG=7] unpicked segment info broken" },
	{ "seginfo-seq-ambiguous", c_seginfo_seq_ambiguous, "[SEG=7] segment info seqs equal" },
	{ "seg-type", c_seg_type, "[SEG=7] segment type 2, valid crc" },
	{ "gen-both-crc", c_gen_both_crc, "[SEG=7] both gen replicas broken" },
	{ "gen-replica-crc", c_gen_replica_crc, "[SEG=7] newer gen copy, older one broken" },
	{ "gen-seq-ambiguous", c_gen_seq_ambiguous, "[SEG=7] gen seqs equal, gens differ" },
	{ "meta-nonzero", c_meta_nonzero, "[SEG=7] byte in the segment ctrl reserved area" },
	{ "meta-nonzero-dev", c_meta_nonzero_dev, "byte at 16500 (unused cache ctrl)" },
	{ "meta-untouched", c_meta_untouched, "bytes at 100 and 6000 (never used: not a problem)" },
	{ "tail-key-both-crc", c_tail_key_both_crc, "every key_tail replica broken" },
	{ "tail-key-replica-crc", c_tail_key_replica_crc, "newer key_tail copy, older broken" },
	{ "tail-dirty-both-crc", c_tail_dirty_both_crc, "every dirty_tail replica broken" },
	{ "tail-dirty-replica-crc", c_tail_dirty_replica_crc, "newer dirty_tail copy, older broken" },
	{ "tail-key-range", c_tail_key_range, "key_tail seg_off = data size, valid crc" },
	{ "tail-dirty-range", c_tail_dirty_range, "dirty_tail cseg past n_segs, valid crc" },
	{ "tail-seq-ambiguous", c_tail_seq_ambiguous, "dirty_tail seqs equal, positions differ" },
	{ "dirty-tail-off-log", c_dirty_tail_off_log, "[N=2] dirty_tail inside kset N, valid crc" },
	{ "dirty-tail-past-head", c_dirty_tail_past_head, "dirty_tail 4096 bytes past key_head" },
	{ "dirty-tail-at-head", c_dirty_tail_at_head, "dirty_tail at key_head (clean state)" },
	{ "tails-at-head", c_tails_at_head, "key_tail and dirty_tail at key_head (clean state)" },
	{ "dirty-tail-at-last", c_dirty_tail_at_last, "dirty_tail at the first LAST kset (valid state)" },
	{ "tails-at-last", c_tails_at_last, "both tails at the first LAST kset (valid state)" },
	{ "key-tail-mid-kset", c_key_tail_mid_kset, "[N=2] key_tail 64 bytes into kset N" },
	{ "key-tail-past-dirty", c_key_tail_past_dirty, "[N=2] key_tail at kset N, dirty_tail behind" },
	{ "kset-crc", c_kset_crc, "[N=2] a key byte of kset N inverted (N=-1: the last)" },
	{ "kset-magic", c_kset_magic, "[N=2] magic byte of kset N inverted" },
	{ "kset-key-num-200", c_kset_key_num_200, "[N=2] key_num 200, valid crc" },
	{ "kset-first-crc", c_kset_first_crc, "checksum of the kset at key_tail broken" },
	{ "kset-empty", c_kset_empty, "kset with 0 keys (valid crc) at key_head" },
	{ "kset-flags", c_kset_flags, "[N=2] kset flags bit 2, valid crc" },
	{ "kset-oversize", c_kset_oversize, "[SEG=1] tails at a 128-key kset 2048 bytes from the end" },
	{ "kset-oversize-badcrc", c_kset_oversize_badcrc, "[SEG=1] kset-oversize, checksum broken" },
	{ "dirty-tail-oversize", c_dirty_tail_oversize,
	  "[SEG=1] kset-oversize off the log, only dirty_tail moved there" },
	{ "kset-no-room", c_kset_no_room, "[SEG=1 LEFT=16] tails at a 1-key kset leaving LEFT bytes" },
	{ "tail-no-room", c_tail_no_room, "[SEG=1 LEFT=1] tails LEFT bytes before the data area end" },
	{ "last-next-range", c_last_next_range, "LAST kset at key_head, next = n_segs" },
	{ "last-loop", c_last_loop, "LAST kset at key_head back to its own segment" },
	{ "last-data", c_last_data, "[N=2] kset N overwritten by a LAST naming its keys' segment" },
	{ "last-crc", c_last_crc, "the first LAST kset of the log broken" },
	{ "last-self", c_last_self, "the first LAST kset names its own segment (crc broken)" },
	{ "key-len-zero", c_key_len_zero, "[N=2 K=3] key len 0" },
	{ "key-seg-range", c_key_seg_range, "[N=2 K=3] key cseg = n_segs" },
	{ "key-seg-off", c_key_seg_off, "[N=2 K=3] key data past the data area" },
	{ "key-data-crc", c_key_data_crc, "[N=2 K=3] one byte of the key's data inverted" },
	{ "key-empty-flag", c_key_empty_flag, "[N=2 K=3] EMPTY flag" },
	{ "key-gen-ahead", c_key_gen_ahead, "[N=2 K=3] seg_gen past the segment gen" },
	{ "key-stale", c_key_stale, "[N=2 K=3] the key's segment gen bumped past it" },
	{ "key-unaligned", c_key_unaligned, "[N=2 K=3] key off + 1" },
	{ "key-window", c_key_window, "[N=2 K=3] key off moved across a 4 MiB window boundary" },
	{ "key-flags", c_key_flags, "[N=2 K=3] key flags bit 3" },
	{ "key-reserved", c_key_reserved, "[N=2 K=3] key reserved non-zero" },
	{ "key-crc-field", c_key_crc_field, "[N=2 K=3] data_crc set on a cache without DATA_CRC" },
	{ "key-alias", c_key_alias, "[N=2 K=3] key K+1 points at key K's data" },
	{ "key-in-log-segment", c_key_in_log, "[N=2 K=3] key data in the log segment" },
	{ "key-off-huge", c_key_off_huge, "[N=2 K=3] key off 1 TiB (past any small backing)" },
	{ "key-stale-reused", c_key_stale_reused, "[N=2 K=3] key-stale plus key-data-crc" },
	{ "mutate", c_mutate, "SEED: one random mutation the seed picks (field, flip, zero, data)" },
};

#define NCASES (sizeof(table) / sizeof(table[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: corrupt IMG NAME [ARGS...]\n"
		"       corrupt --list\n\n"
		"Applies one named corruption to the pcache image IMG and prints every byte it\n"
		"changed.  Exit: 0 applied, 8 IMG lacks the structure, 16 usage.\n\n"
		"Corruptions ([ARGS] are optional numbers, defaults shown):\n");
	for (size_t i = 0; i < NCASES; i++)
		fprintf(f, "  %-24s %s\n", table[i].name, table[i].help);
}

int main(int argc, char **argv)
{
	struct ctx x = { 0 };
	const struct corruption *cs = NULL;
	int rc;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < NCASES; i++)
			puts(table[i].name);
		return C_OK;
	}
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return C_OK;
	}
	if (argc < 3 || argc > 3 + MAX_ARGS) {
		usage(stderr);
		return C_USAGE;
	}
	x.img = argv[1];
	x.name = argv[2];
	for (size_t i = 0; i < NCASES; i++)
		if (!strcmp(table[i].name, x.name))
			cs = &table[i];
	if (!cs) {
		fprintf(stderr, "corrupt: unknown corruption '%s' (see corrupt --list)\n", x.name);
		return C_USAGE;
	}
	for (int i = 3; i < argc; i++) {
		char *end;

		errno = 0;
		x.args[x.nargs++] = strtoull(argv[i], &end, 0);
		if (errno || end == argv[i] || *end) {
			fprintf(stderr, "corrupt: bad number '%s'\n", argv[i]);
			return C_USAGE;
		}
	}
	rc = pcm_dev_open(x.img, PCM_DEV_RDWR | PCM_DEV_NOMAP, &x.dev);
	if (rc)
		return fail(&x, C_NEED, "open: %s", strerror(-rc));
	rc = cs->fn(&x);
	if (!rc && pcm_dev_persist(x.dev, 0, pcm_dev_size(x.dev)))
		rc = fail(&x, C_NEED, "sync failed");
	pcm_cache_close(x.c);
	pcm_dev_close(x.dev);
	free(x.ks);
	return rc;
}
