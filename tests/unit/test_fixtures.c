/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_fixtures.c - checks of libpcachemeta against the kernel-written
 * images (§11.3): our format is byte-identical to the kernel's,
 * cache open + replay of the fresh and dirty images give the documented
 * results, and applying the replayed extent map gives the same logical
 * device as applying the keys in log order.
 *
 * PCACHE_FIXTURES names the directory holding the decompressed fixtures
 * (default build/fixtures, where tests/run-tests.sh puts them).
 */
#include "pcachemeta.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FRESH_SIZE 1071644672ull
#define CHUNK (1u << 20)

static const char *fx_dir;

static char *fx_path(const char *name)
{
	static char buf[4][1024];
	static int n;
	char *p = buf[n++ & 3];

	snprintf(p, sizeof(buf[0]), "%s/%s", fx_dir, name);
	return p;
}

static bool have_fixture(const char *name)
{
	struct stat st;
	const char *p = fx_path(name);

	return ok(stat(p, &st) == 0 && S_ISREG(st.st_mode), "fixture %s present", p);
}

/* ---- format vs kernel image ---- */

/* First offset >= off holding data in fd, or end when the rest is a hole. */
static uint64_t next_data(int fd, uint64_t off, uint64_t end)
{
	off_t r = lseek(fd, (off_t)off, SEEK_DATA);

	if (r < 0)
		return errno == ENXIO ? end : off;   /* no SEEK_DATA: assume data */
	return (uint64_t)r;
}

/*
 * Compares two files of size bytes in 1 MiB chunks, skipping chunks that
 * are holes in both.  Returns the first differing offset, or UINT64_MAX.
 */
