/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Appending to the key log the way the kernel writes it (§6.2, §6.3,
 * §6.8): data placed from one data head in segments taken as the kernel takes
 * them (§4), keys gathered in one open kset (n_open = 1), ksets
 * closed with a terminator behind them, and a LAST kset plus a fresh log
 * segment when a kset does not fit.  No GC of its own (a caller may hand
 * segments back with pcm_appender_release_seg): when the free segments run
 * out, the appender answers -ENOSPC.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcachemeta.h"

#define NO_SEG UINT32_MAX
#define WINDOW_SIZE (1ull << PCM_WINDOW_SHIFT)

struct pcm_appender {
	struct pcm_cache *c;
	struct pcm_pos key_head;
	struct pcm_pos head;            /* data head, valid when has_head */
	bool has_head;
	bool persist;                   /* persist every record (default) */
	uint8_t *used;                  /* n_segs bytes: 1 in use */
	uint32_t n_used;
	uint32_t hint;                  /* cseg last taken; 0 after a load */
	unsigned n_open;                /* keys in the open kset */
	pcm_kset_hook hook;
	void *hook_arg;
	struct pcm_key keys[PCM_KSET_KEYS_MAX];   /* the open kset */
	uint8_t buf[PCM_KSET_SIZE_MAX];           /* encoding of a kset being written */
};

static const uint8_t zero_kset[PCM_KSET_HDR_SIZE];

/* Device offset of a log or data position: every write goes through here. */
static uint64_t dev_off(const struct pcm_appender *a, struct pcm_pos p)
{
	return pcm_pos_dev_off(a->c, p.cseg, p.seg_off);
}

/* pcm_dev_write at a position, so callers speak in positions only. */
static int write_at(struct pcm_appender *a, struct pcm_pos p, const void *buf, size_t len)
{
	return pcm_dev_write(a->c->dev, dev_off(a, p), buf, len);
}

/* Makes exactly [p, p+len) durable (§6.8), unless the caller turned persists off. */
static int persist_at(struct pcm_appender *a, struct pcm_pos p, uint64_t len)
{
	return a->persist ? pcm_dev_persist(a->c->dev, dev_off(a, p), len) : 0;
}

/* Lowest free cseg at or after the hint, wrapping once to 0 (§4). */
static uint32_t seg_find(const struct pcm_appender *a)
{
	uint32_t n = a->c->n_segs;
	const uint8_t *p = memchr(a->used + a->hint, 0, n - a->hint);

	if (!p)
		p = memchr(a->used, 0, a->hint);
	return p ? (uint32_t)(p - a->used) : NO_SEG;
}

/* Takes a free segment for the log or for data; NO_SEG when the cache is full. */
static uint32_t seg_take(struct pcm_appender *a)
{
	uint32_t s = seg_find(a);

	if (s != NO_SEG) {
		a->used[s] = 1;
		a->n_used++;
		a->hint = s;
	}
	return s;
}

/* §6.2 step 1: a zeroed fresh log segment, a LAST kset naming it, key_head moved there. */
static int log_hop(struct pcm_appender *a)
{
	struct pcm_kset_hdr h = { .magic = PCM_KSET_MAGIC, .flags = PCM_KSET_F_LAST };
	uint8_t raw[PCM_KSET_HDR_SIZE];
	struct pcm_pos start = { .cseg = seg_take(a), .seg_off = 0 };
	int rc;

	if (start.cseg == NO_SEG)
		return -ENOSPC;
	rc = write_at(a, start, zero_kset, sizeof(zero_kset));
	if (!rc)
		rc = persist_at(a, start, sizeof(zero_kset));
	h.key_num = start.cseg;
	pcm_kset_hdr_encode(&h, raw);
	pcm_record_seal(raw, sizeof(raw));
	if (!rc)
		rc = write_at(a, a->key_head, raw, sizeof(raw));
	if (!rc)
		rc = persist_at(a, a->key_head, sizeof(raw));
	if (!rc)
		a->key_head = start;
	return rc;
}

/* Encodes the first n keys of a->keys as a sealed normal kset in a->buf (§6.2 step 2). */
static uint32_t kset_encode(struct pcm_appender *a, unsigned n)
{
	struct pcm_kset_hdr h = { .key_num = n, .magic = PCM_KSET_MAGIC, .flags = 0 };
	uint32_t z = PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * n;

	pcm_kset_hdr_encode(&h, a->buf);
	for (unsigned i = 0; i < n; i++)
		pcm_key_encode(&a->keys[i], a->buf + PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * i);
	pcm_record_seal(a->buf, z);
	return z;
}

