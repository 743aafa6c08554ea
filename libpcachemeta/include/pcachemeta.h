/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libpcachemeta: read, validate, write and repair the on-media format of
 * Linux dm-pcache caches.  See doc/format.md for the format in our words.
 *
 * Conventions: functions return 0 or a negative errno; nothing here prints
 * or exits.  Decoded structures are in host order; the codec converts to and
 * from the little-endian on-media bytes.
 */
#ifndef PCACHEMETA_H
#define PCACHEMETA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layout constants (§1.1, §2.9) ---- */
#define PCM_SB_OFF            4096u
#define PCM_CACHE_INFO_OFF    8192u
#define PCM_CACHE_INFO_SLOT   4096u
#define PCM_CACHE_CTRL_OFF    16384u
#define PCM_KEY_TAIL_OFF      16384u
#define PCM_DIRTY_TAIL_OFF    16416u
#define PCM_META_END          20480u
#define PCM_SEGMENTS_OFF      20480u
#define PCM_SEG_SIZE          16777216u
#define PCM_SEG_INFO_SLOT     4096u
#define PCM_SEG_CTRL_OFF      8192u
#define PCM_SEG_CTRL_SIZE     4096u
#define PCM_SEG_GEN_BYTES     544u     /* gen replicas + reserved u64s */
#define PCM_DATA_OFF          12288u
#define PCM_DATA_SIZE         16764928u
#define PCM_DEV_SIZE_MIN      536870912ull
#define PCM_SEGS_MAX          1048576u

#define PCM_SB_MAGIC          0x65B05EFA96C596EFull
#define PCM_KSET_MAGIC        0x676894A64E164F1Aull
#define PCM_CRC_SEED          0x0003B15Au

#define PCM_SB_SIZE           24u
#define PCM_CACHE_INFO_SIZE   24u
#define PCM_POS_SIZE          16u
#define PCM_SEG_INFO_SIZE     16u
#define PCM_SEG_GEN_SIZE      16u
#define PCM_KSET_HDR_SIZE     24u
#define PCM_KEY_SIZE          40u
#define PCM_KSET_KEYS_MAX     128u
#define PCM_KSET_SIZE_MAX     (PCM_KSET_HDR_SIZE + PCM_KEY_SIZE * PCM_KSET_KEYS_MAX)
#define PCM_WINDOW_SHIFT      22u      /* index subtree: 4 MiB of logical offset */
#define PCM_SECTOR            512u

#define PCM_SB_F_BIGENDIAN    0x1u

#define PCM_CI_F_DATA_CRC     0x1u
#define PCM_CI_F_INIT_DONE    0x2u
#define PCM_CI_MODE_SHIFT     2u
#define PCM_CI_MODE_MASK      (0xFu << PCM_CI_MODE_SHIFT)
#define PCM_CI_GC_SHIFT       6u
#define PCM_CI_GC_MASK        (0x7Fu << PCM_CI_GC_SHIFT)
#define PCM_GC_PERCENT_DEFAULT 70u
#define PCM_GC_PERCENT_MAX    90u

#define PCM_SEGI_F_HAS_NEXT   0x1u
#define PCM_SEGI_TYPE_SHIFT   1u
#define PCM_SEGI_TYPE_MASK    (0xFu << PCM_SEGI_TYPE_SHIFT)
#define PCM_SEGI_TYPE_DATA    1u

#define PCM_KSET_F_LAST       0x1ull
#define PCM_KEY_F_EMPTY       0x1u
#define PCM_KEY_F_CLEAN       0x2u

/* ---- CRC (§0.1): raw register update, no inversions ---- */
uint32_t pcm_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t pcm_kcrc(const void *buf, size_t len);
const char *pcm_crc32c_impl(void);

/* ---- decoded records ---- */
struct pcm_meta_header {
	uint32_t crc;
	uint8_t seq;
	uint8_t version;
	uint16_t res;
};

struct pcm_sb {
	uint32_t crc;
	uint32_t flags;
	uint64_t magic;
	uint32_t seg_num;
	uint32_t pad;
};

struct pcm_cache_info {
	struct pcm_meta_header h;
	uint32_t seg_id;
	uint32_t n_segs;
	uint32_t flags;
	uint32_t reserved;
};

struct pcm_pos {
	uint32_t cseg;
	uint32_t seg_off;
};

struct pcm_pos_rec {
	struct pcm_meta_header h;
	struct pcm_pos pos;
};

struct pcm_seg_info {
	struct pcm_meta_header h;
	uint32_t flags;
	uint32_t next_seg;
};

struct pcm_seg_gen {
	struct pcm_meta_header h;
	uint64_t gen;
};

struct pcm_kset_hdr {
	uint32_t crc;
	uint32_t key_num;   /* next_cache_seg_id for a LAST kset */
	uint64_t magic;
	uint64_t flags;
};

struct pcm_key {
	uint64_t off;
	uint32_t len;
	uint32_t flags;
	uint32_t cseg;
	uint32_t seg_off;
	uint64_t seg_gen;
	uint32_t data_crc;
	uint32_t reserved;
};

/* ---- codec: explicit little-endian encode/decode ---- */
void pcm_sb_decode(const void *buf, struct pcm_sb *sb);
void pcm_sb_encode(const struct pcm_sb *sb, void *buf);
void pcm_cache_info_decode(const void *buf, struct pcm_cache_info *ci);
void pcm_cache_info_encode(const struct pcm_cache_info *ci, void *buf);
void pcm_pos_rec_decode(const void *buf, struct pcm_pos_rec *p);
void pcm_pos_rec_encode(const struct pcm_pos_rec *p, void *buf);
void pcm_seg_info_decode(const void *buf, struct pcm_seg_info *si);
void pcm_seg_info_encode(const struct pcm_seg_info *si, void *buf);
void pcm_seg_gen_decode(const void *buf, struct pcm_seg_gen *g);
void pcm_seg_gen_encode(const struct pcm_seg_gen *g, void *buf);
void pcm_kset_hdr_decode(const void *buf, struct pcm_kset_hdr *k);
void pcm_kset_hdr_encode(const struct pcm_kset_hdr *k, void *buf);
void pcm_key_decode(const void *buf, struct pcm_key *k);
void pcm_key_encode(const struct pcm_key *k, void *buf);

