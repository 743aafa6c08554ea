/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The embedded engine: dm-pcache in userspace on top of libpcachemeta.
 *
 * It opens a cache device and its backing device the way the kernel loads
 * them (checks, replay), then serves reads and writes, writes dirty data
 * back and runs GC, leaving on the media only states the kernel itself could
 * have produced (§6.8), so the kernel loads the cache afterwards.
 *
 * It opens every cache the kernel loads (pcm_check_run's verdict LOADS) and
 * serves what the kernel serves after loading it, the replayed index over
 * the backing device, also where the kernel's replay has silently lost data.
 * Where the kernel would then lose or corrupt data through its writes,
 * writeback or GC (§10.4 TL3, TL4, ...), the cache is only read:
 * pce_rdonly_reason() says why.  What the kernel refuses or re-initialises
 * is refused with the check's reason.
 *
 * Threads: every call may be made from several threads at once.  Reads run
 * in parallel (the index is sharded by 4 MiB window, as the kernel's
 * multi-tree); writes place their data in parallel (one data head per CPU)
 * and meet only at their open kset and the log lock.  Writeback and GC each
 * run in one caller at a time, concurrently with I/O.
 *
 * Durability is the kernel's: a write returns once it is in the index and in
 * an open kset; pce_flush() (or a FUA write) makes it survive a crash.
 */
#ifndef PCACHE_ENGINE_H
#define PCACHE_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "pcachemeta.h"

struct pce;

enum pce_open_flags {
	PCE_RDONLY      = 0x01,   /* open both devices read-only: reads and dry runs only */
	PCE_NO_EXCL     = 0x02,   /* do not take the devices exclusively */
	PCE_NO_PERSIST  = 0x04,   /* skip pmem flushes (fast tests on files; not power-safe) */
	PCE_VERIFY_DATA = 0x08,   /* the load checks data CRCs, as the kernel's load does */
	PCE_NO_DIRECT   = 0x10,   /* buffered backing writes only (no O_DIRECT) */
	PCE_CACHE_RDONLY = 0x20,  /* cache read-only, backing writable (copy dirty data out) */
};

struct pce_opts {
	unsigned flags;           /* PCE_* */
	unsigned n_open;          /* open ksets (kernel: CPUs online at load); 0: CPUs */
	unsigned n_heads;         /* data heads (kernel: one per CPU); 0: CPUs */
	unsigned n_shards;        /* index shards (mutex each); 0: 64 */
};

struct pce_error {
	int err;                  /* negative errno; -EUCLEAN: the kernel's verdict (see below) */
	char msg[256];            /* "PATH: what: why", one line, for the caller to print */
	const char *path;         /* the device it is about: cache_path or backing_path (or NULL) */
};

/*
 * Refuses, with err->err -EUCLEAN and "PATH: the kernel would refuse to load the
 * cache: WHY" (or re-initialise it, or crash on it; "not a pcache device: WHY" for a
 * bad superblock), what the kernel does not load; WHY is the summary of the problem
 * that ends the kernel's load, as pcache fsck reports it.  -EINVAL when DEV is no
 * pcache device at all.  Anything else: cannot open or read a device.
 */
int pce_open(const char *cache_path, const char *backing_path, const struct pce_opts *o,
	     struct pce **out, struct pce_error *err);
/*
 * NULL, or why a cache the kernel loads is only read although it was opened for
 * writing: one line, "SUMMARY (what would go wrong)".  Such an engine never writes to
 * the cache: pce_write() and pce_writeback() (but a dry run) fail with -EROFS, and so
 * does pce_gc().  Also given with PCE_RDONLY or PCE_CACHE_RDONLY.
 */
const char *pce_rdonly_reason(const struct pce *e);
/*
 * What 'dmsetup message DEV 0 gc_percent N' does (§9.3): the gc_percent bits of
 * cache_info replaced, written advance-then-write (§3.3); GC uses it at once.
 * -EROFS on a cache that is only read, -EINVAL above 90.
 */
int pce_set_gc_percent(struct pce *e, unsigned pct);
/* Writes every open kset (as a FLUSH), then frees; returns the flush result. */
int pce_close(struct pce *e);
/* Frees without writing the open ksets: what a crash leaves (tests). */
void pce_abandon(struct pce *e);

/* Any byte range inside the backing device; misses come from the backing device. */
int pce_read(struct pce *e, uint64_t off, void *buf, size_t len);
/* off and len multiples of 512.  fua: durable before returning (its open ksets closed). */
int pce_write(struct pce *e, uint64_t off, const void *buf, size_t len, bool fua);
/* FLUSH: every write that returned before this call survives a crash. */
int pce_flush(struct pce *e);

struct pce_status {
	struct pcm_pos key_head, dirty_tail, key_tail;
	uint32_t seg_num, n_segs, segs_used, gc_percent;
	uint64_t backing_size, reclaimed_segs;
	bool data_crc;
};
void pce_status(struct pce *e, struct pce_status *st);
/* The loaded cache (read-only use: its tails move under the engine's locks). */
const struct pcm_cache *pce_cache(const struct pce *e);

/* ---- writeback (§7.2): kset by kset from dirty_tail to key_head ---- */
struct pce_range {
	uint64_t off, len;
};

/* One extent to write back, as the dry run lists it. */
struct pce_wb_extent {
	uint64_t off;
	uint32_t len, cseg, seg_off;
};

enum pce_wb_stop {
	PCE_WB_CLEAN = 0,         /* reached key_head: nothing dirty left */
	PCE_WB_CANCELLED,         /* *cancel became true; stopped at a batch end */
	PCE_WB_IO_FAILED,         /* ranges could not be written (failed[]) */
	PCE_WB_BAD_KEY,           /* a key failed decode / data CRC: stopped before its kset */
	PCE_WB_LOG_FAIL,          /* the log walk failed (bad LAST, oversized kset) */
	PCE_WB_META_FAILED,       /* dirty_tail could not be persisted, or a backing flush failed */
	PCE_WB_LIMIT,             /* max_ksets reached */
};

struct pce_wb_opts {
	bool dry_run;             /* walk and plan, write nothing */
	bool verify_data;         /* check each key's data CRC before writing it back */
	bool no_metadata_update;  /* write data back but never move dirty_tail */
	bool retry;               /* retry ladder for failing ranges (else fail at once) */
	unsigned batch_ksets;     /* ksets per backing flush; 0: 64; 1: the kernel's */
	uint64_t batch_bytes;     /* bytes per batch; 0: 64 MiB */
	uint64_t max_ksets;       /* stop after this many normal ksets; 0: no limit */
	volatile sig_atomic_t *cancel;
	/* Each normal kset with the extents its own scratch index would write (dry runs). */
	void (*on_kset)(struct pcm_pos at, unsigned keys, const struct pce_wb_extent *x,
			size_t n, void *arg);
	/* After each batch, once durable: bytes written so far. */
	void (*on_batch)(uint64_t bytes_done, uint64_t ksets_done, void *arg);
	void *arg;
};

struct pce_wb_result {
	enum pce_wb_stop stop;
	int err;                  /* errno behind IO_FAILED / META_FAILED */
	uint64_t ksets, last_ksets, keys, stale_keys, batches;
	uint64_t bytes;           /* bytes written (dry run: that would be written) */
	struct pcm_pos pos;       /* after the last batch written: dirty_tail unless not persisted */
	struct pcm_pos bad_kset;  /* PCE_WB_BAD_KEY: the kset, the key in it, why, what it maps */
	unsigned bad_index;
	enum pcm_key_verdict bad_verdict;
	struct pce_wb_extent bad_key;
	struct pce_range *failed; /* PCE_WB_IO_FAILED: ranges not written (malloc'd) */
	size_t n_failed;
};

int pce_writeback(struct pce *e, const struct pce_wb_opts *o, struct pce_wb_result *res);
void pce_wb_result_free(struct pce_wb_result *res);
const char *pce_wb_stop_str(enum pce_wb_stop s);

/* ---- GC (§8) ---- */
struct pce_gc_result {
	uint64_t ksets, last_ksets, reclaimed;
	bool triggered;           /* the kernel's trigger held at the start */
	int err;                  /* GC stopped on an error (bad key, I/O) */
};
/* Runs GC while the kernel's trigger holds (gc_percent from cache_info). */
int pce_gc(struct pce *e, struct pce_gc_result *res);

/* ---- test hooks ---- */
/* Replaces the backing write (fault injection); fn returns bytes written or -errno. */
typedef long (*pce_backing_write_fn)(int fd, const struct iovec *iov, int n, uint64_t off,
				     void *arg);
void pce_set_backing_write(struct pce *e, pce_backing_write_fn fn, void *arg);
/* Called before each backing sync (fdatasync), so a test can model a volatile write
 * cache: backing writes issued before a completed sync are durable, later ones may not be. */
typedef void (*pce_backing_sync_fn)(void *arg);
void pce_set_backing_sync(struct pce *e, pce_backing_sync_fn fn, void *arg);

#endif
