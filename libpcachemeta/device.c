/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device access.  Regular files and devdax are mapped through libpmem2 (so
 * persistence is pmem2's persist function); fsdax block devices are opened
 * O_EXCL for writing (the kernel holds them exclusively while dm-pcache runs)
 * and read with pread, since a block device mapping is not DAX.
 *
 * Media errors: a load from poisoned pmem (or from a page of a mapped file
 * that no longer exists) raises SIGBUS.  Every access to a mapping made here
 * runs under a guard: a process-wide SIGBUS handler, installed once when the
 * first device is mapped, jumps back out of the access when the faulting
 * address lies in the range the calling thread is touching, and the access
 * returns -EIO.  Any other SIGBUS goes to the handler that was there before,
 * or gets the default action.  Block devices report media errors as EIO from
 * pread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "device_int.h"
#include "overlay.h"

static __thread char dev_errmsg[256];

const char *pcm_dev_errmsg(void)
{
	return dev_errmsg;
}

static void set_errmsg(const char *what)
{
	snprintf(dev_errmsg, sizeof(dev_errmsg), "%s", what ? what : "");
}

/* ---- the SIGBUS guard ---- */

struct guard {
	sigjmp_buf jb;
	const uint8_t *lo, *hi;        /* the mapped bytes being touched */
	volatile sig_atomic_t on;
};

static __thread struct guard guard;
static struct sigaction guard_old;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static bool guard_ok;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct guard *g = &guard;
	const uint8_t *a = si ? (const uint8_t *)si->si_addr : NULL;

	if (g->on && a >= g->lo && a < g->hi) {
		g->on = 0;
		siglongjmp(g->jb, 1);
	}
	/* Not a guarded access: whoever handled SIGBUS before us, else the default. */
	if ((guard_old.sa_flags & SA_SIGINFO) && guard_old.sa_sigaction) {
		guard_old.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(guard_old.sa_flags & SA_SIGINFO) && guard_old.sa_handler != SIG_DFL &&
	    guard_old.sa_handler != SIG_IGN) {
		guard_old.sa_handler(sig);
		return;
	}
	signal(SIGBUS, SIG_DFL);
	/* A fault re-faults on return and dies where it happened; a sent signal is re-sent. */
	if (!si || si->si_code <= 0)
		raise(SIGBUS);
}

static void guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* NODEFER: jumping out of the handler leaves the signal mask as it was */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	guard_ok = sigaction(SIGBUS, &sa, &guard_old) == 0;
}

enum gop { G_READ, G_WRITE, G_ZERO, G_CRC, G_PERSIST };

struct gjob {
	enum gop op;
	uint8_t *map;             /* the mapped range touched: [map, map + len) */
	void *buf;
	size_t len;
	uint32_t crc;
	pmem2_persist_fn persist;
};

static void gjob_run(struct gjob *j)
{
	switch (j->op) {
	case G_READ: memcpy(j->buf, j->map, j->len); break;
	case G_WRITE: memcpy(j->map, j->buf, j->len); break;
	case G_ZERO: memset(j->map, 0, j->len); break;
	case G_CRC: j->crc = pcm_crc32c(j->crc, j->map, j->len); break;
	case G_PERSIST: j->persist(j->map, j->len); break;
	}
}

/* Runs j; -EIO when it faulted on its mapped range. */
static int guarded(struct gjob *j)
{
	struct guard *g = &guard;

	if (!guard_ok) {
		gjob_run(j);
		return 0;
	}
	if (sigsetjmp(g->jb, 0))
		return -EIO;
	g->lo = j->map;
	g->hi = j->map + j->len;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	g->on = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	gjob_run(j);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	g->on = 0;
	return 0;
}

/* ---- who holds a device ---- */

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		rc = -EIO;
	else
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
	return rc;
}

/* The first sysfs holder of a block device: a dm device (by its dm name) or another. */
static int block_holder(dev_t rdev, char *name, size_t len)
{
	char path[192], dm[128];
	DIR *d;
	struct dirent *e;
	int kind = PCM_HOLDER_NONE;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major(rdev), minor(rdev));
	d = opendir(path);
	if (!d)
		return PCM_HOLDER_NONE;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders/%.64s/dm/name",
			 major(rdev), minor(rdev), e->d_name);
		if (read_line(path, dm, sizeof(dm)) == 0 && dm[0]) {
			snprintf(name, len, "%s", dm);
			kind = PCM_HOLDER_DM;
			break;
		}
		if (!kind) {
			snprintf(name, len, "%s", e->d_name);
			kind = PCM_HOLDER_KERNEL;
		}
	}
	closedir(d);
	return kind;
}