/* CRC a record would carry: kcrc over bytes [4, size). */
uint32_t pcm_record_crc(const void *buf, size_t size);
/* Sets the crc field of an encoded record from its bytes [4, size). */
void pcm_record_seal(void *buf, size_t size);
bool pcm_record_crc_ok(const void *buf, size_t size);

/* Kset size on media: 24 for LAST, 24 + 40 * key_num otherwise. */
static inline uint64_t pcm_kset_size(const struct pcm_kset_hdr *k)
{
	return (k->flags & PCM_KSET_F_LAST) ? PCM_KSET_HDR_SIZE :
		PCM_KSET_HDR_SIZE + (uint64_t)PCM_KEY_SIZE * k->key_num;
}

/* Derived values. */
uint32_t pcm_seg_num_for_size(uint64_t dev_size);   /* may exceed PCM_SEGS_MAX */
static inline unsigned pcm_ci_gc_percent(uint32_t flags)
{
	return (flags & PCM_CI_GC_MASK) >> PCM_CI_GC_SHIFT;
}
static inline unsigned pcm_ci_cache_mode(uint32_t flags)
{
	return (flags & PCM_CI_MODE_MASK) >> PCM_CI_MODE_SHIFT;
}
const char *pcm_cache_mode_name(unsigned mode);

static inline uint64_t pcm_seg_base(uint32_t dseg)
{
	return PCM_SEGMENTS_OFF + (uint64_t)dseg * PCM_SEG_SIZE;
}

/* ---- replicas (§3) ---- */
enum { PCM_REPLICAS = 2 };

/*
 * Which replica the kernel reads: first valid, replaced by a later valid one
 * whose seq is ahead in signed 8-bit arithmetic.  Returns 0, 1 or -1 (none).
 */
int pcm_replica_pick(const uint8_t *const rec[PCM_REPLICAS], size_t size,
		     bool valid_out[PCM_REPLICAS]);
/* True when seq a is newer than seq b for the kernel. */
static inline bool pcm_seq_after(uint8_t a, uint8_t b)
{
	return (int8_t)(uint8_t)(a - b) > 0;
}

/* ---- device access ---- */
enum pcm_dev_flags {
	PCM_DEV_RDONLY = 0x0,
	PCM_DEV_RDWR   = 0x1,
	PCM_DEV_EXCL   = 0x2,   /* fail with -EBUSY when someone else holds it */
	PCM_DEV_NOMAP  = 0x4,   /* use pread/pwrite even where mapping works */
};

enum pcm_dev_kind { PCM_DEV_FILE, PCM_DEV_BLOCK, PCM_DEV_DAX };

struct pcm_dev;

int pcm_dev_open(const char *path, unsigned flags, struct pcm_dev **out);
void pcm_dev_close(struct pcm_dev *dev);
uint64_t pcm_dev_size(const struct pcm_dev *dev);
enum pcm_dev_kind pcm_dev_kind(const struct pcm_dev *dev);
const char *pcm_dev_path(const struct pcm_dev *dev);
bool pcm_dev_writable(const struct pcm_dev *dev);
/* Bounds-checked; -ERANGE past the end, -EIO on media errors. */
int pcm_dev_read(struct pcm_dev *dev, uint64_t off, void *buf, size_t len);
int pcm_dev_write(struct pcm_dev *dev, uint64_t off, const void *buf, size_t len);
int pcm_dev_zero(struct pcm_dev *dev, uint64_t off, uint64_t len);
/* Makes [off, off+len) durable (cache flush + fence on pmem, fdatasync otherwise). */
int pcm_dev_persist(struct pcm_dev *dev, uint64_t off, uint64_t len);
/* A pointer into the mapping, or NULL when the device is not mapped. */
const void *pcm_dev_ptr(struct pcm_dev *dev, uint64_t off, size_t len);
/* Last error detail from the mapping library, or "". */
const char *pcm_dev_errmsg(void);

/* One write recorded by an overlay device, in the order it was made. */
struct pcm_ov_write {
	uint64_t off;
	size_t len;
	uint8_t *data;
};
/*
 * A device whose writes stay in memory (and in an ordered log) while reads see
 * base plus those writes.  base must outlive it; closing it frees the writes.
 */
int pcm_dev_overlay(struct pcm_dev *base, struct pcm_dev **out);
const struct pcm_ov_write *pcm_dev_overlay_writes(const struct pcm_dev *ov, uint64_t *n);

/* ---- replicated record reads ---- */
struct pcm_rep_state {
	bool valid[PCM_REPLICAS];
	uint8_t seq[PCM_REPLICAS];
	int pick;              /* -1: no valid replica */
};

int pcm_read_sb(struct pcm_dev *dev, struct pcm_sb *sb, uint8_t raw[PCM_SB_SIZE]);
int pcm_read_cache_info(struct pcm_dev *dev, struct pcm_cache_info ci[PCM_REPLICAS],
			struct pcm_rep_state *st);
/* which: 0 key_tail, 1 dirty_tail */
int pcm_read_tail(struct pcm_dev *dev, int which, struct pcm_pos_rec r[PCM_REPLICAS],
		  struct pcm_rep_state *st);
int pcm_read_seg_info(struct pcm_dev *dev, uint32_t dseg,
		      struct pcm_seg_info si[PCM_REPLICAS], struct pcm_rep_state *st);
int pcm_read_seg_gen(struct pcm_dev *dev, uint32_t dseg,
		     struct pcm_seg_gen g[PCM_REPLICAS], struct pcm_rep_state *st);

/* Superblock verdict (§5.5 steps 1-4). */
enum pcm_sb_verdict {
	PCM_SB_OK = 0,
	PCM_SB_TOO_SMALL,      /* device < 512 MiB */
	PCM_SB_UNFORMATTED,    /* magic 0: the kernel would format */
	PCM_SB_BAD_MAGIC,
	PCM_SB_BAD_CRC,
	PCM_SB_BIGENDIAN,
	PCM_SB_BAD_SEG_NUM,
};
enum pcm_sb_verdict pcm_sb_check(const struct pcm_sb *sb, uint64_t dev_size);
const char *pcm_sb_verdict_str(enum pcm_sb_verdict v);

/* ---- an opened cache: what the kernel knows after load steps 1-10 ---- */
struct pcm_tail {
	struct pcm_pos pos;
	uint8_t seq;      /* seq of the picked replica */
	int slot;         /* picked slot */
};

