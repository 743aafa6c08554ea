/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_replica.c - unit tests for replica selection (§3.2), the
 * device-level replicated record readers, pcm_cache_open's load checks
 * (§5.5 steps 1-9) and the device access bounds/permission checks.
 * Works on a 600 MiB sparse temporary file formatted by pcm_format_write.
 */
#include "pcachemeta.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEV_BYTES (600ull << 20)

/* ---- pure replica choice ---- */

/* A sealed record of size bytes with seq at byte 4 and random payload. */
static void make_rec(uint8_t *b, size_t size, uint8_t seq, bool valid)
{
	for (size_t i = 0; i < size; i++)
		b[i] = (uint8_t)tap_rand();
	b[4] = seq;
	pcm_record_seal(b, size);
	if (!valid)
		b[2] ^= 0x10;
}

static int pick2(size_t size, int s0, bool v0, int s1, bool v1, bool valid[2])
{
	uint8_t a[24], b[24];
	const uint8_t *rec[PCM_REPLICAS] = { a, b };

	make_rec(a, size, (uint8_t)s0, v0);
	make_rec(b, size, (uint8_t)s1, v1);
	valid[0] = valid[1] = !v0;   /* garbage so the function must set them */
	return pcm_replica_pick(rec, size, valid);
}

static void test_pick(size_t size)
{
	static const struct {
		const char *name;
		int s0; bool v0; int s1; bool v1;
		int want;
	} t[] = {
		{ "seqs (1,2) -> 1", 1, true, 2, true, 1 },
		{ "seqs (2,1) -> 0", 2, true, 1, true, 0 },
		{ "equal seqs (7,7) -> 0", 7, true, 7, true, 0 },
		{ "equal seqs (0,0) -> 0", 0, true, 0, true, 0 },
		{ "wraparound (255,0) -> 1 (holds 0)", 255, true, 0, true, 1 },
		{ "wraparound (0,255) -> 0 (holds 0)", 0, true, 255, true, 0 },
		{ "wraparound (250,3) -> 1", 250, true, 3, true, 1 },
		{ "differ by 128 (0,128) -> 0", 0, true, 128, true, 0 },
		{ "differ by 128 (128,0) -> 0", 128, true, 0, true, 0 },
		{ "differ by 128 (200,72) -> 0", 200, true, 72, true, 0 },
		{ "differ by 127 (0,127) -> 1", 0, true, 127, true, 1 },
		{ "differ by 129 (0,129) -> 0", 0, true, 129, true, 0 },
		{ "slot 0 corrupt, seq 9 vs 1 -> 1", 9, false, 1, true, 1 },
		{ "slot 1 corrupt, seq 1 vs 9 -> 0", 1, true, 9, false, 0 },
		{ "slot 0 corrupt, equal seqs -> 1", 4, false, 4, true, 1 },
		{ "both corrupt -> -1", 1, false, 2, false, -1 },
	};
	bool valid[2];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int p = pick2(size, t[i].s0, t[i].v0, t[i].s1, t[i].v1, valid);

		ok(p == t[i].want && valid[0] == t[i].v0 && valid[1] == t[i].v1,
		   "%zu-byte pick: %s (got %d, valid %d/%d)", size, t[i].name, p, valid[0], valid[1]);
	}

	/* exhaustive over all seq pairs */
	int bad = 0;

	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			int d = (b - a) & 0xFF;   /* b newer when 1..127 */
			int want = (d >= 1 && d <= 127) ? 1 : 0;

			if (pick2(size, a, true, b, true, valid) != want || !valid[0] || !valid[1])
				bad++;
		}
	ok(!bad, "%zu-byte pick: all 65536 seq pairs follow the int8 rule (%d wrong)", size, bad);

	/* a zero-filled replica never validates */
	{
		uint8_t z[24] = { 0 }, g[24];
		const uint8_t *rec[PCM_REPLICAS] = { z, z };
		int p;

		p = pcm_replica_pick(rec, size, valid);
		ok(p == -1 && !valid[0] && !valid[1], "%zu-byte pick: two zero replicas -> -1", size);
		make_rec(g, size, 0, true);
		rec[1] = g;
		p = pcm_replica_pick(rec, size, valid);
		ok(p == 1 && !valid[0] && valid[1], "%zu-byte pick: zero slot 0, valid seq-0 slot 1 -> 1",
		   size);
		rec[0] = g;
		rec[1] = z;
		p = pcm_replica_pick(rec, size, NULL);
		ok(p == 0, "%zu-byte pick: valid slot 0, zero slot 1 -> 0 (valid_out NULL allowed)",
		   size);
	}
}

