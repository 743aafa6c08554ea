/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Format: the image the kernel itself leaves after formatting a zeroed
 * device on first load (§5.2, §5.3), record for record.  The order
 * differs from the kernel's only in that cache_info, the commit record, is
 * written last, after everything else is durable, and in that [0, 4096),
 * which the kernel never touches, is zeroed (on a zeroed device: the same).
 */
#include <errno.h>
#include <string.h>

#include "ondisk.h"

int pcm_format_plan(uint64_t dev_size, const struct pcm_format_opts *o,
		    struct pcm_format_plan *plan)
{
	uint32_t n = pcm_seg_num_for_size(dev_size);
	uint8_t raw[PCM_SB_SIZE];

	memset(plan, 0, sizeof(*plan));
	if (dev_size < PCM_DEV_SIZE_MIN)
		return -ENOSPC;
	if (n == 0 || n > PCM_SEGS_MAX)
		return -EFBIG;
	if (o->gc_percent > PCM_GC_PERCENT_MAX)
		return -EINVAL;
	plan->dev_size = dev_size;
	plan->seg_num = n;
	plan->sb.magic = PCM_SB_MAGIC;
	plan->sb.seg_num = n;
	pcm_sb_encode(&plan->sb, raw);
	plan->sb.crc = pcm_record_crc(raw, sizeof(raw));

	plan->ci.h.seq = 1;
	plan->ci.seg_id = 0;
	plan->ci.n_segs = n;
	plan->ci.flags = PCM_CI_F_INIT_DONE | (o->gc_percent << PCM_CI_GC_SHIFT) |
			 (o->data_crc ? PCM_CI_F_DATA_CRC : 0);
	return 0;
}

static int write_rec(struct pcm_dev *dev, uint64_t off, uint8_t *buf, size_t size)
{
	pcm_record_seal(buf, size);
	return pcm_dev_write(dev, off, buf, size);
}

static int write_seg_info(struct pcm_dev *dev, uint32_t dseg, int slot, uint8_t seq,
			  uint32_t flags, uint32_t next)
{
	struct pcm_seg_info si = { .h.seq = seq, .flags = flags, .next_seg = next };
	uint8_t buf[PCM_SEG_INFO_SIZE];

	pcm_seg_info_encode(&si, buf);
	return write_rec(dev, pcm_seg_base(dseg) + (uint64_t)slot * PCM_SEG_INFO_SLOT, buf,
			 sizeof(buf));
}

/* One segment as §5.2 step 7 leaves it. */
static int format_segment(struct pcm_dev *dev, uint32_t i)
{
	const uint32_t type = PCM_SEGI_TYPE_DATA << PCM_SEGI_TYPE_SHIFT;
	struct pcm_seg_gen g = { .h.seq = 1, .gen = 0 };
	uint8_t buf[PCM_SEG_GEN_SIZE];
	uint64_t base = pcm_seg_base(i);
	int rc;

	if (i > 0) {
		rc = write_seg_info(dev, i - 1, 0, 2, type | PCM_SEGI_F_HAS_NEXT, i);
		if (rc)
			return rc;
	}
	rc = pcm_dev_zero(dev, base, PCM_DATA_OFF);
	if (rc)
		return rc;
	pcm_seg_gen_encode(&g, buf);
	rc = write_rec(dev, base + PCM_SEG_CTRL_OFF + PCM_SEG_GEN_SIZE, buf, sizeof(buf));
	if (!rc)
		rc = write_seg_info(dev, i, 1, 1, type, 0);
	if (!rc)
		rc = pcm_dev_zero(dev, base + PCM_DATA_OFF, PCM_KSET_HDR_SIZE);
	return rc;
}

static int write_tail(struct pcm_dev *dev, uint64_t off)
{
	struct pcm_pos_rec p = { .h.seq = 1 };
	uint8_t buf[PCM_POS_SIZE];

	pcm_pos_rec_encode(&p, buf);
	return write_rec(dev, off, buf, sizeof(buf));
}

int pcm_format_write(struct pcm_dev *dev, const struct pcm_format_plan *plan,
		     void (*progress)(uint64_t done, uint64_t total, void *arg), void *arg)
{
	uint8_t buf[PCM_CACHE_INFO_SIZE];
	uint64_t meta_end = pcm_seg_base(plan->seg_num);
	int rc;

	if (pcm_dev_size(dev) != plan->dev_size)
		return -EINVAL;
	/* cache_info first: old tails must never be lost while an old cache_info is valid */
	rc = pcm_dev_zero(dev, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_SIZE);
	if (!rc)
		rc = pcm_dev_zero(dev, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, PCM_CACHE_INFO_SIZE);
	if (!rc)
		rc = pcm_dev_persist(dev, PCM_CACHE_INFO_OFF, PCM_CACHE_CTRL_OFF - PCM_CACHE_INFO_OFF);
	if (!rc)
		rc = pcm_dev_zero(dev, PCM_CACHE_INFO_OFF, PCM_META_END - PCM_CACHE_INFO_OFF);
	/*
	 * [0, 4096): the kernel neither reads nor writes it, and leaves it zero on a
	 * zeroed device.  Zeroing it takes away what an earlier user left there (an
	 * ext4 superblock at 1024, a swap signature at 4086, an LVM label at 512, a
	 * partition table), so that blkid and udev no longer see them.
	 */
	if (!rc)
		rc = pcm_dev_zero(dev, 0, PCM_SB_OFF);
	if (!rc)
		rc = pcm_dev_persist(dev, 0, PCM_META_END);
	for (uint32_t i = 0; !rc && i < plan->seg_num; i++) {
		rc = format_segment(dev, i);
		if (progress && (i % 64 == 63 || i + 1 == plan->seg_num))
			progress(i + 1, plan->seg_num, arg);
	}
	if (!rc)
		rc = write_tail(dev, PCM_DIRTY_TAIL_OFF);
	if (!rc)
		rc = write_tail(dev, PCM_KEY_TAIL_OFF);
	if (!rc) {
		pcm_sb_encode(&plan->sb, buf);
		rc = pcm_dev_write(dev, PCM_SB_OFF, buf, PCM_SB_SIZE);
	}
	if (!rc)
		rc = pcm_dev_persist(dev, 0, meta_end);
	if (!rc) {
		pcm_cache_info_encode(&plan->ci, buf);
		rc = write_rec(dev, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, buf, sizeof(buf));
	}
	if (!rc)
		rc = pcm_dev_persist(dev, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT,
				     PCM_CACHE_INFO_SIZE);
	return rc;
}