struct pcm_cache {
	struct pcm_dev *dev;
	uint64_t dev_size;
	struct pcm_sb sb;
	struct pcm_cache_info ci;     /* newest valid replica */
	int ci_slot;
	uint32_t seg_num;             /* sb.seg_num */
	uint32_t n_segs;              /* ci.n_segs */
	bool data_crc;
	uint32_t *dseg;               /* chain: cseg -> dseg, n_segs entries */
	uint64_t *gen;                /* per cseg, 0 when no valid replica */
	uint8_t *gen_seq;             /* per cseg: seq of the picked gen replica */
	int8_t *gen_slot;             /* per cseg: picked slot, -1 none */
	struct pcm_tail key_tail, dirty_tail;
	uint64_t backing_size;        /* 0: unknown (key bound check skipped) */
};

/* Why pcm_cache_open() refused; mirrors the kernel's load failures. */
enum pcm_open_error {
	PCM_OPEN_OK = 0,
	PCM_OPEN_IO,              /* errno in the return value */
	PCM_OPEN_SB,              /* see sb_verdict */
	PCM_OPEN_NO_CACHE_INFO,   /* kernel would re-initialise: RESET */
	PCM_OPEN_NOT_INIT_DONE,   /* kernel would re-initialise: RESET */
	PCM_OPEN_N_SEGS,          /* n_segs 0 or > seg_num */
	PCM_OPEN_CHAIN_RANGE,     /* a chain member >= seg_num */
	PCM_OPEN_CHAIN_NO_NEXT,   /* HAS_NEXT missing */
	PCM_OPEN_CHAIN_NO_INFO,   /* no valid segment info replica */
	PCM_OPEN_TAIL,            /* key_tail/dirty_tail invalid */
};

struct pcm_open_status {
	enum pcm_open_error err;
	enum pcm_sb_verdict sb_verdict;
	uint32_t where;           /* chain index, or tail (0 key, 1 dirty) */
};

int pcm_cache_open(struct pcm_dev *dev, struct pcm_cache **out, struct pcm_open_status *st);
/* Like pcm_cache_open, but bad tails are tolerated (left as 0:0): for salvage. */
int pcm_cache_open_relaxed(struct pcm_dev *dev, struct pcm_cache **out);
void pcm_cache_close(struct pcm_cache *c);   /* does not close dev */
const char *pcm_open_error_str(const struct pcm_open_status *st);

/* Device offset of a position in cache segment cseg (§1.3). */
static inline uint64_t pcm_pos_dev_off(const struct pcm_cache *c, uint32_t cseg, uint32_t seg_off)
{
	return pcm_seg_base(c->dseg[cseg]) + PCM_DATA_OFF + seg_off;
}

/* ---- format (§5.2, §5.3) ---- */
struct pcm_format_opts {
	bool data_crc;
	unsigned gc_percent;      /* 0..90 */
};

struct pcm_format_plan {
	uint64_t dev_size;
	uint32_t seg_num;
	struct pcm_sb sb;
	struct pcm_cache_info ci;
};

/* Fills the plan (what format would write) without touching the device. */
int pcm_format_plan(uint64_t dev_size, const struct pcm_format_opts *o,
		    struct pcm_format_plan *plan);
/* Writes the layout of the plan; progress(i, n, arg) per segment if not NULL. */
int pcm_format_write(struct pcm_dev *dev, const struct pcm_format_plan *plan,
		     void (*progress)(uint64_t done, uint64_t total, void *arg), void *arg);

/* ---- the key log walk (§6.4) ---- */
enum pcm_walk_event {
	PCM_WALK_KSET = 1,       /* a normal kset: keys available */
	PCM_WALK_LAST,           /* a LAST kset: the walk hops to next_cseg:0 */
	PCM_WALK_END,            /* normal end of the log (key_head) */
	PCM_WALK_FAIL,           /* the kernel would refuse to load */
};

enum pcm_walk_stop {
	PCM_STOP_NONE = 0,
	PCM_STOP_TERMINATOR,     /* 24 zero bytes: clean end */
	PCM_STOP_MAGIC,          /* not a kset magic (and not all zero) */
	PCM_STOP_KEY_NUM,        /* key_num > 128 */
	PCM_STOP_CRC,            /* kset crc mismatch */
	PCM_FAIL_HOPS,           /* more than seg_num LAST hops */
	PCM_FAIL_NEXT_RANGE,     /* LAST next >= n_segs */
	PCM_FAIL_OVERSIZE,       /* kset larger than the rest of the data area */
	PCM_FAIL_IO,
};

struct pcm_walk {
	const struct pcm_cache *c;
	struct pcm_pos pos;           /* position of the current record */
	uint32_t hops;
	enum pcm_walk_stop stop;
	int err;                      /* errno for PCM_FAIL_IO */
	struct pcm_kset_hdr hdr;      /* current kset header */
	const uint8_t *data;          /* current kset bytes (buf or the mapping) */
	struct pcm_pos next;          /* where the walk goes on */
	bool has_next;
	bool done;
	uint64_t ksets, keys;         /* normal ksets and keys met so far */
	uint8_t buf[PCM_KSET_SIZE_MAX];   /* carried over between reads, as the kernel */
};

void pcm_walk_init(struct pcm_walk *w, const struct pcm_cache *c, struct pcm_pos start);
enum pcm_walk_event pcm_walk_next(struct pcm_walk *w);
/* Key i of the current normal kset (i < hdr.key_num). */
void pcm_walk_key(const struct pcm_walk *w, unsigned i, struct pcm_key *k);
const char *pcm_walk_stop_str(enum pcm_walk_stop s);
/*
 * After a walk ended at a corrupt kset at end: 1 and next = where valid ksets
 * go on (the corrupt kset was damaged in place), or 0 (torn at the head: what
 * follows is stale, or nothing follows).
 */
int pcm_walk_salvage(const struct pcm_cache *c, struct pcm_pos end, struct pcm_pos *next);
/*
 * Only the end a crash in one of fsck's splices leaves (§13.4): 1 and next =
 * the rebuilt part the torn LAST at end was about to name, else 0.
 */
int pcm_walk_torn_splice(const struct pcm_cache *c, struct pcm_pos end, struct pcm_pos *next);
/*
 * Where valid ksets go on behind a LAST kset at `at` that was written over a
 * kset of 1 to 128 keys (a LAST naming a data segment, §13.4): true and q.
 */
