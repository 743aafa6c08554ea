/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: the extent index's windows and leaves (index.c, index_batch.c). */
#ifndef PCM_INDEX_INT_H
#define PCM_INDEX_INT_H

#include "pcachemeta.h"

#define LEAF_CAP 64u

struct leaf {
	uint32_t n;
	struct pcm_extent v[LEAF_CAP];
};

struct window {
	uint64_t id;
	uint32_t nl, capl;
	struct leaf **l;
	uint64_t *end;          /* end offset of each leaf's last extent (ascending) */
};

struct pcm_index {
	struct window *w;       /* windows, in creation order */
	uint32_t nw, capw;
	uint32_t *hash;         /* index+1 into w, 0 empty; power-of-two size */
	uint32_t hsize;
	uint64_t count, leaves;
};

struct window *idx_window_get(struct pcm_index *idx, uint64_t id);

#endif
