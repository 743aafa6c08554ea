/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz inputs to cache images in a memfd: see fuzz_common.h for the input layout. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "../common/reseal.h"

#define PAGE 4096u
#define NBASES 4

struct page {
	uint64_t off;
	uint8_t data[PAGE];
};

struct base_img {
	bool built;
	struct page *pages;
	size_t n;
};

struct undo {
	uint64_t off;
	size_t len;
	uint8_t *old;
};

/* One memfd per (size, base): inputs switch bases freely, and switching must not
 * rewrite (and fault in again) a whole image. */
struct size_state {
	uint64_t size;
	int fd[NBASES];
	char path[NBASES][64];
	struct pcm_dev *dev[NBASES][2];    /* mapped, NOMAP */
	struct base_img bases[NBASES];
};

static struct size_state sizes[2] = {
	{ .size = FZ_SIZE_SMALL, .fd = { -1, -1, -1, -1 } },
	{ .size = FZ_SIZE_FIXTURE, .fd = { -1, -1, -1, -1 } },
};

static struct undo *undo;
static size_t nundo, capundo;
static int undo_fd = -1;

void fz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("FUZZ ORACLE FAILURE: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz setup: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(2);
}

static void must(int rc, const char *what)
{
	if (rc)
		die(what, rc);
}

static void xpread(int fd, void *buf, size_t len, uint64_t off)
{
	if (pread(fd, buf, len, (off_t)off) != (ssize_t)len)
		die("pread", errno ? errno : EIO);
}

static void xpwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
		die("pwrite", errno ? errno : EIO);
}

static int new_memfd(uint64_t size)
{
	int fd = memfd_create("pcache-fuzz", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size))
		die("memfd", errno);
	return fd;
}

/* ---- base images, built once with the library itself ---- */

struct kset_pos {
	struct pcm_pos at[64];
	unsigned n;
};

static void hook(const struct pcm_key *keys, unsigned n, struct pcm_pos at, void *arg)
{
	struct kset_pos *kp = arg;

	(void)keys;
	(void)n;
	if (kp->n < 64)
		kp->at[kp->n++] = at;
}

/* A LAST kset at pos naming cseg next. */
static void write_last(struct pcm_cache *c, struct pcm_pos pos, uint32_t next)
{
	struct pcm_kset_hdr h = { .key_num = next, .magic = PCM_KSET_MAGIC,
				  .flags = PCM_KSET_F_LAST };
	uint8_t raw[PCM_KSET_HDR_SIZE];

	pcm_kset_hdr_encode(&h, raw);
	pcm_record_seal(raw, sizeof(raw));
	must(pcm_dev_write(c->dev, pcm_pos_dev_off(c, pos.cseg, pos.seg_off), raw, sizeof(raw)),
	     "write LAST");
}

/* Formatted, then 4 rounds of small writes with flushes, a LAST hop after each but the last. */
static void build_log(struct pcm_dev *dev, bool wb)
{
	static uint8_t data[16384];
	struct kset_pos kp = { .n = 0 };
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct pcm_appender *a;
	uint32_t w = 0;

	for (int hop = 0; hop < 4; hop++) {
		must(pcm_cache_open(dev, &c, NULL), "open base");
		must(pcm_replay_run(c, NULL, &r), "replay base");
		must(pcm_appender_open(c, r, &a), "appender");
		pcm_appender_set_persist(a, false);
		pcm_appender_set_hook(a, hook, &kp);
		for (int i = 0; i < 10; i++, w++) {
			uint32_t len = (1 + w % 4) * 4096;
			uint64_t off = (uint64_t)((w * 2654435761u) % 4096) * 4096;

			for (uint32_t j = 0; j < len; j++)
				data[j] = (uint8_t)(w * 131 + j * 7);
			must(pcm_append_write(a, off, data, len, i == 7 ? PCM_KEY_F_CLEAN : 0),
			     "append");
			if (i % 3 == 2)
				must(pcm_append_flush(a), "flush");
		}
		must(pcm_append_flush(a), "flush");
		if (hop < 3)
			write_last(c, pcm_appender_key_head(a), c->n_segs - 1 - (uint32_t)hop);
		pcm_appender_free(a);
		pcm_replay_free(r);
		pcm_cache_close(c);
	}
	if (wb) {
		must(pcm_cache_open(dev, &c, NULL), "open base");
		must(pcm_tail_write(c, 1, kp.at[kp.n / 2], false), "dirty_tail");
		must(pcm_gen_write(c, 1, c->gen[1] + 1), "gen");   /* first data segment: stale keys */
		pcm_cache_close(c);
	}
}