bool pcm_walk_behind_last(const struct pcm_cache *c, struct pcm_pos at, struct pcm_pos *q);
/*
 * The one log chain that starts at some segment's data offset 0 (other than
 * exclude), that no other such chain leads to, and that ends at a terminator.
 */
bool pcm_walk_find_root(const struct pcm_cache *c, uint32_t exclude, struct pcm_pos *root);
/* The first kset boundary at or after pos, walking pos's segment from data offset 0. */
bool pcm_walk_boundary_after(const struct pcm_cache *c, struct pcm_pos pos, struct pcm_pos *out);

/* Key decode checks (§6.5); returns 0 or a PCM_KEY_* code. */
enum pcm_key_verdict {
	PCM_KEY_OK = 0,
	PCM_KEY_BAD_LEN,         /* len 0 or beyond the backing device */
	PCM_KEY_BAD_SEG,         /* cseg >= n_segs */
	PCM_KEY_BAD_SEG_OFF,     /* seg_off + len > data area */
	PCM_KEY_BAD_DATA_CRC,
	PCM_KEY_IO,
};
/* verify_data: also check the data CRC (when the cache has DATA_CRC). */
enum pcm_key_verdict pcm_key_check(const struct pcm_cache *c, const struct pcm_key *k,
				   bool verify_data);
const char *pcm_key_verdict_str(enum pcm_key_verdict v);

/* Positions in log order compare only along a walk; this is plain equality. */
static inline bool pcm_pos_eq(struct pcm_pos a, struct pcm_pos b)
{
	return a.cseg == b.cseg && a.seg_off == b.seg_off;
}

/* ---- extent index (§6.6): 4 MiB windows, later keys win ---- */
enum pcm_extent_flags {
	PCM_EXT_CLEAN    = 0x1,   /* key had CLEAN */
	PCM_EXT_EMPTY    = 0x2,   /* key had EMPTY */
	PCM_EXT_DIRTY    = 0x4,   /* key lies at or after dirty_tail and is not CLEAN */
	PCM_EXT_CRC_BAD  = 0x8,   /* the key's data CRC did not match (verify_data) */
	PCM_EXT_CRC_OK   = 0x10,  /* the key's data CRC was verified */
	PCM_EXT_SUSPECT  = 0x20,  /* salvage: read from a kset that failed its checks */
};

struct pcm_extent {
	uint64_t off;
	uint64_t seg_gen;
	uint32_t len;
	uint32_t cseg;
	uint32_t seg_off;
	uint32_t flags;
};

struct pcm_index;

struct pcm_index *pcm_index_new(void);
void pcm_index_free(struct pcm_index *idx);
/*
 * Inserts a key as the kernel does in its window: overlapped extents are
 * cut or dropped.  Returns 1 when an EMPTY key overlapped an existing extent
 * (the kernel BUGs there; the key is not inserted), 0 otherwise, -ENOMEM.
 */
int pcm_index_insert(struct pcm_index *idx, const struct pcm_extent *e);
/*
 * Inserts n keys given in log order (none EMPTY) with the result n single
 * inserts would give, much faster on large indexes: for replay.
 */
int pcm_index_insert_batch(struct pcm_index *idx, const struct pcm_extent *v, size_t n);
uint64_t pcm_index_count(const struct pcm_index *idx);
/* Calls fn for every extent in ascending logical order; stops when fn returns non-zero. */
int pcm_index_foreach(const struct pcm_index *idx,
		      int (*fn)(const struct pcm_extent *e, void *arg), void *arg);
/* Bytes of memory held by the index. */
uint64_t pcm_index_mem(const struct pcm_index *idx);
/* Extent covering logical offset off (in the window of off), or NULL. */
const struct pcm_extent *pcm_index_lookup(const struct pcm_index *idx, uint64_t off);

/* ---- replay (§5.5 steps 10-11, §6.4-§6.7) ---- */
struct pcm_replay_opts {
	bool verify_data;          /* check data CRCs as the kernel does at load */
	bool keep_going;           /* on a bad key: record it, skip it, go on */
	/* Beyond the kernel: on at the valid ksets behind a damaged one (pcm_walk_salvage,
	 * pcm_walk_behind_last), to see the log as far as it can be read. */
	bool salvage;
	/*
	 * Called for each key in log order (after decode checks), may be NULL.  Neither
	 * callback may write to the cache device: data CRCs are computed ahead of them.
	 */
	int (*on_key)(const struct pcm_walk *w, unsigned i, const struct pcm_key *k,
		      enum pcm_key_verdict v, bool stale, bool dirty, void *arg);
	/* Called for each kset (normal or LAST) before its keys, may be NULL. */
	int (*on_kset)(const struct pcm_walk *w, void *arg);
	void *arg;
};

struct pcm_replay {
	struct pcm_index *idx;
	struct pcm_pos key_head;
	enum pcm_walk_stop stop;        /* why the walk ended */
	int err;                        /* errno when stop == PCM_FAIL_IO */
	bool failed;                    /* the kernel would refuse the load */
	/* first bad key (kernel: load fails), if any */
	bool bad_key;
	struct pcm_pos bad_key_kset;
	unsigned bad_key_index;
	enum pcm_key_verdict bad_key_verdict;
	/* dirty_tail as met on the log */
	bool dirty_tail_on_log;
	enum pcm_walk_stop dirty_chain_stop; /* step 10 result; FAIL_* means refused */
	uint64_t ksets, last_ksets, keys, stale_keys, empty_overlaps, bad_keys;
	uint64_t live_extents, dirty_bytes, clean_bytes;
	uint64_t max_key_end;           /* highest off + len of any key walked (saturates) */
	uint32_t segs_used;
	uint8_t *seg_used;              /* n_segs bytes: 0 free, 1 log, 2 data, 3 both */
	uint32_t *refs;                 /* n_segs reference counts */
};

int pcm_replay_run(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		   struct pcm_replay **out);
void pcm_replay_free(struct pcm_replay *r);
/* A short reason when r->failed. */
const char *pcm_replay_error_str(const struct pcm_replay *r);

