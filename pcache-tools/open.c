/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Opening a device and its cache for a command, with the error lines of doc/exit-codes.md. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void cli_err_busy(const char *path, const char *who)
{
	char name[160], buf[192];

	if (!who || !*who)
		who = pcm_holder_str(pcm_dev_busy_holder(path, name, sizeof(name)), name, buf,
				     sizeof(buf));
	if (!*who) {
		cli_err(path, "cannot open: %s", cli_dev_strerror(-EBUSY));
		return;
	}
	/* "in use by dm device NAME", "in use by process flock (pid N)", ... */
	cli_err(path, "cannot open: in use by %s", who);
	if (!strncmp(who, "dm device ", 10))
		cli_hint("the kernel is using it: 'dmsetup remove %s' first ('pcache info' and "
			 "'pcache list' can read it meanwhile)", who + 10);
}

const char *cli_open_strerror(const char *path, int err)
{
	struct stat st;

	if (err == -EINVAL && !stat(path, &st) && S_ISCHR(st.st_mode))
		return "a character device that is not a dax device";
	return cli_dev_strerror(err);
}

int cli_open_dev(const char *path, unsigned flags, struct pcm_dev **dev)
{
	int rc = pcm_dev_open(path, flags, dev);

	struct stat st;

	if (rc == 0)
		return EXIT_OK;
	if (rc == -EBUSY)
		cli_err_busy(path, pcm_dev_errmsg());
	else if (rc == -EINVAL && !stat(path, &st) && S_ISCHR(st.st_mode))
		cli_err(path, "cannot open: %s", cli_open_strerror(path, rc));
	else if (*pcm_dev_errmsg())
		cli_err(path, "cannot open: %s (%s)", cli_dev_strerror(rc), pcm_dev_errmsg());
	else
		cli_err(path, "cannot open: %s", cli_dev_strerror(rc));
	return EXIT_OPERATIONAL;
}

enum cli_sb_kind cli_sb_words(struct pcm_dev *dev, char *buf, size_t len)
{
	uint64_t size = pcm_dev_size(dev), need;
	char have[64], want[64];
	struct pcm_sb sb;

	if (size < PCM_SB_OFF + PCM_SB_SIZE) {
		snprintf(buf, len, "not a pcache device: %s is too small to hold a superblock",
			 cli_fmt_bytes(size, have, sizeof(have)));
		return CLI_SB_NOT_PCACHE;
	}
	if (pcm_read_sb(dev, &sb, NULL)) {
		snprintf(buf, len, "cannot read the superblock");
		return CLI_SB_BAD;
	}
	cli_fmt_bytes(size, have, sizeof(have));
	need = PCM_SEGMENTS_OFF + (uint64_t)sb.seg_num * PCM_SEG_SIZE;
	switch (pcm_sb_check(&sb, size)) {
	case PCM_SB_OK:
		return CLI_SB_OK;
	case PCM_SB_UNFORMATTED:
		snprintf(buf, len, "not a pcache device: no pcache superblock%s",
			 size < PCM_DEV_SIZE_MIN ? " (and smaller than 512 MiB, the least a cache "
			 "needs)" : "");
		return CLI_SB_NOT_PCACHE;
	case PCM_SB_BAD_MAGIC:
		snprintf(buf, len, "not a pcache device: no pcache superblock (magic 0x%016llx)",
			 (unsigned long long)sb.magic);
		return CLI_SB_NOT_PCACHE;
	case PCM_SB_TOO_SMALL:
		if (sb.magic != PCM_SB_MAGIC) {
			snprintf(buf, len, "not a pcache device: smaller than 512 MiB, the least a "
				 "cache needs");
			return CLI_SB_NOT_PCACHE;
		}
		break;   /* a pcache superblock on a device cut short */
	case PCM_SB_BAD_CRC:
		snprintf(buf, len, "corrupt pcache superblock: checksum mismatch");
		return CLI_SB_BAD;
	case PCM_SB_BIGENDIAN:
		snprintf(buf, len, "pcache superblock written by a big-endian CPU: not supported");
		return CLI_SB_BAD;
	case PCM_SB_BAD_SEG_NUM:
		if (sb.seg_num && sb.seg_num <= PCM_SEGS_MAX && need > size)
			break;
		snprintf(buf, len, "corrupt pcache superblock: seg_num %u is out of range",
			 sb.seg_num);
		return CLI_SB_BAD;
	}
	snprintf(buf, len, "truncated pcache device: its superblock's %u segments need %s, the "
		 "device holds %s: a truncated image, or the wrong device?", sb.seg_num,
		 cli_fmt_bytes(need, want, sizeof(want)), have);
	return CLI_SB_BAD;
}

int cli_open_cache(const char *path, unsigned flags, struct pcm_dev **dev,
		   struct pcm_cache **cache)
{
	struct pcm_open_status st;
	char why[256];
	bool hint = true;
	int rc = cli_open_dev(path, flags, dev);

	if (rc)
		return rc;
	rc = pcm_cache_open(*dev, cache, &st);
	if (rc == 0)
		return EXIT_OK;
	if (st.err == PCM_OPEN_IO && cli_sb_words(*dev, why, sizeof(why)) == CLI_SB_NOT_PCACHE) {
		/* too small for a superblock: the words of every command, not the errno's */
		cli_err(path, "%s", why);
		hint = false;
	} else if (st.err == PCM_OPEN_IO) {
		cli_err(path, "cannot read metadata: %s", strerror(-rc));
		hint = false;
	} else if (st.err == PCM_OPEN_SB) {
		hint = cli_sb_words(*dev, why, sizeof(why)) != CLI_SB_NOT_PCACHE;
		cli_err(path, "%s", why);
	} else {
		cli_err(path, "corrupt pcache metadata: %s", pcm_open_error_str(&st));
	}
	if (hint)
		cli_hint("run 'pcache fsck -n %s' for details", path);
	pcm_dev_close(*dev);
	*dev = NULL;
	return EXIT_OPERATIONAL;
}

bool cli_same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return false;
	if ((S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode)) ||
	    (S_ISCHR(sa.st_mode) && S_ISCHR(sb.st_mode)))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_backing_size(const char *path, uint64_t *size)
{
	struct pcm_dev *b;
	int rc = cli_open_dev(path, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &b);

	if (rc)
		return rc;
	*size = pcm_dev_size(b) / PCM_SECTOR * PCM_SECTOR;   /* the kernel counts sectors */
	if (pcm_dev_kind(b) == PCM_DEV_DAX) {
		cli_err(path, "cannot use as backing device: not a block device or regular file");
		rc = EXIT_OPERATIONAL;
	} else if (!*size) {
		cli_err(path, "cannot use as backing device: smaller than one 512-byte sector");
		rc = EXIT_OPERATIONAL;
	}
	pcm_dev_close(b);
	return rc;
}
