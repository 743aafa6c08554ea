/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile images: metadata crafted to be as wrong as the format allows while
 * every CRC is valid (forged seg_num, looping chains and logs, keys near
 * 2^64, lengths that wrap, ksets claiming more keys than fit, positions past
 * segment ends).  On each: open, check (fsck -n), replay, repair planned and
 * applied to an overlay, and, when $PCACHE names the program, `pcache dump
 * --json` and `pcache fsck -n`.  Nothing may crash, hang (each case within
 * 20 s, a 10 minute alarm for the whole program) or grow without bound
 * (maximum RSS reported), and the check must name the damage with its
 * problem code.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pcachemeta.h"
#include "tap.h"

#define SIZE (512ull << 20)
#define NSEGS 31u
#define BACKING (1ull << 30)
#define MAXP 8

static int base_fd = -1;
static struct pcm_pos kset_at[64];
static unsigned nkset;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void hook(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	(void)keys;
	(void)n;
	(void)arg;
	if (nkset < 64)
		kset_at[nkset++] = at;
}

/* No CLOEXEC: `pcache` run from here opens the same image as /proc/self/fd/N. */
static int image_new(void)
{
	int fd = memfd_create("hostile", 0);

	if (fd < 0 || ftruncate(fd, (off_t)SIZE))
		return -1;
	return fd;
}

