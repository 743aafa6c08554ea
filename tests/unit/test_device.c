/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_device: the device layer on real-device concerns that can run on files:
 *   - media errors: a mapped file truncated under the mapping (pages past EOF raise
 *     SIGBUS, as poisoned pmem does) and the PCACHE_TEST_POISON seam give -EIO from
 *     pcm_dev_read/crc/write, the walk and key checks, and never kill the process;
 *     a SIGBUS outside a guarded access still gets the default action;
 *   - bad blocks: the PCACHE_TEST_BADBLOCKS seam, merging and lookup, the check pass
 *     that maps them onto the layout (MEDIA_BADBLOCK), and repair refusing to write
 *     over them unless forced;
 *   - holders: a file locked by another process is busy (-EBUSY, named in errmsg);
 *     exclusive readers share, a writer excludes them.
 * Block devices, dm holders and real badblocks need root and hardware: see
 * tests/bats/badblocks.bats and list.bats.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pcachemeta.h"
#include "tap.h"

#define IMG_SIZE (600ull << 20)
#define PAGE 4096ull

static char img_path[256];
static bool sigbus_handled_before;   /* a SIGBUS handler existed before ours (e.g. ASan) */

/*
 * A formatted 600 MiB sparse image with DATA_CRC: 60 writes of 64 KiB, 1 MiB apart,
 * odd ones CLEAN, each flushed: the log is 60 ksets of one key (64 bytes) from 0:0.
 */
