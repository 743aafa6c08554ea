/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_append.c - model-based tests of the log appender (§6.2,
 * §6.3, §6.8).  Each case formats a sparse temporary image, appends through
 * pcm_append_*, keeps a byte array of the logical content it expects, then
 * loads the image again (pcm_cache_open + pcm_replay_run, as a kernel load)
 * and compares what the index serves, sector by sector, with the model.
 *
 * Prints one line per check ("ok - ..." / "not ok - ...") and exits
 * non-zero if any check failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcachemeta.h"
#include "tap.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define WIN (4 * MIB)

static uint64_t rng(void)
{
	return tap_rand();
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rng() >> 56);
}

/* One test image: device, loaded cache, replay, appender, expected content. */
struct img {
	char path[4096];
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct pcm_appender *a;
	bool verify;               /* replay with data CRC verification */
	uint8_t *model;            /* range bytes of expected logical content */
	uint64_t range;
	struct pcm_key *keys;      /* every key the hook saw, in log order */
	size_t n_keys, cap_keys;
	uint64_t n_ksets;
};

static void hook(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	struct img *im = arg;

	(void)at;
	im->n_ksets++;
	if (im->n_keys + n > im->cap_keys) {
		im->cap_keys = (im->n_keys + n) * 2;
		im->keys = realloc(im->keys, im->cap_keys * sizeof(*im->keys));
		if (!im->keys)
			abort();
	}
	memcpy(im->keys + im->n_keys, keys, n * sizeof(*keys));
	im->n_keys += n;
}

/* Load as the kernel would: open checks, replay; then an appender at key_head. */
static int img_load(struct img *im)
{
	struct pcm_replay_opts ro = { .verify_data = im->verify };
	int rc = pcm_cache_open(im->dev, &im->c, NULL);

	if (!rc)
		rc = pcm_replay_run(im->c, &ro, &im->r);
	if (rc || im->r->failed)
		return rc ? rc : -EUCLEAN;
	rc = pcm_appender_open(im->c, im->r, &im->a);
	if (!rc)
		pcm_appender_set_hook(im->a, hook, im);
	return rc;
}

static void img_unload(struct img *im)
{
	pcm_appender_free(im->a);
	pcm_replay_free(im->r);
	pcm_cache_close(im->c);
	pcm_dev_close(im->dev);
	im->a = NULL;
	im->r = NULL;
	im->c = NULL;
	im->dev = NULL;
}

/* Closes the appender (flush) and loads the image afresh from the file. */
static int img_reload(struct img *im)
{
	int rc = im->a ? pcm_appender_close(im->a) : 0;

	im->a = NULL;
	img_unload(im);
	if (!rc)
		rc = pcm_dev_open(im->path, PCM_DEV_RDWR, &im->dev);
	return rc ? rc : img_load(im);
}

/* A formatted sparse temporary image of size bytes with a model of range bytes. */
static int img_create(struct img *im, uint64_t size, bool data_crc, uint64_t range)
{
	struct pcm_format_opts fo = { .data_crc = data_crc, .gc_percent = 70 };
	struct pcm_format_plan plan;
	const char *t = getenv("TMPDIR");
	int fd, rc;

	memset(im, 0, sizeof(*im));
	snprintf(im->path, sizeof(im->path), "%s/test_append.XXXXXX", t && *t ? t : "/tmp");
	fd = mkstemp(im->path);
	if (fd < 0)
		return -errno;
	rc = ftruncate(fd, (off_t)size) ? -errno : 0;
	close(fd);
	im->verify = data_crc;
	im->range = range;
	im->model = calloc(range, 1);
	if (!rc)
		rc = im->model ? pcm_format_plan(size, &fo, &plan) : -ENOMEM;
	if (!rc)
		rc = pcm_dev_open(im->path, PCM_DEV_RDWR, &im->dev);
	if (!rc)
		rc = pcm_format_write(im->dev, &plan, NULL, NULL);
	return rc ? rc : img_load(im);
}

static void img_destroy(struct img *im)
{
	img_unload(im);
	unlink(im->path);
	free(im->model);
	free(im->keys);
}

/* A write through the appender; the model follows it when it succeeds. */
static int img_write(struct img *im, uint64_t off, const uint8_t *data, uint32_t len,
		     uint32_t flags)
{
	int rc = pcm_append_write(im->a, off, data, len, flags);

	if (!rc)
		memcpy(im->model + off, data, len);
	return rc;
}

