/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Walking the key log as the kernel's replay does (§6.4): one
 * 5144-byte buffer whose tail carries over between reads, end at the first
 * kset failing magic/key_num/crc, hop at LAST ksets with the seg_num cap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "ondisk.h"

void pcm_walk_init(struct pcm_walk *w, const struct pcm_cache *c, struct pcm_pos start)
{
	memset(w, 0, sizeof(*w));
	w->c = c;
	w->pos = start;
	w->data = w->buf;
}

/*
 * Loads the bytes at w->pos, keeping the kernel's carry-over for short reads.
 * Always a copy through pcm_dev_read (never a pointer into the mapping), so a
 * media error is an -EIO here and not a SIGBUS later.
 */
static int walk_load(struct pcm_walk *w)
{
	const struct pcm_cache *c = w->c;
	uint32_t avail = PCM_DATA_SIZE - w->pos.seg_off;
	uint64_t off = pcm_pos_dev_off(c, w->pos.cseg, w->pos.seg_off);

	w->data = w->buf;
	return pcm_dev_read(c->dev, off, w->buf,
			    avail < PCM_KSET_SIZE_MAX ? avail : PCM_KSET_SIZE_MAX);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static enum pcm_walk_event walk_end(struct pcm_walk *w, enum pcm_walk_stop why)
{
	w->stop = why;
	w->done = true;
	return why >= PCM_FAIL_HOPS ? PCM_WALK_FAIL : PCM_WALK_END;
}

enum pcm_walk_event pcm_walk_next(struct pcm_walk *w)
{
	const struct pcm_cache *c = w->c;
	struct pcm_kset_hdr *h = &w->hdr;
	int rc;

	if (w->done)
		return w->stop >= PCM_FAIL_HOPS ? PCM_WALK_FAIL : PCM_WALK_END;
	if (w->has_next) {
		w->pos = w->next;
		w->has_next = false;
	}
	rc = walk_load(w);
	if (rc) {
		w->err = rc;
		return walk_end(w, PCM_FAIL_IO);
	}
	pcm_kset_hdr_decode(w->data, h);
	if (h->magic != PCM_KSET_MAGIC)
		return walk_end(w, all_zero(w->data, PCM_KSET_HDR_SIZE) ?
				   PCM_STOP_TERMINATOR : PCM_STOP_MAGIC);
	if (!(h->flags & PCM_KSET_F_LAST) && h->key_num > PCM_KSET_KEYS_MAX)
		return walk_end(w, PCM_STOP_KEY_NUM);
	if (h->crc != pcm_kcrc(w->data + 4, pcm_kset_size(h) - 4))
		return walk_end(w, PCM_STOP_CRC);
	if (h->flags & PCM_KSET_F_LAST) {
		if (++w->hops > c->seg_num)
			return walk_end(w, PCM_FAIL_HOPS);
		if (h->key_num >= c->n_segs)
			return walk_end(w, PCM_FAIL_NEXT_RANGE);
		w->next.cseg = h->key_num;
		w->next.seg_off = 0;
		w->has_next = true;
		return PCM_WALK_LAST;
	}
	if (pcm_kset_size(h) > PCM_DATA_SIZE - w->pos.seg_off)
		return walk_end(w, PCM_FAIL_OVERSIZE);
	w->next.cseg = w->pos.cseg;
	w->next.seg_off = w->pos.seg_off + (uint32_t)pcm_kset_size(h);
	w->has_next = true;
	w->ksets++;
	w->keys += h->key_num;
	return PCM_WALK_KSET;
}

void pcm_walk_key(const struct pcm_walk *w, unsigned i, struct pcm_key *k)
{
	pcm_key_decode(w->data + PCM_KSET_HDR_SIZE + (size_t)i * PCM_KEY_SIZE, k);
}

const char *pcm_walk_stop_str(enum pcm_walk_stop s)
{
	switch (s) {
	case PCM_STOP_NONE: return "none";
	case PCM_STOP_TERMINATOR: return "empty kset (terminator)";
	case PCM_STOP_MAGIC: return "bad kset magic";
	case PCM_STOP_KEY_NUM: return "kset key_num > 128";
	case PCM_STOP_CRC: return "kset checksum mismatch";
	case PCM_FAIL_HOPS: return "more LAST hops than segments (log loops)";
	case PCM_FAIL_NEXT_RANGE: return "LAST kset names a segment past n_segs";
	case PCM_FAIL_OVERSIZE: return "kset runs past the end of its segment";
	case PCM_FAIL_IO: return "I/O error";
	}
	return "unknown";
}

/* kcrc over len bytes of cache data (media errors: -EIO, see pcm_dev_crc). */
static int data_crc(const struct pcm_cache *c, const struct pcm_key *k, uint32_t *out)
{
	return pcm_dev_crc(c->dev, pcm_pos_dev_off(c, k->cseg, k->seg_off), k->len,
			   PCM_CRC_SEED, out);
}

enum pcm_key_verdict pcm_key_check(const struct pcm_cache *c, const struct pcm_key *k,
				   bool verify_data)
{
	uint64_t b = c->backing_size;
	uint32_t crc;

	if (k->len == 0 || (b && (k->len > b || k->off > b - k->len)))
		return PCM_KEY_BAD_LEN;
	if (k->cseg >= c->n_segs)
		return PCM_KEY_BAD_SEG;
	if ((uint64_t)k->seg_off + k->len > PCM_DATA_SIZE)
		return PCM_KEY_BAD_SEG_OFF;
	if (verify_data && c->data_crc) {
		if (data_crc(c, k, &crc))
			return PCM_KEY_IO;
		if (crc != k->data_crc)
			return PCM_KEY_BAD_DATA_CRC;
	}
	return PCM_KEY_OK;
}

const char *pcm_key_verdict_str(enum pcm_key_verdict v)
{
	switch (v) {
	case PCM_KEY_OK: return "valid";
	case PCM_KEY_BAD_LEN: return "length zero or past the backing device";
	case PCM_KEY_BAD_SEG: return "cache segment past n_segs";
	case PCM_KEY_BAD_SEG_OFF: return "data runs past the segment's data area";
	case PCM_KEY_BAD_DATA_CRC: return "data checksum mismatch";
	case PCM_KEY_IO: return "I/O error reading cached data";
	}
	return "unknown";
}

/* A valid kset (magic, key_num, crc, fits) at pos? */
static bool kset_valid_at(const struct pcm_cache *c, struct pcm_pos pos)
{
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_kset_hdr h;
	uint32_t avail = PCM_DATA_SIZE - pos.seg_off;
	uint64_t off = pcm_pos_dev_off(c, pos.cseg, pos.seg_off);

	if (avail < PCM_KSET_HDR_SIZE || pcm_dev_read(c->dev, off, buf, PCM_KSET_HDR_SIZE))
		return false;
	pcm_kset_hdr_decode(buf, &h);
	if (h.magic != PCM_KSET_MAGIC || (!(h.flags & PCM_KSET_F_LAST) && h.key_num > 128) ||
	    pcm_kset_size(&h) > avail || pcm_dev_read(c->dev, off, buf, pcm_kset_size(&h)))
		return false;
	return h.crc == pcm_kcrc(buf + 4, pcm_kset_size(&h) - 4);
}

static int zero_at(const struct pcm_cache *c, struct pcm_pos pos)
{
	uint8_t buf[PCM_KSET_HDR_SIZE];

	if (PCM_DATA_SIZE - pos.seg_off < PCM_KSET_HDR_SIZE ||
	    pcm_dev_read(c->dev, pcm_pos_dev_off(c, pos.cseg, pos.seg_off), buf, sizeof(buf)))
		return 1;
	return all_zero(buf, sizeof(buf));
}

/*
 * Where the log goes on after a corrupt kset at end, if it does.  The kernel
 * writes a kset's terminator before the kset itself, so a torn kset at the
 * head has 24 zero bytes right behind it, and what lies further is stale.
 * A kset damaged later (media error) has the next valid kset behind it
 * instead.  Only the places a kset of 1..128 keys could end are looked at,
 * its own key_num's first when its header survived.
 */
/*
 * Does the log from key_tail to end pass through cseg (end's own segment
 * included)?  A LAST never hops back there: the segment it opens is a free one.
 */
static bool on_log_to(const struct pcm_cache *c, struct pcm_pos end, uint32_t cseg)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	bool on = cseg == end.cseg;

	if (!w)
		return true;   /* cannot tell: no hop is trusted */
	pcm_walk_init(w, c, c->key_tail.pos);
	while (!on && !pcm_pos_eq(w->pos, end)) {
		enum pcm_walk_event ev;

		on = w->pos.cseg == cseg;
		ev = pcm_walk_next(w);
		if (ev != PCM_WALK_KSET && ev != PCM_WALK_LAST)
			break;
		if (w->has_next)
			on = on || w->next.cseg == cseg;
	}
	free(w);
	return on;
}

