/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * On-media layouts as byte arrays.  Only the codec touches these; every size
 * and offset is asserted against §2 at compile time.
 */
#ifndef PCM_ONDISK_H
#define PCM_ONDISK_H

#include <stddef.h>
#include <stdint.h>
#include "pcachemeta.h"

struct od_meta_header {
	uint8_t crc[4];
	uint8_t seq;
	uint8_t version;
	uint8_t res[2];
};

struct od_sb {
	uint8_t crc[4];
	uint8_t flags[4];
	uint8_t magic[8];
	uint8_t seg_num[4];
	uint8_t pad[4];
};

struct od_cache_info {
	struct od_meta_header h;
	uint8_t seg_id[4];
	uint8_t n_segs[4];
	uint8_t flags[4];
	uint8_t reserved[4];
};

struct od_pos {
	struct od_meta_header h;
	uint8_t cseg[4];
	uint8_t seg_off[4];
};

struct od_seg_info {
	struct od_meta_header h;
	uint8_t flags[4];
	uint8_t next_seg[4];
};

struct od_seg_gen {
	struct od_meta_header h;
	uint8_t gen[8];
};

struct od_kset {
	uint8_t crc[4];
	uint8_t key_num[4];
	uint8_t magic[8];
	uint8_t flags[8];
};

struct od_key {
	uint8_t off[8];
	uint8_t len[4];
	uint8_t flags[4];
	uint8_t cseg[4];
	uint8_t seg_off[4];
	uint8_t seg_gen[8];
	uint8_t data_crc[4];
	uint8_t reserved[4];
};

#define OD_ASSERT(t, f, o) _Static_assert(offsetof(struct t, f) == (o), #t "." #f " offset")

_Static_assert(sizeof(struct od_meta_header) == 8, "meta header size");
OD_ASSERT(od_meta_header, seq, 4);
OD_ASSERT(od_meta_header, version, 5);
OD_ASSERT(od_meta_header, res, 6);

_Static_assert(sizeof(struct od_sb) == PCM_SB_SIZE, "superblock size");
OD_ASSERT(od_sb, flags, 4);
OD_ASSERT(od_sb, magic, 8);
OD_ASSERT(od_sb, seg_num, 16);
OD_ASSERT(od_sb, pad, 20);

_Static_assert(sizeof(struct od_cache_info) == PCM_CACHE_INFO_SIZE, "cache_info size");
OD_ASSERT(od_cache_info, seg_id, 8);
OD_ASSERT(od_cache_info, n_segs, 12);
OD_ASSERT(od_cache_info, flags, 16);
OD_ASSERT(od_cache_info, reserved, 20);

_Static_assert(sizeof(struct od_pos) == PCM_POS_SIZE, "position size");
OD_ASSERT(od_pos, cseg, 8);
OD_ASSERT(od_pos, seg_off, 12);

_Static_assert(sizeof(struct od_seg_info) == PCM_SEG_INFO_SIZE, "segment info size");
OD_ASSERT(od_seg_info, flags, 8);
OD_ASSERT(od_seg_info, next_seg, 12);

_Static_assert(sizeof(struct od_seg_gen) == PCM_SEG_GEN_SIZE, "segment gen size");
OD_ASSERT(od_seg_gen, gen, 8);

_Static_assert(sizeof(struct od_kset) == PCM_KSET_HDR_SIZE, "kset header size");
OD_ASSERT(od_kset, key_num, 4);
OD_ASSERT(od_kset, magic, 8);
OD_ASSERT(od_kset, flags, 16);

_Static_assert(sizeof(struct od_key) == PCM_KEY_SIZE, "key size");
OD_ASSERT(od_key, len, 8);
OD_ASSERT(od_key, flags, 12);
OD_ASSERT(od_key, cseg, 16);
OD_ASSERT(od_key, seg_off, 20);
OD_ASSERT(od_key, seg_gen, 24);
OD_ASSERT(od_key, data_crc, 32);
OD_ASSERT(od_key, reserved, 36);

/* Layout constants that §1 and §2 derive from each other. */
_Static_assert(PCM_DATA_SIZE == PCM_SEG_SIZE - PCM_DATA_OFF, "data area size");
_Static_assert(PCM_DATA_SIZE % PCM_SECTOR == 0, "data area sector multiple");
_Static_assert(PCM_KSET_SIZE_MAX == 5144, "max kset size");
_Static_assert(PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT == 12288, "cache_info slot 1");
_Static_assert(PCM_SEG_CTRL_OFF + PCM_SEG_CTRL_SIZE == PCM_DATA_OFF, "segment ctrl end");
_Static_assert(PCM_KEY_TAIL_OFF + 2 * PCM_POS_SIZE == PCM_DIRTY_TAIL_OFF, "tail slots");

#endif