/* A random write of sectors inside the range, up to max_len bytes. */
static int img_rand_write(struct img *im, uint32_t max_len, unsigned clean_pct)
{
	static uint8_t buf[4 * 1024 * 1024 + 512 * 1024];
	uint32_t len = (uint32_t)(rng() % (max_len / 512) + 1) * 512;
	uint64_t off = rng() % ((im->range - len) / 512 + 1) * 512;

	fill(buf, len);
	return img_write(im, off, buf, len, rng() % 100 < clean_pct ? PCM_KEY_F_CLEAN : 0);
}

/* Sectors whose served content differs from the model (lookup per 512-byte sector). */
static uint64_t img_diff(struct img *im)
{
	static const uint8_t zero[PCM_SECTOR];
	uint8_t buf[PCM_SECTOR];
	uint64_t bad = 0;

	for (uint64_t x = 0; x < im->range; x += PCM_SECTOR) {
		const struct pcm_extent *e = pcm_index_lookup(im->r->idx, x);
		const uint8_t *have = zero;

		if (e && pcm_dev_read(im->dev, pcm_pos_dev_off(im->c, e->cseg,
							   e->seg_off + (uint32_t)(x - e->off)),
				      buf, sizeof(buf)) == 0)
			have = buf;
		else if (e)
			return UINT64_MAX;
		bad += memcmp(have, im->model + x, PCM_SECTOR) != 0;
	}
	return bad;
}

/* A load the kernel accepts, ending at a terminator, with dirty_tail on the log. */
static void check_replay(struct img *im, const char *what)
{
	struct pcm_replay *r = im->r;

	ok(r && !r->failed && r->stop == PCM_STOP_TERMINATOR && r->dirty_tail_on_log &&
	      r->bad_keys == 0, "%s: replay accepted (stop %s)", what,
	      r ? pcm_walk_stop_str(r->stop) : "-");
	ok(img_diff(im) == 0, "%s: served content equals the model", what);
}

/* Stale bytes over a data area, as a reused segment holds: only terminators end the log. */
static void img_garbage(struct img *im, uint32_t cseg, uint32_t len)
{
	static uint8_t junk[65536];

	memset(junk, 0xA5, sizeof(junk));
	for (uint32_t o = 0; o < len; o += sizeof(junk))
		pcm_dev_write(im->dev, pcm_pos_dev_off(im->c, cseg, o), junk,
			      len - o < sizeof(junk) ? len - o : sizeof(junk));
}

/* Gives every segment a random gen (slot 0, seq 2: newer than format's slot 1). */
static void img_set_gens(struct img *im)
{
	for (uint32_t i = 0; i < im->c->n_segs; i++) {
		struct pcm_seg_gen g = { .h.seq = 2, .gen = rng() % 1000 + 1 };
		uint8_t raw[PCM_SEG_GEN_SIZE];

		pcm_seg_gen_encode(&g, raw);
		pcm_record_seal(raw, sizeof(raw));
		pcm_dev_write(im->dev, pcm_seg_base(im->c->dseg[i]) + PCM_SEG_CTRL_OFF, raw,
			      sizeof(raw));
	}
}

