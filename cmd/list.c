/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pcache list: every pmem region and namespace (libndctl) and dax device
 * (libdaxctl), plus the files named on the command line; for each device that
 * holds a pcache superblock, what the cache is (seg_num, data_crc, gc_percent,
 * dirty bytes from a quick read-only replay) and whether the kernel uses it.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <daxctl/libdaxctl.h>
#include <ndctl/libndctl.h>

#include "builtin.h"

static const char usage_text[] =
	"usage: pcache list [--json [-u]] [-q] [-v] [FILE...]\n\n"
	"Lists every persistent memory region and namespace (libndctl) and dax device\n"
	"(libdaxctl), then each FILE (an image, or a device node), with its mode, size and\n"
	"bad blocks; for those holding a pcache: seg_num, data_crc, gc_percent, dirty bytes\n"
	"(a quick read-only replay) and the dm device using it, if any.  Read-only.\n"
	"Exit: 0, or 8 when a FILE cannot be read.\n\n"
	"  --json             a JSON array, one object per device\n"
	"  -u, --human        with --json: sizes for people\n"
	"  -q, --quiet        no header line and no 'no persistent memory found' note\n"
	"  -v, --verbose      also regions without namespaces, and libndctl's messages\n";

/* One line of the listing. */
struct entry {
	char device[PATH_MAX];       /* "" for a region without a namespace */
	char mode[16];               /* fsdax, devdax, raw, sector, file, block, dax, "" */
	uint64_t size;               /* namespace / region size, or the file's */
	char region[32], ns[32];     /* "" when none */
	bool from_arg;
	/* what opening the device found */
	bool opened;
	uint64_t dev_size;
	bool bad_known;
	uint64_t bad_blocks, bad_bytes;
	int pcache;                  /* 1 yes, 0 no, -1 unknown */
	bool cache_open;             /* the cache opens: the fields below are valid */
	uint32_t seg_num;
	bool data_crc;
	unsigned gc_percent;
	bool replayed;
	uint64_t dirty_bytes;
	int holder_kind;
	char holder[160];
	char error[200];
};

struct listing {
	struct entry *e;
	size_t n, cap;
	bool pmem_found;
};

static struct entry *entry_new(struct listing *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct entry *v = realloc(l->e, cap * sizeof(*v));

		if (!v)
			return NULL;
		l->e = v;
		l->cap = cap;
	}
	memset(&l->e[l->n], 0, sizeof(l->e[0]));
	l->e[l->n].pcache = -1;
	return &l->e[l->n++];
}

static void set_error(struct entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct entry *e, const char *fmt, ...)
{
	va_list ap;

	if (e->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(e->error, sizeof(e->error), fmt, ap);
	va_end(ap);
}

static bool listed(const struct listing *l, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (!realpath(path, a))
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].device[0] && realpath(l->e[i].device, b) && !strcmp(a, b))
			return true;
	return false;
}

/* ---- discovery ---- */

static void quiet_log(struct ndctl_ctx *ctx, int priority, const char *file, int line,
		      const char *fn, const char *format, va_list args)
{
	(void)ctx, (void)priority, (void)file, (void)line, (void)fn, (void)format, (void)args;
}

static void quiet_dax_log(struct daxctl_ctx *ctx, int priority, const char *file, int line,
			  const char *fn, const char *format, va_list args)
{
	(void)ctx, (void)priority, (void)file, (void)line, (void)fn, (void)format, (void)args;
}

static const char *ns_mode(struct ndctl_namespace *ndns)
{
	switch (ndctl_namespace_get_mode(ndns)) {
	case NDCTL_NS_MODE_FSDAX: return "fsdax";
	case NDCTL_NS_MODE_DEVDAX: return "devdax";
	case NDCTL_NS_MODE_RAW: return "raw";
	case NDCTL_NS_MODE_SECTOR: return "sector";
	default: return "unknown";
	}
}

/* The block device of a namespace as its mode exposes it, or NULL. */
static const char *ns_blockdev(struct ndctl_namespace *ndns)
{
	struct ndctl_btt *btt = ndctl_namespace_get_btt(ndns);
	struct ndctl_pfn *pfn = ndctl_namespace_get_pfn(ndns);
	const char *b;

	if (btt)
		b = ndctl_btt_get_block_device(btt);
	else if (pfn)
		b = ndctl_pfn_get_block_device(pfn);
	else
		b = ndctl_namespace_get_block_device(ndns);
	return b && *b ? b : NULL;
}