static int mount_holder(dev_t rdev, char *name, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mnt[2048];
	unsigned ma, mi;
	int kind = PCM_HOLDER_NONE;

	if (!f)
		return PCM_HOLDER_NONE;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %2047s", &ma, &mi, mnt) == 3 &&
		    ma == major(rdev) && mi == minor(rdev)) {
			snprintf(name, len, "%s", mnt);
			kind = PCM_HOLDER_MOUNT;
			break;
		}
	}
	fclose(f);
	return kind;
}

/* "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF" on the inode: its type and pid. */
static bool lock_line(const char *line, dev_t dev, ino_t ino, char type[16], int *pid)
{
	unsigned ma, mi;
	unsigned long long i;

	return sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", type, pid, &ma, &mi, &i) == 5 &&
	       ma == major(dev) && mi == minor(dev) && i == (unsigned long long)ino;
}

/*
 * The pid in /proc/locks is the process that took the lock; the lock belongs to an
 * open file, which processes it started may have inherited and still hold after it
 * exited (`flock FILE cmd` killed, cmd still running).  Those list the lock in
 * /proc/PID/fdinfo: the first such process that is alive, or 0.
 */
static int lock_inheritor(dev_t dev, ino_t ino)
{
	DIR *proc = opendir("/proc"), *fds;
	struct dirent *p, *f;
	char path[96], line[256], type[16];
	int pid, found = 0;

	while (proc && !found && (p = readdir(proc))) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.16s/fdinfo", p->d_name);
		fds = opendir(path);
		while (fds && !found && (f = readdir(fds))) {
			FILE *in;

			snprintf(path, sizeof(path), "/proc/%.16s/fdinfo/%.16s", p->d_name, f->d_name);
			in = f->d_name[0] == '.' ? NULL : fopen(path, "re");
			while (in && !found && fgets(line, sizeof(line), in))
				if (!strncmp(line, "lock:", 5) && lock_line(line + 5, dev, ino, type, &pid))
					found = atoi(p->d_name);
			if (in)
				fclose(in);
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	return found;
}

/*
 * A process holding a lock on the inode, from /proc/locks: a flock (what our
 * commands take) first, else a POSIX or OFD lock.
 */
static int lock_holder(dev_t dev, ino_t ino, char *name, size_t len)
{
	FILE *f = fopen("/proc/locks", "re");
	char line[256], type[16], path[64], comm[64];
	int pid, best = -1, heir;
	bool found = false;

	if (!f)
		return PCM_HOLDER_NONE;
	while (fgets(line, sizeof(line), f)) {
		/* waiters have "->" after the number: not a holder, sscanf stops there */
		if (!lock_line(line, dev, ino, type, &pid))
			continue;
		if (!found || !strcmp(type, "FLOCK"))
			best = pid;
		found = true;
		if (!strcmp(type, "FLOCK"))
			break;
	}
	fclose(f);
	if (!found)
		return PCM_HOLDER_NONE;
	snprintf(path, sizeof(path), "/proc/%d/comm", best);
	if (best <= 0 || read_line(path, comm, sizeof(comm))) {
		/* the locker is gone (or an OFD lock, pid -1): who holds its open file now */
		heir = lock_inheritor(dev, ino);
		if (heir > 0)
			best = heir;
		snprintf(path, sizeof(path), "/proc/%d/comm", best);
	}
	if (best > 0 && read_line(path, comm, sizeof(comm)) == 0)
		snprintf(name, len, "%s (pid %d)", comm, best);
	else if (best > 0)
		snprintf(name, len, "pid %d", best);
	else
		snprintf(name, len, "another process");
	return PCM_HOLDER_PROCESS;
}

int pcm_dev_holder(const char *path, char *name, size_t len)
{
	struct stat st;
	int kind;

	if (len)
		name[0] = 0;
	if (stat(path, &st))
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		kind = block_holder(st.st_rdev, name, len);
		return kind ? kind : mount_holder(st.st_rdev, name, len);
	}
	return lock_holder(st.st_dev, st.st_ino, name, len);
}

