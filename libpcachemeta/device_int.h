/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: struct pcm_dev, shared by device.c and badblocks.c. */
#ifndef PCM_DEVICE_INT_H
#define PCM_DEVICE_INT_H

#include <libpmem2.h>
#include <sys/types.h>

#include "pcachemeta.h"

struct pcm_overlay;

struct pcm_dev {
	char *path;
	int fd;
	unsigned flags;
	enum pcm_dev_kind kind;
	uint64_t size;
	dev_t rdev;                 /* block and character devices */
	struct pmem2_source *src;   /* mapped devices: kept for bad block queries */
	struct pmem2_map *map;
	uint8_t *base;
	pmem2_persist_fn persist;
	struct pcm_overlay *ov;     /* overlay device: writes stay in memory */
	struct pcm_dev *ov_base;    /* overlay device: the device below */
	struct pcm_badblock *bb;    /* bad blocks, sorted and merged, once asked for */
	size_t nbb;
	bool bb_known;
};

#endif