static int make_image(void)
{
	struct pcm_format_opts fo = { .data_crc = true, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev = NULL;
	struct pcm_cache *c = NULL;
	struct pcm_replay *r = NULL;
	struct pcm_appender *a = NULL;
	static uint8_t data[65536];
	int fd, rc;

	if (!img_path[0]) {
		const char *t = getenv("TMPDIR");

		snprintf(img_path, sizeof(img_path), "%s/test_device.XXXXXX", t && *t ? t : "/tmp");
		fd = mkstemp(img_path);
	} else {
		fd = open(img_path, O_RDWR | O_TRUNC);
	}
	if (fd < 0)
		return -errno;
	rc = ftruncate(fd, (off_t)IMG_SIZE) ? -errno : 0;
	close(fd);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	if (!rc)
		rc = pcm_format_plan(IMG_SIZE, &fo, &plan);
	if (!rc)
		rc = pcm_dev_open(img_path, PCM_DEV_RDWR, &dev);
	if (!rc)
		rc = pcm_format_write(dev, &plan, NULL, NULL);
	if (!rc)
		rc = pcm_cache_open(dev, &c, NULL);
	if (!rc)
		rc = pcm_replay_run(c, NULL, &r);
	if (!rc)
		rc = pcm_appender_open(c, r, &a);
	if (!rc)
		pcm_appender_set_persist(a, false);
	for (uint64_t i = 0; !rc && i < 60; i++) {
		rc = pcm_append_write(a, i * (1u << 20), data, sizeof(data),
				      i % 2 ? PCM_KEY_F_CLEAN : 0);
		if (!rc)
			rc = pcm_append_flush(a);
	}
	if (a) {
		int rc2 = pcm_appender_close(a);

		rc = rc ? rc : rc2;
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return rc;
}

static int shrink(uint64_t size)
{
	int fd = open(img_path, O_RDWR);
	int rc;

	if (fd < 0)
		return -errno;
	rc = ftruncate(fd, (off_t)size) ? -errno : 0;
	close(fd);
	return rc;
}

static bool sigbus_blocked(void)
{
	sigset_t s;

	sigprocmask(SIG_BLOCK, NULL, &s);
	return sigismember(&s, SIGBUS);
}

/* The first live extent of dev's cache (device offset of its data), or false. */
static int first_extent_cb(const struct pcm_extent *e, void *arg)
{
	*(struct pcm_extent *)arg = *e;
	return 1;
}

static bool first_extent(struct pcm_dev *dev, struct pcm_extent *e, uint64_t *devoff)
{
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	bool found = false;

	if (pcm_cache_open(dev, &c, NULL))
		return false;
	if (!pcm_replay_run(c, NULL, &r) && pcm_index_foreach(r->idx, first_extent_cb, e)) {
		*devoff = pcm_pos_dev_off(c, e->cseg, e->seg_off);
		found = true;
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
	return found;
}

static void test_truncated_mapping(void)
{
	struct pcm_dev *ro = NULL, *rw = NULL;
	struct pcm_open_status st;
	struct pcm_check_result res;
	struct pcm_cache *c = NULL;
	uint8_t buf[4096];
	uint32_t crc = 0;
	int rc;

	if (!ok(make_image() == 0, "truncate: image made"))
		return;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &ro);
	ok(rc == 0 && pcm_dev_ptr(ro, 0, 1) != NULL, "truncate: read-only open is mapped (rc %d)", rc);
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR, &rw);
	ok(rc == 0, "truncate: read-write open (rc %d)", rc);
	if (!ro || !rw)
		goto out;
	/* superblock and cache_info replica 0 stay; everything from 12288 on is gone */
	ok(shrink(3 * PAGE) == 0, "truncate: file cut to 12288 bytes under both mappings");
	rc = pcm_dev_read(ro, PCM_SB_OFF, buf, PCM_SB_SIZE);
	ok(rc == 0, "truncate: read before EOF works (rc %d)", rc);
	rc = pcm_dev_read(ro, 1 << 20, buf, 16);
	ok(rc == -EIO, "truncate: read past EOF -> -EIO, not SIGBUS (rc %d)", rc);
	rc = pcm_dev_read(ro, 1 << 20, buf, 16);
	ok(rc == -EIO, "truncate: and again -> -EIO (rc %d)", rc);
	ok(!sigbus_blocked(), "truncate: SIGBUS is not left blocked after the jump");
	rc = pcm_dev_read(ro, 3 * PAGE - 8, buf, 16);
	ok(rc == -EIO, "truncate: read crossing EOF -> -EIO (rc %d)", rc);
	rc = pcm_dev_crc(ro, 0, 1 << 20, PCM_CRC_SEED, &crc);
	ok(rc == -EIO, "truncate: pcm_dev_crc over the hole -> -EIO (rc %d)", rc);
	rc = pcm_dev_crc(ro, 0, PAGE, PCM_CRC_SEED, &crc);
	ok(rc == 0 && pcm_dev_read(ro, 0, buf, PAGE) == 0 &&
	   crc == pcm_crc32c(PCM_CRC_SEED, buf, PAGE), "truncate: pcm_dev_crc before EOF matches");
	rc = pcm_dev_write(rw, 1 << 20, buf, 16);
	ok(rc == -EIO, "truncate: write past EOF -> -EIO (rc %d)", rc);
	rc = pcm_dev_zero(rw, 1 << 20, 4096);
	ok(rc == -EIO, "truncate: zero past EOF -> -EIO (rc %d)", rc);
	rc = pcm_cache_open(ro, &c, &st);
	ok(rc == -EIO && st.err == PCM_OPEN_IO, "truncate: pcm_cache_open -> -EIO, PCM_OPEN_IO (rc %d)",
	   rc);
	pcm_cache_close(c);
	rc = pcm_check_run(ro, NULL, &res);
	ok(rc == -EIO, "truncate: pcm_check_run -> -EIO, the process lives (rc %d)", rc);
out:
	pcm_dev_close(ro);
	pcm_dev_close(rw);
}

struct probs {
	unsigned n;
	struct pcm_problem p[64];
};

static void collect(const struct pcm_problem *p, void *arg)
{
	struct probs *ps = arg;

	if (ps->n < 64)
		ps->p[ps->n] = *p;
	ps->n++;
}

static const struct pcm_problem *find_problem(const struct probs *ps, enum pcm_problem_code code,
					      const char *where)
{
	for (unsigned i = 0; i < ps->n && i < 64; i++)
		if (ps->p[i].code == code && (!where || !strcmp(ps->p[i].where, where)))
			return &ps->p[i];
	return NULL;
}

/* PCACHE_TEST_POISON: pages that raise SIGBUS without touching the file. */
static void test_poison(void)
{
	struct pcm_dev *dev = NULL;
	struct pcm_cache *c = NULL;
	struct pcm_walk *w = malloc(sizeof(*w));
	struct pcm_extent e;
	struct pcm_key k = { 0 };
	struct pcm_check_opts co = { .report = collect };
	struct probs ps = { 0 };
	struct pcm_check_result res;
	uint64_t log0 = pcm_seg_base(0) + PCM_DATA_OFF, data = 0;
	char env[64];
	uint8_t buf[64];
	uint32_t crc;
	int rc;

	if (!ok(make_image() == 0 && w, "poison: image made"))
		goto out;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	ok(rc == 0 && first_extent(dev, &e, &data), "poison: first extent found (rc %d)", rc);
	pcm_dev_close(dev);
	dev = NULL;

	/* the log's first page */
	snprintf(env, sizeof(env), "%llu:1", (unsigned long long)log0);
	setenv("PCACHE_TEST_POISON", env, 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	unsetenv("PCACHE_TEST_POISON");
	if (!ok(rc == 0, "poison: open with the log start poisoned (rc %d)", rc))
		goto out;
	rc = pcm_dev_read(dev, log0, buf, 24);
	ok(rc == -EIO, "poison: read of the poisoned page -> -EIO (rc %d)", rc);
	rc = pcm_cache_open(dev, &c, NULL);
	ok(rc == 0, "poison: the cache opens (metadata intact) (rc %d)", rc);
	if (!rc) {
		enum pcm_walk_event ev;

		pcm_walk_init(w, c, c->key_tail.pos);
		ev = pcm_walk_next(w);
		ok(ev == PCM_WALK_FAIL && w->stop == PCM_FAIL_IO && w->err == -EIO,
		   "poison: the walk fails with PCM_FAIL_IO/-EIO (stop %d err %d)", w->stop, w->err);
		pcm_cache_close(c);
		c = NULL;
	}
	pcm_dev_close(dev);
	dev = NULL;

	/*
	 * The log's third page: the kernel reads 5144 bytes at each position, so the
	 * ksets at 0:0 .. 0:3008 are read and the one at 0:3072 fails.
	 */
	snprintf(env, sizeof(env), "%llu:1", (unsigned long long)(log0 + 2 * PAGE));
	setenv("PCACHE_TEST_POISON", env, 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	unsetenv("PCACHE_TEST_POISON");
	if (!ok(rc == 0, "poison: open with the log's third page poisoned (rc %d)", rc))
		goto out;
	co.arg = &ps;
	rc = pcm_check_run(dev, &co, &res);
	ok(rc == 0 && find_problem(&ps, PCM_P_LOG_IO, "kset 0:3072") &&
	   res.verdict == PCM_VERDICT_REFUSES && res.ksets == 48,
	   "poison: check reports LOG_IO at kset 0:3072 after 48 ksets, the kernel refuses "
	   "(rc %d, %u problems, %llu ksets)", rc, ps.n, (unsigned long long)res.ksets);
	pcm_dev_close(dev);
	dev = NULL;

	/* a data page of a live extent */
	snprintf(env, sizeof(env), "%llu:1", (unsigned long long)data);
	setenv("PCACHE_TEST_POISON", env, 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	unsetenv("PCACHE_TEST_POISON");
	if (!ok(rc == 0, "poison: open with cached data poisoned (rc %d)", rc))
		goto out;
	rc = pcm_dev_crc(dev, data, e.len, PCM_CRC_SEED, &crc);
	ok(rc == -EIO, "poison: pcm_dev_crc over poisoned data -> -EIO (rc %d)", rc);
	rc = pcm_cache_open(dev, &c, NULL);
	if (ok(rc == 0, "poison: the cache opens (rc %d)", rc)) {
		k = (struct pcm_key){ .off = e.off, .len = e.len, .cseg = e.cseg, .seg_off = e.seg_off,
				      .seg_gen = e.seg_gen };
		ok(pcm_key_check(c, &k, true) == PCM_KEY_IO, "poison: key check with data -> PCM_KEY_IO");
		ok(pcm_key_check(c, &k, false) == PCM_KEY_OK, "poison: key check without data -> OK");
		pcm_cache_close(c);
		c = NULL;
	}
	pcm_dev_close(dev);
	dev = NULL;

	/* NOMAP: nothing is mapped, the seam does not apply */
	setenv("PCACHE_TEST_POISON", env, 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &dev);
	unsetenv("PCACHE_TEST_POISON");
	ok(rc == 0 && pcm_dev_crc(dev, data, e.len, PCM_CRC_SEED, &crc) == 0,
	   "poison: NOMAP reads with pread, unaffected");
	pcm_dev_close(dev);
	dev = NULL;
	setenv("PCACHE_TEST_POISON", "junk", 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	unsetenv("PCACHE_TEST_POISON");
	ok(rc == -EINVAL, "poison: malformed PCACHE_TEST_POISON -> -EINVAL (rc %d)", rc);
	if (!rc)
		pcm_dev_close(dev);
	dev = NULL;
out:
	pcm_cache_close(c);
	pcm_dev_close(dev);
	free(w);
}

/* A sanitizer's report of the child's death is expected: keep it off the log. */
static void quiet_child(void)
{
	int fd = open("/dev/null", O_WRONLY);

	if (fd >= 0)
		dup2(fd, STDERR_FILENO);
}

/* A SIGBUS outside a guarded access must still stop the process. */
static void test_unguarded(void)
{
	struct pcm_dev *dev = NULL;
	int status = 0, rc;
	pid_t pid;

	if (!ok(make_image() == 0, "unguarded: image made"))
		return;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	if (!ok(rc == 0 && shrink(3 * PAGE) == 0, "unguarded: mapped, then truncated (rc %d)", rc))
		goto out;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		const volatile uint8_t *p = pcm_dev_ptr(dev, 1 << 20, 1);

		quiet_child();
		alarm(10);
		if (p)
			(void)*p;   /* unguarded: SIGBUS */
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid, "unguarded: child ran");
	if (sigbus_handled_before)
		ok(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status)),
		   "unguarded: the earlier SIGBUS handler got it (status 0x%x)", status);
	else
		ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		   "unguarded: the child died of SIGBUS (status 0x%x)", status);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		quiet_child();
		alarm(10);
		raise(SIGBUS);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid &&
	   (sigbus_handled_before ? !(WIFEXITED(status) && !WEXITSTATUS(status)) :
	    WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS),
	   "unguarded: a sent SIGBUS still terminates (status 0x%x)", status);
out:
	pcm_dev_close(dev);
}