/*
 * A LAST kset torn over a kset by a crash in a splice of fsck (§13.4): its crc and
 * key_num landed (8-byte stores, in order), its flags did not.  Its crc is then
 * the one a LAST kset naming key_num carries.
 */
static bool torn_last(const struct pcm_kset_hdr *h)
{
	struct pcm_kset_hdr l = { .key_num = h->key_num, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };
	uint8_t buf[PCM_KSET_HDR_SIZE];

	pcm_kset_hdr_encode(&l, buf);
	return h->magic == PCM_KSET_MAGIC && !(h->flags & PCM_KSET_F_LAST) &&
	       h->crc == pcm_record_crc(buf, sizeof(buf));
}

/* The other way round: its flags landed, not its crc and key_num; flags 0 make the kset whole. */
static bool torn_flags(const struct pcm_cache *c, struct pcm_pos at, const struct pcm_kset_hdr *h)
{
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_kset_hdr k = *h;
	uint64_t size;

	if (h->magic != PCM_KSET_MAGIC || h->flags != PCM_KSET_F_LAST || !h->key_num ||
	    h->key_num > PCM_KSET_KEYS_MAX)
		return false;
	k.flags = 0;
	size = pcm_kset_size(&k);
	if (size > PCM_DATA_SIZE - at.seg_off ||
	    pcm_dev_read(c->dev, pcm_pos_dev_off(c, at.cseg, at.seg_off), buf, size))
		return false;
	pcm_kset_hdr_encode(&k, buf);
	return pcm_record_crc_ok(buf, size);
}