static void test_seq_after(void)
{
	int bad = 0;

	ok(pcm_seq_after(2, 1) && !pcm_seq_after(1, 2), "seq_after(2,1) true, (1,2) false");
	ok(!pcm_seq_after(5, 5) && !pcm_seq_after(0, 0), "seq_after equal -> false");
	ok(pcm_seq_after(0, 255) && !pcm_seq_after(255, 0), "seq_after(0,255) true, (255,0) false");
	ok(!pcm_seq_after(128, 0) && !pcm_seq_after(0, 128), "seq_after by 128 -> false both ways");
	ok(pcm_seq_after(127, 0) && !pcm_seq_after(129, 0) && pcm_seq_after(0, 129),
	   "seq_after 127 ahead true, 129 ahead false");
	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			int d = (a - b) & 0xFF;

			if (pcm_seq_after((uint8_t)a, (uint8_t)b) != (d >= 1 && d <= 127))
				bad++;
		}
	ok(!bad, "seq_after over all 65536 pairs (%d wrong)", bad);
}

/* ---- device helpers ---- */

static char img_path[256];

static int make_image(uint64_t size)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(img_path, sizeof(img_path), "%s/pcm-test-replica-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(img_path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		int e = errno;

		close(fd);
		unlink(img_path);
		return -e;
	}
	close(fd);
	return 0;
}

static int reformat(struct pcm_dev *dev)
{
	struct pcm_format_opts o = { .data_crc = false, .gc_percent = 70 };
	struct pcm_format_plan p;
	int rc = pcm_format_plan(pcm_dev_size(dev), &o, &p);

	if (!rc)
		rc = pcm_dev_zero(dev, 0, PCM_META_END);
	if (!rc)
		rc = pcm_format_write(dev, &p, NULL, NULL);
	return rc;
}

/* Format without zeroing [0, 20480) first: shows what pcm_format_write touches. */
static int reformat_keep(struct pcm_dev *dev)
{
	struct pcm_format_opts o = { .data_crc = false, .gc_percent = 70 };
	struct pcm_format_plan p;
	int rc = pcm_format_plan(pcm_dev_size(dev), &o, &p);

	return rc ? rc : pcm_format_write(dev, &p, NULL, NULL);
}

static int write_sealed(struct pcm_dev *dev, uint64_t off, uint8_t *b, size_t size)
{
	pcm_record_seal(b, size);
	return pcm_dev_write(dev, off, b, size);
}

static int put_ci(struct pcm_dev *dev, int slot, uint8_t seq, uint32_t seg_id, uint32_t n_segs,
		  uint32_t flags)
{
	struct pcm_cache_info ci = { .h.seq = seq, .seg_id = seg_id, .n_segs = n_segs,
				     .flags = flags };
	uint8_t b[PCM_CACHE_INFO_SIZE];

	pcm_cache_info_encode(&ci, b);
	return write_sealed(dev, PCM_CACHE_INFO_OFF + (uint64_t)slot * PCM_CACHE_INFO_SLOT, b,
			    sizeof(b));
}

static int put_pos(struct pcm_dev *dev, int which, int slot, uint8_t seq, uint32_t cseg,
		   uint32_t seg_off)
{
	struct pcm_pos_rec p = { .h.seq = seq, .pos = { cseg, seg_off } };
	uint8_t b[PCM_POS_SIZE];

	pcm_pos_rec_encode(&p, b);
	return write_sealed(dev, (which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF) +
				 (uint64_t)slot * PCM_POS_SIZE, b, sizeof(b));
}

static uint64_t si_off(uint32_t dseg, int slot)
{
	return pcm_seg_base(dseg) + (uint64_t)slot * PCM_SEG_INFO_SLOT;
}

static uint64_t gen_off(uint32_t dseg, int slot)
{
	return pcm_seg_base(dseg) + PCM_SEG_CTRL_OFF + (uint64_t)slot * PCM_SEG_GEN_SIZE;
}

static int put_si(struct pcm_dev *dev, uint32_t dseg, int slot, uint8_t seq, uint32_t flags,
		  uint32_t next)
{
	struct pcm_seg_info si = { .h.seq = seq, .flags = flags, .next_seg = next };
	uint8_t b[PCM_SEG_INFO_SIZE];

	pcm_seg_info_encode(&si, b);
	return write_sealed(dev, si_off(dseg, slot), b, sizeof(b));
}

static int put_gen(struct pcm_dev *dev, uint32_t dseg, int slot, uint8_t seq, uint64_t gen)
{
	struct pcm_seg_gen g = { .h.seq = seq, .gen = gen };
	uint8_t b[PCM_SEG_GEN_SIZE];

	pcm_seg_gen_encode(&g, b);
	return write_sealed(dev, gen_off(dseg, slot), b, sizeof(b));
}

/* Flips one payload bit of the record at off (crc no longer matches). */
static int corrupt(struct pcm_dev *dev, uint64_t off)
{
	uint8_t b;
	int rc = pcm_dev_read(dev, off + 9, &b, 1);

	b ^= 0x04;
	return rc ? rc : pcm_dev_write(dev, off + 9, &b, 1);
}

/* ---- device-level readers ---- */