static void add_ns(struct listing *l, struct ndctl_region *region, struct ndctl_namespace *ndns)
{
	struct ndctl_dax *dax = ndctl_namespace_get_dax(ndns);
	struct entry *e;

	if (dax) {
		struct daxctl_region *dr = ndctl_dax_get_daxctl_region(dax);
		struct daxctl_dev *dd;
		bool any = false;

		daxctl_dev_foreach(dr, dd) {
			if (!daxctl_dev_get_size(dd))
				continue;
			e = entry_new(l);
			if (!e)
				return;
			snprintf(e->device, sizeof(e->device), "/dev/%s", daxctl_dev_get_devname(dd));
			snprintf(e->mode, sizeof(e->mode), "devdax");
			e->size = daxctl_dev_get_size(dd);
			snprintf(e->region, sizeof(e->region), "%s", ndctl_region_get_devname(region));
			snprintf(e->ns, sizeof(e->ns), "%s", ndctl_namespace_get_devname(ndns));
			any = true;
		}
		if (any)
			return;
	}
	e = entry_new(l);
	if (!e)
		return;
	if (!dax && ns_blockdev(ndns))
		snprintf(e->device, sizeof(e->device), "/dev/%s", ns_blockdev(ndns));
	snprintf(e->mode, sizeof(e->mode), "%s", ns_mode(ndns));
	e->size = ndctl_namespace_get_size(ndns);
	snprintf(e->region, sizeof(e->region), "%s", ndctl_region_get_devname(region));
	snprintf(e->ns, sizeof(e->ns), "%s", ndctl_namespace_get_devname(ndns));
	if (!e->device[0])
		set_error(e, "no device node (namespace disabled or its dax device not set up)");
}

static void discover_ndctl(struct listing *l)
{
	struct ndctl_ctx *ctx;
	struct ndctl_bus *bus;
	struct ndctl_region *region;
	struct ndctl_namespace *ndns;

	if (ndctl_new(&ctx))
		return;
	if (!cli.verbose)
		ndctl_set_log_fn(ctx, quiet_log);
	ndctl_bus_foreach(ctx, bus) {
		ndctl_region_foreach(bus, region) {
			size_t before = l->n;

			l->pmem_found = true;
			ndctl_namespace_foreach(region, ndns) {
				if (!ndctl_namespace_get_size(ndns) ||
				    (!ndctl_namespace_is_active(ndns) && !ndctl_namespace_is_enabled(ndns)))
					continue;
				add_ns(l, region, ndns);
			}
			if (l->n == before && cli.verbose) {
				struct entry *e = entry_new(l);

				if (!e)
					break;
				e->size = ndctl_region_get_size(region);
				snprintf(e->region, sizeof(e->region), "%s", ndctl_region_get_devname(region));
				e->pcache = 0;
			}
		}
	}
	ndctl_unref(ctx);
}

/* dax devices that no NVDIMM namespace provides (e.g. soft-reserved memory). */
static void discover_daxctl(struct listing *l)
{
	struct daxctl_ctx *ctx;
	struct daxctl_region *region;
	struct daxctl_dev *dd;
	char path[PATH_MAX];

	if (daxctl_new(&ctx))
		return;
	if (!cli.verbose)
		daxctl_set_log_fn(ctx, quiet_dax_log);
	daxctl_region_foreach(ctx, region) {
		daxctl_dev_foreach(region, dd) {
			struct entry *e;

			if (!daxctl_dev_get_size(dd))
				continue;
			snprintf(path, sizeof(path), "/dev/%s", daxctl_dev_get_devname(dd));
			l->pmem_found = true;
			if (listed(l, path))
				continue;
			e = entry_new(l);
			if (!e)
				break;
			snprintf(e->device, sizeof(e->device), "%s", path);
			snprintf(e->mode, sizeof(e->mode), "devdax");
			e->size = daxctl_dev_get_size(dd);
		}
	}
	daxctl_unref(ctx);
}

/* ---- what a device holds ---- */

