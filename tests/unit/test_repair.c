/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Repair: each damage is repaired to a clean image whose logical content is
 * exactly what the surviving keys say (nothing recoverable lost), and a
 * repair cut short after any of its writes is finished by a second repair to
 * the same content.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcachemeta.h"
#include "tap.h"

#define RANGE (32u << 20)
#define SECT 512u
#define NSECT (RANGE / SECT)

struct logged { struct pcm_key k[PCM_KSET_KEYS_MAX]; unsigned n; struct pcm_pos at; };

static struct logged *ksets;
static unsigned nksets;

static void hook(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	(void)arg;
	ksets = realloc(ksets, (nksets + 1) * sizeof(*ksets));
	memcpy(ksets[nksets].k, keys, n * sizeof(*keys));
	ksets[nksets].n = n;
	ksets[nksets++].at = at;
}

/* A 600 MiB image with a few thousand random writes, flushed every 40. */
static struct pcm_dev *build(const char *path)
{
	struct pcm_format_opts fo = { .data_crc = true, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct pcm_appender *a;
	static uint8_t data[16384];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, 600ll << 20) || close(fd) ||
	    pcm_dev_open(path, PCM_DEV_RDWR, &dev) || pcm_format_plan(600ull << 20, &fo, &plan) ||
	    pcm_format_write(dev, &plan, NULL, NULL) || pcm_cache_open(dev, &c, NULL) ||
	    pcm_replay_run(c, NULL, &r) || pcm_appender_open(c, r, &a))
		return NULL;
	pcm_appender_set_hook(a, hook, NULL);
	pcm_appender_set_persist(a, false);
	tap_srand(42);
	for (int i = 0; i < 3000; i++) {
		uint32_t len = (uint32_t)(1 + tap_rand_below(32)) * SECT;
		uint64_t off = tap_rand_below((RANGE - len) / SECT) * SECT;

		for (uint32_t j = 0; j < len; j++)
			data[j] = (uint8_t)tap_rand();
		if (pcm_append_write(a, off, data, len, 0) || (i % 40 == 39 && pcm_append_flush(a)))
			return NULL;
	}
	pcm_appender_close(a);
	pcm_replay_free(r);
	pcm_cache_close(c);
	return dev;
}

