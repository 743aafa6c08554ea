/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: opening an image (superblock, cache_info, cache ctrl, the
 * segment chain), as pcm_cache_open and the salvage open do, plus every
 * replicated record read on its own.
 */
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_records(struct pcm_dev *dev, uint32_t nsegs)
{
	struct pcm_sb sb;
	struct pcm_cache_info ci[PCM_REPLICAS];
	struct pcm_pos_rec t[PCM_REPLICAS];
	struct pcm_seg_info si[PCM_REPLICAS];
	struct pcm_seg_gen g[PCM_REPLICAS];
	struct pcm_rep_state st;
	uint8_t raw[PCM_SB_SIZE];

	if (!pcm_read_sb(dev, &sb, raw))
		(void)pcm_sb_verdict_str(pcm_sb_check(&sb, pcm_dev_size(dev)));
	(void)pcm_read_cache_info(dev, ci, &st);
	(void)pcm_read_tail(dev, 0, t, &st);
	(void)pcm_read_tail(dev, 1, t, &st);
	/* a few segments, and one past the device: must be -ERANGE, not a crash */
	for (uint32_t d = 0; d < 3; d++) {
		(void)pcm_read_seg_info(dev, d, si, &st);
		(void)pcm_read_seg_gen(dev, d, g, &st);
	}
	(void)pcm_read_seg_info(dev, nsegs, si, &st);
	(void)pcm_read_seg_gen(dev, UINT32_MAX, g, &st);
}

static void check_cache(const struct pcm_cache *c, uint64_t dev_size)
{
	if (c->n_segs == 0 || c->n_segs > c->seg_num)
		fz_fail("opened with n_segs %u, seg_num %u", c->n_segs, c->seg_num);
	if (pcm_seg_base(c->seg_num) > dev_size)
		fz_fail("opened with seg_num %u past a device of %llu bytes", c->seg_num,
			(unsigned long long)dev_size);
	for (uint32_t i = 0; i < c->n_segs; i++)
		if (c->dseg[i] >= c->seg_num)
			fz_fail("chain member %u is dseg %u >= seg_num %u", i, c->dseg[i], c->seg_num);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_image img;
	struct pcm_cache *c = NULL;
	struct pcm_open_status st;

	if (fz_image_load(data, size, &img))
		return 0;
	read_records(img.dev, img.nsegs);
	if (!pcm_cache_open(img.dev, &c, &st)) {
		check_cache(c, img.size);
		if (c->key_tail.pos.cseg >= c->n_segs || c->dirty_tail.pos.cseg >= c->n_segs ||
		    c->key_tail.pos.seg_off >= PCM_DATA_SIZE ||
		    c->dirty_tail.pos.seg_off >= PCM_DATA_SIZE)
			fz_fail("opened with a tail outside the cache");
		pcm_cache_close(c);
	} else {
		(void)pcm_open_error_str(&st);
	}
	c = NULL;
	if (!pcm_cache_open_relaxed(img.dev, &c)) {
		check_cache(c, img.size);
		pcm_cache_close(c);
	}
	fz_image_reset(&img);
	return 0;
}
