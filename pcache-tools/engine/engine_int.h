/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Engine internals shared by its modules.
 *
 * Lock order (never taken the other way round):
 *   head lock -> log_lock
 *   open-kset lock -> shard lock,  open-kset lock -> log_lock
 *   every shard lock (in index order) -> log_lock       (segment reclaim)
 *   room_lock -> open-kset locks, wb_lock, gc_lock;  wb_lock, gc_lock -> log_lock
 * refs[] are atomics; c->gen[s] changes only under every shard lock, so a
 * reader holding one shard lock sees a stable gen while it copies data.
 */
#ifndef PCACHE_ENGINE_INT_H
#define PCACHE_ENGINE_INT_H

#include <pthread.h>

#include "engine.h"

#define PCE_WINDOW         (1ull << PCM_WINDOW_SHIFT)
#define PCE_CACHELINE      64
#define PCE_NO_SEG         UINT32_MAX

struct pce_backing {
	char *path;
	int fd;                   /* buffered: reads, unaligned writes, fdatasync */
	int dfd;                  /* O_DIRECT, -1 when unavailable */
	uint32_t dio_align;       /* offset, length and memory alignment for dfd */
	bool block, direct_broken;
	uint64_t size;
	pce_backing_write_fn wfn; /* test hook, NULL normally */
	void *warg;
	pce_backing_sync_fn sfn;  /* test hook: called before each backing sync */
	void *sarg;
};

struct pce_shard {
	pthread_mutex_t lock;
	struct pcm_index *idx;
} __attribute__((aligned(PCE_CACHELINE)));

/* A data head (§6.3): where the next data of its CPU goes. */
struct pce_head {
	pthread_mutex_t lock;
	bool valid;
	uint32_t cseg, off;
} __attribute__((aligned(PCE_CACHELINE)));

/* An open kset (§6.2): keys waiting to be written as one kset. */
struct pce_oks {
	pthread_mutex_t lock;
	unsigned n;
	struct pcm_key keys[PCM_KSET_KEYS_MAX];
} __attribute__((aligned(PCE_CACHELINE)));

struct pce {
	unsigned flags;
	struct pcm_dev *cdev;
	struct pcm_cache *c;
	struct pce_backing bk;
	struct pcm_appender *a;           /* NULL when the cache is read-only */
	struct pcm_pos ro_key_head;       /* key_head when there is no appender */
	uint32_t ro_segs_used;
	pthread_mutex_t log_lock;         /* appender, tails, gens on media */
	pthread_mutex_t wb_lock, gc_lock, room_lock;
	int32_t *refs;                    /* per cseg, atomic (§8.3) */
	struct pce_shard *shards;
	unsigned n_shards;
	struct pce_head *heads;
	unsigned n_heads;
	struct pce_oks *oks;
	unsigned n_open;
	uint64_t reclaimed;               /* segments reclaimed (atomic) */
	char ro_why[320];                 /* why the kernel's writes would harm it; "" none */
};

/* judge.c: the kernel's verdict on the cache (§5.5), and what makes writing unsafe */
int pce_judge(struct pce *e, const char *path, struct pce_error *err);

/* engine.c */
/* Fills err (may be NULL) and returns rc. */
int pce_fail(struct pce_error *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* backing.c */
int pce_bk_open(struct pce_backing *b, const char *path, unsigned flags);
void pce_bk_close(struct pce_backing *b);
int pce_bk_read(struct pce_backing *b, uint64_t off, void *buf, size_t len);
/* Writes iov (n entries, total len) at off: O_DIRECT when aligned, else buffered. */
int pce_bk_writev(struct pce_backing *b, const struct iovec *iov, int n, uint64_t off);
int pce_bk_sync(struct pce_backing *b);

/* shards.c */
int pce_shards_init(struct pce *e, const struct pcm_index *from);
void pce_shards_free(struct pce *e);
struct pce_shard *pce_shard_of(struct pce *e, uint64_t off);
int pce_shard_insert(struct pce *e, const struct pcm_key *k);
void pce_shards_lock_all(struct pce *e);
void pce_shards_unlock_all(struct pce *e);

/* refs.c: references, data heads, segment reclaim */
void pce_ref_get(struct pce *e, uint32_t cseg);
/* Drops one reference; true when it reached exactly 0 (the caller reclaims). */
bool pce_ref_put(struct pce *e, uint32_t cseg);
/* Space for up to *len bytes at this CPU's data head; takes the key's reference. */
int pce_head_reserve(struct pce *e, uint32_t *len, struct pcm_pos *at, uint64_t *gen);
/* Gen bump persisted, then the segment is free for reuse (§8.3). */
int pce_seg_reclaim(struct pce *e, uint32_t cseg);
void pce_heads_drop(struct pce *e);

/* ksets.c: open ksets */
/* Index insert and append in one step, so log order equals index order per window. */
int pce_oks_add(struct pce *e, const struct pcm_key *k, bool fua, bool *added);
int pce_oks_flush_all(struct pce *e);

/* engine.c */
struct pcm_pos pce_key_head(struct pce *e);      /* takes log_lock */
uint32_t pce_segs_used(struct pce *e);           /* caller holds log_lock */
/* pcm_walk_next for walks that run beside appends (writeback, GC). */
enum pcm_walk_event pce_walk_next(struct pce *e, struct pcm_walk *w);
bool pce_persisting(const struct pce *e);
/* Makes room for a write that found no free segment: flush, writeback, GC. */
int pce_make_room(struct pce *e);

/* scratch.c: the single-window index writeback uses per kset (§7.2 step 6) */
struct pce_scratch {
	struct pcm_extent *v;
	size_t n, cap;
};
void pce_scratch_reset(struct pce_scratch *s);
void pce_scratch_free(struct pce_scratch *s);
int pce_scratch_insert(struct pce_scratch *s, const struct pcm_extent *k);

/* wbio.c: writing a batch to the backing device, with the retry ladder */
struct pce_wbio {
	struct pce *e;
	bool retry;
	uint64_t bytes;
	int err;                          /* first errno seen */
	struct pce_range *failed;
	size_t n_failed, cap_failed;
	uint8_t *bounce;                  /* for caches that are not mapped */
	size_t bounce_len;
};
/* Writes every non-CLEAN extent of s, in ascending order, merging neighbours. */
int pce_wbio_batch(struct pce_wbio *io, const struct pce_scratch *s);
void pce_wbio_free(struct pce_wbio *io);

/* Device offset of cache data, and its bytes (mapped) or a copy. */
static inline uint64_t pce_data_off(const struct pce *e, uint32_t cseg, uint32_t seg_off)
{
	return pcm_pos_dev_off(e->c, cseg, seg_off);
}

static inline uint64_t pce_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

#endif