static void capture(int fd, uint64_t size, struct base_img *b)
{
	off_t pos = 0;
	uint8_t buf[PAGE];
	static const uint8_t zero[PAGE];

	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			h = (off_t)size;
		for (off_t p = d & ~(off_t)(PAGE - 1); p < h; p += PAGE) {
			xpread(fd, buf, PAGE, (uint64_t)p);
			if (!memcmp(buf, zero, PAGE))
				continue;
			if ((b->n & (b->n - 1)) == 0) {   /* grows by doubling */
				b->pages = realloc(b->pages, (b->n ? 2 * b->n : 1) * sizeof(*b->pages));
				if (!b->pages)
					die("realloc", ENOMEM);
			}
			b->pages[b->n].off = (uint64_t)p;
			memcpy(b->pages[b->n].data, buf, PAGE);
			b->n++;
		}
		pos = h;
	}
}

static void build_base(struct size_state *s, unsigned base)
{
	struct base_img *b = &s->bases[base];
	struct pcm_format_opts fo = { .data_crc = base != FZ_BASE_LOG_WB, .gc_percent = 70 };
	struct pcm_format_plan plan;
	struct pcm_dev *dev;
	char path[64];
	int fd;

	b->built = true;
	if (base == FZ_BASE_ZERO)
		return;
	fd = new_memfd(s->size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	must(pcm_dev_open(path, PCM_DEV_RDWR | PCM_DEV_NOMAP, &dev), "open base dev");
	must(pcm_format_plan(s->size, &fo, &plan), "format plan");
	must(pcm_format_write(dev, &plan, NULL, NULL), "format");
	if (base == FZ_BASE_LOG || base == FZ_BASE_LOG_WB)
		build_log(dev, base == FZ_BASE_LOG_WB);
	pcm_dev_close(dev);
	capture(fd, s->size, b);
	close(fd);
}

/* The memfd holding base of size s, written once. */
static int load_base(struct size_state *s, unsigned base)
{
	struct base_img *b = &s->bases[base];

	if (s->fd[base] >= 0)
		return s->fd[base];
	if (!b->built)
		build_base(s, base);
	s->fd[base] = new_memfd(s->size);
	snprintf(s->path[base], sizeof(s->path[base]), "/proc/self/fd/%d", s->fd[base]);
	for (size_t i = 0; i < b->n; i++)
		xpwrite(s->fd[base], b->pages[i].data, PAGE, b->pages[i].off);
	free(b->pages);
	b->pages = NULL;
	return s->fd[base];
}

/* ---- patches ---- */

static void undo_save(int fd, uint64_t off, size_t len)
{
	if (nundo == capundo) {
		capundo = capundo ? capundo * 2 : 64;
		undo = realloc(undo, capundo * sizeof(*undo));
		if (!undo)
			die("realloc", ENOMEM);
	}
	undo[nundo].old = malloc(len ? len : 1);
	if (!undo[nundo].old)
		die("malloc", ENOMEM);
	xpread(fd, undo[nundo].old, len, off);
	undo[nundo].off = off;
	undo[nundo].len = len;
	nundo++;
}

static void put(int fd, uint64_t off, const void *buf, size_t len)
{
	undo_save(fd, off, len);
	xpwrite(fd, buf, len, off);
}

struct patch {
	uint64_t off, len;       /* device range */
	uint64_t data_lo, data_hi;   /* the data-area part, when there is one (hi > lo) */
	uint64_t area;           /* device offset of that segment's data area */
};

/* A replicated record at off of size bytes: sealed again when a patch touched it. */
static void reseal_rec(int fd, const struct patch *p, size_t np, uint64_t off, size_t size)
{
	uint8_t buf[24];

	for (size_t i = 0; i < np; i++) {
		if (p[i].off >= off + size || p[i].off + p[i].len <= off)
			continue;
		xpread(fd, buf, size, off);
		if (reseal_record(buf, size))
			put(fd, off, buf, size);
		return;
	}
}

struct kset_put {
	int fd;
	uint64_t at;             /* device offset of buf[0] */
	const uint8_t *buf;
};

static void kset_changed(size_t o, void *arg)
{
	struct kset_put *kp = arg;

	put(kp->fd, kp->at + o, kp->buf + o, 4);
}

/* Kset headers (8-aligned in the data area) in or just before a patched data range. */
static void reseal_ksets_near(int fd, const struct patch *p)
{
	static uint8_t *buf;
	static size_t capbuf;
	uint64_t lo = p->data_lo - p->area, hi = p->data_hi - p->area, end;
	struct kset_put kp = { fd, 0, NULL };

	lo = lo > PCM_KSET_SIZE_MAX ? (lo - PCM_KSET_SIZE_MAX) & ~7ull : 0;
	end = hi + PCM_KSET_SIZE_MAX < PCM_DATA_SIZE ? hi + PCM_KSET_SIZE_MAX : PCM_DATA_SIZE;
	if (end - lo > capbuf) {
		capbuf = end - lo;
		buf = realloc(buf, capbuf);
		if (!buf)
			die("realloc", ENOMEM);
	}
	xpread(fd, buf, end - lo, p->area + lo);
	kp.at = p->area + lo;
	kp.buf = buf;
	reseal_ksets(buf, end - lo, hi - lo, kset_changed, &kp);
}

static void reseal(int fd, uint32_t nsegs, const struct patch *p, size_t np)
{
	static const uint64_t fixed[][2] = {
		{ PCM_SB_OFF, PCM_SB_SIZE },
		{ PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_SIZE },
		{ PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT, PCM_CACHE_INFO_SIZE },
		{ PCM_KEY_TAIL_OFF, PCM_POS_SIZE },
		{ PCM_KEY_TAIL_OFF + PCM_POS_SIZE, PCM_POS_SIZE },
		{ PCM_DIRTY_TAIL_OFF, PCM_POS_SIZE },
		{ PCM_DIRTY_TAIL_OFF + PCM_POS_SIZE, PCM_POS_SIZE },
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		reseal_rec(fd, p, np, fixed[i][0], fixed[i][1]);
	for (uint32_t d = 0; d < nsegs; d++) {
		uint64_t b = pcm_seg_base(d);
		bool touched = false;

		for (size_t i = 0; i < np && !touched; i++)
			touched = p[i].off < b + PCM_DATA_OFF && p[i].off + p[i].len > b;
		if (!touched)
			continue;
		reseal_rec(fd, p, np, b, PCM_SEG_INFO_SIZE);
		reseal_rec(fd, p, np, b + PCM_SEG_INFO_SLOT, PCM_SEG_INFO_SIZE);
		reseal_rec(fd, p, np, b + PCM_SEG_CTRL_OFF, PCM_SEG_GEN_SIZE);
		reseal_rec(fd, p, np, b + PCM_SEG_CTRL_OFF + PCM_SEG_GEN_SIZE,
			   PCM_SEG_GEN_SIZE);
	}
	for (size_t i = 0; i < np; i++)
		if (p[i].data_hi > p[i].data_lo)
			reseal_ksets_near(fd, &p[i]);
}

/* PCACHE_FUZZ_SAVE=FILE: the image an input describes, as a sparse file, for the CLI. */
static void save_image(int fd, uint64_t size, const char *path)
{
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	static uint8_t buf[1 << 16];
	off_t pos = 0;

	if (out < 0 || ftruncate(out, (off_t)size))
		die(path, errno);
	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		for (off_t p = d; p < h; p += (off_t)sizeof(buf)) {
			size_t n = (size_t)(h - p) < sizeof(buf) ? (size_t)(h - p) : sizeof(buf);

			xpread(fd, buf, n, (uint64_t)p);
			if (pwrite(out, buf, n, p) != (ssize_t)n)
				die(path, errno);
		}
		pos = h;
	}
	close(out);
}

int fz_image_load(const uint8_t *data, size_t size, struct fz_image *img)
{
	static struct patch *patches;
	static size_t cappatch;
	size_t np = 0, at = 2;
	struct size_state *s;
	uint32_t nsegs;
	unsigned nodev;
	int fd;

	memset(img, 0, sizeof(*img));
	if (size < 2)
		return -1;
	img->image = data[0];
	img->opts = data[1];
	img->base = (data[0] >> 1) & 3;
	s = &sizes[data[0] & 1];
	fd = load_base(s, img->base);
	nodev = (data[0] >> 3) & 1;
	nsegs = (uint32_t)((s->size - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE);
	undo_fd = fd;
	while (at + 6 <= size) {
		unsigned region = data[at] % (2 * nsegs + 1);
		uint64_t off = data[at + 1] | (uint64_t)data[at + 2] << 8 | (uint64_t)data[at + 3] << 16;
		uint64_t len = data[at + 4] | (uint64_t)data[at + 5] << 8;
		uint64_t start, rsize, area = 0;
		struct patch *p;

		at += 6;
		if (region == 0) {
			start = 0;
			rsize = PCM_META_END;
		} else if (region <= nsegs) {
			start = pcm_seg_base(region - 1);
			rsize = FZ_HEAD_WINDOW;
			area = start + PCM_DATA_OFF;
		} else {
			area = pcm_seg_base(region - nsegs - 1) + PCM_DATA_OFF;
			start = area + PCM_DATA_SIZE - FZ_TAIL_WINDOW;
			rsize = FZ_TAIL_WINDOW;
		}
		off %= rsize;
		if (len > rsize - off)
			len = rsize - off;
		if (len > size - at)
			len = size - at;
		if (!len)
			continue;
		if (np == cappatch) {
			cappatch = cappatch ? cappatch * 2 : 64;
			patches = realloc(patches, cappatch * sizeof(*patches));
			if (!patches)
				die("realloc", ENOMEM);
		}
		p = &patches[np++];
		p->off = start + off;
		p->len = len;
		p->area = area;
		p->data_lo = p->data_hi = 0;
		if (area && p->off + len > area) {
			p->data_lo = p->off > area ? p->off : area;
			p->data_hi = p->off + len;
		}
		put(fd, p->off, data + at, len);
		at += len;
	}
	if (data[0] & 0x10)
		reseal(fd, nsegs, patches, np);
	if (!s->dev[img->base][nodev])
		must(pcm_dev_open(s->path[img->base], PCM_DEV_RDONLY | (nodev ? PCM_DEV_NOMAP : 0),
				  &s->dev[img->base][nodev]), "open image");
	if (getenv("PCACHE_FUZZ_SAVE"))
		save_image(fd, s->size, getenv("PCACHE_FUZZ_SAVE"));
	img->dev = s->dev[img->base][nodev];
	if ((data[1] & FZ_OPT_BADBLOCKS) && np) {
		const struct pcm_badblock *bbl;
		size_t nbb;
		char bb[96];

		/* the bad block list is read once per device: a device of its own */
		snprintf(bb, sizeof(bb), "%llu:%llu,%llu:%llu", (unsigned long long)patches[0].off,
			 (unsigned long long)patches[0].len,
			 (unsigned long long)patches[np > 1].off,
			 (unsigned long long)patches[np > 1].len);
		setenv("PCACHE_TEST_BADBLOCKS", bb, 1);
		must(pcm_dev_open(s->path[img->base], PCM_DEV_RDONLY | (nodev ? PCM_DEV_NOMAP : 0),
				  &img->dev), "open image");
		/* the list is read at the first query, not at open: query it while the seam is set */
		must(pcm_dev_badblock_list(img->dev, &bbl, &nbb), "bad block list");
		unsetenv("PCACHE_TEST_BADBLOCKS");
		img->own_dev = true;
	}
	img->path = s->path[img->base];
	img->size = s->size;
	img->nsegs = nsegs;
	return 0;
}

void fz_image_reset(struct fz_image *img)
{
	if (img->own_dev)
		pcm_dev_close(img->dev);
	img->own_dev = false;
	while (nundo) {
		struct undo *u = &undo[--nundo];

		xpwrite(undo_fd, u->old, u->len, u->off);
		free(u->old);
	}
}