static bool pos_is(struct pcm_pos p, uint32_t cseg, uint32_t seg_off)
{
	return p.cseg == cseg && p.seg_off == seg_off;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- cases ---- */

static void test_first_kset(void)
{
	struct img im;
	uint8_t data[4096], raw[PCM_KSET_HDR_SIZE + PCM_KEY_SIZE + PCM_KSET_HDR_SIZE], back[4096];
	struct pcm_kset_hdr h;
	struct pcm_key k;
	int rc = img_create(&im, GIB, false, 16 * MIB);

	ok(rc == 0, "first kset: create image (%d)", rc);
	if (rc)
		goto out;
	img_garbage(&im, 0, 65536);
	img_garbage(&im, 1, 65536);
	fill(data, sizeof(data));
	ok(img_write(&im, 8192, data, sizeof(data), 0) == 0, "first kset: write");
	ok(pos_is(pcm_appender_key_head(im.a), 0, 0) && pcm_appender_open_keys(im.a) == 1,
	      "first kset: key waits in the open kset, key_head 0:0");
	ok(pcm_append_flush(im.a) == 0, "first kset: flush");
	ok(pos_is(pcm_appender_key_head(im.a), 0, 64), "first kset: key_head 0:64");
	pcm_dev_read(im.dev, pcm_pos_dev_off(im.c, 0, 0), raw, sizeof(raw));
	pcm_kset_hdr_decode(raw, &h);
	pcm_key_decode(raw + PCM_KSET_HDR_SIZE, &k);
	ok(h.magic == PCM_KSET_MAGIC && h.key_num == 1 && h.flags == 0 &&
	      h.crc == pcm_kcrc(raw + 4, 60), "first kset: kset at 0:0 (1 key, crc ok)");
	ok(all_zero(raw + 64, PCM_KSET_HDR_SIZE), "first kset: terminator at 0:64");
	ok(k.off == 8192 && k.len == 4096 && k.flags == 0 && k.cseg == 1 && k.seg_off == 0 &&
	      k.seg_gen == 0 && k.data_crc == 0 && k.reserved == 0,
	      "first kset: key -> segment 1 offset 0");
	pcm_dev_read(im.dev, pcm_pos_dev_off(im.c, 1, 0), back, sizeof(back));
	ok(memcmp(back, data, sizeof(data)) == 0, "first kset: data in segment 1");
	ok(img_reload(&im) == 0, "first kset: reload");
	if (im.r) {
		ok(im.r->keys == 1 && pos_is(im.r->key_head, 0, 64) && im.r->segs_used == 2,
		      "first kset: replay finds 1 key, key_head 0:64, 2 segments in use");
		check_replay(&im, "first kset");
	}
out:
	img_destroy(&im);
}

static void test_key_head_advance(void)
{
	struct img im;
	uint8_t data[512];
	int rc = img_create(&im, GIB, false, 16 * MIB), bad = 0;

	ok(rc == 0, "key_head: create image");
	if (rc)
		goto out;
	for (unsigned i = 0; i < 127; i++) {
		fill(data, sizeof(data));
		bad |= img_write(&im, i * 8192ull, data, sizeof(data), 0);
	}
	ok(!bad && pos_is(pcm_appender_key_head(im.a), 0, 0) &&
	      pcm_appender_open_keys(im.a) == 127, "key_head: 127 keys stay open at 0:0");
	bad |= img_write(&im, 127 * 8192ull, data, sizeof(data), 0);
	ok(!bad && pos_is(pcm_appender_key_head(im.a), 0, 5144) &&
	      pcm_appender_open_keys(im.a) == 0, "key_head: the 128th key writes the kset (0:5144)");
	for (unsigned i = 0; i < 3; i++)
		bad |= img_write(&im, 2 * MIB + i * 4096ull, data, sizeof(data), PCM_KEY_F_CLEAN);
	ok(!bad && pcm_append_flush(im.a) == 0 &&
	      pos_is(pcm_appender_key_head(im.a), 0, 5144 + 24 + 3 * 40),
	      "key_head: 3 keys + flush -> 0:5288");
	ok(pcm_append_flush(im.a) == 0 && pos_is(pcm_appender_key_head(im.a), 0, 5288),
	      "key_head: flush with no open keys writes nothing");
	ok(pcm_appender_segs_used(im.a) == 2, "key_head: log + one data segment in use");
	ok(img_reload(&im) == 0 && im.r->ksets == 2 && im.r->keys == 131 &&
	      pos_is(im.r->key_head, 0, 5288), "key_head: replay: 2 ksets, 131 keys, 0:5288");
	if (im.r) {
		ok(im.r->clean_bytes == 3 * 512 && im.r->dirty_bytes == 128 * 512,
		      "key_head: CLEAN keys replay as clean");
		check_replay(&im, "key_head");
	}
out:
	img_destroy(&im);
}

static bool keys_gen_ok(const struct img *im)
{
	for (size_t i = 0; i < im->n_keys; i++)
		if (im->keys[i].seg_gen != im->c->gen[im->keys[i].cseg])
			return false;
	return true;
}

/* Random overlapping writes with random flushes; reload, a second session, reload. */
static void random_session(struct img *im, unsigned n, const char *what)
{
	int bad = 0;

	for (unsigned i = 0; i < n && !bad; i++) {
		bad = img_rand_write(im, 192 * 1024, 10);
		if (!bad && rng() % 64 == 0)
			bad = pcm_append_flush(im->a);
	}
	ok(!bad, "%s: %u random writes (%d)", what, n, bad);
}

static void test_random(bool persist, bool data_crc)
{
	char what[64];
	struct img im;
	struct pcm_pos head;
	uint32_t used;
	int rc = img_create(&im, GIB, data_crc, 24 * MIB);

	snprintf(what, sizeof(what), "random%s%s", persist ? " persist" : "",
		 data_crc ? " data_crc" : "");
	ok(rc == 0, "%s: create image", what);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < im.c->n_segs; i++)
		img_garbage(&im, i, 256 * 1024);
	img_set_gens(&im);
	ok(img_reload(&im) == 0 && im.c->gen[1] != 0, "%s: segments have gens", what);
	for (int session = 0; session < 2; session++) {
		pcm_appender_set_persist(im.a, persist);
		random_session(&im, persist ? 300 : 2500, what);
		ok(pcm_append_flush(im.a) == 0, "%s: flush", what);
		head = pcm_appender_key_head(im.a);
		used = pcm_appender_segs_used(im.a);
		ok(img_reload(&im) == 0, "%s: reload %d", what, session);
		if (!im.r)
			break;
		ok(pcm_pos_eq(im.r->key_head, head) && im.r->segs_used == used &&
		      im.r->keys == im.n_keys && im.r->ksets == im.n_ksets &&
		      im.r->stale_keys == 0,
		      "%s: replay agrees on key_head, segments in use, keys, ksets", what);
		ok(keys_gen_ok(&im), "%s: every key carries its segment's gen", what);
		check_replay(&im, what);
	}
out:
	img_destroy(&im);
}