/* ---- check: every load check of the kernel and more, as a problem list ---- */
enum pcm_severity {
	PCM_SEV_NOTE = 0,       /* harmless oddity */
	PCM_SEV_WARNING,        /* accepted by the kernel, but wrong or risky */
	PCM_SEV_ERROR,          /* the kernel refuses, truncates or misbehaves */
	PCM_SEV_CRITICAL,       /* data loss: the kernel would throw cached data away */
};

enum pcm_kernel_reaction {
	PCM_KR_IGNORES = 0,     /* BENIGN */
	PCM_KR_SILENT,          /* accepted, behaviour or data silently wrong */
	PCM_KR_DROPS_KEY,       /* the key is skipped at replay */
	PCM_KR_ENDS_LOG,        /* replay stops early: later ksets are ignored */
	PCM_KR_REFUSES,         /* the table load fails */
	PCM_KR_RESETS,          /* silent re-initialisation: all cached data lost */
	PCM_KR_CRASHES,         /* kernel BUG */
	PCM_KR_STOPS_WORKER,    /* writeback or GC stops until the next load */
};

#define PCM_PROBLEMS(X) \
	X(SB_TOO_SMALL,        CRITICAL, REFUSES, false, "device smaller than 512 MiB") \
	X(SB_NO_MAGIC,         CRITICAL, RESETS,  false, "superblock magic is 0: the kernel formats the device") \
	X(SB_BAD_MAGIC,        ERROR,    REFUSES, false, "superblock magic is not pcache's") \
	X(SB_CRC_BAD,          ERROR,    REFUSES, false, "superblock checksum mismatch") \
	X(SB_BIGENDIAN,        ERROR,    REFUSES, false, "formatted by a big-endian CPU") \
	X(SB_SEG_NUM_RANGE,    ERROR,    REFUSES, false, "seg_num is 0 or does not fit the device") \
	X(SB_SEG_NUM_SHORT,    NOTE,     IGNORES, false, "seg_num smaller than the device allows (grown device)") \
	X(SB_UNUSED_BITS,      NOTE,     IGNORES, false, "superblock flags or padding not zero") \
	X(CI_BOTH_BAD,         CRITICAL, RESETS,  false, "no valid cache_info replica") \
	X(CI_REPLICA_BAD,      NOTE,     IGNORES, true,  "one cache_info replica is corrupt") \
	X(CI_SEQ_AMBIGUOUS,    WARNING,  SILENT,  false, "both cache_info replicas valid with equal or opposite seqs") \
	X(CI_NOT_INIT_DONE,    CRITICAL, RESETS,  false, "cache_info lacks INIT_DONE") \
	X(CI_N_SEGS_RANGE,     ERROR,    REFUSES, false, "cache_info n_segs is 0 or larger than seg_num") \
	X(CI_N_SEGS_SHORT,     WARNING,  SILENT,  false, "cache_info n_segs smaller than seg_num") \
	X(CI_CACHE_MODE,       WARNING,  SILENT,  false, "cache mode is not writeback") \
	X(CI_GC_PERCENT,       WARNING,  SILENT,  false, "gc_percent above 90") \
	X(CI_UNKNOWN_BITS,     NOTE,     IGNORES, false, "cache_info reserved field or unknown flags not zero") \
	X(CHAIN_RANGE,         ERROR,    REFUSES, false, "segment chain points past seg_num") \
	X(CHAIN_NO_NEXT,       ERROR,    REFUSES, false, "segment chain member lacks HAS_NEXT") \
	X(CHAIN_DUPLICATE,     ERROR,    SILENT,  false, "two cache segments map to one device segment") \
	X(SEGINFO_BOTH_BAD,    ERROR,    REFUSES, false, "no valid segment info replica") \
	X(SEGINFO_REPLICA_BAD, NOTE,     IGNORES, true,  "one segment info replica is corrupt") \
	X(SEGINFO_SEQ_AMBIGUOUS, WARNING, SILENT, false, "both segment info replicas valid with equal or opposite seqs") \
	X(SEG_TYPE,            NOTE,     IGNORES, false, "segment type is not 'cache data'") \
	X(GEN_BOTH_BAD,        ERROR,    SILENT,  false, "no valid gen replica: gen 0 assumed, stale keys revive") \
	X(GEN_REPLICA_BAD,     NOTE,     IGNORES, true,  "one gen replica is corrupt") \
	X(GEN_SEQ_AMBIGUOUS,   WARNING,  SILENT,  false, "both gen replicas valid with equal or opposite seqs") \
	X(META_NONZERO,        NOTE,     IGNORES, true,  "unused metadata bytes not zero") \
	X(TAIL_BOTH_BAD,       ERROR,    REFUSES, false, "no valid key_tail/dirty_tail replica") \
	X(TAIL_REPLICA_BAD,    NOTE,     IGNORES, true,  "one key_tail/dirty_tail replica is corrupt") \
	X(TAIL_SEQ_AMBIGUOUS,  WARNING,  SILENT,  false, "both tail replicas valid with equal or opposite seqs") \
	X(TAIL_RANGE,          ERROR,    REFUSES, false, "key_tail/dirty_tail outside the cache") \
	X(DIRTY_CHAIN_FAIL,    ERROR,    REFUSES, true,  "the log walked from dirty_tail does not terminate") \
	X(DIRTY_TAIL_OFF_LOG,  CRITICAL, SILENT,  true,  "dirty_tail is not on the log between key_tail and key_head") \
	X(LOG_START_INVALID,   CRITICAL, ENDS_LOG, false, "key_tail does not point at a kset: the log is empty for the kernel") \
	X(LOG_END_TORN,        WARNING,  ENDS_LOG, true,  "the log ends at a torn kset (a write cut by a crash; nothing valid follows)") \
	X(LOG_END_CORRUPT,     ERROR,    ENDS_LOG, false, "the log ends at a corrupt kset, and valid ksets follow it") \
	X(LOG_LOST_KSETS,      CRITICAL, ENDS_LOG, false, "valid ksets follow the corrupt end of the log: their keys are lost") \
	X(LOG_LOOP,            ERROR,    REFUSES, false, "the log chain loops back to a segment already on it") \
	X(LOG_HOPS,            ERROR,    REFUSES, false, "more LAST hops than segments") \
	X(LOG_NEXT_RANGE,      ERROR,    REFUSES, false, "LAST kset names a segment past n_segs") \
	X(LOG_KSET_OVERSIZE,   ERROR,    REFUSES, false, "kset runs past the end of its segment") \
	X(KSET_OVERSIZE_CORRUPT, WARNING, ENDS_LOG, false, "a corrupt kset claims more bytes than its segment holds") \
	X(LOG_IO,              ERROR,    REFUSES, false, "I/O error reading the log") \
	X(LOG_DATA_OVERLAP,    CRITICAL, SILENT,  false, "a live key points into a segment holding the log") \
	X(KSET_EMPTY,          NOTE,     IGNORES, false, "kset with 0 keys") \
	X(KSET_NO_ROOM,        ERROR,    CRASHES, false, "kset leaves less than 24 bytes in its segment (the kernel BUGs at its next kset close)") \
	X(KSET_FLAGS,          NOTE,     IGNORES, false, "kset flags other than LAST set") \
	X(KEY_RANGE,           ERROR,    REFUSES, false, "key length 0 or past the backing device") \
	X(KEY_SEG_RANGE,       ERROR,    REFUSES, false, "key names a cache segment past n_segs") \
	X(KEY_SEG_OFF,         ERROR,    REFUSES, false, "key data runs past its segment's data area") \
	X(KEY_DATA_CRC,        ERROR,    REFUSES, false, "key data checksum mismatch") \
	X(KEY_IO,              ERROR,    REFUSES, false, "I/O error reading key data") \
	X(KEY_EMPTY,           ERROR,    CRASHES, false, "key has the EMPTY flag (never written by the kernel)") \
	X(KEY_GEN_AHEAD,       WARNING,  SILENT,  false, "key seg_gen ahead of its segment's gen") \
	X(KEY_STALE,           WARNING,  DROPS_KEY, false, "stale key in the live log (GC crash window)") \
	X(KEY_UNALIGNED,       WARNING,  SILENT,  false, "key length or data offset not sector aligned, longer than 4 MiB or crossing a 4 MiB window") \
	X(KEY_SECTOR,          ERROR,    CRASHES, false, "key offset not a multiple of 512 (the kernel BUGs at the first read that partly misses it)") \
	X(KEY_ALIAS,           ERROR,    SILENT,  false, "live keys share cache data space") \
	X(KEY_FLAGS,           NOTE,     IGNORES, false, "key has unknown flags, reserved bits or a data_crc without DATA_CRC") \
	X(MEDIA_BADBLOCK,      ERROR,    REFUSES, false, "bad block (media error) under a structure, cached data or free space")

