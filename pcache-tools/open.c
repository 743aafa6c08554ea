/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Opening a device and its cache for a command, with the error lines CLI.md asks for. */
#include <errno.h>
#include <string.h>

#include "cli.h"

void cli_err_busy(const char *path, const char *who)
{
	char name[160], buf[192];

	if (!who || !*who)
		who = pcm_holder_str(pcm_dev_holder(path, name, sizeof(name)), name, buf,
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

int cli_open_dev(const char *path, unsigned flags, struct pcm_dev **dev)
{
	int rc = pcm_dev_open(path, flags, dev);

	if (rc == 0)
		return EXIT_OK;
	if (rc == -EBUSY)
		cli_err_busy(path, pcm_dev_errmsg());
	else if (*pcm_dev_errmsg())
		cli_err(path, "cannot open: %s (%s)", cli_dev_strerror(rc), pcm_dev_errmsg());
	else
		cli_err(path, "cannot open: %s", cli_dev_strerror(rc));
	return EXIT_OPERATIONAL;
}

int cli_open_cache(const char *path, unsigned flags, struct pcm_dev **dev,
		   struct pcm_cache **cache)
{
	struct pcm_open_status st;
	int rc = cli_open_dev(path, flags, dev);

	if (rc)
		return rc;
	rc = pcm_cache_open(*dev, cache, &st);
	if (rc == 0)
		return EXIT_OK;
	if (st.err == PCM_OPEN_IO)
		cli_err(path, "cannot read metadata: %s", strerror(-rc));
	else if (st.err == PCM_OPEN_SB)
		cli_err(path, "not a pcache device: %s", pcm_open_error_str(&st));
	else
		cli_err(path, "corrupt pcache metadata: %s", pcm_open_error_str(&st));
	if (st.err != PCM_OPEN_IO && st.err != PCM_OPEN_SB)
		cli_hint("run 'pcache fsck -n %s' for details", path);
	pcm_dev_close(*dev);
	*dev = NULL;
	return EXIT_OPERATIONAL;
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
