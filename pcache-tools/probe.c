/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Signatures of other users of a device, found (and erased) with libblkid. */
#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"

/* libblkid reports most failures as -1 with errno set, some without. */
static int blkid_err(void)
{
	return errno ? -errno : -EIO;
}

/* A probe over fd for both chains, with the magic's place reported. */
static blkid_probe new_probe(int fd, bool bad_csum)
{
	blkid_probe pr = blkid_new_probe();

	if (!pr)
		return NULL;
	if (blkid_probe_set_device(pr, fd, 0, 0) ||
	    blkid_probe_enable_superblocks(pr, 1) ||
	    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
					      BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL |
					      BLKID_SUBLKS_MAGIC |
					      (bad_csum ? BLKID_SUBLKS_BADCSUM : 0)) ||
	    blkid_probe_enable_partitions(pr, 1) ||
	    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC)) {
		blkid_free_probe(pr);
		return NULL;
	}
	return pr;
}

static const char *value(blkid_probe pr, const char *name)
{
	const char *v = NULL;

	return blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v ? v : "";
}

static const char *kind_of(const char *type, const char *usage, bool table)
{
	if (table)
		return "partition table";
	if (!strcmp(type, "swap") || !strcmp(type, "swsuspend"))
		return "swap area";
	if (!strncmp(type, "LVM", 3))
		return "LVM physical volume";
	if (!strcmp(usage, "filesystem"))
		return "file system";
	if (!strcmp(usage, "raid"))
		return "RAID member";
	if (!strcmp(usage, "crypto"))
		return "encrypted volume";
	return "signature";
}

/* The signature the probe stands on: a superblock (TYPE) or a partition table (PTTYPE). */
static bool current(blkid_probe pr, struct sig *s)
{
	const char *t = value(pr, "TYPE"), *magic = "SBMAGIC";
	bool table = false;
	size_t len = 0;
	const char *m = NULL;

	memset(s, 0, sizeof(*s));
	if (!*t) {
		t = value(pr, "PTTYPE");
		table = true;
		magic = "PTMAGIC";
	}
	if (!*t)
		return false;
	snprintf(s->type, sizeof(s->type), "%s", t);
	snprintf(s->uuid, sizeof(s->uuid), "%s", value(pr, table ? "PTUUID" : "UUID"));
	if (!table)
		snprintf(s->label, sizeof(s->label), "%s", value(pr, "LABEL"));
	s->kind = kind_of(t, value(pr, "USAGE"), table);
	s->offset = strtoull(value(pr, table ? "PTMAGIC_OFFSET" : "SBMAGIC_OFFSET"), NULL, 10);
	if (blkid_probe_lookup_value(pr, magic, &m, &len) == 0)
		s->length = len;
	return true;
}

/* devdax: libblkid reads with pread, which a dax character device refuses. */
static bool probable(const char *path)
{
	struct stat st;

	return stat(path, &st) || !S_ISCHR(st.st_mode);
}

int sig_probe(const char *path, struct sig **out, size_t *n)
{
	struct sig s, *v = NULL, *nv;
	blkid_probe pr;
	size_t cnt = 0;
	int fd, rc = 0;

	*out = NULL;
	*n = 0;
	if (!probable(path))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	errno = 0;
	pr = new_probe(fd, false);
	if (!pr) {
		rc = blkid_err();
		close(fd);
		return rc;
	}
	while ((rc = blkid_do_probe(pr)) == 0) {
		if (!current(pr, &s))
			continue;
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		v = nv;
		v[cnt++] = s;
	}
	rc = rc < 0 ? (rc == -ENOMEM ? rc : blkid_err()) : 0;
	blkid_free_probe(pr);
	close(fd);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int sig_erase(const char *path, bool (*keep)(uint64_t off, uint64_t len, void *arg),
	      void *arg, size_t *erased)
{
	struct sig s;
	blkid_probe pr;
	size_t cnt = 0;
	int fd, rc;

	if (erased)
		*erased = 0;
	if (!probable(path))
		return 0;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	errno = 0;
	pr = new_probe(fd, true);
	if (!pr) {
		rc = blkid_err();
		close(fd);
		return rc;
	}
	/* as wipefs: each wipe steps the probe back, so what lay under it is found next */
	while ((rc = blkid_do_probe(pr)) == 0) {
		if (!current(pr, &s) || (keep && keep(s.offset, s.length, arg)))
			continue;
		errno = 0;
		if (blkid_do_wipe(pr, 0)) {
			rc = -1;
			break;
		}
		cnt++;
	}
	rc = rc < 0 ? blkid_err() : 0;
	blkid_free_probe(pr);
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (erased)
		*erased = cnt;
	return rc;
}

const char *sig_str(const struct sig *s, char *buf, size_t len)
{
	bool an = !strncmp(s->kind, "LVM", 3) || !strncmp(s->kind, "encrypted", 9);
	int n = snprintf(buf, len, "%s %s (%s", an ? "an" : "a", s->kind, s->type);

	if (*s->uuid && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", UUID %s", s->uuid);
	if (*s->label && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", label \"%s\"", s->label);
	if (n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ")");
	return buf;
}

const char *sig_list_str(const struct sig *v, size_t n, char *buf, size_t len)
{
	char one[256];
	size_t used = 0;

	if (len)
		buf[0] = 0;
	for (size_t i = 0; i < n && used < len; i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " and " : ", ";
		int w = snprintf(buf + used, len - used, "%s%s", sep, sig_str(&v[i], one, sizeof(one)));

		if (w < 0)
			break;
		used += (size_t)w;
	}
	return buf;
}