static void test_readers(struct pcm_dev *dev)
{
	struct pcm_cache_info ci[2];
	struct pcm_pos_rec pr[2];
	struct pcm_seg_info si[2];
	struct pcm_seg_gen g[2];
	struct pcm_rep_state st;
	int rc;

	/* cache_info */
	rc = pcm_read_cache_info(dev, ci, &st);
	ok(rc == 0 && st.pick == 1 && !st.valid[0] && st.valid[1] && st.seq[1] == 1 &&
	   ci[1].h.seq == 1 && ci[1].n_segs == 37 && ci[1].flags == 0x1182,
	   "fresh cache_info: slot 1 seq 1 picked, slot 0 invalid (rc %d pick %d)", rc, st.pick);
	rc = put_ci(dev, 0, 2, 0, 36, 0x1182);
	rc = rc ? rc : pcm_read_cache_info(dev, ci, &st);
	ok(rc == 0 && st.pick == 0 && st.valid[0] && st.valid[1] && st.seq[0] == 2 &&
	   st.seq[1] == 1 && ci[0].n_segs == 36 && ci[1].n_segs == 37,
	   "cache_info seq 2 in slot 0 is picked, both decoded (pick %d)", st.pick);
	rc = corrupt(dev, PCM_CACHE_INFO_OFF);
	rc = rc ? rc : pcm_read_cache_info(dev, ci, &st);
	ok(rc == 0 && st.pick == 1 && !st.valid[0] && st.valid[1],
	   "corrupt slot 0 cache_info -> slot 1 picked again (pick %d)", st.pick);
	rc = put_ci(dev, 0, 0, 0, 36, 0x1182);   /* seq 0 vs seq 1: slot 1 wins */
	rc = rc ? rc : pcm_read_cache_info(dev, ci, &st);
	ok(rc == 0 && st.pick == 1 && st.valid[0], "cache_info seq 0 in slot 0 loses to seq 1");

	/* tails */
	for (int which = 0; which < 2; which++) {
		const char *name = which ? "dirty_tail" : "key_tail";
		uint64_t base = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;

		rc = pcm_read_tail(dev, which, pr, &st);
		ok(rc == 0 && st.pick == 0 && st.valid[0] && !st.valid[1] && st.seq[0] == 1 &&
		   pr[0].pos.cseg == 0 && pr[0].pos.seg_off == 0,
		   "fresh %s: slot 0 seq 1 at 0:0 picked (pick %d)", name, st.pick);
		rc = put_pos(dev, which, 1, 2, 3, 5144);
		rc = rc ? rc : pcm_read_tail(dev, which, pr, &st);
		ok(rc == 0 && st.pick == 1 && st.seq[1] == 2 && pr[1].pos.cseg == 3 &&
		   pr[1].pos.seg_off == 5144, "%s seq 2 in slot 1 (3:5144) picked (pick %d)", name,
		   st.pick);
		rc = corrupt(dev, base + PCM_POS_SIZE);
		rc = rc ? rc : pcm_read_tail(dev, which, pr, &st);
		ok(rc == 0 && st.pick == 0 && !st.valid[1], "%s: corrupt slot 1 -> slot 0 (pick %d)",
		   name, st.pick);
		rc = put_pos(dev, which, 1, 0, 4, 0);   /* seq 0 vs 255 below: 0 is newer */
		rc = rc ? rc : put_pos(dev, which, 0, 255, 2, 0);
		rc = rc ? rc : pcm_read_tail(dev, which, pr, &st);
		ok(rc == 0 && st.pick == 1 && pr[1].pos.cseg == 4,
		   "%s: seq 255 in slot 0, seq 0 in slot 1 -> slot 1 (pick %d)", name, st.pick);
	}

	/* segment info of dseg 5 */
	rc = pcm_read_seg_info(dev, 5, si, &st);
	ok(rc == 0 && st.pick == 0 && st.valid[0] && st.valid[1] && si[0].h.seq == 2 &&
	   si[0].flags == 3 && si[0].next_seg == 6 && si[1].h.seq == 1 && si[1].flags == 2 &&
	   si[1].next_seg == 0, "fresh seg 5 info: slot 0 {2, 0x3, 6} picked over slot 1 {1, 0x2, 0}");
	rc = put_si(dev, 5, 1, 3, 0x3, 9);
	rc = rc ? rc : pcm_read_seg_info(dev, 5, si, &st);
	ok(rc == 0 && st.pick == 1 && si[1].next_seg == 9, "seg 5 info seq 3 in slot 1 picked");
	rc = corrupt(dev, si_off(5, 1));
	rc = rc ? rc : pcm_read_seg_info(dev, 5, si, &st);
	ok(rc == 0 && st.pick == 0 && !st.valid[1], "seg 5 info: corrupt slot 1 -> slot 0");
	rc = pcm_read_seg_info(dev, 36, si, &st);
	ok(rc == 0 && st.pick == 1 && !st.valid[0] && si[1].flags == 2,
	   "last segment (36) info: slot 0 zero, slot 1 {1, 0x2} picked");

	/* segment gen of dseg 5 */
	rc = pcm_read_seg_gen(dev, 5, g, &st);
	ok(rc == 0 && st.pick == 1 && !st.valid[0] && g[1].h.seq == 1 && g[1].gen == 0,
	   "fresh seg 5 gen: slot 1 {seq 1, gen 0} picked");
	rc = put_gen(dev, 5, 0, 2, 7);
	rc = rc ? rc : pcm_read_seg_gen(dev, 5, g, &st);
	ok(rc == 0 && st.pick == 0 && g[0].gen == 7 && st.seq[0] == 2,
	   "seg 5 gen {seq 2, gen 7} in slot 0 picked");
	rc = corrupt(dev, gen_off(5, 0));
	rc = rc ? rc : pcm_read_seg_gen(dev, 5, g, &st);
	ok(rc == 0 && st.pick == 1 && !st.valid[0] && g[1].gen == 0,
	   "seg 5 gen: corrupt slot 0 -> slot 1 (gen 0)");
	rc = pcm_read_seg_gen(dev, 38, g, &st);
	ok(rc == -ERANGE, "gen of dseg 38 (past the 600 MiB device end) -> -ERANGE (rc %d)", rc);
	rc = pcm_read_seg_info(dev, 38, si, &st);
	ok(rc == -ERANGE, "info of dseg 38 (past the 600 MiB device end) -> -ERANGE (rc %d)", rc);
}

