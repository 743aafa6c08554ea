/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading the replicated metadata records from a device (§3.1). */
#include <errno.h>
#include <string.h>

#include "ondisk.h"

/* Reads both replicas of a record and picks the kernel's. */
static int read_pair(struct pcm_dev *dev, uint64_t off0, uint64_t off1, size_t size,
		     uint8_t raw[PCM_REPLICAS][PCM_CACHE_INFO_SIZE], struct pcm_rep_state *st)
{
	const uint8_t *rec[PCM_REPLICAS] = { raw[0], raw[1] };
	int rc = pcm_dev_read(dev, off0, raw[0], size);

	if (!rc)
		rc = pcm_dev_read(dev, off1, raw[1], size);
	if (rc)
		return rc;
	st->pick = pcm_replica_pick(rec, size, st->valid);
	st->seq[0] = raw[0][4];
	st->seq[1] = raw[1][4];
	return 0;
}

int pcm_read_sb(struct pcm_dev *dev, struct pcm_sb *sb, uint8_t raw[PCM_SB_SIZE])
{
	uint8_t buf[PCM_SB_SIZE];
	int rc = pcm_dev_read(dev, PCM_SB_OFF, buf, sizeof(buf));

	if (rc)
		return rc;
	pcm_sb_decode(buf, sb);
	if (raw)
		memcpy(raw, buf, sizeof(buf));
	return 0;
}

int pcm_read_cache_info(struct pcm_dev *dev, struct pcm_cache_info ci[PCM_REPLICAS],
			struct pcm_rep_state *st)
{
	uint8_t raw[PCM_REPLICAS][PCM_CACHE_INFO_SIZE];
	int rc = read_pair(dev, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT,
			   PCM_CACHE_INFO_SIZE, raw, st);

	if (rc)
		return rc;
	for (int i = 0; i < PCM_REPLICAS; i++)
		pcm_cache_info_decode(raw[i], &ci[i]);
	return 0;
}

int pcm_read_tail(struct pcm_dev *dev, int which, struct pcm_pos_rec r[PCM_REPLICAS],
		  struct pcm_rep_state *st)
{
	uint8_t raw[PCM_REPLICAS][PCM_CACHE_INFO_SIZE];
	uint64_t base = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;
	int rc = read_pair(dev, base, base + PCM_POS_SIZE, PCM_POS_SIZE, raw, st);

	if (rc)
		return rc;
	for (int i = 0; i < PCM_REPLICAS; i++)
		pcm_pos_rec_decode(raw[i], &r[i]);
	return 0;
}

int pcm_read_seg_info(struct pcm_dev *dev, uint32_t dseg,
		      struct pcm_seg_info si[PCM_REPLICAS], struct pcm_rep_state *st)
{
	uint8_t raw[PCM_REPLICAS][PCM_CACHE_INFO_SIZE];
	uint64_t base = pcm_seg_base(dseg);
	int rc = read_pair(dev, base, base + PCM_SEG_INFO_SLOT, PCM_SEG_INFO_SIZE, raw, st);

	if (rc)
		return rc;
	for (int i = 0; i < PCM_REPLICAS; i++)
		pcm_seg_info_decode(raw[i], &si[i]);
	return 0;
}

int pcm_read_seg_gen(struct pcm_dev *dev, uint32_t dseg,
		     struct pcm_seg_gen g[PCM_REPLICAS], struct pcm_rep_state *st)
{
	uint8_t raw[PCM_REPLICAS][PCM_CACHE_INFO_SIZE];
	uint64_t base = pcm_seg_base(dseg) + PCM_SEG_CTRL_OFF;
	int rc = read_pair(dev, base, base + PCM_SEG_GEN_SIZE, PCM_SEG_GEN_SIZE, raw, st);

	if (rc)
		return rc;
	for (int i = 0; i < PCM_REPLICAS; i++)
		pcm_seg_gen_decode(raw[i], &g[i]);
	return 0;
}

enum pcm_sb_verdict pcm_sb_check(const struct pcm_sb *sb, uint64_t dev_size)
{
	uint8_t raw[PCM_SB_SIZE];
	uint32_t max;

	if (dev_size < PCM_DEV_SIZE_MIN)
		return PCM_SB_TOO_SMALL;
	if (sb->magic == 0)
		return PCM_SB_UNFORMATTED;
	if (sb->magic != PCM_SB_MAGIC)
		return PCM_SB_BAD_MAGIC;
	pcm_sb_encode(sb, raw);
	if (!pcm_record_crc_ok(raw, sizeof(raw)))
		return PCM_SB_BAD_CRC;
	if (sb->flags & PCM_SB_F_BIGENDIAN)
		return PCM_SB_BIGENDIAN;
	max = pcm_seg_num_for_size(dev_size);
	if (max > PCM_SEGS_MAX)
		max = PCM_SEGS_MAX;
	if (sb->seg_num < 1 || sb->seg_num > max)
		return PCM_SB_BAD_SEG_NUM;
	return PCM_SB_OK;
}

const char *pcm_sb_verdict_str(enum pcm_sb_verdict v)
{
	switch (v) {
	case PCM_SB_OK: return "valid";
	case PCM_SB_TOO_SMALL: return "device smaller than 512 MiB";
	case PCM_SB_UNFORMATTED: return "no pcache superblock (magic is 0)";
	case PCM_SB_BAD_MAGIC: return "not a pcache device (unexpected superblock magic)";
	case PCM_SB_BAD_CRC: return "superblock checksum mismatch";
	case PCM_SB_BIGENDIAN: return "formatted by a big-endian CPU (not supported)";
	case PCM_SB_BAD_SEG_NUM: return "superblock seg_num out of range for the device size";
	}
	return "unknown";
}
