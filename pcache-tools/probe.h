/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a device holds besides pcache, as libblkid sees it: file systems, swap
 * areas, LVM and RAID members, encrypted volumes, partition tables.  format asks
 * before it overwrites a device, and erases what is left of them afterwards.
 */
#ifndef PCACHE_PROBE_H
#define PCACHE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sig {
	char type[32];        /* blkid TYPE or PTTYPE: "ext4", "swap", "LVM2_member", "dos" */
	const char *kind;     /* "file system", "swap area", "partition table", ... */
	char uuid[64];        /* UUID or PTUUID, "" when none */
	char label[64];       /* LABEL, "" when none */
	uint64_t offset;      /* of its magic string on the device */
	uint64_t length;      /* of its magic string */
};

/*
 * Every signature libblkid recognises on path (superblocks and partition tables, as
 * `blkid -p` and `wipefs` find them), in its probing order; *out is malloc'd (NULL when
 * none).  A devdax device cannot be read with read(2), the only way libblkid reads: it
 * is not probed (0, none).  Returns 0 or -errno.
 */
int sig_probe(const char *path, struct sig **out, size_t *n);

/*
 * Erases the magic string of every signature libblkid finds on path now, as `wipefs -a`
 * does, except those where keep(offset, length, arg) is true; then syncs.  *erased (may
 * be NULL) counts what was erased.  Returns 0 or -errno.
 */
int sig_erase(const char *path, bool (*keep)(uint64_t off, uint64_t len, void *arg),
	      void *arg, size_t *erased);

/* "a file system (ext4, UUID 0123..., label \"data\")"; returns buf. */
const char *sig_str(const struct sig *s, char *buf, size_t len);
/* All n of them: "A", "A and B", "A, B and C"; returns buf (cut short when too long). */
const char *sig_list_str(const struct sig *v, size_t n, char *buf, size_t len);

#endif
