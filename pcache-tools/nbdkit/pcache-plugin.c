/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbdkit-pcache-plugin: a dm-pcache cache served as an NBD export, without
 * the kernel module, by the embedded engine (pcache-tools/engine).
 *
 *   nbdkit pcache cache=DEV backing=BACKING [readonly=true] [gc_percent=N]
 *                 [background=false]
 *
 * One engine is opened in .get_ready (so a cache the kernel would not load,
 * or a busy one, stops nbdkit before it serves, with the engine's message)
 * and shared by every connection; the engine is thread-safe, so the thread
 * model is PARALLEL.  A cache the kernel loads but would then damage by
 * writing (pce_rdonly_reason) is served read-only, with one error line that
 * says why; nothing is written to it, gc_percent=N included.
 * The export is the backing device, in whole sectors, as the kernel's table
 * line.  NBD requests map to what the kernel sees from the block layer:
 * READ, WRITE (FUA -> the key's open kset is closed before the reply), FLUSH
 * (every open kset closed).  dm-pcache offers neither discard nor
 * write-zeroes: trim is not advertised, and a zero request is what the block
 * layer makes of it for such a device: a write of zeroes (nbdkit emulates
 * it through .pwrite).  Requests that are not sector-aligned are served by
 * read-modify-write of the sectors they touch (the block_size callback asks
 * clients for 512-byte alignment; the kernel never sends anything else).
 *
 * A background thread (started in .after_fork) does what the kernel's
 * workers do while the target is loaded: it closes open ksets within a
 * second of their first key, writes dirty data back (§7.2) and runs
 * GC while its trigger holds.  .cleanup stops it and closes the engine,
 * which writes every open kset: nothing acknowledged is lost at a clean
 * shutdown.  A failed final flush makes nbdkit exit with status 1.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define SECTOR             512u
#define BLOCK_PREFERRED    4096u
#define BLOCK_MAX          (32u << 20)
#define TICK_MS            1000      /* the kernel closes an open kset 1 s after its first key */
#define WB_IDLE_MS         5000      /* writeback looks again this long after a clean pass */
#define GC_MS              5000      /* the kernel's GC interval */
#define RETRY_MS           5000      /* after a writeback error */
#define WB_ROUND_KSETS     64        /* ksets per background writeback round */

/* Parameters. */
static char *cache_path, *backing_path;
static bool opt_readonly;
static int opt_gc_percent = -1;
static bool opt_background = true;

/* The engine, shared by all connections. */
static struct pce *engine;
static bool served_ro;            /* readonly=true, or the engine opened the cache read-only */
static uint64_t export_size;
static bool data_crc;

/*
 * Aligned writes take this shared, read-modify-writes exclusively: an RMW
 * must not put back stale bytes of a sector another write is changing.
 */
static pthread_rwlock_t rmw_lock = PTHREAD_RWLOCK_INITIALIZER;

/* The background worker. */
static struct {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	volatile sig_atomic_t stop;
	bool wb_reported, gc_reported, flush_reported;
	uint64_t wb_next, gc_next;       /* now_ms() of the next writeback, GC */
} bg = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void pcache_unload(void)
{
	/* .cleanup has closed the engine; this is for nbdkit --dump-plugin and errors */
	free(cache_path);
	free(backing_path);
	cache_path = backing_path = NULL;
}

static int parse_path(const char *key, const char *value, char **out)
{
	char *p;

	if (*out) {
		nbdkit_error("%s given twice", key);
		return -1;
	}
	/* nbdkit may change directory: keep absolute paths; a missing file is an error here */
	p = nbdkit_realpath(value);
	if (!p)
		return -1;
	*out = p;
	return 0;
}

static int pcache_config(const char *key, const char *value)
{
	int r;

	if (!strcmp(key, "cache"))
		return parse_path(key, value, &cache_path);
	if (!strcmp(key, "backing"))
		return parse_path(key, value, &backing_path);
	if (!strcmp(key, "readonly")) {
		r = nbdkit_parse_bool(value);
		if (r < 0)
			return -1;
		opt_readonly = r;
		return 0;
	}
	if (!strcmp(key, "background")) {
		r = nbdkit_parse_bool(value);
		if (r < 0)
			return -1;
		opt_background = r;
		return 0;
	}
	if (!strcmp(key, "gc_percent")) {
		unsigned v;

		if (nbdkit_parse_unsigned("gc_percent", value, &v) == -1)
			return -1;
		if (v > PCM_GC_PERCENT_MAX) {
			nbdkit_error("gc_percent: %u is not in 0..%u", v, PCM_GC_PERCENT_MAX);
			return -1;
		}
		opt_gc_percent = (int)v;
		return 0;
	}
	nbdkit_error("unknown parameter '%s' (see nbdkit pcache --help)", key);
	return -1;
}

static int pcache_config_complete(void)
{
	if (!cache_path || !backing_path) {
		nbdkit_error("cache=DEV and backing=BACKING are both required");
		return -1;
	}
	if (!strcmp(cache_path, backing_path)) {
		nbdkit_error("cache and backing are the same file: %s", cache_path);
		return -1;
	}
	if (opt_readonly && opt_gc_percent >= 0) {
		nbdkit_error("gc_percent changes the cache: not with readonly=true");
		return -1;
	}
	return 0;
}

#define pcache_config_help \
	"cache=DEV            (required) the cache device: pmem, devdax or an image file\n" \
	"backing=BACKING      (required) the backing device or file\n" \
	"readonly=true        open both devices read-only; serve what the cache holds\n" \
	"gc_percent=N         set the GC threshold (0-90), as 'dmsetup message gc_percent'\n" \
	"background=false     no background writeback, GC or timed kset close"

static void pcache_dump_plugin(void)
{
	printf("pcache_version=%s\n", PCACHE_VERSION);
	printf("pcache_crc32c=%s\n", pcm_crc32c_impl());
}

/* The engine's "PATH: cannot open: ..." for a busy device, with who holds it. */
static void report_busy(const struct pce_error *err)
{
	char name[160], who[192];
	int k = err->path ? pcm_dev_busy_holder(err->path, name, sizeof(name)) : -EINVAL;

	if (k > 0 && name[0])
		nbdkit_error("%s: cannot open: in use by %s", err->path,
			     pcm_holder_str(k, name, who, sizeof(who)));
	else
		nbdkit_error("%s (held by another program: dm-pcache, or a running pcache "
			     "command)", err->msg);
}

/* The engine's refusal, with fsck's hint where fsck has more to say (the kernel's verdict). */
static void report_open_error(struct pce_error *err, int rc)
{
	if (!err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "%s: %s", cache_path, strerror(-rc));
	if (err->err == -EBUSY)
		report_busy(err);
	else
		nbdkit_error("%s", err->msg);
	/* a line of its own, as every pcache command gives it (pcache serve shows it so) */
	if (err->err == -EUCLEAN)
		nbdkit_error("hint: run 'pcache fsck -n %s' for details", cache_path);
}

/*
 * A cache the kernel loads but would then damage is served read-only, said in one
 * line (readonly=true: simply read-only).  gc_percent=N is refused on it: it writes.
 */
static int apply_rdonly_and_gc(void)
{
	const char *why = pce_rdonly_reason(engine);
	int rc;

	served_ro = opt_readonly || why;
	if (why && !opt_readonly)
		nbdkit_error("%s: served read-only: %s; 'pcache fsck -y' repairs it", cache_path, why);
	if (opt_gc_percent < 0)
		return 0;
	rc = pce_set_gc_percent(engine, (unsigned)opt_gc_percent);
	if (rc)
		nbdkit_error("%s: cannot set gc_percent %d: %s", cache_path, opt_gc_percent,
			     rc == -EROFS ? "the cache is served read-only" : strerror(-rc));
	else
		nbdkit_debug("%s: gc_percent set to %d", cache_path, opt_gc_percent);
	return rc;
}

static int pcache_get_ready(void)
{
	struct pce_opts o = { .flags = PCE_VERIFY_DATA };
	struct pce_status s;
	struct pce_error err;
	int rc;

	if (opt_readonly)
		o.flags |= PCE_RDONLY;
	rc = pce_open(cache_path, backing_path, &o, &engine, &err);
	if (rc) {
		report_open_error(&err, rc);
		engine = NULL;
		return -1;
	}
	if (apply_rdonly_and_gc()) {
		pce_abandon(engine);
		engine = NULL;
		return -1;
	}
	pce_status(engine, &s);
	data_crc = s.data_crc;
	/* the kernel's table line: the backing size in whole sectors (the engine refuses less) */
	export_size = s.backing_size / SECTOR * SECTOR;
	nbdkit_debug("pcache: %s on %s: %" PRIu64 " bytes, %u/%u segments used, gc_percent %u, "
		     "data_crc %d%s", cache_path, backing_path, export_size, s.segs_used, s.n_segs,
		     s.gc_percent, s.data_crc, served_ro ? ", read-only" : "");
	return 0;
}

/* ---- the background worker ---- */

/*
 * Writeback from dirty_tail, at most WB_ROUND_KSETS ksets (one batch: written,
 * backing flushed, dirty_tail persisted), so that GC runs between rounds and
 * reclaims what was written back while new writes keep coming.  True when
 * there is more to write back.
 */
static bool bg_writeback(void)
{
	struct pce_wb_opts o = { .verify_data = data_crc, .retry = true, .cancel = &bg.stop,
				 .max_ksets = WB_ROUND_KSETS };
	struct pce_wb_result r;
	int rc = pce_writeback(engine, &o, &r);
	bool progress = !rc && r.stop == PCE_WB_LIMIT;

	if (rc || (r.stop != PCE_WB_CLEAN && r.stop != PCE_WB_CANCELLED &&
		   r.stop != PCE_WB_LIMIT)) {
		/* reported once; retried every RETRY_MS (the kernel retries I/O forever) */
		if (!bg.wb_reported)
			nbdkit_error("%s: background writeback stopped: %s%s%s", cache_path,
				     rc ? strerror(-rc) : pce_wb_stop_str(r.stop),
				     r.err ? ": " : "", r.err ? strerror(-r.err) : "");
		bg.wb_reported = true;
		progress = false;
	} else {
		bg.wb_reported = false;
	}
	pce_wb_result_free(&r);
	return progress;
}

static void bg_gc(void)
{
	struct pce_gc_result r;
	int rc = pce_gc(engine, &r);

	if (rc && !bg.gc_reported)
		nbdkit_error("%s: GC stopped: %s", cache_path, strerror(-rc));
	bg.gc_reported = rc != 0;
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/*
 * One round; returns the milliseconds to wait before the next (0: at once).
 * The kernel's timing (§2.9): open ksets closed within a second;
 * writeback goes on while it finds dirty ksets and looks again 5 s after it
 * found none; GC every 5 s, and here also after each writeback round.
 */
static int bg_round(void)
{
	uint64_t t = now_ms();
	bool more = false, wrote = false;
	int rc = pce_flush(engine);

	if (rc && !bg.flush_reported)
		nbdkit_error("%s: closing the open ksets failed: %s", cache_path, strerror(-rc));
	bg.flush_reported = rc != 0;
	if (t >= bg.wb_next) {
		more = bg_writeback();
		wrote = true;
		bg.wb_next = more ? t : t + (bg.wb_reported ? RETRY_MS : WB_IDLE_MS);
	}
	if (wrote || t >= bg.gc_next) {
		bg_gc();
		bg.gc_next = t + GC_MS;
	}
	return more ? 0 : TICK_MS;
}

static void *bg_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&bg.lock);
	while (!bg.stop) {
		struct timespec t;
		int wait_ms;

		pthread_mutex_unlock(&bg.lock);
		wait_ms = bg_round();
		pthread_mutex_lock(&bg.lock);
		if (!wait_ms || bg.stop)
			continue;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += wait_ms / 1000;
		t.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		while (!bg.stop && pthread_cond_timedwait(&bg.wake, &bg.lock, &t) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&bg.lock);
	return NULL;
}

static int pcache_after_fork(void)
{
	int rc;

	if (!engine || served_ro || !opt_background)
		return 0;
	rc = pthread_create(&bg.thread, NULL, bg_main, NULL);
	if (rc) {
		nbdkit_error("cannot start the background thread: %s", strerror(rc));
		return -1;
	}
	bg.started = true;
	return 0;
}

static void bg_stop(void)
{
	if (!bg.started)
		return;
	pthread_mutex_lock(&bg.lock);
	bg.stop = 1;
	pthread_cond_broadcast(&bg.wake);
	pthread_mutex_unlock(&bg.lock);
	pthread_join(bg.thread, NULL);
	bg.started = false;
}

static void pcache_cleanup(void)
{
	int rc;

	bg_stop();
	if (!engine)
		return;
	rc = pce_close(engine);   /* writes every open kset */
	engine = NULL;
	if (rc) {
		nbdkit_error("%s: the final flush failed: %s: writes acknowledged since the last "
			     "FLUSH may be lost", cache_path, strerror(-rc));
		/* the exit status must show it: nothing is left to clean up but nbdkit's own */
		fflush(NULL);
		_exit(EXIT_FAILURE);
	}
	nbdkit_debug("pcache: %s closed cleanly", cache_path);
}

/* ---- connections ---- */

static void *pcache_open(int readonly)
{
	(void)readonly;
	return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t pcache_get_size(void *h)
{
	(void)h;
	return (int64_t)export_size;
}

static int pcache_can_write(void *h)
{
	(void)h;
	return !served_ro;
}

static int pcache_can_flush(void *h)
{
	(void)h;
	return 1;
}

static int pcache_can_fua(void *h)
{
	(void)h;
	return NBDKIT_FUA_NATIVE;
}

/* FLUSH is global in the engine (every open kset), whatever connection sends it. */
static int pcache_can_multi_conn(void *h)
{
	(void)h;
	return 1;
}

/* Not offered by dm-pcache: write-zeroes becomes a write of zeroes, as the block layer does. */
static int pcache_can_zero(void *h)
{
	(void)h;
	return 0;
}

static int pcache_can_fast_zero(void *h)
{
	(void)h;
	return 0;
}

static int pcache_can_trim(void *h)
{
	(void)h;
	return 0;
}

static int pcache_block_size(void *h, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
	(void)h;
	*minimum = SECTOR;
	*preferred = BLOCK_PREFERRED;
	*maximum = BLOCK_MAX;
	return 0;
}

static int io_error(const char *what, int rc, uint32_t count, uint64_t off)
{
	nbdkit_error("%s %" PRIu32 " bytes at offset %" PRIu64 ": %s", what, count, off,
		     strerror(-rc));
	errno = -rc;
	nbdkit_set_error(-rc);
	return -1;
}

static int pcache_pread(void *h, void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
	int rc;

	(void)h;
	(void)flags;
	rc = pce_read(engine, off, buf, count);
	return rc ? io_error("read", rc, count, off) : 0;
}

/* A write that does not start and end on sector boundaries: whole sectors around it. */
static int write_rmw(const void *buf, uint32_t count, uint64_t off, bool fua)
{
	uint64_t lo = off / SECTOR * SECTOR;
	uint64_t hi = (off + count + SECTOR - 1) / SECTOR * SECTOR;
	size_t span = (size_t)(hi - lo);
	uint8_t *b = malloc(span);
	int rc;

	if (!b)
		return -ENOMEM;
	rc = pce_read(engine, lo, b, SECTOR);
	if (!rc && span > SECTOR)
		rc = pce_read(engine, hi - SECTOR, b + span - SECTOR, SECTOR);
	if (!rc) {
		memcpy(b + (off - lo), buf, count);
		rc = pce_write(engine, lo, b, span, fua);
	}
	free(b);
	return rc;
}

static int pcache_pwrite(void *h, const void *buf, uint32_t count, uint64_t off,
			 uint32_t flags)
{
	bool fua = flags & NBDKIT_FLAG_FUA;
	int rc;

	(void)h;
	if (!count)
		return 0;
	if (off % SECTOR == 0 && count % SECTOR == 0) {
		pthread_rwlock_rdlock(&rmw_lock);
		rc = pce_write(engine, off, buf, count, fua);
	} else {
		pthread_rwlock_wrlock(&rmw_lock);
		rc = write_rmw(buf, count, off, fua);
	}
	pthread_rwlock_unlock(&rmw_lock);
	return rc ? io_error("write", rc, count, off) : 0;
}

static int pcache_flush(void *h, uint32_t flags)
{
	int rc;

	(void)h;
	(void)flags;
	rc = pce_flush(engine);
	if (!rc)
		return 0;
	nbdkit_error("flush: %s", strerror(-rc));
	errno = -rc;
	nbdkit_set_error(-rc);
	return -1;
}

static struct nbdkit_plugin plugin = {
	.name = "pcache",
	.longname = "dm-pcache cache served by the pcache-tools engine",
	.version = PCACHE_VERSION,
	.description = "Serves BACKING through the dm-pcache cache DEV, as the kernel target would",
	.unload = pcache_unload,
	.config = pcache_config,
	.config_complete = pcache_config_complete,
	.config_help = pcache_config_help,
	.magic_config_key = "cache",
	.dump_plugin = pcache_dump_plugin,
	.get_ready = pcache_get_ready,
	.after_fork = pcache_after_fork,
	.cleanup = pcache_cleanup,
	.open = pcache_open,
	.get_size = pcache_get_size,
	.block_size = pcache_block_size,
	.can_write = pcache_can_write,
	.can_flush = pcache_can_flush,
	.can_fua = pcache_can_fua,
	.can_multi_conn = pcache_can_multi_conn,
	.can_zero = pcache_can_zero,
	.can_fast_zero = pcache_can_fast_zero,
	.can_trim = pcache_can_trim,
	.pread = pcache_pread,
	.pwrite = pcache_pwrite,
	.flush = pcache_flush,
	.errno_is_preserved = 1,
};

/* NBDKIT_REGISTER_PLUGIN defines it; the plugin's only exported symbol (plugin.sym) */
NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init(void);

NBDKIT_REGISTER_PLUGIN(plugin)