struct tharg {
	struct pcm_dev *dev;
	uint64_t bad, good;
	unsigned wrong;
};

static void *reader(void *arg)
{
	struct tharg *t = arg;
	uint8_t buf[64];

	for (int i = 0; i < 2000; i++) {
		if (pcm_dev_read(t->dev, t->bad, buf, sizeof(buf)) != -EIO)
			t->wrong++;
		if (pcm_dev_read(t->dev, t->good, buf, sizeof(buf)) != 0)
			t->wrong++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct pcm_dev *dev = NULL;
	struct tharg t[4];
	pthread_t th[4];
	unsigned wrong = 0;
	int rc;

	if (!ok(make_image() == 0, "threads: image made"))
		return;
	setenv("PCACHE_TEST_POISON", "65536:4096,131072:4096,196608:4096,262144:4096", 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	unsetenv("PCACHE_TEST_POISON");
	if (!ok(rc == 0, "threads: open with four poisoned pages (rc %d)", rc))
		return;
	for (int i = 0; i < 4; i++) {
		t[i] = (struct tharg){ .dev = dev, .bad = 65536ull * (uint64_t)(i + 1),
				       .good = PCM_SB_OFF };
		pthread_create(&th[i], NULL, reader, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		wrong += t[i].wrong;
	}
	ok(wrong == 0, "threads: 4 x 2000 guarded reads of poisoned and good pages (%u wrong)", wrong);
	pcm_dev_close(dev);
}

static int count_cb(uint64_t off, uint64_t len, void *arg)
{
	struct pcm_badblock *v = arg;

	for (int i = 0; i < 8; i++)
		if (!v[i].len) {
			v[i] = (struct pcm_badblock){ off, len };
			break;
		}
	return 0;
}

static int stop_cb(uint64_t off, uint64_t len, void *arg)
{
	(void)off, (void)len, (void)arg;
	return 42;
}

static void test_badblock_list(void)
{
	struct pcm_dev *dev = NULL, *ov = NULL;
	struct pcm_badblock v[8];
	const struct pcm_badblock *l;
	size_t n = 0;
	int rc;

	if (!ok(make_image() == 0, "badblocks: image made"))
		return;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	ok(rc == 0 && pcm_dev_badblock_list(dev, &l, &n) == 0 && n == 0,
	   "badblocks: a file on a filesystem without DAX has none (n %zu)", n);
	pcm_dev_close(dev);
	dev = NULL;

	setenv("PCACHE_TEST_BADBLOCKS", "8192:512,100:10,105:20,4096:0,125:5,0x100000:4096,"
	       "629145000:1000", 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	if (!ok(rc == 0, "badblocks: open (rc %d)", rc))
		goto out;
	memset(v, 0, sizeof(v));
	rc = pcm_dev_badblocks(dev, count_cb, v);
	ok(rc == 0 && v[0].off == 100 && v[0].len == 30 && v[1].off == 8192 && v[1].len == 512 &&
	   v[2].off == 1048576 && v[2].len == 4096 && v[3].off == 629145000 &&
	   v[3].len == IMG_SIZE - 629145000 && v[4].len == 0,
	   "badblocks: sorted, merged (touching too), empty dropped, clipped at the end");
	rc = pcm_dev_badblocks(dev, stop_cb, NULL);
	ok(rc == 42, "badblocks: the callback's non-zero return stops and is returned (rc %d)", rc);
	rc = pcm_dev_badblock_list(dev, &l, &n);
	ok(rc == 0 && n == 4, "badblocks: pcm_dev_badblock_list (n %zu)", n);
	ok(pcm_badblock_find(l, n, 0, 100) == NULL && pcm_badblock_find(l, n, 0, 101) == &l[0] &&
	   pcm_badblock_find(l, n, 129, 1) == &l[0] && pcm_badblock_find(l, n, 130, 8062) == NULL &&
	   pcm_badblock_find(l, n, 130, 8063) == &l[1] && pcm_badblock_find(l, n, 9000, 0) == NULL &&
	   pcm_badblock_find(l, n, 2000000, 1) == NULL,
	   "badblocks: pcm_badblock_find edges");
	rc = pcm_dev_overlay(dev, &ov);
	memset(v, 0, sizeof(v));
	ok(rc == 0 && pcm_dev_badblocks(ov, count_cb, v) == 0 && v[0].off == 100 && v[3].len,
	   "badblocks: an overlay reports its base's");
	pcm_dev_close(ov);
	pcm_dev_close(dev);
	dev = NULL;
	setenv("PCACHE_TEST_BADBLOCKS", "12:x", 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	ok(rc == 0 && pcm_dev_badblock_list(dev, &l, &n) == -EINVAL,
	   "badblocks: malformed PCACHE_TEST_BADBLOCKS -> -EINVAL");
out:
	unsetenv("PCACHE_TEST_BADBLOCKS");
	pcm_dev_close(dev);
}

/* check with injected bad blocks; returns the problems and the verdict */
static int check_with(const char *bb, struct probs *ps, struct pcm_check_result *res)
{
	struct pcm_check_opts co = { .report = collect, .arg = ps };
	struct pcm_dev *dev = NULL;
	int rc;

	memset(ps, 0, sizeof(*ps));
	/* the list is read when first asked for: the variable must still be set then */
	setenv("PCACHE_TEST_BADBLOCKS", bb, 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	if (!rc)
		rc = pcm_check_run(dev, &co, res);
	unsetenv("PCACHE_TEST_BADBLOCKS");
	pcm_dev_close(dev);
	return rc;
}

static void test_media_check(void)
{
	struct pcm_dev *dev = NULL;
	struct pcm_extent e;
	struct probs ps;
	struct pcm_check_result res;
	const struct pcm_problem *p;
	uint64_t data = 0, seg5 = pcm_seg_base(5);
	char bb[512];
	int rc;

	if (!ok(make_image() == 0, "media: image made"))
		return;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &dev);
	ok(rc == 0 && first_extent(dev, &e, &data), "media: first extent");
	pcm_dev_close(dev);

	rc = check_with("", &ps, &res);
	ok(rc == 0 && ps.n == 0 && res.verdict == PCM_VERDICT_LOADS, "media: clean image, no problem");

	snprintf(bb, sizeof(bb), "4096:512,12288:512,16400:16,%llu:4096,%llu:512,%llu:4096",
		 (unsigned long long)(seg5 + PCM_SEG_CTRL_OFF),
		 (unsigned long long)(pcm_seg_base(0) + PCM_DATA_OFF),
		 (unsigned long long)(data + 4096));
	rc = check_with(bb, &ps, &res);
	ok(rc == 0, "media: check with six bad blocks (rc %d)", rc);
	ok(find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "superblock") &&
	   find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "superblock block"),
	   "media: superblock and the rest of its block");
	ok(find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "cache_info replica 1"),
	   "media: cache_info replica 1");
	p = find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "key_tail replica 1");
	ok(p && p->offset == 16400 && !find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "key_tail replica 0"),
	   "media: key_tail replica 1 only");
	ok(find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "segment 5 (device segment 5) gen replica 0") &&
	   find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "segment 5 (device segment 5) gen replica 1") &&
	   find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "segment 5 (device segment 5) metadata"),
	   "media: both gen replicas of segment 5 and its reserved bytes");
	p = find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "kset 0:0");
	ok(p && p->offset == pcm_seg_base(0) + PCM_DATA_OFF, "media: the first kset (kset 0:0)");
	p = NULL;
	for (unsigned i = 0; i < ps.n && i < 64; i++)
		if (!strncmp(ps.p[i].where, "cached data at ", 15))
			p = &ps.p[i];
	ok(p && p->offset == data + 4096 && strstr(p->detail, "dirty data, logical [") &&
	   strstr(p->detail, "verified at load"),
	   "media: cached data, dirty, logical range named (%s: %s)", p ? p->where : "-",
	   p ? p->detail : "-");
	ok(res.verdict == PCM_VERDICT_REFUSES, "media: the kernel would refuse (reads fail at load)");
	ok(pcm_problem_def(PCM_P_MEDIA_BADBLOCK) &&
	   !strcmp(pcm_problem_def(PCM_P_MEDIA_BADBLOCK)->name, "MEDIA_BADBLOCK") &&
	   !pcm_problem_fixable(PCM_P_MEDIA_BADBLOCK), "media: MEDIA_BADBLOCK is defined, not fixable");

	/* free space only: reported, but the kernel loads as before */
	snprintf(bb, sizeof(bb), "%llu:4096,%llu:100", (unsigned long long)(pcm_seg_base(20) + (8u << 20)),
		 (unsigned long long)(IMG_SIZE - 100));
	rc = check_with(bb, &ps, &res);
	p = find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "segment 20 (device segment 20) data area");
	ok(rc == 0 && p && strstr(p->detail, "free cache space") &&
	   find_problem(&ps, PCM_P_MEDIA_BADBLOCK, "space after the last segment") &&
	   res.problems == 2 && res.verdict == PCM_VERDICT_LOADS,
	   "media: free space and the tail: 2 problems, the kernel still loads (verdict %d)",
	   res.verdict);
}