/*
 * A process other than us with the block device rdev open (a link in /proc/PID/fd): the
 * likely holder of an O_EXCL open when sysfs and the mount table name none.  The kernel
 * does not show which opener holds it exclusively; the first one found is named.
 */
static int block_opener(dev_t rdev, char *name, size_t len)
{
	DIR *proc = opendir("/proc"), *fds;
	struct dirent *p, *f;
	char path[96], comm[64];
	struct stat st;
	int pid, found = 0;

	while (proc && !found && (p = readdir(proc))) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		pid = atoi(p->d_name);
		if (pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%.16s/fd", p->d_name);
		fds = opendir(path);
		while (fds && !found && (f = readdir(fds))) {
			if (f->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%.16s/fd/%.16s", p->d_name, f->d_name);
			if (!stat(path, &st) && S_ISBLK(st.st_mode) && st.st_rdev == rdev)
				found = pid;
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	if (!found)
		return PCM_HOLDER_NONE;
	snprintf(path, sizeof(path), "/proc/%d/comm", found);
	if (read_line(path, comm, sizeof(comm)) == 0)
		snprintf(name, len, "%s (pid %d)", comm, found);
	else
		snprintf(name, len, "pid %d", found);
	return PCM_HOLDER_PROCESS;
}

int pcm_dev_busy_holder(const char *path, char *name, size_t len)
{
	struct stat st;
	int kind = pcm_dev_holder(path, name, len);

	if (kind == PCM_HOLDER_NONE && !stat(path, &st) && S_ISBLK(st.st_mode))
		kind = block_opener(st.st_rdev, name, len);
	return kind;
}

const char *pcm_holder_str(int kind, const char *name, char *buf, size_t len)
{
	const char *what = kind == PCM_HOLDER_DM ? "dm device " :
			   kind == PCM_HOLDER_KERNEL ? "kernel device " :
			   kind == PCM_HOLDER_MOUNT ? "a filesystem mounted on " :
			   kind == PCM_HOLDER_PROCESS ? "process " : NULL;

	if (len)
		snprintf(buf, len, "%s%s", what ? what : "", what && name ? name : "");
	return buf;
}

/* -EBUSY: say who holds it, as "dm device NAME", "process COMM (pid N)", ... */
static int busy(const char *path)
{
	char name[160];

	pcm_holder_str(pcm_dev_busy_holder(path, name, sizeof(name)), name, dev_errmsg,
		       sizeof(dev_errmsg));
	return -EBUSY;
}

/* ---- opening and mapping ---- */

/*
 * Test seam: PCACHE_TEST_POISON="OFF:LEN[,OFF:LEN...]" (bytes, widened to whole
 * pages) replaces those pages of a mapping by pages of an empty memfd, so that
 * touching them raises SIGBUS as poisoned pmem does.  The file is not changed.
 */
static int test_poison(struct pcm_dev *dev)
{
	const char *s = getenv("PCACHE_TEST_POISON");
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	int prot = PROT_READ | ((dev->flags & PCM_DEV_RDWR) ? PROT_WRITE : 0);

	while (s && *s) {
		char *end;
		uint64_t off = strtoull(s, &end, 0), len, a, b;
		int fd;

		if (*end != ':')
			return -EINVAL;
		len = strtoull(end + 1, &end, 0);
		if ((*end && *end != ',') || !len)
			return -EINVAL;
		s = *end ? end + 1 : end;
		if (off >= dev->size)
			continue;
		a = off / page * page;
		b = (len > dev->size - off ? dev->size : off + len);
		b = (b + page - 1) / page * page;
		fd = memfd_create("pcache-test-poison", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (mmap(dev->base + a, b - a, prot, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
			close(fd);
			return -errno;
		}
		close(fd);
	}
	return 0;
}

static int dev_map(struct pcm_dev *dev)
{
	struct pmem2_config *cfg = NULL;
	int rc;

	rc = pmem2_config_new(&cfg);
	if (!rc)
		rc = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	if (!rc && !(dev->flags & PCM_DEV_RDWR))
		rc = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
	if (!rc)
		rc = pmem2_source_from_fd(&dev->src, dev->fd);
	if (!rc)
		rc = pmem2_map_new(&dev->map, cfg, dev->src);
	if (rc) {
		set_errmsg(pmem2_errormsg());
		/* pmem2 returns -errno, or its own codes far below -4096 */
		rc = (rc < 0 && rc > -4096) ? rc : -EINVAL;
	} else {
		dev->base = pmem2_map_get_address(dev->map);
		dev->persist = pmem2_get_persist_fn(dev->map);
		if (pmem2_map_get_size(dev->map) < dev->size || dev->kind == PCM_DEV_DAX)
			dev->size = pmem2_map_get_size(dev->map);
		pthread_once(&guard_once, guard_install);
		rc = test_poison(dev);
	}
	if (cfg)
		pmem2_config_delete(&cfg);
	return rc;
}

static int dev_identify(struct pcm_dev *dev, const struct stat *st)
{
	char name[160];

	dev->rdev = st->st_rdev;
	if (S_ISREG(st->st_mode)) {
		dev->kind = PCM_DEV_FILE;
		dev->size = (uint64_t)st->st_size;
	} else if (S_ISBLK(st->st_mode)) {
		dev->kind = PCM_DEV_BLOCK;
		if (ioctl(dev->fd, BLKGETSIZE64, &dev->size))
			return -errno;
		/* holders that did not claim it exclusively still use it */
		if ((dev->flags & PCM_DEV_EXCL) && block_holder(st->st_rdev, name, sizeof(name)))
			return busy(dev->path);
	} else if (S_ISCHR(st->st_mode)) {
		dev->kind = PCM_DEV_DAX;
		dev->size = 0;   /* from the mapping */
	} else {
		return -ENODEV;
	}
	return 0;
}

int pcm_dev_open(const char *path, unsigned flags, struct pcm_dev **out)
{
	struct pcm_dev *dev = calloc(1, sizeof(*dev));
	struct stat st;
	int oflags = (flags & PCM_DEV_RDWR) ? O_RDWR : O_RDONLY;
	int rc;

	set_errmsg("");
	if (!dev)
		return -ENOMEM;
	dev->fd = -1;
	dev->flags = flags;
	dev->path = strdup(path);
	if (!dev->path) {
		rc = -ENOMEM;
		goto fail;
	}
	if (stat(path, &st)) {
		rc = -errno;
		goto fail;
	}
	if (S_ISBLK(st.st_mode) && (flags & PCM_DEV_EXCL))
		oflags |= O_EXCL;
	dev->fd = open(path, oflags | O_CLOEXEC);
	if (dev->fd < 0) {
		rc = errno == EBUSY ? busy(path) : -errno;
		goto fail;
	}
	/*
	 * Files and devdax: an advisory lock keeps our writers apart, and a writer
	 * from readers that asked for exclusion (shared lock for those).
	 */
	if ((flags & PCM_DEV_EXCL) && !S_ISBLK(st.st_mode) &&
	    flock(dev->fd, ((flags & PCM_DEV_RDWR) ? LOCK_EX : LOCK_SH) | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? busy(path) : -errno;
		goto fail;
	}
	rc = dev_identify(dev, &st);
	if (rc)
		goto fail;
	if (dev->kind == PCM_DEV_DAX || (dev->kind == PCM_DEV_FILE && !(flags & PCM_DEV_NOMAP) &&
					 dev->size != 0)) {
		rc = dev_map(dev);
		if (rc)
			goto fail;
	}
	*out = dev;
	return 0;
fail:
	pcm_dev_close(dev);
	return rc;
}

void pcm_dev_close(struct pcm_dev *dev)
{
	if (!dev)
		return;
	ov_free(dev->ov);
	if (dev->map)
		pmem2_map_delete(&dev->map);
	if (dev->src)
		pmem2_source_delete(&dev->src);
	if (dev->fd >= 0)
		close(dev->fd);
	free(dev->bb);
	free(dev->path);
	free(dev);
}

uint64_t pcm_dev_size(const struct pcm_dev *dev)
{
	return dev->size;
}

enum pcm_dev_kind pcm_dev_kind(const struct pcm_dev *dev)
{
	return dev->kind;
}

const char *pcm_dev_path(const struct pcm_dev *dev)
{
	return dev->path;
}

bool pcm_dev_writable(const struct pcm_dev *dev)
{
	return dev->flags & PCM_DEV_RDWR;
}

static int range_ok(const struct pcm_dev *dev, uint64_t off, uint64_t len)
{
	return off <= dev->size && len <= dev->size - off;
}

int pcm_dev_read(struct pcm_dev *dev, uint64_t off, void *buf, size_t len)
{
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return ov_read(dev->ov, off, buf, len);
	if (dev->base) {
		struct gjob j = { .op = G_READ, .map = dev->base + off, .buf = buf, .len = len };

		return guarded(&j);
	}
	while (len) {
		ssize_t n = pread(dev->fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf = (uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pcm_dev_crc(struct pcm_dev *dev, uint64_t off, uint64_t len, uint32_t seed, uint32_t *crc)
{
	uint8_t buf[16384];   /* small: a sanitizer build poisons the whole frame per call */

	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (!dev->ov && dev->base) {
		struct gjob j = { .op = G_CRC, .map = dev->base + off, .len = (size_t)len,
				  .crc = seed };
		int rc = guarded(&j);

		if (!rc)
			*crc = j.crc;
		return rc;
	}
	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		uint64_t clean = dev->ov ? ov_clean_len(dev->ov, off, len) : 0;
		int rc;

		if (clean) {   /* an overlay's unwritten part: the base's own (mapped) path */
			rc = pcm_dev_crc(dev->ov_base, off, clean, seed, &seed);
			n = (size_t)clean;
		} else {
			if (dev->ov)   /* up to the end of this overlay page */
				n = n < OV_PAGE - off % OV_PAGE ? n : OV_PAGE - off % OV_PAGE;
			rc = pcm_dev_read(dev, off, buf, n);
			if (!rc)
				seed = pcm_crc32c(seed, buf, n);
		}
		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	*crc = seed;
	return 0;
}

int pcm_dev_write(struct pcm_dev *dev, uint64_t off, const void *buf, size_t len)
{
	if (!(dev->flags & PCM_DEV_RDWR))
		return -EROFS;
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return ov_write(dev->ov, off, buf, len);
	if (dev->base) {
		struct gjob j = { .op = G_WRITE, .map = dev->base + off, .buf = (void *)buf,
				  .len = len };

		return guarded(&j);
	}
	while (len) {
		ssize_t n = pwrite(dev->fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf = (const uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pcm_dev_zero(struct pcm_dev *dev, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (!(dev->flags & PCM_DEV_RDWR))
		return -EROFS;
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return ov_write(dev->ov, off, NULL, len);
	if (dev->base) {
		struct gjob j = { .op = G_ZERO, .map = dev->base + off, .len = (size_t)len };

		return guarded(&j);
	}
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = pcm_dev_write(dev, off, zeros, n);

		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

int pcm_dev_persist(struct pcm_dev *dev, uint64_t off, uint64_t len)
{
	if (!(dev->flags & PCM_DEV_RDWR))
		return -EROFS;
	if (!range_ok(dev, off, len))
		return -ERANGE;
	if (dev->ov)
		return 0;
	if (dev->base) {
		struct gjob j = { .op = G_PERSIST, .map = dev->base + off, .len = (size_t)len,
				  .persist = dev->persist };

		return guarded(&j);
	}
	return fdatasync(dev->fd) ? -errno : 0;
}

const void *pcm_dev_ptr(struct pcm_dev *dev, uint64_t off, size_t len)
{
	if (!dev->base || !range_ok(dev, off, len))
		return NULL;
	return dev->base + off;
}

int pcm_dev_overlay(struct pcm_dev *base, struct pcm_dev **out)
{
	struct pcm_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return -ENOMEM;
	dev->fd = -1;
	dev->flags = PCM_DEV_RDWR;
	dev->kind = base->kind;
	dev->size = base->size;
	dev->ov_base = base;
	dev->path = strdup(base->path);
	dev->ov = ov_new(base);
	if (!dev->path || !dev->ov) {
		pcm_dev_close(dev);
		return -ENOMEM;
	}
	*out = dev;
	return 0;
}

const struct pcm_ov_write *pcm_dev_overlay_writes(const struct pcm_dev *dev, uint64_t *n)
{
	*n = 0;
	return dev->ov ? ov_writes(dev->ov, n) : NULL;
}
