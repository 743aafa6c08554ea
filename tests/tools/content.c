/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * content IMG: a checksum of what the kernel would serve from the cache after
 * loading IMG: every cached 512-byte sector, with its logical offset, in
 * ascending order.  Two images serve the same data iff the sums match, however
 * their extents are split.  Prints "sectors CRC" (or "refused" when the
 * kernel would not load IMG).
 *
 * content --image BACKING OUT IMG: OUT becomes the whole logical device the
 * kernel serves after loading IMG over BACKING (its size in whole sectors):
 * BACKING's bytes with every extent of the replayed index over them (§6.6
 * "the result of a replay"), keys checked against BACKING's size and data
 * CRCs verified as the kernel's load does.  Prints "sectors CRC" of the
 * cached sectors, or "refused" (OUT then holds BACKING alone, which means nothing).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcachemeta.h"

struct sum {
	const struct pcm_cache *c;
	uint32_t crc;
	uint64_t sectors;
	int err;
	int out;                  /* --image: the logical device being written, else -1 */
};

static int add(const struct pcm_extent *e, void *arg)
{
	struct sum *s = arg;
	uint8_t buf[PCM_SECTOR];

	/* an EMPTY placeholder (never written by the kernel) serves the backing device */
	if (e->flags & PCM_EXT_EMPTY)
		return 0;
	for (uint32_t o = 0; o + PCM_SECTOR <= e->len; o += PCM_SECTOR) {
		uint64_t lba = e->off + o;

		s->err = pcm_dev_read(s->c->dev, pcm_pos_dev_off(s->c, e->cseg, e->seg_off + o), buf,
				      sizeof(buf));
		if (!s->err && s->out >= 0 &&
		    pwrite(s->out, buf, sizeof(buf), (off_t)lba) != (ssize_t)sizeof(buf))
			s->err = -5;
		if (s->err)
			return 1;
		s->crc = pcm_crc32c(s->crc, &lba, sizeof(lba));
		s->crc = pcm_crc32c(s->crc, buf, sizeof(buf));
		s->sectors++;
	}
	return 0;
}

/* OUT := BACKING in whole sectors; returns its descriptor and the size, or -1. */
static int copy_backing(const char *backing, const char *out, uint64_t *size)
{
	static uint8_t buf[1 << 20];
	int in = open(backing, O_RDONLY), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint64_t done = 0;
	ssize_t n = 0;

	*size = 0;
	if (in >= 0 && fd >= 0) {
		*size = (uint64_t)lseek(in, 0, SEEK_END) / PCM_SECTOR * PCM_SECTOR;
		while (done < *size && (n = pread(in, buf, sizeof(buf), (off_t)done)) > 0) {
			n = (ssize_t)(*size - done < (uint64_t)n ? *size - done : (uint64_t)n);
			if (pwrite(fd, buf, (size_t)n, (off_t)done) != n)
				break;
			done += (uint64_t)n;
		}
	}
	if (in >= 0)
		close(in);
	if (fd >= 0 && (done < *size || !*size || ftruncate(fd, (off_t)*size))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	bool image = argc == 5 && !strcmp(argv[1], "--image");
	const char *img = image ? argv[4] : argv[1];
	struct pcm_replay_opts ro = { .verify_data = image };
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct sum s = { .crc = PCM_CRC_SEED, .out = -1 };
	uint64_t size = 0;

	if (argc != 2 && !image) {
		fprintf(stderr, "usage: content IMG\n       content --image BACKING OUT IMG\n");
		return 16;
	}
	if (image && (s.out = copy_backing(argv[2], argv[3], &size)) < 0) {
		fprintf(stderr, "content: cannot copy %s to %s\n", argv[2], argv[3]);
		return 8;
	}
	if (pcm_dev_open(img, PCM_DEV_RDONLY, &dev) || pcm_cache_open(dev, &c, NULL)) {
		printf("refused\n");
		return 0;
	}
	c->backing_size = size;   /* 0 without --image: key bounds unknown */
	if (pcm_replay_run(c, &ro, &r) || r->failed) {
		printf("refused\n");
		return 0;
	}
	s.c = c;
	pcm_index_foreach(r->idx, add, &s);
	if (s.err || (s.out >= 0 && close(s.out))) {
		fprintf(stderr, "content: %s: read or write error %d\n", img, s.err);
		return 8;
	}
	printf("%llu %08x\n", (unsigned long long)s.sectors, s.crc);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return 0;
}