enum pcm_problem_code {
#define PCM_X_ENUM(name, sev, kr, safe, text) PCM_P_##name,
	PCM_PROBLEMS(PCM_X_ENUM)
#undef PCM_X_ENUM
	PCM_P_COUNT
};

struct pcm_problem_def {
	const char *name;              /* stable code name, e.g. "SB_CRC_BAD" */
	enum pcm_severity severity;
	enum pcm_kernel_reaction kernel;
	bool safe_fix;                 /* fixable without a person (fsck -p) */
	const char *summary;
	/*
	 * A remark: reported through pcm_check_opts.report like a problem, but never
	 * counted as one (problems, by_severity, worst, verdict): a state someone may
	 * choose on purpose, which the kernel handles, so fsck calls the cache clean.
	 */
	bool remark;
};

const struct pcm_problem_def *pcm_problem_def(enum pcm_problem_code code);
const char *pcm_severity_str(enum pcm_severity s);
const char *pcm_kernel_reaction_str(enum pcm_kernel_reaction k);

struct pcm_problem {
	enum pcm_problem_code code;
	uint64_t offset;               /* device byte offset of the structure, or UINT64_MAX */
	char where[64];                /* e.g. "cache_info replica 0", "kset 0:5144 key 3" */
	char detail[160];
};

struct pcm_check_opts {
	bool verify_data;              /* check every key's data CRC */
	uint64_t backing_size;         /* 0: unknown, key bounds not checked */
	/* Called per problem found; may be NULL. */
	void (*report)(const struct pcm_problem *p, void *arg);
	/* Progress over ksets walked; may be NULL. */
	void (*progress)(uint64_t done, void *arg);
	void *arg;
};

enum pcm_kernel_verdict {
	PCM_VERDICT_LOADS = 0,         /* the kernel loads the cache as it is */
	PCM_VERDICT_REFUSES,           /* the table load fails */
	PCM_VERDICT_RESETS,            /* the kernel silently re-initialises: all data lost */
	PCM_VERDICT_CRASHES,           /* the kernel BUGs, in the load or after it */
};

struct pcm_check_result {
	uint64_t problems;
	uint64_t by_severity[4];
	enum pcm_kernel_verdict verdict;
	bool not_pcache;               /* no pcache superblock at all */
	bool replayed;                 /* the log was walked: counts below are valid */
	uint64_t ksets, keys, live_extents, dirty_bytes, clean_bytes;
	uint64_t lost_keys;            /* keys in valid ksets beyond a corrupt log end */
	uint64_t stale_keys, last_ksets;
	uint32_t segs_used;
	struct pcm_pos key_head;
	enum pcm_problem_code worst;   /* first problem of the highest severity */
	/*
	 * What the verdict rests on: the kernel checks every key against the backing
	 * device's size (a key ending past it fails the load) and, with DATA_CRC, every
	 * key's data.  Valid when replayed.
	 */
	uint64_t max_key_end;          /* highest off + len of any key on the log */
	bool data_crc;                 /* the cache has DATA_CRC */
	bool data_verified;            /* ... and the data CRCs were checked */
	uint64_t remarks;              /* remarks reported (pcm_problem_def.remark), not problems */
};

/* Runs every check on dev (read-only).  Returns 0 or a negative errno. */
int pcm_check_run(struct pcm_dev *dev, const struct pcm_check_opts *o,
		  struct pcm_check_result *res);

/* ---- repair: planned on an overlay, applied once (with an undo file) ---- */
enum pcm_repair_mode {
	PCM_REPAIR_SAFE = 0,      /* fsck -p: only problems marked safe_fix */
	PCM_REPAIR_ALL,           /* fsck -y: everything fixable */
	PCM_REPAIR_ASK,           /* ask() decides per action */
};