/* What the kernel would serve for [0, RANGE) after loading dev (backing all zero). */
static uint8_t *content(struct pcm_dev *dev)
{
	uint8_t *out = calloc(1, RANGE);
	struct pcm_cache *c;
	struct pcm_replay *r;

	if (pcm_cache_open(dev, &c, NULL) || pcm_replay_run(c, NULL, &r)) {
		free(out);
		return NULL;
	}
	for (uint32_t s = 0; s < NSECT; s++) {
		const struct pcm_extent *e = pcm_index_lookup(r->idx, (uint64_t)s * SECT);

		if (e)
			pcm_dev_read(dev, pcm_pos_dev_off(c, e->cseg, e->seg_off +
				     (uint32_t)(s * SECT - e->off)), out + (size_t)s * SECT, SECT);
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
	return out;
}

/* The content the log says, skipping kset `skip` (or none with -1), from the cache data. */
#define SKIP_REST (-2)   /* skip_key: kset skip and every later one are lost */

static uint8_t *expected(struct pcm_dev *dev, int skip, int skip_key)
{
	uint8_t *out = calloc(1, RANGE);
	struct pcm_cache *c;

	if (pcm_cache_open_relaxed(dev, &c))
		return out;
	for (unsigned i = 0; i < nksets; i++)
		for (unsigned j = 0; j < ksets[i].n; j++) {
			const struct pcm_key *k = &ksets[i].k[j];

			if ((int)i == skip && (skip_key < 0 || (int)j == skip_key))
				continue;
			if (skip_key == SKIP_REST && skip >= 0 && (int)i >= skip)
				continue;   /* the log ends at kset skip */
			pcm_dev_read(dev, pcm_pos_dev_off(c, k->cseg, k->seg_off), out + k->off, k->len);
		}
	pcm_cache_close(c);
	return out;
}

static uint64_t kset_off(unsigned i)
{
	return pcm_seg_base(ksets[i].at.cseg) + PCM_DATA_OFF + ksets[i].at.seg_off;
}

static void flip(struct pcm_dev *dev, uint64_t off)
{
	uint8_t b;

	pcm_dev_read(dev, off, &b, 1);
	b ^= 0x5a;
	pcm_dev_write(dev, off, &b, 1);
}

/* Rewrites key j of kset i with an out-of-range seg_off, kset CRC made valid again. */
static void bad_key(struct pcm_dev *dev, unsigned i, unsigned j)
{
	uint8_t buf[PCM_KSET_SIZE_MAX];
	struct pcm_key k = ksets[i].k[j];
	size_t size = PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * ksets[i].n;

	pcm_dev_read(dev, kset_off(i), buf, size);
	k.seg_off = PCM_DATA_SIZE;
	pcm_key_encode(&k, buf + PCM_KSET_HDR_SIZE + (size_t)j * PCM_KEY_SIZE);
	pcm_record_seal(buf, size);
	pcm_dev_write(dev, kset_off(i), buf, size);
}

/* Every prefix of the plan's writes, repaired again, ends with the same content. */
static bool crash_points(struct pcm_dev *dev, const struct pcm_repair_plan *plan,
			 const uint8_t *want, struct pcm_repair_opts o)
{
	uint64_t n;
	const struct pcm_ov_write *w = pcm_dev_overlay_writes(plan->ov, &n);
	bool good = true;

	for (uint64_t k = 0; k < n && good; k++) {
		struct pcm_dev *ov;
		struct pcm_repair_plan *p2;
		uint8_t *got;

		if (pcm_dev_overlay(dev, &ov))
			return false;
		for (uint64_t i = 0; i < k; i++)
			pcm_dev_write(ov, w[i].off, w[i].data, w[i].len);
		if (pcm_repair_plan(ov, &o, &p2)) {
			pcm_dev_close(ov);
			return false;
		}
		got = content(p2->ov);
		good = got && p2->after.problems == 0 && !memcmp(got, want, RANGE);
		if (!good)
			diag("crash after write %llu of %llu: %llu problems left",
			     (unsigned long long)k, (unsigned long long)n,
			     (unsigned long long)p2->after.problems);
		free(got);
		pcm_repair_plan_free(p2);
		pcm_dev_close(ov);
	}
	return good;
}

struct damage {
	const char *name;
	void (*apply)(struct pcm_dev *dev);
	int skip, skip_key;          /* what is lost for good */
	enum pcm_repair_mode mode;
	bool salvage;
};

static void d_kset_crc(struct pcm_dev *d) { flip(d, kset_off(5) + 24 + 40 * 3 + 9); }
static void d_ci_both(struct pcm_dev *d)
{
	pcm_dev_zero(d, PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_SIZE);
	pcm_dev_zero(d, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, PCM_CACHE_INFO_SIZE);
}
static void d_key_tail(struct pcm_dev *d) { pcm_dev_zero(d, PCM_KEY_TAIL_OFF, 2 * PCM_POS_SIZE); }
static void d_bad_key(struct pcm_dev *d) { bad_key(d, 7, 3); }
static void d_seginfo(struct pcm_dev *d) { flip(d, pcm_seg_base(2) + PCM_SEG_INFO_SLOT + 9); }
static void d_head(struct pcm_dev *d) { flip(d, kset_off(nksets - 1) + 30); }
static void d_dirty_tail(struct pcm_dev *d)
{
	struct pcm_pos_rec p = { .h.seq = 2, .pos = { ksets[3].at.cseg, ksets[3].at.seg_off + 40 } };
	uint8_t rec[PCM_POS_SIZE];

	pcm_pos_rec_encode(&p, rec);
	pcm_record_seal(rec, sizeof(rec));
	pcm_dev_write(d, PCM_DIRTY_TAIL_OFF + PCM_POS_SIZE, rec, sizeof(rec));
}

/* A key of kset 5 moved across a 4 MiB window boundary, kset resealed: a splice at a valid kset. */
static void d_key_window(struct pcm_dev *d)
{
	uint8_t buf[PCM_KSET_SIZE_MAX];
	size_t size = PCM_KSET_HDR_SIZE + (size_t)PCM_KEY_SIZE * ksets[5].n;
	unsigned j = 0;
	struct pcm_key k;

	while (j + 1 < ksets[5].n && ksets[5].k[j].len < 2 * SECT)
		j++;
	k = ksets[5].k[j];
	k.off = ((1 + (k.off >> PCM_WINDOW_SHIFT) % 7) << PCM_WINDOW_SHIFT) - k.len / 2 / SECT * SECT;
	pcm_dev_read(d, kset_off(5), buf, size);
	pcm_key_encode(&k, buf + PCM_KSET_HDR_SIZE + (size_t)j * PCM_KEY_SIZE);
	pcm_record_seal(buf, size);
	pcm_dev_write(d, kset_off(5), buf, size);
}

/* The index of the plan's write that splices: a LAST kset header. */
static uint64_t splice_write(const struct pcm_ov_write *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct pcm_kset_hdr h;

		if (w[i].len != PCM_KSET_HDR_SIZE)
			continue;
		pcm_kset_hdr_decode(w[i].data, &h);
		if (h.magic == PCM_KSET_MAGIC && h.flags == PCM_KSET_F_LAST)
			return i;
	}
	return n;
}