static void test_window_cross(void)
{
	static uint8_t data[8 * MIB];
	struct img im;
	struct pcm_key *k;
	int rc = img_create(&im, GIB, false, 24 * MIB);

	ok(rc == 0, "window: create image");
	if (rc)
		goto out;
	fill(data, sizeof(data));
	rc = img_write(&im, WIN - 4096, data, 8192, 0);
	ok(rc == 0 && pcm_append_flush(im.a) == 0 && im.n_keys == 2,
	      "window: an 8 KiB write across 4 MiB gives two keys");
	k = im.keys;
	if (im.n_keys == 2)
		ok(k[0].off == WIN - 4096 && k[0].len == 4096 && k[1].off == WIN &&
		      k[1].len == 4096 && k[1].cseg == k[0].cseg &&
		      k[1].seg_off == k[0].seg_off + 4096, "window: the keys meet at 4 MiB");
	rc = img_write(&im, WIN + 1536, data, 8 * MIB, 0);
	ok(rc == 0 && pcm_append_flush(im.a) == 0 && im.n_keys == 5 &&
	      im.keys[2].len == WIN - 1536 && im.keys[3].len == WIN && im.keys[4].len == 1536,
	      "window: an 8 MiB write at 4 MiB + 1536 gives three keys");
	ok(img_reload(&im) == 0, "window: reload");
	if (im.r)
		check_replay(&im, "window");
out:
	img_destroy(&im);
}

static void test_seg_split(void)
{
	static uint8_t data[WIN];
	const uint32_t rest = PCM_DATA_SIZE - 3 * WIN;   /* 4182016 */
	struct img im;
	struct pcm_key *k;
	int rc = img_create(&im, GIB, false, 32 * MIB), bad = 0;

	ok(rc == 0, "split: create image");
	if (rc)
		goto out;
	for (unsigned i = 0; i < 4; i++) {
		fill(data, sizeof(data));
		bad |= img_write(&im, i * WIN, data, WIN, 0);
	}
	ok(!bad && pcm_append_flush(im.a) == 0 && im.n_keys == 5, "split: 4 x 4 MiB -> 5 keys");
	k = im.keys;
	if (im.n_keys == 5)
		ok(k[3].cseg == 1 && k[3].seg_off == 3 * WIN && k[3].len == rest &&
		      k[4].cseg == 2 && k[4].seg_off == 0 && k[4].len == WIN - rest &&
		      k[4].off == 3 * WIN + rest,
		      "split: the 4th write is cut at the segment end, rest in segment 2");
	/* Head now 2:12288; three 4 MiB writes leave exactly 4169728 bytes. */
	for (unsigned i = 0; i < 3; i++)
		bad |= img_write(&im, 4 * WIN + i * WIN, data, WIN, 0);
	bad |= img_write(&im, 7 * WIN, data, PCM_DATA_SIZE - (WIN - rest) - 3 * WIN, 0);
	bad |= img_write(&im, 7 * WIN + 2 * MIB + 512 * 1024, data, 4096, 0);
	ok(!bad && pcm_append_flush(im.a) == 0 && im.n_keys == 10,
	      "split: an exact fit gives one key");
	k = im.keys;
	if (im.n_keys == 10)
		ok(k[8].cseg == 2 && k[8].seg_off + k[8].len == PCM_DATA_SIZE &&
		      k[9].cseg == 3 && k[9].seg_off == 0,
		      "split: after an exact fit the next write takes a new segment");
	ok(img_reload(&im) == 0, "split: reload");
	if (im.r)
		check_replay(&im, "split");
out:
	img_destroy(&im);
}