static uint64_t compare_files(const char *a, const char *b, uint64_t size, uint64_t *compared)
{
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
	uint8_t *ba = malloc(CHUNK), *bb = malloc(CHUNK);
	uint64_t diff = UINT64_MAX;

	*compared = 0;
	if (fa < 0 || fb < 0 || !ba || !bb) {
		diff = 0;
		goto out;
	}
	for (uint64_t off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;

		if (next_data(fa, off, size) >= off + n && next_data(fb, off, size) >= off + n)
			continue;   /* both read as zeros */
		if (pread(fa, ba, n, (off_t)off) != (ssize_t)n ||
		    pread(fb, bb, n, (off_t)off) != (ssize_t)n) {
			diff = off;
			break;
		}
		*compared += n;
		if (memcmp(ba, bb, n)) {
			for (size_t i = 0; i < n; i++)
				if (ba[i] != bb[i]) {
					diff = off + i;
					break;
				}
			break;
		}
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(ba);
	free(bb);
	return diff;
}

struct progress_log {
	unsigned calls;
	uint64_t last_done, last_total;
};

static void progress_cb(uint64_t done, uint64_t total, void *arg)
{
	struct progress_log *p = arg;

	p->calls++;
	p->last_done = done;
	p->last_total = total;
}

static void test_format_identical(bool data_crc, const char *fixture)
{
	const char *dir = getenv("TMPDIR");
	char tmp[512];
	struct pcm_format_opts o = { .data_crc = data_crc, .gc_percent = PCM_GC_PERCENT_DEFAULT };
	struct pcm_format_plan plan;
	struct pcm_dev *dev = NULL;
	struct progress_log pl = { 0 };
	uint64_t diff, compared;
	int fd, rc;

	if (!have_fixture(fixture))
		return;
	snprintf(tmp, sizeof(tmp), "%s/pcm-test-fmt-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(tmp);
	if (!ok(fd >= 0 && ftruncate(fd, (off_t)FRESH_SIZE) == 0,
		"create sparse %llu-byte temp image", FRESH_SIZE)) {
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return;
	}
	/* what an earlier user left in [0, 4096) (an ext4 superblock at 1024, a swap
	 * signature at 4086): format zeroes it, as the kernel's zeroed device has it */
	{
		uint8_t junk[4096];

		memset(junk, 0xa5, sizeof(junk));
		ok(pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk),
		   "junk written to [0, 4096) of the temp image");
	}
	close(fd);
	rc = pcm_format_plan(FRESH_SIZE, &o, &plan);
	if (!rc)
		rc = pcm_dev_open(tmp, PCM_DEV_RDWR, &dev);
	if (!rc)
		rc = pcm_format_write(dev, &plan, progress_cb, &pl);
	ok(rc == 0, "pcm_format_write %s (rc %d)", data_crc ? "data_crc" : "no data_crc", rc);
	ok(pl.calls >= 1 && pl.last_done == 63 && pl.last_total == 63,
	   "format progress ends at 63/63 (%u calls)", pl.calls);
	pcm_dev_close(dev);
	diff = compare_files(tmp, fx_path(fixture), FRESH_SIZE, &compared);
	ok(diff == UINT64_MAX, "formatted image (%s) is byte-identical to %s over %llu bytes "
	   "(%llu bytes with data compared; first difference %lld)",
	   data_crc ? "data_crc" : "no data_crc", fixture, FRESH_SIZE,
	   (unsigned long long)compared, diff == UINT64_MAX ? -1ll : (long long)diff);
	unlink(tmp);
}

/* ---- open + replay ---- */

struct key_log {
	struct pcm_key *k;
	size_t n, cap;
	unsigned bad_verdict, stale, not_dirty;
};

static int on_key(const struct pcm_walk *w, unsigned i, const struct pcm_key *k,
		  enum pcm_key_verdict v, bool stale, bool dirty, void *arg)
{
	struct key_log *l = arg;

	(void)w;
	(void)i;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct pcm_key *nk = realloc(l->k, cap * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		l->k = nk;
		l->cap = cap;
	}
	l->k[l->n++] = *k;
	l->bad_verdict += v != PCM_KEY_OK;
	l->stale += stale;
	l->not_dirty += !dirty;
	return 0;
}

struct ext_stats {
	uint64_t n, crc_ok, dirty, bytes;
};

static int ext_stat(const struct pcm_extent *e, void *arg)
{
	struct ext_stats *s = arg;

	s->n++;
	s->crc_ok += !!(e->flags & PCM_EXT_CRC_OK);
	s->dirty += !!(e->flags & PCM_EXT_DIRTY);
	s->bytes += e->len;
	return 0;
}

static int open_fixture(const char *name, struct pcm_dev **dev, struct pcm_cache **c)
{
	struct pcm_open_status st;
	int rc = pcm_dev_open(fx_path(name), PCM_DEV_RDONLY, dev);

	if (!ok(rc == 0, "%s: pcm_dev_open read-only (rc %d %s)", name, rc, pcm_dev_errmsg()))
		return rc;
	rc = pcm_cache_open(*dev, c, &st);
	if (!ok(rc == 0, "%s: pcm_cache_open (rc %d: %s)", name, rc, pcm_open_error_str(&st))) {
		pcm_dev_close(*dev);
		*dev = NULL;
	}
	return rc;
}

static void test_fresh(const char *name, bool data_crc)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct pcm_replay_opts o = { .verify_data = true };
	int rc;

	if (!have_fixture(name) || open_fixture(name, &dev, &c))
		return;
	ok(c->seg_num == 63 && c->n_segs == 63 && c->data_crc == data_crc && c->ci_slot == 1 &&
	   c->ci.flags == (data_crc ? 0x1183u : 0x1182u),
	   "%s: seg_num 63, n_segs 63, ci slot 1, flags 0x%x", name, c->ci.flags);
	ok(c->key_tail.pos.cseg == 0 && c->key_tail.pos.seg_off == 0 && c->key_tail.slot == 0 &&
	   c->dirty_tail.pos.cseg == 0 && c->dirty_tail.pos.seg_off == 0,
	   "%s: key_tail and dirty_tail 0:0 in slot 0", name);
	rc = pcm_replay_run(c, &o, &r);
	ok(rc == 0 && r, "%s: pcm_replay_run (rc %d)", name, rc);
	if (!rc) {
		ok(!r->failed && pcm_index_count(r->idx) == 0 && r->ksets == 0 && r->keys == 0,
		   "%s: replay ok, empty index, no ksets", name);
		ok(r->key_head.cseg == 0 && r->key_head.seg_off == 0, "%s: key_head 0:0 (got %u:%u)",
		   name, r->key_head.cseg, r->key_head.seg_off);
		ok(r->segs_used == 1 && r->seg_used[0] == 1, "%s: segs_used 1 (got %u)", name,
		   r->segs_used);
		ok(r->stop == PCM_STOP_TERMINATOR, "%s: walk stops at the terminator (stop %d: %s)",
		   name, r->stop, pcm_walk_stop_str(r->stop));
		ok(r->dirty_bytes == 0 && r->clean_bytes == 0 && r->live_extents == 0,
		   "%s: no dirty or clean bytes", name);
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
}

/* ---- logical device from the replay vs from the log ---- */

struct range {
	uint64_t off, end;
	uint8_t *a, *b, *raw;   /* extent-map result, log-order result, backing bytes */
};

static int cmp_range(const void *x, const void *y)
{
	const struct range *a = x, *b = y;

	return a->off < b->off ? -1 : a->off > b->off;
}

static struct range *find_range(struct range *v, size_t n, uint64_t off, uint64_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo].off <= off && off + len <= v[lo].end ? &v[lo] : NULL;
}

