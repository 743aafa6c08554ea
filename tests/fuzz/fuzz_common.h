/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared by the libFuzzer targets: a fuzz input describes a whole cache
 * image compactly, as a valid base image plus patches.
 *
 * Input layout (all little-endian):
 *   byte 0  image: bit 0 device size (0: 512 MiB, 31 segments; 1: 1022 MiB,
 *           63 segments, the kernel fixtures' size), bits 1-2 base image
 *           (FZ_BASE_*), bit 3 open without mapping (pread), bit 4 reseal:
 *           after patching, every non-zero replicated record and every kset
 *           header found in a patched window gets a valid CRC again, so that
 *           mutations reach the checks behind the CRCs.  Bits 5-6 (fuzz_dump):
 *           `--what` none, "sb,cache-info,cache-ctrl", "ksets,keys", "segments,keys".
 *   byte 1  options for the target (FZ_OPT_*).
 *   then patch records: u8 region, u24 offset, u16 length, length bytes.
 *           region % (2 * nsegs + 1): 0 the metadata area [0, 20480);
 *           1..nsegs segment r-1 from its start: header, ctrl and the first
 *           128 KiB of its data area; nsegs+1..2*nsegs the last 16 KiB of
 *           segment r-nsegs-1's data area.  Offsets wrap at the region size,
 *           lengths are cut at its end and at the end of the input.
 *
 * The image lives in a memfd (sparse, only touched pages cost memory) that is
 * opened once per size through /proc/self/fd/N; patches are undone after
 * each run.
 */
#ifndef PCM_FUZZ_COMMON_H
#define PCM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "pcachemeta.h"

enum {
	FZ_BASE_ZERO = 0,        /* all zero: not formatted */
	FZ_BASE_FORMAT = 1,      /* pcm_format_write, data_crc on */
	FZ_BASE_LOG = 2,         /* formatted, then a log with LAST hops (appender) */
	FZ_BASE_LOG_WB = 3,      /* FZ_BASE_LOG without data_crc, dirty_tail moved on */
};

#define FZ_IMG_WHAT 0x60       /* byte 0: fuzz_dump's --what subset */

enum {
	FZ_OPT_VERIFY = 0x01,    /* verify data CRCs */
	FZ_OPT_SAFE = 0x02,      /* repair: fsck -p instead of -y */
	FZ_OPT_TEXT = 0x04,      /* dump: text instead of --json */
	FZ_OPT_ALL = 0x08,       /* dump: --all-replicas */
	FZ_OPT_BACKING = 0x10,   /* a backing size (1 GiB): keys past it are bad */
	FZ_OPT_KEEP = 0x20,      /* replay: keep going after bad keys */
	FZ_OPT_HUMAN = 0x40,     /* dump: -u */
	FZ_OPT_BADBLOCKS = 0x80, /* the first two patched ranges are reported as bad blocks
				  * (PCACHE_TEST_BADBLOCKS, on a device opened for this input) */
};

#define FZ_SIZE_SMALL   536870912ull
#define FZ_SIZE_FIXTURE 1071644672ull
#define FZ_HEAD_WINDOW  (PCM_DATA_OFF + (128u << 10))
#define FZ_TAIL_WINDOW  (16u << 10)
#define FZ_BACKING_SIZE (1ull << 30)

struct fz_image {
	struct pcm_dev *dev;     /* read-only device over the image */
	const char *path;        /* /proc/self/fd/N of the memfd */
	uint64_t size;
	uint32_t nsegs;          /* segments the device holds */
	uint8_t image, opts;     /* header bytes */
	unsigned base;
	bool own_dev;            /* dev opened for this input (bad blocks): closed at reset */
};

/* Builds the image an input describes; 0, or -1 when the input is too short to use. */
int fz_image_load(const uint8_t *data, size_t size, struct fz_image *img);
/* Undoes the patches (the base stays loaded for the next input). */
void fz_image_reset(struct fz_image *img);

/* Aborts (a finding) with a message: for oracle violations, not for library errors. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