/* Every key the hook saw carries kcrc of its cached data. */
static bool keys_crc_ok(struct img *im)
{
	static uint8_t buf[WIN];

	for (size_t i = 0; i < im->n_keys; i++) {
		const struct pcm_key *k = &im->keys[i];

		if (pcm_dev_read(im->dev, pcm_pos_dev_off(im->c, k->cseg, k->seg_off), buf, k->len) ||
		    k->data_crc != pcm_kcrc(buf, k->len))
			return false;
	}
	return true;
}

static void test_data_crc(void)
{
	struct img im;
	uint8_t b;
	uint64_t at;
	int rc = img_create(&im, GIB, true, 24 * MIB);

	ok(rc == 0, "data_crc: create image");
	if (rc)
		goto out;
	random_session(&im, 400, "data_crc");
	ok(img_reload(&im) == 0 && keys_crc_ok(&im),
	      "data_crc: every key carries kcrc of its data");
	if (!im.r)
		goto out;
	ok(im.r->bad_keys == 0 && !im.r->failed, "data_crc: verify_data replay: no bad key");
	check_replay(&im, "data_crc");
	at = pcm_pos_dev_off(im.c, im.keys[0].cseg, im.keys[0].seg_off + 100);
	pcm_dev_read(im.dev, at, &b, 1);
	b ^= 0x40;
	pcm_dev_write(im.dev, at, &b, 1);
	rc = img_reload(&im);
	ok(rc == -EUCLEAN && im.r && im.r->failed &&
	      im.r->bad_key_verdict == PCM_KEY_BAD_DATA_CRC && im.r->bad_key_index == 0,
	      "data_crc: a flipped data bit fails the load at the first key");
out:
	img_destroy(&im);
}

/* 128 sector keys cut from key k (same data, same logical range): content unchanged. */
static void sector_keys(const struct pcm_key *k, struct pcm_key out[PCM_KSET_KEYS_MAX])
{
	for (unsigned j = 0; j < PCM_KSET_KEYS_MAX; j++) {
		uint32_t d = (j % (k->len / PCM_SECTOR)) * PCM_SECTOR;

		out[j] = *k;
		out[j].off = k->off + d;
		out[j].seg_off = k->seg_off + d;
		out[j].len = PCM_SECTOR;
	}
}

/* Fills the log with small ksets of key k's sectors until the rest of its segment is rest. */
static int log_fill_to(struct img *im, const struct pcm_key ks[PCM_KSET_KEYS_MAX], uint32_t rest)
{
	uint32_t have = PCM_DATA_SIZE - pcm_appender_key_head(im->a).seg_off, m, k = 5, sum;
	int rc = 0;

	while (!rc && have - rest > 4 * PCM_KSET_SIZE_MAX) {
		rc = pcm_append_kset(im->a, ks, PCM_KSET_KEYS_MAX);
		have -= PCM_KSET_SIZE_MAX;
	}
	/* Now 8m bytes to go, as k ksets of 8 (5 n_i + 3) bytes each. */
	m = (have - rest) / 8;
	while ((m - 3 * k) % 5)
		k++;
	sum = (m - 3 * k) / 5;
	for (uint32_t i = 0; !rc && i < k; i++) {
		uint32_t n = sum / (k - i);

		rc = pcm_append_kset(im->a, ks, n);
		sum -= n;
	}
	return rc;
}