/* Writes the first n keys of a->keys as one kset at key_head (§6.2 steps 1-4). */
static int kset_write(struct pcm_appender *a, unsigned n)
{
	uint32_t z = PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * n;
	struct pcm_pos at, term;
	int rc = 0;

	if (PCM_DATA_SIZE - a->key_head.seg_off < z + PCM_KSET_HDR_SIZE)
		rc = log_hop(a);
	if (rc)
		return rc;
	kset_encode(a, n);
	at = a->key_head;
	term = (struct pcm_pos){ .cseg = at.cseg, .seg_off = at.seg_off + z };
	rc = write_at(a, term, zero_kset, sizeof(zero_kset));
	if (!rc)
		rc = write_at(a, at, a->buf, z);
	if (!rc)
		rc = persist_at(a, at, (uint64_t)z + PCM_KSET_HDR_SIZE);
	if (rc)
		return rc;
	a->key_head = term;
	if (a->hook)
		a->hook(a->keys, n, at, a->hook_arg);
	return 0;
}

/* Rest of the data head's segment; 0 when there is no data head. */
static uint32_t head_rest(const struct pcm_appender *a)
{
	return a->has_head ? PCM_DATA_SIZE - a->head.seg_off : 0;
}

/* Length of the next key of a write: cut at the 4 MiB window end and at the segment end (§6.3). */
static uint32_t piece_len(uint64_t off, uint32_t len, uint32_t rest)
{
	uint64_t win = WINDOW_SIZE - (off & (WINDOW_SIZE - 1));
	uint64_t n = len < win ? len : win;

	return n < rest ? (uint32_t)n : rest;
}

/* Log segments the full-kset closes caused by nkeys more keys would take (§6.2 step 1). */
static uint64_t plan_log(const struct pcm_appender *a, uint64_t nkeys)
{
	uint64_t full = (a->n_open + nkeys) / PCM_KSET_KEYS_MAX, segs = 0;
	uint32_t o = a->key_head.seg_off;

	for (; full; full--) {
		if (PCM_DATA_SIZE - o < PCM_KSET_SIZE_MAX + PCM_KSET_HDR_SIZE) {
			segs++;
			o = 0;
		}
		o += PCM_KSET_SIZE_MAX;
	}
	return segs;
}

/* Segments (data and log) a write would take, so that a write is refused whole. */
static uint64_t plan_segs(const struct pcm_appender *a, uint64_t off, uint32_t len)
{
	uint32_t rest = head_rest(a);
	uint64_t segs = 0, keys = 0;

	while (len) {
		uint32_t n;

		if (!rest) {
			segs++;
			rest = PCM_DATA_SIZE;
		}
		n = piece_len(off, len, rest);
		rest -= n;
		off += n;
		len -= n;
		keys++;
	}
	return segs + plan_log(a, keys);
}

/* Argument checks of pcm_append_write: sectors, known flags, inside the backing device. */
static int write_check(const struct pcm_appender *a, uint64_t off, uint32_t len, uint32_t flags)
{
	uint64_t b = a->c->backing_size;

	if (len == 0 || len % PCM_SECTOR || off % PCM_SECTOR || (flags & ~PCM_KEY_F_CLEAN))
		return -EINVAL;
	if (off > UINT64_MAX - len || (b && off + len > b))
		return -EINVAL;
	return 0;
}

/* Makes sure there is a data head, taking a fresh segment for it (§6.3). */
static int head_ensure(struct pcm_appender *a)
{
	if (a->has_head)
		return 0;
	a->head = (struct pcm_pos){ .cseg = seg_take(a), .seg_off = 0 };
	if (a->head.cseg == NO_SEG)
		return -ENOSPC;
	a->has_head = true;
	return 0;
}

/* Writes n bytes at the data head, durably, and moves the head on (dropped at the segment end). */
static int data_put(struct pcm_appender *a, const uint8_t *data, uint32_t n, struct pcm_pos *at)
{
	int rc;

	*at = a->head;
	rc = write_at(a, *at, data, n);
	if (!rc)
		rc = persist_at(a, *at, n);
	a->head.seg_off += n;
	if (a->head.seg_off == PCM_DATA_SIZE)
		a->has_head = false;
	return rc;
}

/* Adds one key to the open kset (its data already durable); closes the kset at 128 keys. */
static int key_add(struct pcm_appender *a, const struct pcm_key *k)
{
	int rc = a->n_open == PCM_KSET_KEYS_MAX ? pcm_append_flush(a) : 0;

	if (rc)
		return rc;   /* a close failed earlier (I/O) and fails again */
	a->keys[a->n_open++] = *k;
	return a->n_open == PCM_KSET_KEYS_MAX ? pcm_append_flush(a) : 0;
}

