/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Dual-replica records: the kernel's choice of replica (§3.2). */
#include "ondisk.h"

int pcm_replica_pick(const uint8_t *const rec[PCM_REPLICAS], size_t size,
		     bool valid_out[PCM_REPLICAS])
{
	int pick = -1;

	for (int i = 0; i < PCM_REPLICAS; i++) {
		bool ok = pcm_record_crc_ok(rec[i], size);

		if (valid_out)
			valid_out[i] = ok;
		if (!ok)
			continue;
		/* seq is byte 4 of every replicated record */
		if (pick < 0 || pcm_seq_after(rec[i][4], rec[pick][4]))
			pick = i;
	}
	return pick;
}