static void test_enospc(void)
{
	static uint8_t data[WIN];
	struct pcm_key ks[PCM_KSET_KEYS_MAX];
	struct pcm_pos head;
	struct img im;
	unsigned nw = 0;
	int rc = img_create(&im, 512 * MIB, false, 64 * MIB);

	ok(rc == 0 && im.c->n_segs == 31, "enospc: 512 MiB image, 31 segments");
	if (rc)
		goto out;
	pcm_appender_set_persist(im.a, false);
	do {
		fill(data, 4096);
		rc = img_write(&im, rng() % 16 * WIN, data, WIN, 0);
		nw += rc == 0;
	} while (rc == 0 && nw < 1000);
	ok(rc == -ENOSPC && nw == 119, "enospc: -ENOSPC after %u 4 MiB writes", nw);
	head = pcm_appender_key_head(im.a);
	ok(pcm_appender_segs_used(im.a) == 31 && img_write(&im, 0, data, 4096, 0) == 0,
	      "enospc: all segments in use, but the head segment still takes 4 KiB");
	ok(img_write(&im, 0, data, WIN, 0) == -ENOSPC && pcm_pos_eq(head,
	      pcm_appender_key_head(im.a)), "enospc: a refused write changes nothing");
	ok(pcm_append_flush(im.a) == 0, "enospc: flush still works");
	sector_keys(&im.keys[im.n_keys - 1], ks);
	rc = log_fill_to(&im, ks, PCM_KSET_SIZE_MAX + 8);
	head = pcm_appender_key_head(im.a);
	ok(rc == 0 && pcm_append_kset(im.a, ks, PCM_KSET_KEYS_MAX) == -ENOSPC &&
	   pcm_pos_eq(head, pcm_appender_key_head(im.a)),
	   "enospc: a kset that needs a new log segment is refused (key_head 0:%u)",
	   head.seg_off);
	for (nw = 0; nw < 127 && rc == 0; nw++)
		rc = img_write(&im, nw * 4096ull, data, 512, 0);
	ok(rc == 0 && img_write(&im, 0, data, 512, 0) == -ENOSPC &&
	   pcm_appender_open_keys(im.a) == 127 && pcm_pos_eq(head, pcm_appender_key_head(im.a)),
	   "enospc: the write whose key would close the kset is refused whole");
	ok(pcm_append_flush(im.a) == 0 && pcm_appender_key_head(im.a).cseg == 0,
	   "enospc: 127 keys still fit");
	ok(img_reload(&im) == 0, "enospc: reload");
	if (im.r)
		check_replay(&im, "enospc");
out:
	img_destroy(&im);
}

/* Whether a kset of z bytes still goes at log offset o (§6.2 step 1), or a LAST kset does. */
static bool kset_fits(uint32_t o, uint32_t z)
{
	return PCM_DATA_SIZE - o >= z + PCM_KSET_HDR_SIZE;
}

static void check_last_kset(struct img *im, uint32_t cseg, uint32_t o, uint32_t next)
{
	uint8_t raw[PCM_KSET_HDR_SIZE];
	struct pcm_kset_hdr h;

	pcm_dev_read(im->dev, pcm_pos_dev_off(im->c, cseg, o), raw, sizeof(raw));
	pcm_kset_hdr_decode(raw, &h);
	ok(h.magic == PCM_KSET_MAGIC && h.flags == PCM_KSET_F_LAST && h.key_num == next &&
	      h.crc == pcm_kcrc(raw + 4, 20), "LAST kset at %u:%u names segment %u", cseg, o, next);
}

static void test_last_crafted(void)
{
	static uint8_t data[65536];
	struct pcm_key ks[PCM_KSET_KEYS_MAX];
	struct img im;
	uint32_t o = 64;
	int rc = img_create(&im, GIB, false, 16 * MIB), bad = 0;

	ok(rc == 0, "last: create image");
	if (rc)
		goto out;
	pcm_appender_set_persist(im.a, false);
	fill(data, sizeof(data));
	rc = img_write(&im, MIB, data, sizeof(data), 0) || pcm_append_flush(im.a);
	ok(rc == 0 && im.n_keys == 1, "last: one 64 KiB key");
	sector_keys(&im.keys[0], ks);
	img_garbage(&im, 2, 1024 * 1024);
	for (unsigned i = 0; i < 3400 && !bad; i++) {
		bad = pcm_append_kset(im.a, ks, PCM_KSET_KEYS_MAX);
		if (!bad && kset_fits(o, PCM_KSET_SIZE_MAX))
			o += PCM_KSET_SIZE_MAX;
	}
	ok(!bad && pcm_appender_key_head(im.a).cseg == 2,
	      "last: 3400 crafted ksets cross into log segment 2");
	check_last_kset(&im, 0, o, 2);
	random_session(&im, 300, "last");
	ok(img_reload(&im) == 0, "last: reload");
	if (!im.r)
		goto out;
	ok(im.r->last_ksets == 1 && im.r->ksets == im.n_ksets && im.r->keys == im.n_keys,
	      "last: replay follows the LAST kset (%llu ksets, %llu keys)",
	      (unsigned long long)im.r->ksets, (unsigned long long)im.r->keys);
	check_replay(&im, "last");
out:
	img_destroy(&im);
}