/*
 * The splice's LAST kset torn by a crash over the valid kset it replaces, either
 * way (8-byte stores): its crc and key_num only, or its flags only.  The next
 * repair must end with what the whole one gives (§13.4).
 */
static void test_torn_last(const char *base, const char *path)
{
	char cmd[600];
	struct pcm_repair_opts o = { .mode = PCM_REPAIR_ALL };
	struct pcm_repair_plan *plan, *p2;
	struct pcm_dev *dev, *ov;
	const struct pcm_ov_write *w;
	uint8_t *want, *got;
	uint64_t n, l;

	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", base, path);
	if (!ok(system(cmd) == 0 && !pcm_dev_open(path, PCM_DEV_RDWR, &dev), "torn LAST: copy"))
		return;
	d_key_window(dev);
	if (!ok(!pcm_repair_plan(dev, &o, &plan), "torn LAST: plan")) {
		pcm_dev_close(dev);
		return;
	}
	want = content(plan->ov);
	w = pcm_dev_overlay_writes(plan->ov, &n);
	l = splice_write(w, n);
	ok(l < n, "torn LAST: the repair of a key across a window splices (write %llu of %llu)",
	   (unsigned long long)l, (unsigned long long)n);
	for (int way = 0; l < n && way < 2; way++) {
		pcm_dev_overlay(dev, &ov);
		for (uint64_t i = 0; i < l; i++)
			pcm_dev_write(ov, w[i].off, w[i].data, w[i].len);
		pcm_dev_write(ov, w[l].off + (way ? 16 : 0), w[l].data + (way ? 16 : 0), way ? 8 : 16);
		got = NULL;
		if (!pcm_repair_plan(ov, &o, &p2)) {
			got = content(p2->ov);
			ok(got && want && p2->after.problems == 0 && !memcmp(got, want, RANGE),
			   "torn LAST: %s landed: the next repair gives the same content",
			   way ? "only its flags" : "only its crc and key_num");
			pcm_repair_plan_free(p2);
		}
		free(got);
		pcm_dev_close(ov);
	}
	free(want);
	pcm_repair_plan_free(plan);
	pcm_dev_close(dev);
}

/* Per sector: 1 + (kset << 8 | key) of the newest key writing it, 0 for none. */
static uint32_t *newest_writers(void)
{
	uint32_t *w = calloc(NSECT, sizeof(*w));

	for (unsigned i = 0; w && i < nksets; i++)
		for (unsigned j = 0; j < ksets[i].n; j++)
			for (uint64_t s = ksets[i].k[j].off / SECT;
			     s < (ksets[i].k[j].off + ksets[i].k[j].len) / SECT; s++)
				w[s] = 1 + (i << 8 | j);
	return w;
}

static bool in_ranges(const struct pcm_range *v, uint64_t n, uint64_t off)
{
	for (uint64_t i = 0; i < n; i++)
		if (off >= v[i].off && off - v[i].off < v[i].len)
			return true;
	return false;
}

/*
 * kset 5 corrupt (key 3's bytes flipped): the ranges a repair reports lost are
 * exactly the sectors whose newest key is in a kset it drops (after 5, without
 * salvage), and the suspect ranges cover those of kset 5's other keys.
 */