/* Does the log, ended at end, go on at cseg:0 (a valid kset, a segment not on it yet)? */
static bool goes_on_in(const struct pcm_cache *c, struct pcm_pos end, uint32_t cseg,
		       struct pcm_pos *next)
{
	struct pcm_pos q = { cseg, 0 };

	if (cseg >= c->n_segs || !kset_valid_at(c, q) || on_log_to(c, end, cseg))
		return false;
	*next = q;
	return true;
}

int pcm_walk_torn_splice(const struct pcm_cache *c, struct pcm_pos end, struct pcm_pos *next)
{
	uint8_t buf[PCM_KSET_HDR_SIZE];
	struct pcm_kset_hdr h;

	if (pcm_dev_read(c->dev, pcm_pos_dev_off(c, end.cseg, end.seg_off), buf, sizeof(buf)))
		return 0;
	pcm_kset_hdr_decode(buf, &h);
	return torn_last(&h) && goes_on_in(c, end, h.key_num, next);
}

int pcm_walk_salvage(const struct pcm_cache *c, struct pcm_pos end, struct pcm_pos *next)
{
	uint8_t buf[PCM_KSET_HDR_SIZE];
	struct pcm_kset_hdr h;
	struct pcm_pos q = end;

	if (pcm_dev_read(c->dev, pcm_pos_dev_off(c, end.cseg, end.seg_off), buf, sizeof(buf)))
		return 0;
	pcm_kset_hdr_decode(buf, &h);
	/* the splice's new part, written before that LAST, is where the log goes on */
	if (torn_last(&h) && goes_on_in(c, end, h.key_num, next))
		return 1;
	if (torn_flags(c, end, &h))
		h.flags = 0;   /* the kset it was: valid ksets may follow it */
	/* a LAST kset is written after its segment's offset 0 was zeroed: a valid kset there
	 * means the LAST itself was damaged, not torn (unless it leads back into the log) */
	if (h.magic == PCM_KSET_MAGIC && (h.flags & PCM_KSET_F_LAST) &&
	    goes_on_in(c, end, h.key_num, next))
		return 1;
	/* a damaged LAST: the one chain starting at some segment's offset 0 that no other
	 * such chain leads to, and that ends at a terminator, is where the log went on */
	if (h.magic == PCM_KSET_MAGIC && (h.flags & PCM_KSET_F_LAST))
		return pcm_walk_find_root(c, end.cseg, next) && !on_log_to(c, end, next->cseg);
	if (h.magic == PCM_KSET_MAGIC && !(h.flags & PCM_KSET_F_LAST) && h.key_num >= 1 &&
	    h.key_num <= 128) {
		q.seg_off = end.seg_off + (uint32_t)pcm_kset_size(&h);
		if (q.seg_off >= PCM_DATA_SIZE || zero_at(c, q))
			return 0;
		if (kset_valid_at(c, q)) {
			*next = q;
			return 1;
		}
	}
	for (uint32_t n = 1; n <= PCM_KSET_KEYS_MAX; n++) {
		q.seg_off = end.seg_off + PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * n;
		if (q.seg_off >= PCM_DATA_SIZE || zero_at(c, q))
			return 0;
		if (kset_valid_at(c, q)) {
			*next = q;
			return 1;
		}
	}
	return 0;
}