/* §6.2 step 1 at its edges: rest Z + 24 still fits, rest Z + 8 does not. */
static void test_last_edges(void)
{
	static uint8_t data[4096];
	struct pcm_key ks[PCM_KSET_KEYS_MAX];
	struct pcm_pos h;
	struct img im;
	int rc = img_create(&im, GIB, false, 16 * MIB);

	ok(rc == 0, "last edges: create image");
	if (rc)
		goto out;
	pcm_appender_set_persist(im.a, false);
	fill(data, sizeof(data));
	rc = img_write(&im, 3 * MIB, data, sizeof(data), 0) || pcm_append_flush(im.a);
	sector_keys(&im.keys[0], ks);
	rc = rc || log_fill_to(&im, ks, PCM_KSET_SIZE_MAX + PCM_KSET_HDR_SIZE) ||
	     pcm_append_kset(im.a, ks, PCM_KSET_KEYS_MAX);
	h = pcm_appender_key_head(im.a);
	ok(!rc && pos_is(h, 0, PCM_DATA_SIZE - PCM_KSET_HDR_SIZE),
	   "last edges: a kset with exactly 24 bytes behind it stays (key_head 0:%u)", h.seg_off);
	rc = pcm_append_kset(im.a, ks, 1);
	ok(!rc && pos_is(pcm_appender_key_head(im.a), 2, 64),
	   "last edges: the next kset goes to segment 2");
	check_last_kset(&im, 0, PCM_DATA_SIZE - PCM_KSET_HDR_SIZE, 2);
	rc = log_fill_to(&im, ks, PCM_KSET_SIZE_MAX + 8) ||
	     pcm_append_kset(im.a, ks, PCM_KSET_KEYS_MAX);
	ok(!rc && pos_is(pcm_appender_key_head(im.a), 3, PCM_KSET_SIZE_MAX),
	   "last edges: a kset with only 8 bytes behind it moves to segment 3");
	check_last_kset(&im, 2, PCM_DATA_SIZE - PCM_KSET_SIZE_MAX - 8, 3);
	ok(img_reload(&im) == 0 && im.r->last_ksets == 2 && im.r->keys == im.n_keys,
	   "last edges: replay crosses both LAST ksets");
	if (im.r)
		check_replay(&im, "last edges");
out:
	img_destroy(&im);
}

static void test_last_by_writes(void)
{
	uint8_t data[512] = { 0 };
	struct img im;
	int rc = img_create(&im, GIB, false, 16 * MIB), bad = 0;
	unsigned n = 0;

	ok(rc == 0, "last writes: create image");
	if (rc)
		goto out;
	pcm_appender_set_persist(im.a, false);
	while (!bad && pcm_appender_key_head(im.a).cseg == 0) {
		fill(data, 8);
		bad = img_write(&im, rng() % (im.range / 512) * 512, data, sizeof(data), 0);
		n++;
	}
	ok(!bad && n > 3250 * 128, "last writes: %u sector writes move the log on", n);
	random_session(&im, 300, "last writes");
	ok(img_reload(&im) == 0 && im.r->last_ksets == 1 && im.r->keys == im.n_keys,
	      "last writes: replay crosses one LAST kset");
	if (im.r)
		check_replay(&im, "last writes");
out:
	img_destroy(&im);
}

