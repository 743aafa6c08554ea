/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A recorder of what an operation writes to a mapped device, and where it
 * persists, for the crash-point harness.
 *
 * It needs no change to the library: it attaches to an opened, mapped,
 * writable struct pcm_dev (the memfd or file mapping libpmem2 made), swaps
 * the device's persist function for its own, and write-protects the mapping.
 * The first store to a page after a persist faults once (SIGSEGV, handled
 * here: the page's content is saved and the page made writable again).  At
 * every persist call, and at every mark, the pages stored to since the last
 * one are compared with their saved content: each run of changed bytes
 * becomes a WRITE event (in page order of first store, then address order),
 * then comes the PERSIST event with its exact range.
 *
 * So the log says, for every persist point, which bytes had been written and
 * which of them the operation had asked to be durable: exactly what a crash
 * on pmem may keep (durable bytes always, the others in any combination).
 * Not seen: the order of stores between two persist points (pmem does not
 * keep it either) and intermediate values of bytes stored twice in one such
 * interval.
 */
#ifndef PCM_CRASH_RECORD_H
#define PCM_CRASH_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "pcachemeta.h"

enum rec_type { REC_WRITE, REC_PERSIST, REC_MARK };

struct rec_ev {
	enum rec_type type;
	uint64_t off, len;       /* WRITE, PERSIST: device range */
	uint8_t *data;           /* WRITE: the bytes now there */
	uint64_t tag;            /* MARK: the caller's tag */
};

struct rec;

/* Starts recording dev (mapped and writable: -EINVAL otherwise).  One recorder at a time. */
int rec_attach(struct pcm_dev *dev, struct rec **out);
/* A MARK event after the writes made so far (e.g. "write 17 acknowledged"). */
void rec_mark(struct rec *r, uint64_t tag);
/* Stops recording (the writes since the last persist become WRITE events); dev works on. */
void rec_detach(struct rec *r);
const struct rec_ev *rec_events(const struct rec *r, size_t *n);
uint64_t rec_faults(const struct rec *r);
void rec_free(struct rec *r);

#endif