struct apply_ctx {
	const struct pcm_cache *c;
	struct range *v;
	size_t n;
	int err;
};

static int copy_cached(const struct pcm_cache *c, uint32_t cseg, uint32_t seg_off, uint32_t len,
		       uint8_t *dst)
{
	return pcm_dev_read(c->dev, pcm_pos_dev_off(c, cseg, seg_off), dst, len);
}

static int apply_extent(const struct pcm_extent *e, void *arg)
{
	struct apply_ctx *a = arg;
	struct range *r = find_range(a->v, a->n, e->off, e->len);

	if (!r) {
		a->err = -ERANGE;
		return 1;
	}
	a->err = copy_cached(a->c, e->cseg, e->seg_off, e->len, r->a + (e->off - r->off));
	return a->err != 0;
}

static void test_apply(const struct pcm_cache *c, const struct pcm_replay *r,
		       const struct key_log *kl, const char *back)
{
	struct range *v = calloc(kl->n ? kl->n : 1, sizeof(*v));
	struct apply_ctx a = { .c = c };
	size_t n = 0, i;
	uint64_t touched = 0, differs = 0;
	int fd = open(back, O_RDONLY), err = 0;
	bool same = true;

	if (!ok(v && fd >= 0, "apply: open backing image %s", back))
		goto out;
	/* union of the key ranges */
	for (i = 0; i < kl->n; i++)
		v[i] = (struct range){ .off = kl->k[i].off, .end = kl->k[i].off + kl->k[i].len };
	qsort(v, kl->n, sizeof(*v), cmp_range);
	for (i = 0; i < kl->n; i++) {
		if (n && v[i].off <= v[n - 1].end) {
			if (v[i].end > v[n - 1].end)
				v[n - 1].end = v[i].end;
		} else {
			v[n++] = v[i];
		}
	}
	for (i = 0; i < n && !err; i++) {
		size_t len = (size_t)(v[i].end - v[i].off);

		v[i].a = malloc(len);
		v[i].b = malloc(len);
		v[i].raw = malloc(len);
		if (!v[i].a || !v[i].b || !v[i].raw ||
		    pread(fd, v[i].raw, len, (off_t)v[i].off) != (ssize_t)len) {
			err = -EIO;
			break;
		}
		memcpy(v[i].a, v[i].raw, len);
		memcpy(v[i].b, v[i].raw, len);
		touched += len;
	}
	if (!ok(!err, "apply: %zu touched ranges, %llu bytes read from the backing image", n,
		(unsigned long long)touched))
		goto out;
	/* method 1: the replayed extent map */
	a.v = v;
	a.n = n;
	pcm_index_foreach(r->idx, apply_extent, &a);
	ok(a.err == 0, "apply: extent map copied onto the backing bytes (err %d)", a.err);
	/* method 2: every key in log order */
	for (i = 0; i < kl->n && !err; i++) {
		const struct pcm_key *k = &kl->k[i];
		struct range *rg = find_range(v, n, k->off, k->len);

		err = rg ? copy_cached(c, k->cseg, k->seg_off, k->len, rg->b + (k->off - rg->off))
			 : -ERANGE;
	}
	ok(!err, "apply: %zu keys copied in log order (err %d)", kl->n, err);
	for (i = 0; i < n; i++) {
		size_t len = (size_t)(v[i].end - v[i].off);

		if (memcmp(v[i].a, v[i].b, len)) {
			if (same)
				printf("# first differing range [%llu, %llu)\n",
				       (unsigned long long)v[i].off, (unsigned long long)v[i].end);
			same = false;
		}
		for (size_t j = 0; j < len; j++)
			differs += v[i].a[j] != v[i].raw[j];
	}
	ok(same, "apply: extent map and log-order application give identical bytes over all "
	   "touched ranges");
	ok(differs > 0, "apply: the result differs from the raw backing image (%llu bytes differ)",
	   (unsigned long long)differs);
out:
	for (i = 0; v && i < n; i++) {
		free(v[i].a);
		free(v[i].b);
		free(v[i].raw);
	}
	free(v);
	if (fd >= 0)
		close(fd);
}