static void test_repair_refusal(void)
{
	struct pcm_repair_opts ro = { .mode = PCM_REPAIR_ALL, .verify_data = true };
	struct pcm_repair_plan *plan = NULL;
	struct pcm_dev *dev = NULL;
	struct pcm_badblock bb = { 0 };
	uint64_t wi = UINT64_MAX;
	uint8_t b = 0xff, before[24], after[24];
	int rc;

	if (!ok(make_image() == 0, "refusal: image made"))
		return;
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR, &dev);
	ok(rc == 0 && pcm_dev_write(dev, PCM_CACHE_INFO_OFF + 9, &b, 1) == 0,
	   "refusal: cache_info replica 0 damaged");
	pcm_dev_close(dev);
	dev = NULL;
	setenv("PCACHE_TEST_BADBLOCKS", "8192:512", 1);
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR, &dev);
	if (!ok(rc == 0, "refusal: open with a bad block over cache_info replica 0 (rc %d)", rc))
		goto out;
	rc = pcm_repair_plan(dev, &ro, &plan);
	ok(rc == 0 && plan->nact >= 1, "refusal: a repair is planned (rc %d)", rc);
	if (rc)
		goto out;
	rc = pcm_repair_badblock_conflict(dev, plan, &wi, &bb);
	ok(rc == 1 && bb.off == 8192 && bb.len == 512 && wi < UINT64_MAX,
	   "refusal: the plan writes on the bad block (rc %d, write %llu)", rc,
	   (unsigned long long)wi);
	pcm_dev_read(dev, PCM_CACHE_INFO_OFF, before, sizeof(before));
	rc = pcm_repair_apply(dev, plan, NULL);
	pcm_dev_read(dev, PCM_CACHE_INFO_OFF, after, sizeof(after));
	ok(rc == -EHWPOISON && !memcmp(before, after, sizeof(after)),
	   "refusal: apply -> -EHWPOISON, nothing written (rc %d)", rc);
	pcm_repair_plan_free(plan);
	plan = NULL;
	ro.force = true;
	rc = pcm_repair_plan(dev, &ro, &plan);
	if (!rc)
		rc = pcm_repair_apply(dev, plan, NULL);
	pcm_dev_read(dev, PCM_CACHE_INFO_OFF, after, sizeof(after));
	ok(rc == 0 && memcmp(before, after, sizeof(after)) && pcm_record_crc_ok(after, 24),
	   "refusal: with force the repair is written (rc %d)", rc);