static void check_lost_ranges(const struct pcm_repair_plan *p, const struct damage *dm)
{
	uint32_t *w = newest_writers();
	uint64_t bad_exact = 0, bad_suspect = 0;

	for (uint64_t s = 0; w && s < NSECT; s++) {
		unsigned ks = (w[s] - 1) >> 8, key = (w[s] - 1) & 0xff;
		bool lost = w[s] && !dm->salvage && ks > 5;

		if (lost != in_ranges(p->lost_ranges, p->nlost_ranges, s * SECT))
			bad_exact++;
		if (w[s] && ks == 5 && key != 3 &&
		    !in_ranges(p->suspect_ranges, p->nsuspect_ranges, s * SECT))
			bad_suspect++;
	}
	ok(w && p->lost_ranges_known && !bad_exact, "%s: the lost ranges are exactly the "
	   "sectors whose newest key is dropped (%llu wrong, %llu ranges)", dm->name,
	   (unsigned long long)bad_exact, (unsigned long long)p->nlost_ranges);
	ok(w && p->nsuspect_ranges && !bad_suspect, "%s: the suspect ranges cover what the "
	   "corrupt kset's readable keys held (%llu sectors missing)", dm->name,
	   (unsigned long long)bad_suspect);
	free(w);
}

static void run_case(const char *base, const char *path, const struct damage *dm)
{
	char cmd[600];
	struct pcm_dev *dev;
	struct pcm_repair_plan *plan;
	struct pcm_repair_opts o = { .mode = dm->mode, .salvage = dm->salvage };
	struct pcm_check_result res;
	uint8_t *want, *got;

	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", base, path);
	if (!ok(system(cmd) == 0 && !pcm_dev_open(path, PCM_DEV_RDWR, &dev), "%s: copy", dm->name))
		return;
	want = expected(dev, dm->skip, dm->skip_key);
	dm->apply(dev);
	memset(&res, 0, sizeof(res));
	pcm_check_run(dev, NULL, &res);
	ok(res.problems > 0, "%s: fsck -n finds %llu problems", dm->name,
	   (unsigned long long)res.problems);
	if (!ok(!pcm_repair_plan(dev, &o, &plan), "%s: plan", dm->name))
		goto out;
	ok(plan->nact > 0 && plan->after.problems == 0, "%s: %llu actions leave no problem",
	   dm->name, (unsigned long long)plan->nact);
	if (dm->apply == d_kset_crc)
		check_lost_ranges(plan, dm);
	ok(crash_points(dev, plan, want, o), "%s: a repair cut short after any write is "
	   "finished by the next one", dm->name);
	ok(!pcm_repair_apply(dev, plan, NULL), "%s: applied", dm->name);
	got = content(dev);
	ok(got && !memcmp(got, want, RANGE), "%s: content is what the surviving keys say",
	   dm->name);
	ok(!pcm_check_run(dev, NULL, &res) && res.problems == 0, "%s: clean afterwards", dm->name);
	free(got);
	pcm_repair_plan_free(plan);
out:
	free(want);
	pcm_dev_close(dev);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char base[256], path[256];
	const struct damage cases[] = {
		{ "kset crc in the middle", d_kset_crc, 5, SKIP_REST, PCM_REPAIR_ALL, false },
		{ "kset crc in the middle, salvaged", d_kset_crc, 5, -1, PCM_REPAIR_ALL, true },
		{ "cache_info both replicas", d_ci_both, -1, -1, PCM_REPAIR_ALL, false },
		{ "key_tail both replicas", d_key_tail, -1, -1, PCM_REPAIR_ALL, false },
		{ "key past its data area", d_bad_key, 7, 3, PCM_REPAIR_ALL, false },
		{ "segment info replica (-p)", d_seginfo, -1, -1, PCM_REPAIR_SAFE, false },
		{ "torn kset at the head", d_head, 0, -1, PCM_REPAIR_ALL, false },
		{ "dirty_tail inside a kset (-p)", d_dirty_tail, -1, -1, PCM_REPAIR_SAFE, false },
	};
	struct pcm_dev *dev;

	snprintf(base, sizeof(base), "%s/test_repair.%d.base", tmp, (int)getpid());
	snprintf(path, sizeof(path), "%s/test_repair.%d.img", tmp, (int)getpid());
	dev = build(base);
	if (!ok(dev != NULL && nksets > 20, "built an image with %u ksets", nksets))
		return tap_done();
	pcm_dev_close(dev);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct damage d = cases[i];

		if (d.apply == d_head)
			d.skip = (int)nksets - 1;
		run_case(base, path, &d);
	}
	test_torn_last(base, path);
	unlink(base);
	unlink(path);
	free(ksets);
	return tap_done();
}