bool pcm_walk_behind_last(const struct pcm_cache *c, struct pcm_pos at, struct pcm_pos *q)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	bool found = false;

	for (uint32_t n = 1; w && !found && n <= PCM_KSET_KEYS_MAX; n++) {
		enum pcm_walk_event ev;

		*q = (struct pcm_pos){ at.cseg, at.seg_off + PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * n };
		if (q->seg_off >= PCM_DATA_SIZE)
			break;
		pcm_walk_init(w, c, *q);
		ev = pcm_walk_next(w);
		if (ev == PCM_WALK_END && w->stop == PCM_STOP_TERMINATOR)
			break;
		found = ev == PCM_WALK_KSET;
	}
	free(w);
	return found;
}

bool pcm_walk_boundary_after(const struct pcm_cache *c, struct pcm_pos pos, struct pcm_pos *out)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	bool found = false;

	if (!w)
		return false;
	pcm_walk_init(w, c, (struct pcm_pos){ pos.cseg, 0 });
	for (;;) {
		struct pcm_pos at = w->has_next ? w->next : w->pos;
		enum pcm_walk_event ev;

		if (at.cseg != pos.cseg)
			break;
		if (at.seg_off >= pos.seg_off) {
			*out = at;
			found = true;
			break;
		}
		ev = pcm_walk_next(w);
		if (ev != PCM_WALK_KSET && ev != PCM_WALK_LAST)
			break;
	}
	free(w);
	return found;
}

/* Walks the chain from s:0; marks where its LAST ksets lead; true if it ends at a terminator. */
static bool chain_from(const struct pcm_cache *c, struct pcm_walk *w, uint32_t s, uint8_t *reached)
{
	enum pcm_walk_event ev;

	pcm_walk_init(w, c, (struct pcm_pos){ s, 0 });
	ev = pcm_walk_next(w);
	if (ev != PCM_WALK_KSET && ev != PCM_WALK_LAST)
		return false;
	while (ev == PCM_WALK_KSET || ev == PCM_WALK_LAST) {
		if (ev == PCM_WALK_LAST && w->next.cseg != s)
			reached[w->next.cseg] = 1;
		ev = pcm_walk_next(w);
	}
	return w->stop == PCM_STOP_TERMINATOR;
}

bool pcm_walk_find_root(const struct pcm_cache *c, uint32_t exclude, struct pcm_pos *root)
{
	struct pcm_walk *w = malloc(sizeof(*w));
	uint8_t *cand = calloc(c->n_segs, 1), *reached = calloc(c->n_segs, 1);
	uint32_t roots = 0;

	for (uint32_t s = 0; w && cand && reached && s < c->n_segs; s++)
		cand[s] = s != exclude && chain_from(c, w, s, reached);
	for (uint32_t s = 0; w && cand && reached && s < c->n_segs; s++)
		if (cand[s] && !reached[s]) {
			roots++;
			*root = (struct pcm_pos){ s, 0 };
		}
	free(cand);
	free(reached);
	free(w);
	return roots == 1;
}
