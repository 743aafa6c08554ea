/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The kernel's verdict in words, and the backing device it depends on (verdict.h). */
#include <stdio.h>

#include "cli.h"
#include "verdict.h"

int cli_backing_opt(struct cli_backing *b, const char *arg, bool is_size)
{
	if (b->arg)
		return cli_usage_error("--backing and --backing-size are given once");
	b->arg = arg;
	b->is_size = is_size;
	return -2;
}

int cli_verdict_opt(struct cli_verdict_opts *v, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_VERIFY: v->verify_data = true; return -2;
	case CLI_OPT_NO_VERIFY: v->verify_data = false; return -2;
	case CLI_OPT_BACKING: return cli_backing_opt(&v->backing, arg, false);
	case CLI_OPT_BACKING_SIZE: return cli_backing_opt(&v->backing, arg, true);
	}
	return -1;
}

int cli_backing_resolve(struct cli_backing *b, const char *dev)
{
	uint64_t size;
	int rc;

	if (!b->arg)
		return -2;
	if (b->is_size) {
		if (cli_parse_size(b->arg, &size) || size < PCM_SECTOR)
			return cli_usage_error("--backing-size: '%s' is not a size of at least 512 "
					       "bytes", b->arg);
		size = size / PCM_SECTOR * PCM_SECTOR;   /* the kernel counts sectors */
	} else {
		if (cli_same_device(dev, b->arg)) {
			cli_err(dev, "is also given as the backing device (%s): a cache cannot be "
				"its own backing device", b->arg);
			return EXIT_USAGE;
		}
		rc = cli_backing_size(b->arg, &size);
		if (rc)
			return rc;
	}
	b->known = true;
	b->size = size;
	return -2;
}

int cli_backing_fits(const struct cli_backing *b, const char *devpath, struct pcm_dev *dev)
{
	struct pcm_cache *c;
	struct pcm_replay *r;
	char need[64], have[64];
	int rc = EXIT_OK;

	if (!b->known || pcm_cache_open(dev, &c, NULL))
		return EXIT_OK;   /* a cache that does not open: the check says why */
	if (!pcm_replay_run(c, NULL, &r)) {
		if (r->max_key_end > b->size) {
			cli_fmt_bytes(r->max_key_end, need, sizeof(need));
			cli_fmt_bytes(b->size, have, sizeof(have));
			if (b->is_size)
				cli_err(devpath, "cached data reaches %s, but --backing-size gives %s: "
					"wrong backing device? nothing was checked or changed", need, have);
			else
				cli_err(devpath, "cached data reaches %s, but the backing device %s holds "
					"%s: wrong backing device? nothing was checked or changed",
					need, b->arg, have);
			rc = EXIT_OPERATIONAL;
		}
		pcm_replay_free(r);
	}
	pcm_cache_close(c);
	return rc;
}

const char *cli_backing_hint(const struct cli_backing *b, char *buf, size_t len)
{
	if (!b->arg)
		return "";
	snprintf(buf, len, " --backing%s %s", b->is_size ? "-size" : "", b->arg);
	return buf;
}

const char *cli_verdict_text(const struct pcm_check_result *r, enum pcm_kernel_verdict v,
			     const struct cli_backing *b, char *buf, size_t len)
{
	char need[64];

	if (v == PCM_VERDICT_REFUSES)
		return "the kernel would refuse to load this cache";
	if (v == PCM_VERDICT_RESETS)
		return "the kernel would re-initialise this cache: all cached data would be lost";
	if (v == PCM_VERDICT_CRASHES)
		return "the kernel would crash (BUG) on this cache, in the load or soon after it";
	if (r->replayed && r->data_crc && !r->data_verified)
		return "data not verified (--no-verify-data): the kernel checks every key's data "
		       "checksum when it loads the cache";
	if (r->replayed && !b->known && r->max_key_end) {
		snprintf(buf, len, "the kernel would load this cache over a backing device of at "
			 "least %s", cli_fmt_bytes(r->max_key_end, need, sizeof(need)));
		return buf;
	}
	return "the kernel would load this cache";
}