static void test_dirty(void)
{
	const char *name = "kernel-dirty-300w.pmem", *back = "kernel-dirty-300w.back";
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct key_log kl = { 0 };
	struct pcm_replay_opts o = { .verify_data = true, .on_key = on_key, .arg = &kl };
	struct ext_stats es = { 0 };
	struct stat st;
	bool have_pmem = have_fixture(name), have_back = have_fixture(back);
	int rc;

	if (!have_pmem || !have_back || open_fixture(name, &dev, &c))
		return;
	if (stat(fx_path(back), &st) == 0)
		c->backing_size = (uint64_t)st.st_size;
	ok(c->data_crc && c->n_segs == 63 && c->ci_slot == 1, "%s: data_crc cache, 63 segs", name);
	ok(pcm_pos_eq(c->key_tail.pos, (struct pcm_pos){ 0, 0 }) &&
	   pcm_pos_eq(c->dirty_tail.pos, (struct pcm_pos){ 0, 0 }) && c->key_tail.slot == 0 &&
	   c->key_tail.seq == 1, "%s: key_tail = dirty_tail = 0:0 (slot 0, seq 1)", name);
	rc = pcm_replay_run(c, &o, &r);
	if (!ok(rc == 0 && r, "%s: pcm_replay_run with verify_data (rc %d)", name, rc))
		goto out;
	ok(!r->failed && !r->bad_key && r->bad_keys == 0, "%s: replay ok, no bad keys (%s)", name,
	   pcm_replay_error_str(r));
	ok(r->ksets == 16 && r->last_ksets == 0, "%s: 16 ksets, no LAST (got %llu, %llu)", name,
	   (unsigned long long)r->ksets, (unsigned long long)r->last_ksets);
	ok(r->keys == 1910 && kl.n == 1910, "%s: 1910 keys (replay %llu, on_key %zu)", name,
	   (unsigned long long)r->keys, kl.n);
	ok(r->stale_keys == 0 && kl.stale == 0, "%s: no stale keys", name);
	ok(kl.bad_verdict == 0, "%s: every key verifies, data CRC included", name);
	ok(kl.not_dirty == 0, "%s: every key is dirty (dirty_tail == key_tail)", name);
	ok(r->key_head.cseg == 0 && r->key_head.seg_off == 76784, "%s: key_head 0:76784 (got %u:%u)",
	   name, r->key_head.cseg, r->key_head.seg_off);
	ok(r->stop == PCM_STOP_TERMINATOR, "%s: walk ends at the terminator (stop %d)", name,
	   r->stop);
	ok(r->segs_used == 3 && r->seg_used[0] == 1 && r->seg_used[1] == 2 && r->seg_used[2] == 2,
	   "%s: segs_used 3: cseg 0 log, 1 and 2 data (got %u)", name, r->segs_used);
	ok(r->refs[0] == 0 && r->refs[1] + r->refs[2] == 1910,
	   "%s: references: cseg 1 %u + cseg 2 %u == 1910", name, r->refs[1], r->refs[2]);
	ok(r->dirty_tail_on_log && r->dirty_chain_stop < PCM_FAIL_HOPS,
	   "%s: dirty_tail met on the log", name);
	if (kl.n)
		ok(kl.k[0].off == 31920128 && kl.k[0].cseg == 1 && kl.k[0].seg_off == 0 &&
		   kl.k[0].data_crc == 0x7A209A3C && kl.k[0].len == 4096 && kl.k[0].flags == 0,
		   "%s: first key off 31920128, cseg 1, seg_off 0, data_crc 0x7A209A3C "
		   "(got %llu, %u, %u, 0x%08X)", name, (unsigned long long)kl.k[0].off, kl.k[0].cseg,
		   kl.k[0].seg_off, kl.k[0].data_crc);
	ok(r->dirty_bytes == 7532544 && r->clean_bytes == 0 &&
	   r->dirty_bytes + r->clean_bytes == 7532544,
	   "%s: dirty_bytes 7532544, clean_bytes 0 (got %llu, %llu)", name,
	   (unsigned long long)r->dirty_bytes, (unsigned long long)r->clean_bytes);
	pcm_index_foreach(r->idx, ext_stat, &es);
	ok(es.n == pcm_index_count(r->idx) && es.n == r->live_extents && es.bytes == 7532544,
	   "%s: %llu extents, %llu bytes", name, (unsigned long long)es.n,
	   (unsigned long long)es.bytes);
	ok(es.crc_ok == es.n && es.dirty == es.n, "%s: every extent has CRC_OK and DIRTY", name);
	test_apply(c, r, &kl, fx_path(back));
out:
	free(kl.k);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
}

int main(void)
{
	fx_dir = getenv("PCACHE_FIXTURES");
	if (!fx_dir || !*fx_dir)
		fx_dir = "build/fixtures";
	diag("fixtures from %s", fx_dir);
	test_format_identical(false, "kernel-fresh-1071644672-nocrc.pmem");
	test_format_identical(true, "kernel-fresh-1071644672-crc.pmem");
	test_fresh("kernel-fresh-1071644672-nocrc.pmem", false);
	test_fresh("kernel-fresh-1071644672-crc.pmem", true);
	test_dirty();
	return tap_done();
}