static int image_clone(int src)
{
	static uint8_t buf[1 << 20];
	int fd = image_new();
	off_t pos = 0;

	while (fd >= 0) {
		off_t d = lseek(src, pos, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(src, d, SEEK_HOLE);
		for (off_t p = d; p < h;) {
			size_t n = (size_t)(h - p) < sizeof(buf) ? (size_t)(h - p) : sizeof(buf);

			if (pread(src, buf, n, p) != (ssize_t)n || pwrite(fd, buf, n, p) != (ssize_t)n) {
				close(fd);
				return -1;
			}
			p += (off_t)n;
		}
		pos = h;
	}
	return fd;
}

static struct pcm_dev *open_fd(int fd, unsigned flags)
{
	char path[64];
	struct pcm_dev *dev;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return pcm_dev_open(path, flags, &dev) ? NULL : dev;
}

/* Formatted (data_crc), then 60 writes in 12 ksets in cseg 0, data in cseg 1. */
static bool build_base(void)
{
	struct pcm_format_opts fo = { .data_crc = true, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct pcm_appender *a;
	static uint8_t data[8192];

	base_fd = image_new();
	if (base_fd < 0 || !(dev = open_fd(base_fd, PCM_DEV_RDWR | PCM_DEV_NOMAP)))
		return false;
	if (pcm_format_plan(SIZE, &fo, &plan) || pcm_format_write(dev, &plan, NULL, NULL) ||
	    pcm_cache_open(dev, &c, NULL) || pcm_replay_run(c, NULL, &r) ||
	    pcm_appender_open(c, r, &a))
		return false;
	pcm_appender_set_persist(a, false);
	pcm_appender_set_hook(a, hook, NULL);
	for (int i = 0; i < 60; i++) {
		memset(data, i + 1, sizeof(data));
		if (pcm_append_write(a, (uint64_t)i * 65536, data, 4096 + 512 * (i % 8), 0) ||
		    (i % 5 == 4 && pcm_append_flush(a)))
			return false;
	}
	pcm_appender_close(a);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return nkset == 12;
}

/* ---- crafted records, each sealed ---- */

static int put(struct pcm_dev *d, uint64_t off, uint8_t *raw, size_t size)
{
	pcm_record_seal(raw, size);
	return pcm_dev_write(d, off, raw, size);
}

static void sb_put(struct pcm_dev *d, uint32_t seg_num)
{
	struct pcm_sb sb = { .magic = PCM_SB_MAGIC, .seg_num = seg_num };
	uint8_t raw[PCM_SB_SIZE];

	pcm_sb_encode(&sb, raw);
	put(d, PCM_SB_OFF, raw, sizeof(raw));
}

/* Both replicas (seq 100, 101: the same record, slot 1 picked). */
static void ci_put(struct pcm_dev *d, uint32_t seg_id, uint32_t n_segs)
{
	struct pcm_cache_info ci = { .seg_id = seg_id, .n_segs = n_segs,
				     .flags = PCM_CI_F_INIT_DONE | PCM_CI_F_DATA_CRC |
					      (70u << PCM_CI_GC_SHIFT) };
	uint8_t raw[PCM_CACHE_INFO_SIZE];

	for (int s = 0; s < 2; s++) {
		ci.h.seq = (uint8_t)(100 + s);
		pcm_cache_info_encode(&ci, raw);
		put(d, PCM_CACHE_INFO_OFF + (uint64_t)s * PCM_CACHE_INFO_SLOT, raw, sizeof(raw));
	}
}

static void seginfo_put(struct pcm_dev *d, uint32_t dseg, uint32_t flags, uint32_t next)
{
	struct pcm_seg_info si = { .flags = flags, .next_seg = next };
	uint8_t raw[PCM_SEG_INFO_SIZE];

	for (int s = 0; s < 2; s++) {
		si.h.seq = (uint8_t)(100 + s);
		pcm_seg_info_encode(&si, raw);
		put(d, pcm_seg_base(dseg) + (uint64_t)s * PCM_SEG_INFO_SLOT, raw, sizeof(raw));
	}
}

static void tail_put(struct pcm_dev *d, int which, uint32_t cseg, uint32_t seg_off)
{
	struct pcm_pos_rec p = { .pos = { cseg, seg_off } };
	uint8_t raw[PCM_POS_SIZE];

	for (int s = 0; s < 2; s++) {
		p.h.seq = (uint8_t)(100 + s);
		pcm_pos_rec_encode(&p, raw);
		put(d, (which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF) + (uint64_t)s * PCM_POS_SIZE,
		    raw, sizeof(raw));
	}
}

static uint64_t pos_off(struct pcm_pos p)
{
	return pcm_seg_base(p.cseg) + PCM_DATA_OFF + p.seg_off;   /* chain: dseg == cseg */
}

static void last_put(struct pcm_dev *d, struct pcm_pos at, uint32_t next)
{
	struct pcm_kset_hdr h = { .key_num = next, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };
	uint8_t raw[PCM_KSET_HDR_SIZE];

	pcm_kset_hdr_encode(&h, raw);
	put(d, pos_off(at), raw, sizeof(raw));
}

/* A normal kset of n keys at at; key_num as given (may claim more than written). */
static void kset_put(struct pcm_dev *d, struct pcm_pos at, const struct pcm_key *k, unsigned n,
		     uint32_t key_num)
{
	uint8_t raw[PCM_KSET_SIZE_MAX];
	struct pcm_kset_hdr h = { .key_num = key_num, .magic = PCM_KSET_MAGIC };
	size_t size = PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * n;

	memset(raw, 0, sizeof(raw));
	pcm_kset_hdr_encode(&h, raw);
	for (unsigned i = 0; i < n; i++)
		pcm_key_encode(&k[i], raw + PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * i);
	if (key_num <= PCM_KSET_KEYS_MAX &&
	    PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * key_num <= PCM_DATA_SIZE - at.seg_off)
		size = PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * key_num;
	put(d, pos_off(at), raw, size);
}

/* The first kset of the log, rewritten with its first key replaced by k. */
static void key_put(struct pcm_dev *d, struct pcm_key k)
{
	uint8_t raw[PCM_KSET_SIZE_MAX];
	struct pcm_kset_hdr h;

	pcm_dev_read(d, pos_off(kset_at[0]), raw, PCM_KSET_HDR_SIZE);
	pcm_kset_hdr_decode(raw, &h);
	pcm_dev_read(d, pos_off(kset_at[0]), raw, pcm_kset_size(&h));
	pcm_key_encode(&k, raw + PCM_KSET_HDR_SIZE);
	put(d, pos_off(kset_at[0]), raw, pcm_kset_size(&h));
}

static struct pcm_key key(uint64_t off, uint32_t len, uint32_t cseg, uint32_t seg_off)
{
	return (struct pcm_key){ .off = off, .len = len, .cseg = cseg, .seg_off = seg_off };
}

/* ---- the cases ---- */

static void h_seg_num_max(struct pcm_dev *d) { sb_put(d, UINT32_MAX); }
static void h_seg_num_past(struct pcm_dev *d) { sb_put(d, NSEGS + 1); }
static void h_seg_num_segs_max(struct pcm_dev *d) { sb_put(d, PCM_SEGS_MAX); }
static void h_seg_num_zero(struct pcm_dev *d) { sb_put(d, 0); }
static void h_n_segs_past(struct pcm_dev *d) { ci_put(d, 0, NSEGS + 100); }
static void h_n_segs_max(struct pcm_dev *d) { ci_put(d, 0, UINT32_MAX); }
static void h_seg_id_past(struct pcm_dev *d) { ci_put(d, UINT32_MAX - 1, NSEGS); }
static void h_chain_loop(struct pcm_dev *d) { seginfo_put(d, 5, 0x3, 2); }
static void h_chain_self(struct pcm_dev *d) { seginfo_put(d, 7, 0x3, 7); }
static void h_chain_past(struct pcm_dev *d) { seginfo_put(d, 9, 0x3, 0xFFFFFFF0u); }
static void h_chain_short(struct pcm_dev *d) { seginfo_put(d, 4, 0x2, 5); }
static void h_tail_off_past(struct pcm_dev *d) { tail_put(d, 0, 0, PCM_DATA_SIZE); }
static void h_tail_off_max(struct pcm_dev *d) { tail_put(d, 1, 0, UINT32_MAX); }
static void h_tail_cseg_past(struct pcm_dev *d) { tail_put(d, 0, NSEGS, 0); }
static void h_tail_at_end(struct pcm_dev *d)
{
	tail_put(d, 0, 2, PCM_DATA_SIZE - 8);
	tail_put(d, 1, 2, PCM_DATA_SIZE - 8);
}
static void h_last_self(struct pcm_dev *d)
{
	last_put(d, (struct pcm_pos){ 0, 0 }, 0);
}
static void h_last_pingpong(struct pcm_dev *d)
{
	last_put(d, (struct pcm_pos){ 0, 0 }, 3);
	last_put(d, (struct pcm_pos){ 3, 0 }, 0);
}
static void h_last_at_head_back(struct pcm_dev *d)
{
	/* the head of the log goes back to its own start: the whole log again and again */
	last_put(d, (struct pcm_pos){ 0, kset_at[11].seg_off + 24 + 40 * 5 }, 0);
}
static void h_last_past(struct pcm_dev *d) { last_put(d, (struct pcm_pos){ 0, 0 }, NSEGS); }
static void h_last_max(struct pcm_dev *d) { last_put(d, (struct pcm_pos){ 0, 0 }, UINT32_MAX); }
static void h_last_ring(struct pcm_dev *d)
{
	/* every segment's offset 0 hops to the next: a ring through all of them */
	for (uint32_t s = 3; s < NSEGS; s++)
		last_put(d, (struct pcm_pos){ s, 0 }, s + 1 < NSEGS ? s + 1 : 3);
	last_put(d, (struct pcm_pos){ 0, kset_at[11].seg_off + 24 + 40 * 5 }, 3);
}
static void h_key_off_2_64(struct pcm_dev *d) { key_put(d, key(UINT64_MAX - 511, 512, 1, 0)); }
static void h_key_off_wrap(struct pcm_dev *d) { key_put(d, key(UINT64_MAX - 4095, 8192, 1, 0)); }
static void h_key_len_wrap(struct pcm_dev *d) { key_put(d, key(1ull << 40, UINT32_MAX, 1, 0)); }
static void h_key_len_zero(struct pcm_dev *d) { key_put(d, key(0, 0, 1, 0)); }
static void h_key_seg_off_wrap(struct pcm_dev *d)
{
	key_put(d, key(0, 1024, 1, UINT32_MAX - 511));
}
static void h_key_cseg_past(struct pcm_dev *d) { key_put(d, key(0, 4096, NSEGS, 0)); }
static void h_key_cseg_max(struct pcm_dev *d) { key_put(d, key(0, 4096, UINT32_MAX, 0)); }
static void h_key_into_log(struct pcm_dev *d) { key_put(d, key(0, 4096, 0, 0)); }
static void h_kset_129(struct pcm_dev *d)
{
	struct pcm_key k = key(0, 512, 1, 0);

	kset_put(d, kset_at[0], &k, 1, 129);
}
static void h_kset_keys_max(struct pcm_dev *d)
{
	struct pcm_key k = key(0, 512, 1, 0);

	kset_put(d, kset_at[0], &k, 1, UINT32_MAX);
}
static void h_kset_no_fit(struct pcm_dev *d)
{
	/* 128 keys claimed 64 bytes before the segment end: 5144 bytes do not fit */
	struct pcm_pos at = { 2, PCM_DATA_SIZE - 64 };
	struct pcm_key k = key(0, 512, 1, 0);

	kset_put(d, at, &k, 1, 128);
	tail_put(d, 0, 2, at.seg_off);
	tail_put(d, 1, 2, at.seg_off);
}
static void h_kset_fills_segment(struct pcm_dev *d)
{
	/* a kset ending exactly at the segment end: the next position is past it */
	struct pcm_pos at = { 2, PCM_DATA_SIZE - 64 };
	struct pcm_key k = key(0, 512, 1, 0);

	kset_put(d, at, &k, 1, 1);
	tail_put(d, 0, 2, at.seg_off);
	tail_put(d, 1, 2, at.seg_off);
}
static void h_gen_both(struct pcm_dev *d)
{
	pcm_dev_zero(d, pcm_seg_base(1) + PCM_SEG_CTRL_OFF, 2 * PCM_SEG_GEN_SIZE);
	pcm_dev_write(d, pcm_seg_base(1) + PCM_SEG_CTRL_OFF, "garbage garbage garbage garbage", 32);
}
static void h_empty_key(struct pcm_dev *d)
{
	struct pcm_key k = key(0, 4096, 1, 0);

	k.flags = PCM_KEY_F_EMPTY;
	key_put(d, k);
}

struct hcase {
	const char *name;
	void (*apply)(struct pcm_dev *d);
	enum pcm_problem_code want[3];   /* any of these (0-terminated after the first) */
};

static const struct hcase cases[] = {
	{ "seg_num 2^32-1", h_seg_num_max, { PCM_P_SB_SEG_NUM_RANGE } },
	{ "seg_num one past the device", h_seg_num_past, { PCM_P_SB_SEG_NUM_RANGE } },
	{ "seg_num 2^20 on 512 MiB", h_seg_num_segs_max, { PCM_P_SB_SEG_NUM_RANGE } },
	{ "seg_num 0", h_seg_num_zero, { PCM_P_SB_SEG_NUM_RANGE } },
	{ "n_segs past seg_num", h_n_segs_past, { PCM_P_CI_N_SEGS_RANGE } },
	{ "n_segs 2^32-1", h_n_segs_max, { PCM_P_CI_N_SEGS_RANGE } },
	{ "chain head past seg_num", h_seg_id_past, { PCM_P_CHAIN_RANGE } },
	{ "chain loops back", h_chain_loop, { PCM_P_CHAIN_DUPLICATE } },
	{ "chain member names itself", h_chain_self, { PCM_P_CHAIN_DUPLICATE } },
	{ "chain next past seg_num", h_chain_past, { PCM_P_CHAIN_RANGE } },
	{ "chain ends early", h_chain_short, { PCM_P_CHAIN_NO_NEXT } },
	{ "key_tail at the data area end", h_tail_off_past, { PCM_P_TAIL_RANGE } },
	{ "dirty_tail seg_off 2^32-1", h_tail_off_max, { PCM_P_TAIL_RANGE } },
	{ "key_tail past n_segs", h_tail_cseg_past, { PCM_P_TAIL_RANGE } },
	/* the kernel loads it, and its next kset close writes a LAST kset over the 16 bytes
	 * past the data area: the next device segment's info replica 0 */
	{ "tails 8 bytes before the data area end (LAST would overrun it)", h_tail_at_end,
	  { PCM_P_TAIL_RANGE, PCM_P_KSET_NO_ROOM, PCM_P_LOG_KSET_OVERSIZE } },
	{ "LAST kset loops to itself", h_last_self, { PCM_P_LOG_LOOP, PCM_P_LOG_HOPS } },
	{ "LAST ksets ping-pong", h_last_pingpong, { PCM_P_LOG_LOOP, PCM_P_LOG_HOPS } },
	{ "LAST at the head back to the log start", h_last_at_head_back,
	  { PCM_P_LOG_LOOP, PCM_P_LOG_HOPS } },
	{ "LAST ring through every segment", h_last_ring, { PCM_P_LOG_LOOP, PCM_P_LOG_HOPS } },
	{ "LAST next past n_segs", h_last_past, { PCM_P_LOG_NEXT_RANGE } },
	{ "LAST next 2^32-1", h_last_max, { PCM_P_LOG_NEXT_RANGE } },
	{ "key off 2^64-512", h_key_off_2_64, { PCM_P_KEY_RANGE } },
	{ "key off + len wraps 2^64", h_key_off_wrap, { PCM_P_KEY_RANGE } },
	{ "key len 2^32-1", h_key_len_wrap, { PCM_P_KEY_RANGE, PCM_P_KEY_SEG_OFF } },
	{ "key len 0", h_key_len_zero, { PCM_P_KEY_RANGE } },
	{ "key seg_off + len wraps 2^32", h_key_seg_off_wrap, { PCM_P_KEY_SEG_OFF } },
	{ "key cseg n_segs", h_key_cseg_past, { PCM_P_KEY_SEG_RANGE } },
	{ "key cseg 2^32-1", h_key_cseg_max, { PCM_P_KEY_SEG_RANGE } },
	{ "key data inside the log segment", h_key_into_log,
	  { PCM_P_KEY_DATA_CRC, PCM_P_LOG_DATA_OVERLAP } },
	{ "kset key_num 129", h_kset_129, { PCM_P_LOG_START_INVALID } },
	{ "kset key_num 2^32-1", h_kset_keys_max, { PCM_P_LOG_START_INVALID } },
	{ "kset claims 128 keys 64 bytes before the end", h_kset_no_fit,
	  { PCM_P_KSET_OVERSIZE_CORRUPT, PCM_P_LOG_KSET_OVERSIZE, PCM_P_LOG_START_INVALID } },
	{ "kset ends exactly at the segment end", h_kset_fills_segment,
	  { PCM_P_LOG_KSET_OVERSIZE, PCM_P_KSET_NO_ROOM } },
	{ "no valid gen replica", h_gen_both, { PCM_P_GEN_BOTH_BAD } },
	{ "EMPTY key", h_empty_key, { PCM_P_KEY_EMPTY } },
};

struct found {
	bool code[PCM_P_COUNT];
	uint64_t n;
};

static void collect(const struct pcm_problem *p, void *arg)
{
	struct found *f = arg;

	if (p->code < PCM_P_COUNT)
		f->code[p->code] = true;
	f->n++;
}

static long maxrss_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

/* `pcache ARGS... IMAGE` exits with one of the documented codes (not a signal, not 16). */
static bool cli_ok(const char *args, int fd)
{
	const char *pcache = getenv("PCACHE");
	char cmd[512];
	int st;

	if (!pcache || access(pcache, X_OK))
		return true;
	snprintf(cmd, sizeof(cmd), "%s %s /proc/self/fd/%d >/dev/null 2>&1", pcache, args, fd);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) < 16 && WEXITSTATUS(st) != 2;
}

static void run_case(const struct hcase *h)
{
	struct pcm_check_opts co = { .verify_data = true, .backing_size = BACKING,
				     .report = collect };
	struct pcm_repair_opts ro = { .mode = PCM_REPAIR_ALL, .verify_data = true,
				      .backing_size = BACKING };
	struct pcm_check_result res;
	struct pcm_repair_plan *plan = NULL;
	struct pcm_dev *dev, *ov = NULL;
	struct pcm_cache *c = NULL;
	struct found f = { { false }, 0 };
	double t0 = now_s();
	int fd = image_clone(base_fd);
	bool hit = false, opened;
	char names[160] = "";
	size_t k = 0;

	co.arg = &f;
	if (!ok(fd >= 0 && (dev = open_fd(fd, PCM_DEV_RDWR | PCM_DEV_NOMAP)), "%s: image", h->name))
		return;
	h->apply(dev);
	pcm_dev_close(dev);
	dev = open_fd(fd, PCM_DEV_RDONLY);
	opened = dev && !pcm_cache_open(dev, &c, NULL);
	if (opened) {
		struct pcm_replay_opts rpo = { .verify_data = true, .keep_going = true };
		struct pcm_replay *r = NULL;

		c->backing_size = BACKING;
		if (!pcm_replay_run(c, &rpo, &r))
			pcm_replay_free(r);
		pcm_cache_close(c);
	}
	ok(dev && !pcm_check_run(dev, &co, &res), "%s: fsck -n runs (%llu problems)", h->name,
	   (unsigned long long)f.n);
	for (int i = 0; i < 3 && (i == 0 || h->want[i]); i++)
		hit |= f.code[h->want[i]];
	for (int i = 0; i < PCM_P_COUNT && k + 40 < sizeof(names); i++)
		if (f.code[i])
			k += (size_t)snprintf(names + k, sizeof(names) - k, "%s%s", k ? " " : "",
					      pcm_problem_def(i)->name);
	ok(hit, "%s: named %s (found: %s)", h->name, pcm_problem_def(h->want[0])->name, names);
	if (dev && !pcm_repair_plan(dev, &ro, &plan) && !pcm_dev_overlay(dev, &ov)) {
		ok(!pcm_repair_apply(ov, plan, NULL) && !pcm_check_run(ov, NULL, &res),
		   "%s: fsck -y planned (%llu actions, %llu problems left), applied to a copy",
		   h->name, (unsigned long long)plan->nact, (unsigned long long)plan->after.problems);
	} else {
		ok(false, "%s: fsck -y plans", h->name);
	}
	pcm_dev_close(ov);
	pcm_repair_plan_free(plan);
	pcm_dev_close(dev);
	ok(cli_ok("dump --json", fd) && cli_ok("dump --all-replicas", fd) &&
	   cli_ok("fsck -n --json", fd) && cli_ok("replay", fd),
	   "%s: pcache dump, fsck -n, replay exit normally", h->name);
	ok(now_s() - t0 < 20, "%s: done in %.2f s, max RSS %ld MiB", h->name, now_s() - t0,
	   maxrss_mib());
	close(fd);
}

int main(void)
{
	alarm(600);
	if (!ok(build_base(), "base image: formatted, 60 writes in 12 ksets"))
		return tap_done();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	ok(maxrss_mib() < 2048, "max RSS %ld MiB", maxrss_mib());
	close(base_fd);
	return tap_done();
}
