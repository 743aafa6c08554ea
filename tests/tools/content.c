/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * content IMG: a checksum of what the kernel would serve from the cache after
 * loading IMG: every cached 512-byte sector, with its logical offset, in
 * ascending order.  Two images serve the same data iff the sums match, however
 * their extents are split.  Prints "sectors CRC" (or "refused" when the
 * kernel would not load IMG).
 */
#include <stdio.h>
#include <stdlib.h>

#include "pcachemeta.h"

struct sum {
	const struct pcm_cache *c;
	uint32_t crc;
	uint64_t sectors;
	int err;
};

static int add(const struct pcm_extent *e, void *arg)
{
	struct sum *s = arg;
	uint8_t buf[PCM_SECTOR];

	for (uint32_t o = 0; o + PCM_SECTOR <= e->len; o += PCM_SECTOR) {
		uint64_t lba = e->off + o;

		s->err = pcm_dev_read(s->c->dev, pcm_pos_dev_off(s->c, e->cseg, e->seg_off + o), buf,
				      sizeof(buf));
		if (s->err)
			return 1;
		s->crc = pcm_crc32c(s->crc, &lba, sizeof(lba));
		s->crc = pcm_crc32c(s->crc, buf, sizeof(buf));
		s->sectors++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_replay *r;
	struct sum s = { .crc = PCM_CRC_SEED };

	if (argc != 2) {
		fprintf(stderr, "usage: content IMG\n");
		return 16;
	}
	if (pcm_dev_open(argv[1], PCM_DEV_RDONLY, &dev) || pcm_cache_open(dev, &c, NULL) ||
	    pcm_replay_run(c, NULL, &r)) {
		printf("refused\n");
		return 0;
	}
	if (r->failed) {
		printf("refused\n");
		return 0;
	}
	s.c = c;
	pcm_index_foreach(r->idx, add, &s);
	if (s.err) {
		fprintf(stderr, "content: %s: read error %d\n", argv[1], s.err);
		return 8;
	}
	printf("%llu %08x\n", (unsigned long long)s.sectors, s.crc);
	pcm_replay_free(r);
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return 0;
}