static void probe_cache(struct entry *e, struct pcm_dev *dev)
{
	struct pcm_open_status st;
	struct pcm_cache *c;
	struct pcm_replay *r = NULL;
	struct pcm_sb sb;
	int rc;

	if (pcm_dev_size(dev) < PCM_SB_OFF + PCM_SB_SIZE) {
		e->pcache = 0;
		return;
	}
	rc = pcm_read_sb(dev, &sb, NULL);
	if (rc) {
		set_error(e, "cannot read the superblock: %s", strerror(-rc));
		return;
	}
	e->pcache = sb.magic == PCM_SB_MAGIC;
	if (!e->pcache)
		return;
	e->seg_num = sb.seg_num;
	rc = pcm_cache_open(dev, &c, &st);
	if (rc) {
		set_error(e, "%s: %s", st.err == PCM_OPEN_IO ? "cannot read metadata" :
			  "corrupt pcache metadata", st.err == PCM_OPEN_IO ? strerror(-rc) :
			  pcm_open_error_str(&st));
		return;
	}
	e->cache_open = true;
	e->data_crc = c->data_crc;
	e->gc_percent = pcm_ci_gc_percent(c->ci.flags);
	rc = pcm_replay_run(c, NULL, &r);
	if (rc)
		set_error(e, "replay: %s", strerror(-rc));
	else if (r->failed)
		set_error(e, "the kernel would refuse to load it: %s", pcm_replay_error_str(r));
	else {
		e->replayed = true;
		e->dirty_bytes = r->dirty_bytes;
	}
	pcm_replay_free(r);
	pcm_cache_close(c);
}

static int probe(struct entry *e)
{
	const struct pcm_badblock *bb;
	struct pcm_dev *dev;
	size_t n;
	int rc;

	if (!e->device[0])
		return 0;
	rc = pcm_dev_holder(e->device, e->holder, sizeof(e->holder));
	e->holder_kind = rc > 0 ? rc : 0;
	rc = pcm_dev_open(e->device, PCM_DEV_RDONLY, &dev);
	if (rc) {
		set_error(e, "cannot open: %s", cli_open_strerror(e->device, rc));
		return rc;
	}
	e->opened = true;
	e->dev_size = pcm_dev_size(dev);
	if (e->from_arg) {
		e->size = e->dev_size;
		snprintf(e->mode, sizeof(e->mode), "%s", pcm_dev_kind(dev) == PCM_DEV_FILE ? "file" :
			 pcm_dev_kind(dev) == PCM_DEV_BLOCK ? "block" : "dax");
	}
	if (pcm_dev_badblock_list(dev, &bb, &n) == 0) {
		e->bad_known = true;
		e->bad_blocks = n;
		for (size_t i = 0; i < n; i++)
			e->bad_bytes += bb[i].len;
	}
	probe_cache(e, dev);
	pcm_dev_close(dev);
	return 0;
}

/* ---- output ---- */

static const char *holder_str(const struct entry *e, char *buf, size_t len)
{
	return e->holder_kind ? pcm_holder_str(e->holder_kind, e->holder, buf, len) : NULL;
}