struct pcm_repair_action {
	enum pcm_problem_code code;    /* the problem it fixes */
	char where[64];
	char what[320];                /* what changes, for people */
	uint64_t lost_keys;            /* keys this action gives up */
	uint64_t lost_dirty_bytes;
	uint64_t lost_ksets;           /* corrupt ksets skipped (their keys cannot be read) */
	/* valid ksets behind log damage that end with the log, as in the kernel; a
	 * repair with salvage keeps them (their keys are in lost_keys) */
	uint64_t behind_ksets, behind_keys;
	uint64_t first_write, nwrites; /* its writes in the overlay's write log */
};

struct pcm_repair_opts {
	enum pcm_repair_mode mode;
	bool verify_data;
	uint64_t backing_size;
	/* PCM_REPAIR_ASK: true to apply the action described. */
	bool (*ask)(const struct pcm_problem *p, const char *what, void *arg);
	/* Each problem of the first check, as pcm_check_run reports it. */
	void (*report)(const struct pcm_problem *p, void *arg);
	void *arg;
	bool force;                    /* pcm_repair_apply writes over bad blocks too */
	/*
	 * Never shrink seg_num to fit a device smaller than its valid superblock says
	 * (a truncated image, or the wrong device): the segments past the end, and
	 * the data in them, are gone.  The plan then says so in held_seg_num.
	 */
	bool keep_seg_num;
	/*
	 * Beyond the kernel: keep the valid ksets behind a damaged kset (a log
	 * the kernel would end there).  Ranges whose newest version was in the
	 * damaged kset then show older data, from a later point in time than the
	 * rest of the log, which is why it is not the default.
	 */
	bool salvage;
};

struct pcm_repair_plan {
	struct pcm_dev *ov;            /* the repaired image, in memory */
	struct pcm_repair_action *act;
	uint64_t nact;
	struct pcm_check_result before, after;
	/* sums of the actions', but lost_dirty_bytes: with lost_ranges_known, the dirty
	 * bytes among lost_ranges (data not yet written back that no key holds now) */
	uint64_t lost_keys, lost_dirty_bytes, lost_ksets;
	uint64_t behind_ksets, behind_keys;
	/*
	 * Logical byte ranges whose newest readable version the repair gives up
	 * (reads there return older cached data or the backing device): the
	 * extents of the log read as far as it goes (every valid kset, damaged
	 * ones skipped, data CRCs not trusted) that the repaired log no longer
	 * maps to the same data.  lost_ranges_known is false when the log could
	 * not be read before the repair.
	 */
	struct pcm_range { uint64_t off, len; } *lost_ranges;
	uint64_t nlost_ranges, lost_bytes;
	/* The same for the keys of damaged ksets, read without trusting them, and
	 * for keys whose data cannot be found (a bad segment or offset): the
	 * ranges they probably held (their newest version is lost too). */
	struct pcm_range *suspect_ranges;
	uint64_t nsuspect_ranges, suspect_bytes;
	bool lost_ranges_known;
	bool can_fix_all;              /* after.problems == 0 */
	bool force;                    /* from pcm_repair_opts.force */
	bool held_seg_num;             /* keep_seg_num kept a seg_num the device cannot hold */
	uint32_t seg_num_fit;          /* ... and the seg_num the device can hold */
};

/* Plans every allowed fix for dev (opened read-only is fine). */
int pcm_repair_plan(struct pcm_dev *dev, const struct pcm_repair_opts *o,
		    struct pcm_repair_plan **out);
void pcm_repair_plan_free(struct pcm_repair_plan *p);
/* True when a problem code has a repair at all. */
bool pcm_problem_fixable(enum pcm_problem_code code);

/* ---- undo files (e2undo style): every range saved before it is overwritten ---- */
struct pcm_undo;
/* Creates FILE bound to dev (size and superblock); fails with -EEXIST if it exists. */
int pcm_undo_create(const char *path, struct pcm_dev *dev, struct pcm_undo **out);
/* Saves [off, off+len) of dev as it is now, and a CRC of what will be written there. */
int pcm_undo_save(struct pcm_undo *u, struct pcm_dev *dev, uint64_t off, size_t len,
		  const void *new_data);
/* Seals the file with the superblock the device ends with. */
int pcm_undo_finish(struct pcm_undo *u, struct pcm_dev *dev);
void pcm_undo_close(struct pcm_undo *u);
/* Puts every saved range back, newest first.  -ESTALE: FILE belongs to another device. */
int pcm_undo_apply(const char *path, struct pcm_dev *dev, uint64_t *ranges);

/* Applies a plan's writes to dev in order, each persisted, saving to u first if not NULL. */
int pcm_repair_apply(struct pcm_dev *dev, const struct pcm_repair_plan *p, struct pcm_undo *u);
/* The writes of overlay ov applied to dev in order, each persisted, saved to u first if not NULL
 * (then u is finished).  No bad-block check: pcm_repair_apply adds it for repairs. */
int pcm_overlay_apply(struct pcm_dev *dev, struct pcm_dev *ov, struct pcm_undo *u);

/* ---- appending to the log (§6.2, §6.3, §6.8): one open kset, no GC ---- */
struct pcm_appender;
/* Told of each normal kset once written: its keys in slot order and where it lies. */
typedef void (*pcm_kset_hook)(const struct pcm_key *keys, unsigned n, struct pcm_pos at,
			      void *arg);
/*
 * Appending resumes where a load leaves the cache: after a replay r (not failed) of the
 * writable cache c: key_head = r->key_head, segments in use as r->seg_used, allocation
 * hint 0, no data head.  c and its device must outlive the appender.
 */
int pcm_appender_open(struct pcm_cache *c, const struct pcm_replay *r,
		      struct pcm_appender **out);
/*
 * A kernel write (key_flags 0) or read-miss fill (PCM_KEY_F_CLEAN): cut at 4 MiB logical
 * boundaries and at the data segment's end, data durable before its key, key into the open
 * kset (written at 128 keys).  off and len multiples of 512 (-EINVAL); -ENOSPC, with
 * nothing done, when the free segments do not suffice for the data and the ksets it closes.
 */
int pcm_append_write(struct pcm_appender *a, uint64_t off, const void *data, uint32_t len,
		     uint32_t key_flags);
