/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A program built against the installed libpcachemeta (pkg-config, the
 * shared library): opens a cache image and prints its superblock's seg_num
 * and what the cache holds.  tests/bats/install.bats builds and runs it.
 */
#include <pcachemeta.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct pcm_dev *dev;
	struct pcm_cache *c;
	struct pcm_open_status st;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: uselib IMAGE\n");
		return 2;
	}
	rc = pcm_dev_open(argv[1], PCM_DEV_RDONLY, &dev);
	if (rc) {
		fprintf(stderr, "uselib: %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	rc = pcm_cache_open(dev, &c, &st);
	if (rc) {
		fprintf(stderr, "uselib: %s: %s\n", argv[1], pcm_open_error_str(&st));
		pcm_dev_close(dev);
		return 1;
	}
	printf("seg_num %u\n", c->seg_num);
	printf("n_segs %u\n", c->n_segs);
	printf("data_crc %s\n", c->data_crc ? "true" : "false");
	printf("crc32c %s\n", pcm_crc32c_impl());
	pcm_cache_close(c);
	pcm_dev_close(dev);
	return 0;
}