static json_object *str_or_null(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static json_object *entry_json(const struct entry *e)
{
	json_object *o = json_object_new_object();
	char h[200];
	bool pc = e->pcache == 1;

	json_object_object_add(o, "device", str_or_null(e->device));
	json_object_object_add(o, "mode", str_or_null(e->mode));
	json_object_object_add(o, "size", cli_json_size(e->size));
	json_object_object_add(o, "device_size", e->opened ? cli_json_size(e->dev_size) : NULL);
	json_object_object_add(o, "region", str_or_null(e->region));
	json_object_object_add(o, "namespace", str_or_null(e->ns));
	json_object_object_add(o, "bad_blocks", e->bad_known ? cli_json_u64(e->bad_blocks) : NULL);
	json_object_object_add(o, "bad_bytes", e->bad_known ? cli_json_size(e->bad_bytes) : NULL);
	json_object_object_add(o, "pcache", e->pcache < 0 ? NULL : json_object_new_boolean(pc));
	json_object_object_add(o, "seg_num", pc ? cli_json_u64(e->seg_num) : NULL);
	json_object_object_add(o, "data_crc", pc && e->cache_open ?
			       json_object_new_boolean(e->data_crc) : NULL);
	json_object_object_add(o, "gc_percent", pc && e->cache_open ?
			       cli_json_u64(e->gc_percent) : NULL);
	json_object_object_add(o, "dirty_bytes", pc && e->replayed ? cli_json_size(e->dirty_bytes) :
			       NULL);
	json_object_object_add(o, "in_use", json_object_new_boolean(e->holder_kind != 0));
	json_object_object_add(o, "holder", str_or_null(holder_str(e, h, sizeof(h))));
	json_object_object_add(o, "dm_device", e->holder_kind == PCM_HOLDER_DM ?
			       json_object_new_string(e->holder) : NULL);
	json_object_object_add(o, "error", str_or_null(e->error));
	return o;
}

static void entry_text(const struct entry *e)
{
	char sz[32], dirty[32], h[200], what[400];
	int n = 0;

	if (e->pcache == 1) {
		n = snprintf(what, sizeof(what), "pcache seg_num %u", e->seg_num);
		if (e->cache_open)
			n += snprintf(what + n, sizeof(what) - (size_t)n, ", data_crc %s, gc %u%%",
				      e->data_crc ? "on" : "off", e->gc_percent);
		if (e->replayed)
			n += snprintf(what + n, sizeof(what) - (size_t)n, ", dirty %s",
				      cli_fmt_size(e->dirty_bytes, dirty, sizeof(dirty)));
	} else {
		n = snprintf(what, sizeof(what), "%s", e->pcache == 0 ? "-" : "?");
	}
	if (holder_str(e, h, sizeof(h)))
		n += snprintf(what + n, sizeof(what) - (size_t)n, "; in use by %s", h);
	if (e->error[0])
		snprintf(what + n, sizeof(what) - (size_t)n, "; %s", e->error);
	printf("%-16s %-7s %11s  %-14s %-9s %6s  %s\n", e->device[0] ? e->device : "-",
	       e->mode[0] ? e->mode : "-", cli_fmt_size(e->size, sz, sizeof(sz)),
	       e->ns[0] ? e->ns : "-", e->region[0] ? e->region : "-",
	       e->bad_known ? (snprintf(dirty, sizeof(dirty), "%" PRIu64, e->bad_blocks), dirty) : "?",
	       what);
}

int cmd_list(int argc, char **argv)
{
	static const struct option longopts[] = { REPORT_LONGOPTS, COMMON_LONGOPTS, { 0 } };
	struct listing l = { 0 };
	int opt, rc = EXIT_OK;

	while ((opt = getopt_long(argc, argv, "uqvVh", longopts, NULL)) != -1) {
		rc = cmd_common_opt(opt, usage_text);
		if (rc != -2)
			return rc < 0 ? EXIT_USAGE : rc;
	}
	rc = EXIT_OK;
	discover_ndctl(&l);
	discover_daxctl(&l);
	for (size_t i = 0; i < l.n; i++)
		probe(&l.e[i]);   /* errors are in the entry: discovery does not fail the command */
	if (!l.pmem_found)
		cli_note("pcache list: no persistent memory found");
	for (int i = optind; i < argc; i++) {
		struct entry *e;

		if (listed(&l, argv[i]))
			continue;
		e = entry_new(&l);
		if (!e) {
			cli_err(NULL, "out of memory");
			rc = EXIT_OPERATIONAL;
			break;
		}
		snprintf(e->device, sizeof(e->device), "%s", argv[i]);
		e->from_arg = true;
		if (probe(e)) {
			cli_err(argv[i], "%s", e->error);
			rc = EXIT_OPERATIONAL;
		}
	}
	if (cli.json) {
		json_object *arr = json_object_new_array();

		for (size_t i = 0; i < l.n; i++)
			json_object_array_add(arr, entry_json(&l.e[i]));
		cli_json_print(arr);
		json_object_put(arr);
	} else if (l.n) {
		if (!cli.quiet)
			printf("%-16s %-7s %11s  %-14s %-9s %6s  %s\n", "DEVICE", "MODE", "SIZE",
			       "NAMESPACE", "REGION", "BADBLK", "PCACHE");
		for (size_t i = 0; i < l.n; i++)
			entry_text(&l.e[i]);
	}
	free(l.e);
	return rc;
}