/* FLUSH: writes the open kset if it holds keys, so every appended write is durable. */
int pcm_append_flush(struct pcm_appender *a);
/* Crafted logs for tests: flushes, then writes these n <= 128 keys as given as one kset. */
int pcm_append_kset(struct pcm_appender *a, const struct pcm_key *keys, unsigned n);
/* Off: skip per-record persists (image generators; msync per record is slow on files). */
void pcm_appender_set_persist(struct pcm_appender *a, bool on);
/* Tools build models of what a replay will see from the ksets actually written. */
void pcm_appender_set_hook(struct pcm_appender *a, pcm_kset_hook fn, void *arg);
/* Where the next kset goes (a 24-byte terminator lies there). */
struct pcm_pos pcm_appender_key_head(const struct pcm_appender *a);
/* Segments in use (log and data), as a replay of the log written so far counts them. */
uint32_t pcm_appender_segs_used(const struct pcm_appender *a);
/* Keys waiting in the open kset (lost if the appender is freed without a flush). */
unsigned pcm_appender_open_keys(const struct pcm_appender *a);
/* Frees without flushing: the open kset's keys are lost, as in a crash before FLUSH. */
void pcm_appender_free(struct pcm_appender *a);
/* Flushes and frees; returns the flush result. */
int pcm_appender_close(struct pcm_appender *a);

/* ---- run-time record writes (§3.3), appender segments, index scans ---- */
/*
 * key_tail (which 0) or dirty_tail (which 1) := pos, seq = newest + 1, persisted; c's tail
 * is updated.  in_place false writes the slot not holding the newest copy (crash-safe,
 * read correctly by the kernel); true overwrites the newest copy, which is what the kernel
 * does for its first tail write after a load (its later writes alternate, i.e. false).
 */
int pcm_tail_write(struct pcm_cache *c, int which, struct pcm_pos pos, bool in_place);
/* Segment gen := gen with the advance-then-write rule (other slot, seq + 1), persisted. */
int pcm_gen_write(struct pcm_cache *c, uint32_t cseg, uint64_t gen);
/*
 * Takes a free segment (lowest free from the allocation hint, §4) for a caller
 * that places data itself, but only while more than keep segments stay free; -ENOSPC.
 */
int pcm_appender_take_seg(struct pcm_appender *a, uint32_t keep, uint32_t *cseg);
/* Returns a segment to the free set (GC reclaimed it); -EINVAL if free, -EBUSY for key_head's. */
int pcm_appender_release_seg(struct pcm_appender *a, uint32_t cseg);
/* Extent covering off, else the first one after off in off's window, else NULL. */
const struct pcm_extent *pcm_index_lookup_ge(const struct pcm_index *idx, uint64_t off);

/* ---- real devices: media errors, bad blocks, who holds a device ---- */
/*
 * Mapped devices: every pcm_dev_* access to the mapping runs under a SIGBUS guard (a
 * process-wide SA_SIGINFO handler, installed when the first device is mapped; other
 * SIGBUS go to the previous handler or the default action), so a media error is -EIO.
 * Reads through pcm_dev_ptr() are not guarded.
 */
/* crc = pcm_crc32c(seed, bytes [off, off+len)) without copying; -EIO on media errors. */
int pcm_dev_crc(struct pcm_dev *dev, uint64_t off, uint64_t len, uint32_t seed, uint32_t *crc);

/* A range of the device the hardware reports as bad, in bytes. */
struct pcm_badblock {
	uint64_t off, len;
};
/*
 * Calls cb for each bad block of dev, in ascending order, merged: libpmem2 for mapped
 * devices (devdax, files on DAX filesystems), /sys/class/block/NAME/badblocks for block
 * devices, none for files without DAX; an overlay reports its base's.  Test seam:
 * PCACHE_TEST_BADBLOCKS="OFF:LEN[,OFF:LEN...]" (bytes) adds ranges (listed only: they
 * stay readable).  Returns 0, a negative errno, or what cb returned when not 0.
 */
int pcm_dev_badblocks(struct pcm_dev *dev, int (*cb)(uint64_t off, uint64_t len, void *arg),
		      void *arg);
/* The same as an array owned by dev (valid until it is closed). */
int pcm_dev_badblock_list(struct pcm_dev *dev, const struct pcm_badblock **list, size_t *n);
/* The first range of a sorted list overlapping [off, off+len), or NULL. */
const struct pcm_badblock *pcm_badblock_find(const struct pcm_badblock *list, size_t n,
					     uint64_t off, uint64_t len);
/*
 * 1 when a write of plan p overlaps a bad block of dev (the first such write's index in
 * the overlay's write log and the bad block in *write and *bb), 0 when none, or -errno.
 * pcm_repair_apply() refuses such a plan with -EHWPOISON, writing nothing, unless p->force.
 */
int pcm_repair_badblock_conflict(struct pcm_dev *dev, const struct pcm_repair_plan *p,
				 uint64_t *write, struct pcm_badblock *bb);

enum pcm_holder_kind {
	PCM_HOLDER_NONE = 0,
	PCM_HOLDER_DM,           /* a device-mapper table: name is its dm name */
	PCM_HOLDER_KERNEL,       /* another sysfs holder: name is its kernel name */
	PCM_HOLDER_MOUNT,        /* a mounted filesystem: name is the mount point */
	PCM_HOLDER_PROCESS,      /* a process holding a file lock (or, from
				    pcm_dev_busy_holder(), a block device open): "COMM (pid N)" */
};
/*
 * Who holds path: for a block device its sysfs holders (a dm table first), else a
 * mount; for a file or devdax device a lock in /proc/locks.  Returns a PCM_HOLDER_*
 * and its name, or -errno.  pcm_dev_open(PCM_DEV_EXCL) fails with -EBUSY and
 * pcm_dev_errmsg() "dm device NAME", "process COMM (pid N)", ... when it is held.
 */
int pcm_dev_holder(const char *path, char *name, size_t len);
/*
 * Who holds path, after an open failed with -EBUSY: pcm_dev_holder(), and for a block
 * device that names nobody, a process that has it open (the likely O_EXCL holder: the
 * kernel does not say which opener that is).  Returns as pcm_dev_holder().
 */
int pcm_dev_busy_holder(const char *path, char *name, size_t len);
/*
 * A holder in words, as the error lines name it: "dm device NAME", "kernel device NAME",
 * "a filesystem mounted on DIR", "process COMM (pid N)"; "" for PCM_HOLDER_NONE or an
 * error.  kind and name as pcm_dev_holder() returns them; returns buf.
 */
const char *pcm_holder_str(int kind, const char *name, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