/* ---- cache open ---- */

static void expect_open(struct pcm_dev *dev, enum pcm_open_error err, long where,
			const char *what)
{
	struct pcm_cache *c = NULL;
	struct pcm_open_status st;
	int rc;

	memset(&st, 0x5A, sizeof(st));
	rc = pcm_cache_open(dev, &c, &st);
	if (err == PCM_OPEN_OK) {
		ok(rc == 0 && st.err == PCM_OPEN_OK && c, "open %s: ok (rc %d, err %d %s)", what, rc,
		   st.err, pcm_open_error_str(&st));
	} else {
		ok(rc < 0 && st.err == err && (where < 0 || st.where == (uint32_t)where),
		   "open %s: refused with err %d where %ld (rc %d, err %d where %u: %s)", what, err,
		   where, rc, st.err, st.where, pcm_open_error_str(&st));
	}
	if (rc == 0)
		pcm_cache_close(c);
}

/* ---- what a format leaves alone, and what it zeroes (§5.6) ---- */

static bool all_bytes(struct pcm_dev *dev, uint64_t off, uint64_t len, uint8_t val)
{
	uint8_t b[4096];

	while (len) {
		size_t n = len < sizeof(b) ? (size_t)len : sizeof(b);

		if (pcm_dev_read(dev, off, b, n))
			return false;
		for (size_t i = 0; i < n; i++)
			if (b[i] != val)
				return false;
		off += n;
		len -= n;
	}
	return true;
}

static void fill(struct pcm_dev *dev, uint64_t off, uint64_t len, uint8_t val)
{
	uint8_t b[4096];

	memset(b, val, sizeof(b));
	while (len) {
		size_t n = len < sizeof(b) ? (size_t)len : sizeof(b);

		pcm_dev_write(dev, off, b, n);
		off += n;
		len -= n;
	}
}