/* One key of a write: place the data, then append its key (§6.3, §6.8 rule 1). */
static int write_piece(struct pcm_appender *a, uint64_t off, const uint8_t *data, uint32_t len,
		       uint32_t flags, uint32_t *done)
{
	struct pcm_key k = { .off = off, .flags = flags };
	struct pcm_pos at;
	int rc;

	rc = head_ensure(a);
	if (rc)
		return rc;
	k.len = piece_len(off, len, head_rest(a));
	rc = data_put(a, data, k.len, &at);
	if (rc)
		return rc;
	k.cseg = at.cseg;
	k.seg_off = at.seg_off;
	k.seg_gen = a->c->gen[at.cseg];
	k.data_crc = a->c->data_crc ? pcm_kcrc(data, k.len) : 0;
	*done = k.len;
	return key_add(a, &k);
}

int pcm_append_write(struct pcm_appender *a, uint64_t off, const void *data, uint32_t len,
		     uint32_t key_flags)
{
	const uint8_t *p = data;
	int rc = write_check(a, off, len, key_flags);

	if (rc)
		return rc;
	if (plan_segs(a, off, len) > a->c->n_segs - a->n_used)
		return -ENOSPC;
	while (len) {
		uint32_t n = 0;

		rc = write_piece(a, off, p, len, key_flags, &n);
		if (rc)
			return rc;
		off += n;
		p += n;
		len -= n;
	}
	return 0;
}

int pcm_append_flush(struct pcm_appender *a)
{
	int rc;

	if (!a->n_open)
		return 0;
	rc = kset_write(a, a->n_open);
	if (!rc)
		a->n_open = 0;
	return rc;
}

int pcm_append_kset(struct pcm_appender *a, const struct pcm_key *keys, unsigned n)
{
	int rc;

	if (n > PCM_KSET_KEYS_MAX)
		return -EINVAL;
	rc = pcm_append_flush(a);
	if (rc)
		return rc;
	memcpy(a->keys, keys, n * sizeof(*keys));
	return kset_write(a, n);
}

int pcm_appender_open(struct pcm_cache *c, const struct pcm_replay *r,
		      struct pcm_appender **out)
{
	struct pcm_appender *a;

	if (r->failed || r->key_head.cseg >= c->n_segs ||
	    r->key_head.seg_off > PCM_DATA_SIZE - PCM_KSET_HDR_SIZE)
		return -EINVAL;
	if (!pcm_dev_writable(c->dev))
		return -EROFS;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->used = calloc(c->n_segs, 1))) {
		free(a);
		return -ENOMEM;
	}
	a->c = c;
	a->key_head = r->key_head;
	a->persist = true;
	for (uint32_t i = 0; i < c->n_segs; i++)
		if (r->seg_used[i] || i == r->key_head.cseg) {
			a->used[i] = 1;
			a->n_used++;
		}
	*out = a;
	return 0;
}

int pcm_appender_take_seg(struct pcm_appender *a, uint32_t keep, uint32_t *cseg)
{
	uint32_t s;

	if (a->c->n_segs - a->n_used <= keep)
		return -ENOSPC;
	s = seg_take(a);
	if (s == NO_SEG)
		return -ENOSPC;
	*cseg = s;
	return 0;
}

int pcm_appender_release_seg(struct pcm_appender *a, uint32_t cseg)
{
	if (cseg >= a->c->n_segs || !a->used[cseg])
		return -EINVAL;
	/* the log continues there; a data head would be the caller's own bug */
	if (cseg == a->key_head.cseg || (a->has_head && cseg == a->head.cseg))
		return -EBUSY;
	a->used[cseg] = 0;
	a->n_used--;
	return 0;
}

void pcm_appender_set_persist(struct pcm_appender *a, bool on)
{
	a->persist = on;
}

void pcm_appender_set_hook(struct pcm_appender *a, pcm_kset_hook fn, void *arg)
{
	a->hook = fn;
	a->hook_arg = arg;
}

struct pcm_pos pcm_appender_key_head(const struct pcm_appender *a)
{
	return a->key_head;
}

uint32_t pcm_appender_segs_used(const struct pcm_appender *a)
{
	return a->n_used;
}

unsigned pcm_appender_open_keys(const struct pcm_appender *a)
{
	return a->n_open;
}

void pcm_appender_free(struct pcm_appender *a)
{
	if (!a)
		return;
	free(a->used);
	free(a);
}

int pcm_appender_close(struct pcm_appender *a)
{
	int rc;

	if (!a)
		return 0;
	rc = pcm_append_flush(a);
	pcm_appender_free(a);
	return rc;
}
