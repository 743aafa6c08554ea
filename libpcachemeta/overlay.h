/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: the copy-on-write overlay behind pcm_dev_overlay(). */
#ifndef PCM_OVERLAY_H
#define PCM_OVERLAY_H

#include "pcachemeta.h"

struct pcm_overlay;

#define OV_PAGE 4096u   /* the overlay copies and looks up whole pages */

struct pcm_overlay *ov_new(struct pcm_dev *base);
void ov_free(struct pcm_overlay *ov);
int ov_read(struct pcm_overlay *ov, uint64_t off, void *buf, size_t len);
uint64_t ov_clean_len(const struct pcm_overlay *ov, uint64_t off, uint64_t len);
int ov_write(struct pcm_overlay *ov, uint64_t off, const void *buf, size_t len);
const struct pcm_ov_write *ov_writes(const struct pcm_overlay *ov, uint64_t *n);

#endif