static void test_format_untouched(struct pcm_dev *dev)
{
	const uint64_t seg3 = pcm_seg_base(3), last = pcm_seg_base(37);

	fill(dev, 0, PCM_META_END, 0xA5);
	fill(dev, seg3, PCM_DATA_OFF + 8192, 0xA5);
	fill(dev, pcm_seg_base(36) + PCM_DATA_OFF + PCM_DATA_SIZE - 4096, 4096, 0xA5);
	fill(dev, last, DEV_BYTES - last, 0xA5);
	ok(reformat_keep(dev) == 0, "format over a device full of 0xA5 bytes");
	ok(all_bytes(dev, 0, 4096, 0), "format: [0, 4096) zeroed (no old signature survives; the kernel never reads it)");
	ok(all_bytes(dev, PCM_SB_OFF + PCM_SB_SIZE, 8192 - PCM_SB_OFF - PCM_SB_SIZE, 0xA5),
	   "format: [4120, 8192) not written");
	ok(all_bytes(dev, 8192 + 24, 4096 - 24, 0) && all_bytes(dev, 12288 + 24, 4096 - 24, 0) &&
	   all_bytes(dev, 16384 + 64, 4096 - 64, 0) && all_bytes(dev, 8192, 24, 0) &&
	   all_bytes(dev, 16400, 16, 0) && all_bytes(dev, 16432, 16, 0),
	   "format: rest of [8192, 20480) zeroed (cache_info slot 0, tail slots 1)");
	ok(all_bytes(dev, seg3 + 16, 4096 - 16, 0) && all_bytes(dev, seg3 + 4096 + 16, 4096 - 16, 0) &&
	   all_bytes(dev, seg3 + 8192, 16, 0) && all_bytes(dev, seg3 + 8208 + 16, 4096 - 32, 0),
	   "format: segment 3 [0, 12288) zeroed except the records");
	ok(all_bytes(dev, seg3 + PCM_DATA_OFF, 24, 0), "format: segment 3 data [0, 24) zeroed");
	ok(all_bytes(dev, seg3 + PCM_DATA_OFF + 24, 8192 - 24, 0xA5),
	   "format: segment 3 data beyond 24 bytes not written");
	ok(all_bytes(dev, pcm_seg_base(36) + PCM_DATA_OFF + PCM_DATA_SIZE - 4096, 4096, 0xA5),
	   "format: end of the last segment's data area not written");
	ok(all_bytes(dev, last, DEV_BYTES - last, 0xA5), "format: bytes past the last segment not written");
	expect_open(dev, PCM_OPEN_OK, -1, "after a format over 0xA5 bytes");
	fill(dev, 0, PCM_META_END, 0);
	fill(dev, seg3 + PCM_DATA_OFF, 8192, 0);
	fill(dev, pcm_seg_base(36) + PCM_DATA_OFF + PCM_DATA_SIZE - 4096, 4096, 0);
	fill(dev, last, DEV_BYTES - last, 0);
}

static void test_open_fresh(struct pcm_dev *dev, const char *how)
{
	struct pcm_cache *c = NULL;
	struct pcm_open_status st;
	int rc = pcm_cache_open(dev, &c, &st);
	bool chain = true, gens = true;

	ok(rc == 0 && st.err == PCM_OPEN_OK, "%s: fresh 600 MiB image opens (rc %d: %s)", how, rc,
	   pcm_open_error_str(&st));
	if (rc)
		return;
	ok(c->seg_num == 37 && c->n_segs == 37 && c->dev_size == DEV_BYTES && !c->data_crc &&
	   c->ci_slot == 1 && c->ci.h.seq == 1 && c->sb.seg_num == 37,
	   "%s: seg_num 37, n_segs 37, ci slot 1 seq 1, no data_crc", how);
	for (uint32_t i = 0; i < c->n_segs; i++) {
		chain &= c->dseg[i] == i;
		gens &= c->gen[i] == 0 && c->gen_slot[i] == 1 && c->gen_seq[i] == 1;
	}
	ok(chain, "%s: chain is dseg 0..36", how);
	ok(gens, "%s: every gen 0 from slot 1 seq 1", how);
	ok(c->key_tail.pos.cseg == 0 && c->key_tail.pos.seg_off == 0 && c->key_tail.slot == 0 &&
	   c->key_tail.seq == 1 && c->dirty_tail.pos.cseg == 0 && c->dirty_tail.pos.seg_off == 0 &&
	   c->dirty_tail.slot == 0 && c->dirty_tail.seq == 1,
	   "%s: key_tail and dirty_tail 0:0 slot 0 seq 1", how);
	ok(pcm_pos_dev_off(c, 2, 100) == 20480 + 2ull * 16777216 + 12288 + 100,
	   "%s: pcm_pos_dev_off(2, 100)", how);
	pcm_cache_close(c);
}

