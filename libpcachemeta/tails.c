/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writing the records that move at run time: key_tail, dirty_tail and the
 * segment gens (§3.3).  Each write is one 16-byte record built,
 * sealed, copied to its slot and persisted before the in-memory state moves,
 * so a caller may rely on "returned 0" meaning "the kernel reads this now".
 */
#include <errno.h>

#include "pcachemeta.h"

/* Copies a sealed record to its slot and makes it durable. */
static int put_record(struct pcm_cache *c, uint64_t off, const uint8_t *raw, size_t size)
{
	int rc = pcm_dev_write(c->dev, off, raw, size);

	return rc ? rc : pcm_dev_persist(c->dev, off, size);
}

int pcm_tail_write(struct pcm_cache *c, int which, struct pcm_pos pos, bool in_place)
{
	struct pcm_tail *t = which ? &c->dirty_tail : &c->key_tail;
	uint64_t base = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;
	struct pcm_pos_rec r = { .h.seq = (uint8_t)(t->seq + 1), .pos = pos };
	/* the slot picked at load (or last written) holds the newest copy */
	int slot = in_place ? t->slot : 1 - t->slot;
	uint8_t raw[PCM_POS_SIZE];
	int rc;

	if ((which != 0 && which != 1) || pos.cseg >= c->n_segs || pos.seg_off >= PCM_DATA_SIZE)
		return -EINVAL;
	pcm_pos_rec_encode(&r, raw);
	pcm_record_seal(raw, sizeof(raw));
	rc = put_record(c, base + (uint64_t)slot * PCM_POS_SIZE, raw, sizeof(raw));
	if (rc)
		return rc;
	t->pos = pos;
	t->seq = r.h.seq;
	t->slot = slot;
	return 0;
}

int pcm_gen_write(struct pcm_cache *c, uint32_t cseg, uint64_t gen)
{
	struct pcm_seg_gen g = { .gen = gen };
	uint8_t raw[PCM_SEG_GEN_SIZE];
	int picked, slot, rc;
	uint64_t off;

	if (cseg >= c->n_segs)
		return -EINVAL;   /* before gen_slot[cseg] and gen_seq[cseg] are read */
	/* no valid replica at load: the kernel starts from index 0, seq 0 (gen_seq is 0) */
	picked = c->gen_slot[cseg] < 0 ? 0 : c->gen_slot[cseg];
	slot = 1 - picked;
	g.h.seq = (uint8_t)(c->gen_seq[cseg] + 1);
	pcm_seg_gen_encode(&g, raw);
	pcm_record_seal(raw, sizeof(raw));
	off = pcm_seg_base(c->dseg[cseg]) + PCM_SEG_CTRL_OFF + (uint64_t)slot * PCM_SEG_GEN_SIZE;
	rc = put_record(c, off, raw, sizeof(raw));
	if (rc)
		return rc;
	c->gen[cseg] = gen;
	c->gen_seq[cseg] = g.h.seq;
	c->gen_slot[cseg] = (int8_t)slot;
	return 0;
}
