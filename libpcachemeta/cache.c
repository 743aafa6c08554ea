/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening a cache: the kernel's load checks 1-9 (§5.5). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ondisk.h"

static int load_chain(struct pcm_cache *c, struct pcm_open_status *st)
{
	struct pcm_seg_info si[PCM_REPLICAS], prev = { 0 };
	struct pcm_seg_gen g[PCM_REPLICAS];
	struct pcm_rep_state rs;
	int rc;

	for (uint32_t i = 0; i < c->n_segs; i++) {
		uint32_t d;

		st->where = i;
		if (i == 0) {
			d = c->ci.seg_id;
		} else {
			if (!(prev.flags & PCM_SEGI_F_HAS_NEXT)) {
				st->err = PCM_OPEN_CHAIN_NO_NEXT;
				return -EFAULT;
			}
			d = prev.next_seg;
		}
		if (d >= c->seg_num) {
			st->err = PCM_OPEN_CHAIN_RANGE;
			return -EIO;
		}
		c->dseg[i] = d;
		rc = pcm_read_seg_info(c->dev, d, si, &rs);
		if (rc)
			goto io;
		if (rs.pick < 0) {
			st->err = PCM_OPEN_CHAIN_NO_INFO;
			return -EIO;
		}
		prev = si[rs.pick];
		rc = pcm_read_seg_gen(c->dev, d, g, &rs);
		if (rc)
			goto io;
		c->gen[i] = rs.pick < 0 ? 0 : g[rs.pick].gen;
		c->gen_seq[i] = rs.pick < 0 ? 0 : g[rs.pick].h.seq;
		c->gen_slot[i] = (int8_t)rs.pick;
	}
	return 0;
io:
	st->err = PCM_OPEN_IO;
	return rc;
}

static int load_tail(struct pcm_cache *c, int which, struct pcm_open_status *st)
{
	struct pcm_pos_rec r[PCM_REPLICAS];
	struct pcm_rep_state rs;
	struct pcm_tail *t = which ? &c->dirty_tail : &c->key_tail;
	int rc = pcm_read_tail(c->dev, which, r, &rs);

	st->where = (uint32_t)which;
	if (rc) {
		st->err = PCM_OPEN_IO;
		return rc;
	}
	if (rs.pick < 0 || r[rs.pick].pos.cseg >= c->n_segs ||
	    r[rs.pick].pos.seg_off >= PCM_DATA_SIZE) {
		st->err = PCM_OPEN_TAIL;
		return -EIO;
	}
	t->pos = r[rs.pick].pos;
	t->seq = r[rs.pick].h.seq;
	t->slot = rs.pick;
	return 0;
}

static int load_cache_info(struct pcm_cache *c, struct pcm_open_status *st)
{
	struct pcm_cache_info ci[PCM_REPLICAS];
	struct pcm_rep_state rs;
	int rc = pcm_read_cache_info(c->dev, ci, &rs);

	if (rc) {
		st->err = PCM_OPEN_IO;
		return rc;
	}
	if (rs.pick < 0) {
		st->err = PCM_OPEN_NO_CACHE_INFO;
		return -EUCLEAN;
	}
	c->ci = ci[rs.pick];
	c->ci_slot = rs.pick;
	if (!(c->ci.flags & PCM_CI_F_INIT_DONE)) {
		st->err = PCM_OPEN_NOT_INIT_DONE;
		return -EUCLEAN;
	}
	c->n_segs = c->ci.n_segs;
	c->data_crc = c->ci.flags & PCM_CI_F_DATA_CRC;
	if (c->n_segs == 0 || c->n_segs > c->seg_num) {
		st->err = PCM_OPEN_N_SEGS;
		return -EIO;
	}
	return 0;
}

static int cache_load(struct pcm_cache *c, struct pcm_open_status *st, bool relaxed)
{
	int rc = pcm_read_sb(c->dev, &c->sb, NULL);

	if (rc) {
		st->err = PCM_OPEN_IO;
		return rc;
	}
	st->sb_verdict = pcm_sb_check(&c->sb, c->dev_size);
	if (st->sb_verdict != PCM_SB_OK) {
		st->err = PCM_OPEN_SB;
		return st->sb_verdict == PCM_SB_BAD_SEG_NUM ? -EIO :
		       st->sb_verdict == PCM_SB_TOO_SMALL ? -ENOSPC : -EINVAL;
	}
	c->seg_num = c->sb.seg_num;
	rc = load_cache_info(c, st);
	if (rc)
		return rc;
	c->dseg = calloc(c->n_segs, sizeof(*c->dseg));
	c->gen = calloc(c->n_segs, sizeof(*c->gen));
	c->gen_seq = calloc(c->n_segs, 1);
	c->gen_slot = calloc(c->n_segs, 1);
	if (!c->dseg || !c->gen || !c->gen_seq || !c->gen_slot) {
		st->err = PCM_OPEN_IO;
		return -ENOMEM;
	}
	rc = load_chain(c, st);
	if (!rc && load_tail(c, 0, st) && !relaxed)
		return -EIO;
	if (!rc && load_tail(c, 1, st) && !relaxed)
		return -EIO;
	if (relaxed)
		st->err = rc ? st->err : PCM_OPEN_OK;
	return rc;
}

static int cache_open(struct pcm_dev *dev, struct pcm_cache **out, struct pcm_open_status *st,
		      bool relaxed)
{
	struct pcm_open_status local;
	struct pcm_cache *c = calloc(1, sizeof(*c));
	int rc;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!c) {
		st->err = PCM_OPEN_IO;
		return -ENOMEM;
	}
	c->dev = dev;
	c->dev_size = pcm_dev_size(dev);
	rc = cache_load(c, st, relaxed);
	if (rc) {
		pcm_cache_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

int pcm_cache_open(struct pcm_dev *dev, struct pcm_cache **out, struct pcm_open_status *st)
{
	return cache_open(dev, out, st, false);
}

int pcm_cache_open_relaxed(struct pcm_dev *dev, struct pcm_cache **out)
{
	return cache_open(dev, out, NULL, true);
}

void pcm_cache_close(struct pcm_cache *c)
{
	if (!c)
		return;
	free(c->dseg);
	free(c->gen);
	free(c->gen_seq);
	free(c->gen_slot);
	free(c);
}

const char *pcm_open_error_str(const struct pcm_open_status *st)
{
	switch (st->err) {
	case PCM_OPEN_OK: return "ok";
	case PCM_OPEN_IO: return "I/O error";
	case PCM_OPEN_SB: return pcm_sb_verdict_str(st->sb_verdict);
	case PCM_OPEN_NO_CACHE_INFO:
		return "no valid cache_info replica (the kernel would re-initialise the cache and lose all data)";
	case PCM_OPEN_NOT_INIT_DONE:
		return "cache_info lacks INIT_DONE (the kernel would re-initialise the cache)";
	case PCM_OPEN_N_SEGS: return "cache_info n_segs out of range";
	case PCM_OPEN_CHAIN_RANGE: return "segment chain points past seg_num";
	case PCM_OPEN_CHAIN_NO_NEXT: return "segment chain ends early (HAS_NEXT missing)";
	case PCM_OPEN_CHAIN_NO_INFO: return "segment on the chain has no valid segment info";
	case PCM_OPEN_TAIL: return "key_tail or dirty_tail corrupt or out of range";
	}
	return "unknown";
}