static void test_open(struct pcm_dev *dev)
{
	struct pcm_cache *c;
	struct pcm_open_status st;
	uint8_t b[24];
	int rc;

#define RESET() ok(reformat(dev) == 0, "reformat")
	test_format_untouched(dev);
	RESET();
	test_open_fresh(dev, "mapped");
	rc = pcm_cache_open(dev, &c, NULL);
	ok(rc == 0, "pcm_cache_open with a NULL status pointer (rc %d)", rc);
	if (!rc)
		pcm_cache_close(c);

	/* cache_info */
	RESET();
	pcm_dev_zero(dev, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_SIZE);
	pcm_dev_zero(dev, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, PCM_CACHE_INFO_SIZE);
	expect_open(dev, PCM_OPEN_NO_CACHE_INFO, -1, "both cache_info replicas zero");
	RESET();
	corrupt(dev, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT);
	expect_open(dev, PCM_OPEN_NO_CACHE_INFO, -1, "only cache_info replica corrupt");
	RESET();
	put_ci(dev, 0, 2, 0, 37, 0x1180);
	expect_open(dev, PCM_OPEN_NOT_INIT_DONE, -1, "newest cache_info lacks INIT_DONE");
	RESET();
	put_ci(dev, 0, 0, 0, 37, 0x1180);   /* older (seq 0 vs 1): not picked */
	expect_open(dev, PCM_OPEN_OK, -1, "older cache_info without INIT_DONE is ignored");
	RESET();
	put_ci(dev, 0, 2, 0, 38, 0x1182);
	expect_open(dev, PCM_OPEN_N_SEGS, -1, "n_segs 38 > seg_num 37");
	RESET();
	put_ci(dev, 0, 2, 0, 0, 0x1182);
	expect_open(dev, PCM_OPEN_N_SEGS, -1, "n_segs 0");
	RESET();
	put_ci(dev, 0, 2, 0, 36, 0x1183);
	rc = pcm_cache_open(dev, &c, &st);
	ok(rc == 0 && c->n_segs == 36 && c->data_crc && c->ci_slot == 0,
	   "n_segs 36 < seg_num, DATA_CRC flag: opens, n_segs 36, data_crc, ci slot 0");
	if (!rc)
		pcm_cache_close(c);

	/* chain */
	RESET();
	put_si(dev, 0, 0, 2, 0x2, 1);
	expect_open(dev, PCM_OPEN_CHAIN_NO_NEXT, 1, "segment 0 info without HAS_NEXT (both replicas)");
	RESET();
	corrupt(dev, si_off(9, 0));   /* slot 1 of a fresh segment has no HAS_NEXT */
	expect_open(dev, PCM_OPEN_CHAIN_NO_NEXT, 10, "segment 9 info slot 0 corrupt -> slot 1 lacks HAS_NEXT");
	RESET();
	put_si(dev, 3, 0, 2, 0x3, 37);
	expect_open(dev, PCM_OPEN_CHAIN_RANGE, 4, "segment 3 next_seg 37 >= seg_num");
	RESET();
	put_ci(dev, 0, 2, 37, 37, 0x1182);
	expect_open(dev, PCM_OPEN_CHAIN_RANGE, 0, "cache_info seg_id 37 >= seg_num");
	RESET();
	pcm_dev_zero(dev, si_off(5, 0), PCM_SEG_INFO_SIZE);
	pcm_dev_zero(dev, si_off(5, 1), PCM_SEG_INFO_SIZE);
	expect_open(dev, PCM_OPEN_CHAIN_NO_INFO, 5, "segment 5 info both replicas invalid");
	RESET();
	pcm_dev_zero(dev, si_off(36, 1), PCM_SEG_INFO_SIZE);
	expect_open(dev, PCM_OPEN_CHAIN_NO_INFO, 36, "last segment info invalid");
	RESET();
	put_si(dev, 36, 1, 1, 0x0, 0);   /* last member: HAS_NEXT not examined */
	expect_open(dev, PCM_OPEN_OK, -1, "last chain member without type/HAS_NEXT is fine");

	/* a permuted short chain: n_segs 3, dseg 10 -> 20 -> 5 */
	RESET();
	put_ci(dev, 0, 2, 10, 3, 0x1182);
	put_si(dev, 10, 0, 3, 0x3, 20);
	put_si(dev, 20, 1, 9, 0x3, 5);
	put_gen(dev, 20, 0, 2, 42);
	pcm_dev_zero(dev, gen_off(5, 0), 2 * PCM_SEG_GEN_SIZE);
	rc = pcm_cache_open(dev, &c, &st);
	ok(rc == 0 && c->n_segs == 3 && c->dseg[0] == 10 && c->dseg[1] == 20 && c->dseg[2] == 5,
	   "chain seg_id 10 -> 20 -> 5 followed (rc %d: %s)", rc, pcm_open_error_str(&st));
	if (!rc) {
		ok(c->gen[0] == 0 && c->gen[1] == 42 && c->gen_slot[1] == 0 && c->gen_seq[1] == 2,
		   "chain: gen of cseg 1 (dseg 20) is 42 from slot 0 seq 2");
		ok(c->gen[2] == 0 && c->gen_slot[2] == -1,
		   "chain: cseg 2 (dseg 5) with no valid gen -> gen 0, slot -1 (accepted)");
		ok(pcm_pos_dev_off(c, 1, 0) == pcm_seg_base(20) + PCM_DATA_OFF,
		   "chain: pcm_pos_dev_off maps cseg 1 to dseg 20");
		pcm_cache_close(c);
	}

	/* tails */
	RESET();
	pcm_dev_zero(dev, PCM_KEY_TAIL_OFF, 2 * PCM_POS_SIZE);
	expect_open(dev, PCM_OPEN_TAIL, 0, "key_tail both replicas invalid");
	RESET();
	put_pos(dev, 0, 0, 1, 0, PCM_DATA_SIZE);
	expect_open(dev, PCM_OPEN_TAIL, 0, "key_tail seg_off 16764928");
	RESET();
	put_pos(dev, 0, 0, 1, 0, PCM_DATA_SIZE - 1);
	expect_open(dev, PCM_OPEN_OK, -1, "key_tail seg_off 16764927 accepted");
	RESET();
	put_pos(dev, 0, 1, 2, 37, 0);
	expect_open(dev, PCM_OPEN_TAIL, 0, "key_tail cseg 37 >= n_segs");
	RESET();
	put_ci(dev, 0, 2, 0, 20, 0x1182);
	put_pos(dev, 0, 1, 2, 20, 0);
	expect_open(dev, PCM_OPEN_TAIL, 0, "key_tail cseg 20 >= n_segs 20 (< seg_num)");
	RESET();
	corrupt(dev, PCM_DIRTY_TAIL_OFF);
	expect_open(dev, PCM_OPEN_TAIL, 1, "dirty_tail only replica corrupt");
	RESET();
	put_pos(dev, 1, 1, 2, 0, PCM_DATA_SIZE);
	expect_open(dev, PCM_OPEN_TAIL, 1, "newest dirty_tail seg_off 16764928");
	RESET();
	put_pos(dev, 1, 1, 0, 0, PCM_DATA_SIZE);   /* older: not picked */
	expect_open(dev, PCM_OPEN_OK, -1, "older out-of-range dirty_tail replica is ignored");

	/* superblock */
	RESET();
	{
		struct pcm_sb sb = { .magic = PCM_SB_MAGIC ^ 0x100, .seg_num = 37 };

		pcm_sb_encode(&sb, b);
		write_sealed(dev, PCM_SB_OFF, b, PCM_SB_SIZE);
		memset(&st, 0, sizeof(st));
		rc = pcm_cache_open(dev, &c, &st);
		ok(rc < 0 && st.err == PCM_OPEN_SB && st.sb_verdict == PCM_SB_BAD_MAGIC,
		   "open: superblock bad magic -> PCM_OPEN_SB / PCM_SB_BAD_MAGIC (err %d verdict %d)",
		   st.err, st.sb_verdict);
		if (!rc)
			pcm_cache_close(c);
	}
	RESET();
	pcm_dev_read(dev, PCM_SB_OFF + 20, b, 1);   /* padding byte: inside the crc */
	b[0] ^= 0x01;
	pcm_dev_write(dev, PCM_SB_OFF + 20, b, 1);
	rc = pcm_cache_open(dev, &c, &st);
	ok(rc < 0 && st.err == PCM_OPEN_SB && st.sb_verdict == PCM_SB_BAD_CRC,
	   "open: superblock bad crc -> PCM_OPEN_SB / PCM_SB_BAD_CRC (verdict %d)", st.sb_verdict);
	if (!rc)
		pcm_cache_close(c);
	RESET();
	pcm_dev_zero(dev, PCM_SB_OFF, PCM_SB_SIZE);
	rc = pcm_cache_open(dev, &c, &st);
	ok(rc < 0 && st.err == PCM_OPEN_SB && st.sb_verdict == PCM_SB_UNFORMATTED,
	   "open: zero superblock -> PCM_OPEN_SB / PCM_SB_UNFORMATTED (verdict %d)", st.sb_verdict);
	if (!rc)
		pcm_cache_close(c);
	RESET();
	{
		struct pcm_sb sb = { .magic = PCM_SB_MAGIC, .seg_num = 38 };

		pcm_sb_encode(&sb, b);
		write_sealed(dev, PCM_SB_OFF, b, PCM_SB_SIZE);
		rc = pcm_cache_open(dev, &c, &st);
		ok(rc == -EIO && st.err == PCM_OPEN_SB && st.sb_verdict == PCM_SB_BAD_SEG_NUM,
		   "open: sb seg_num 38 on 600 MiB -> -EIO, PCM_SB_BAD_SEG_NUM (rc %d verdict %d)",
		   rc, st.sb_verdict);
		if (!rc)
			pcm_cache_close(c);
	}
	RESET();
#undef RESET
}