out:
	unsetenv("PCACHE_TEST_BADBLOCKS");
	pcm_repair_plan_free(plan);
	pcm_dev_close(dev);
}

static void test_holder_words(void)
{
	static const struct { int kind; const char *name, *want; } t[] = {
		{ PCM_HOLDER_DM, "cache0", "dm device cache0" },
		{ PCM_HOLDER_KERNEL, "md0", "kernel device md0" },
		{ PCM_HOLDER_MOUNT, "/mnt", "a filesystem mounted on /mnt" },
		{ PCM_HOLDER_PROCESS, "sleep (pid 42)", "process sleep (pid 42)" },
		{ PCM_HOLDER_NONE, "x", "" },
		{ -ENOENT, "x", "" },
	};
	char buf[64], tiny[8];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ok(!strcmp(pcm_holder_str(t[i].kind, t[i].name, buf, sizeof(buf)), t[i].want),
		   "holders: pcm_holder_str(%d, '%s') = '%s'", t[i].kind, t[i].name, buf);
	ok(!strcmp(pcm_holder_str(PCM_HOLDER_DM, "cache0", tiny, sizeof(tiny)), "dm devi"),
	   "holders: pcm_holder_str cuts at the buffer ('%s')", tiny);
}

static void test_holders(void)
{
	struct pcm_dev *a = NULL, *b = NULL;
	char name[160];
	int to_child[2], from_child[2], status, rc;
	pid_t pid;
	char c = 0;

	if (!ok(make_image() == 0, "holders: image made"))
		return;
	rc = pcm_dev_holder(img_path, name, sizeof(name));
	ok(rc == PCM_HOLDER_NONE, "holders: nobody holds a fresh file (rc %d)", rc);
	rc = pcm_dev_holder("/nonexistent/pcm-test", name, sizeof(name));
	ok(rc == -ENOENT, "holders: missing path -> -ENOENT (rc %d)", rc);

	/* exclusive readers share; a writer excludes them and is excluded */
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY | PCM_DEV_EXCL, &a);
	ok(rc == 0, "holders: exclusive reader 1 (rc %d)", rc);
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY | PCM_DEV_EXCL, &b);
	ok(rc == 0, "holders: exclusive reader 2 at the same time (rc %d)", rc);
	pcm_dev_close(b);
	b = NULL;
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR | PCM_DEV_EXCL, &b);
	ok(rc == -EBUSY, "holders: a writer while a reader holds it -> -EBUSY (rc %d)", rc);
	if (!rc)
		pcm_dev_close(b);
	b = NULL;
	pcm_dev_close(a);
	a = NULL;

	/* another process holds an exclusive flock */
	if (pipe(to_child) || pipe(from_child))
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(img_path, O_RDONLY);

		alarm(20);
		if (fd < 0 || flock(fd, LOCK_EX))
			_exit(1);
		(void)!write(from_child[1], "x", 1);
		(void)!read(to_child[0], &c, 1);
		_exit(0);
	}
	ok(pid > 0 && read(from_child[0], &c, 1) == 1, "holders: child holds LOCK_EX");
	rc = pcm_dev_holder(img_path, name, sizeof(name));
	{
		char want[32];

		snprintf(want, sizeof(want), "(pid %d)", (int)pid);
		ok(rc == PCM_HOLDER_PROCESS && strstr(name, want),
		   "holders: pcm_dev_holder names the process (rc %d, '%s')", rc, name);
	}
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR | PCM_DEV_EXCL, &a);
	{
		char want[200], words[200];

		snprintf(want, sizeof(want), "process %s", name);
		ok(rc == -EBUSY && !strcmp(pcm_dev_errmsg(), want),
		   "holders: writer -> -EBUSY, errmsg '%s' (want '%s')", pcm_dev_errmsg(), want);
		pcm_holder_str(PCM_HOLDER_PROCESS, name, words, sizeof(words));
		ok(!strcmp(words, want), "holders: pcm_holder_str words a process as '%s'", words);
	}
	if (!rc)
		pcm_dev_close(a);
	a = NULL;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY | PCM_DEV_EXCL, &a);
	ok(rc == -EBUSY, "holders: exclusive reader -> -EBUSY too (rc %d)", rc);
	if (!rc)
		pcm_dev_close(a);
	a = NULL;
	rc = pcm_dev_open(img_path, PCM_DEV_RDONLY, &a);
	ok(rc == 0, "holders: a plain reader still opens (rc %d)", rc);
	pcm_dev_close(a);
	a = NULL;
	(void)!write(to_child[1], "x", 1);
	waitpid(pid, &status, 0);
	rc = pcm_dev_open(img_path, PCM_DEV_RDWR | PCM_DEV_EXCL, &a);
	ok(rc == 0, "holders: the writer opens once the lock is gone (rc %d)", rc);
	pcm_dev_close(a);
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
}

int main(void)
{
	struct sigaction sa;

	sigaction(SIGBUS, NULL, &sa);
	sigbus_handled_before = (sa.sa_flags & SA_SIGINFO) ? sa.sa_sigaction != NULL :
				sa.sa_handler != SIG_DFL;
	if (sigbus_handled_before)
		diag("a SIGBUS handler was installed before ours (sanitizer?)");
	test_truncated_mapping();
	test_poison();
	test_unguarded();
	test_threads();
	test_badblock_list();
	test_media_check();
	test_repair_refusal();
	test_holder_words();
	test_holders();
	if (img_path[0])
		unlink(img_path);
	return tap_done();
}