/* Segments go out lowest free from the hint (the cseg last taken), wrapping once (4). */
static void test_alloc(void)
{
	uint32_t s[4] = { 0 }, t = 0, n = 0;
	struct img im;
	int rc = img_create(&im, GIB, false, 16 * MIB);

	ok(rc == 0, "alloc: create image");
	if (rc)
		goto out;
	for (int i = 0; i < 3; i++)
		rc |= pcm_appender_take_seg(im.a, 0, &s[i]);
	ok(!rc && s[0] == 1 && s[1] == 2 && s[2] == 3, "alloc: fresh cache hands out 1, 2, 3");
	rc = pcm_appender_release_seg(im.a, 2) || pcm_appender_take_seg(im.a, 0, &s[3]);
	ok(!rc && s[3] == 4, "alloc: a freed segment below the hint waits (got %u)", s[3]);
	while (pcm_appender_take_seg(im.a, 0, &t) == 0 && t != 2)
		n++;
	ok(t == 2 && n == im.c->n_segs - 5, "alloc: after the last segment it wraps to 2");
	ok(pcm_appender_take_seg(im.a, 0, &t) == -ENOSPC &&
	   pcm_appender_segs_used(im.a) == im.c->n_segs, "alloc: then the cache is full");
out:
	img_destroy(&im);
}

static void test_unflushed(void)
{
	uint8_t data[4096];
	struct img im;
	int rc = img_create(&im, GIB, false, 16 * MIB), bad = 0;

	ok(rc == 0, "unflushed: create image");
	if (rc)
		goto out;
	for (unsigned i = 0; i < 130; i++) {
		fill(data, sizeof(data));
		if (i < 128)
			bad |= img_write(&im, i * 8192ull, data, sizeof(data), 0);
		else
			bad |= pcm_append_write(im.a, i * 8192ull, data, sizeof(data), 0);
	}
	ok(!bad && pcm_appender_open_keys(im.a) == 2, "unflushed: 2 keys left open");
	pcm_appender_free(im.a);
	im.a = NULL;
	ok(img_reload(&im) == 0 && im.r->keys == 128 && pos_is(im.r->key_head, 0, 5144),
	      "unflushed: freeing without flush loses exactly the open kset");
	if (im.r)
		check_replay(&im, "unflushed");
out:
	img_destroy(&im);
}

static void test_args(void)
{
	struct pcm_key ks[PCM_KSET_KEYS_MAX + 1] = { 0 };
	uint8_t data[1024] = { 0 };
	struct pcm_appender *a2;
	struct pcm_dev *ro = NULL;
	struct pcm_cache *c2;
	struct img im;
	int rc = img_create(&im, GIB, false, 16 * MIB);

	ok(rc == 0, "args: create image");
	if (rc)
		goto out;
	ok(pcm_append_write(im.a, 0, data, 0, 0) == -EINVAL &&
	      pcm_append_write(im.a, 0, data, 100, 0) == -EINVAL &&
	      pcm_append_write(im.a, 100, data, 512, 0) == -EINVAL &&
	      pcm_append_write(im.a, 0, data, 512, PCM_KEY_F_EMPTY) == -EINVAL &&
	      pcm_append_kset(im.a, ks, PCM_KSET_KEYS_MAX + 1) == -EINVAL,
	      "args: bad length, offset, flags, key count give -EINVAL");
	ok(pcm_appender_open_keys(im.a) == 0 && pcm_appender_segs_used(im.a) == 1,
	      "args: refused calls leave no trace");
	rc = pcm_dev_open(im.path, PCM_DEV_RDONLY, &ro);
	if (!rc && pcm_cache_open(ro, &c2, NULL) == 0) {
		ok(pcm_appender_open(c2, im.r, &a2) == -EROFS, "args: read-only device: -EROFS");
		pcm_cache_close(c2);
	}
	pcm_dev_close(ro);
	im.r->failed = true;
	ok(pcm_appender_open(im.c, im.r, &a2) == -EINVAL, "args: failed replay: -EINVAL");
	im.r->failed = false;
	ok(pcm_appender_close(NULL) == 0, "args: closing NULL is a no-op");
out:
	img_destroy(&im);
}

int main(void)
{
	test_first_kset();
	test_key_head_advance();
	test_random(false, false);
	test_random(true, false);
	test_random(false, true);
	test_window_cross();
	test_seg_split();
	test_data_crc();
	test_enospc();
	test_last_crafted();
	test_last_edges();
	test_last_by_writes();
	test_alloc();
	test_unflushed();
	test_args();
	return tap_done();
}