/* ---- device access checks ---- */

static void test_dev(void)
{
	struct pcm_dev *ro = NULL, *rw = NULL;
	uint8_t b[32] = { 0 };
	int rc;

	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &ro);
	ok(rc == 0, "open read-only (rc %d)", rc);
	if (rc)
		return;
	ok(!pcm_dev_writable(ro) && pcm_dev_kind(ro) == PCM_DEV_FILE &&
	   pcm_dev_size(ro) == DEV_BYTES && !strcmp(pcm_dev_path(ro), img_path),
	   "read-only dev: not writable, kind file, size 600 MiB, path");
	rc = pcm_dev_write(ro, 0, b, sizeof(b));
	ok(rc == -EROFS, "read-only dev: pcm_dev_write -> -EROFS (rc %d)", rc);
	rc = pcm_dev_zero(ro, 0, 4096);
	ok(rc == -EROFS, "read-only dev: pcm_dev_zero -> -EROFS (rc %d)", rc);
	rc = pcm_dev_persist(ro, 0, 4096);
	ok(rc == -EROFS, "read-only dev: pcm_dev_persist -> -EROFS (rc %d)", rc);
	rc = pcm_dev_read(ro, PCM_SB_OFF, b, PCM_SB_SIZE);
	ok(rc == 0, "read-only dev: read works (rc %d)", rc);
	rc = pcm_dev_read(ro, DEV_BYTES - 16, b, 32);
	ok(rc == -ERANGE, "read crossing the end -> -ERANGE (rc %d)", rc);
	rc = pcm_dev_read(ro, DEV_BYTES, b, 1);
	ok(rc == -ERANGE, "read at the end -> -ERANGE (rc %d)", rc);
	rc = pcm_dev_read(ro, DEV_BYTES + 4096, b, 0);
	ok(rc == -ERANGE, "zero-length read past the end -> -ERANGE (rc %d)", rc);
	rc = pcm_dev_read(ro, UINT64_MAX - 4, b, 16);
	ok(rc == -ERANGE, "read at 2^64-5 (overflowing end) -> -ERANGE (rc %d)", rc);
	rc = pcm_dev_read(ro, DEV_BYTES - 16, b, 16);
	ok(rc == 0, "read of the last 16 bytes works (rc %d)", rc);
	ok(pcm_dev_ptr(ro, DEV_BYTES - 16, 32) == NULL, "pcm_dev_ptr past the end -> NULL");
	pcm_dev_close(ro);

	rc = pcm_dev_open(img_path, PCM_DEV_RDWR, &rw);
	ok(rc == 0 && pcm_dev_writable(rw), "open read-write (rc %d)", rc);
	if (rc)
		return;
	rc = pcm_dev_write(rw, DEV_BYTES - 8, b, 16);
	ok(rc == -ERANGE, "rw dev: write crossing the end -> -ERANGE (rc %d)", rc);
	rc = pcm_dev_zero(rw, DEV_BYTES, 1);
	ok(rc == -ERANGE, "rw dev: zero past the end -> -ERANGE (rc %d)", rc);
	pcm_dev_close(rw);

	/* the pread/pwrite path */
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &ro);
	ok(rc == 0, "open read-only NOMAP (rc %d)", rc);
	if (rc)
		return;
	ok(pcm_dev_ptr(ro, 0, 16) == NULL, "NOMAP: pcm_dev_ptr NULL");
	rc = pcm_dev_read(ro, DEV_BYTES - 16, b, 32);
	ok(rc == -ERANGE, "NOMAP: read crossing the end -> -ERANGE (rc %d)", rc);
	rc = pcm_dev_write(ro, 0, b, 1);
	ok(rc == -EROFS, "NOMAP read-only: write -> -EROFS (rc %d)", rc);
	pcm_dev_close(ro);

	rc = pcm_dev_open(img_path, PCM_DEV_RDWR | PCM_DEV_NOMAP, &rw);
	ok(rc == 0, "open read-write NOMAP (rc %d)", rc);
	if (rc)
		return;
	ok(reformat(rw) == 0, "NOMAP: format through pwrite");
	test_open_fresh(rw, "NOMAP");
	test_readers(rw);
	pcm_dev_close(rw);

	{
		struct pcm_dev *x1 = NULL, *x2 = NULL;

		rc = pcm_dev_open(img_path, PCM_DEV_RDONLY | PCM_DEV_EXCL, &x1);
		ok(rc == 0, "first exclusive open (rc %d)", rc);
		rc = pcm_dev_open(img_path, PCM_DEV_RDWR | PCM_DEV_EXCL, &x2);
		ok(rc == -EBUSY, "second exclusive open -> -EBUSY (rc %d)", rc);
		if (!rc)
			pcm_dev_close(x2);
		pcm_dev_close(x1);
		rc = pcm_dev_open(img_path, PCM_DEV_RDWR | PCM_DEV_EXCL, &x2);
		ok(rc == 0, "exclusive open after the first was closed (rc %d)", rc);
		if (!rc)
			pcm_dev_close(x2);
	}
	rc = pcm_dev_open("/nonexistent/pcm-test", PCM_DEV_RDONLY, &ro);
	ok(rc == -ENOENT, "open of a missing path -> -ENOENT (rc %d)", rc);
}

int main(void)
{
	struct pcm_dev *dev = NULL;
	int rc;

	tap_srand(0x5EC0A1D5EC0A1D5Eull);
	test_seq_after();
	test_pick(PCM_POS_SIZE);
	test_pick(PCM_CACHE_INFO_SIZE);

	rc = make_image(DEV_BYTES);
	if (!ok(rc == 0, "create 600 MiB sparse temp image (rc %d)", rc))
		return tap_done();
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR, &dev);
	ok(rc == 0, "pcm_dev_open RDWR %s (rc %d %s)", img_path, rc, pcm_dev_errmsg());
	if (!rc) {
		ok(reformat(dev) == 0, "pcm_format_write on the 600 MiB image");
		test_readers(dev);
		test_open(dev);
		pcm_dev_close(dev);
		test_dev();
	}
	unlink(img_path);
	return tap_done();
}
