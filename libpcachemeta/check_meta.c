/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Check passes over the fixed metadata: superblock, cache_info, chain, tails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"

static const struct rep_codes ci_codes = { PCM_P_CI_BOTH_BAD, PCM_P_CI_REPLICA_BAD,
					   PCM_P_CI_SEQ_AMBIGUOUS };
static const struct rep_codes si_codes = { PCM_P_SEGINFO_BOTH_BAD, PCM_P_SEGINFO_REPLICA_BAD,
					   PCM_P_SEGINFO_SEQ_AMBIGUOUS };
static const struct rep_codes gen_codes = { PCM_P_GEN_BOTH_BAD, PCM_P_GEN_REPLICA_BAD,
					    PCM_P_GEN_SEQ_AMBIGUOUS };
static const struct rep_codes tail_codes = { PCM_P_TAIL_BOTH_BAD, PCM_P_TAIL_REPLICA_BAD,
					     PCM_P_TAIL_SEQ_AMBIGUOUS };

static int chk_sb(struct chk *k)
{
	static const enum pcm_problem_code code[] = {
		[PCM_SB_TOO_SMALL] = PCM_P_SB_TOO_SMALL, [PCM_SB_UNFORMATTED] = PCM_P_SB_NO_MAGIC,
		[PCM_SB_BAD_MAGIC] = PCM_P_SB_BAD_MAGIC, [PCM_SB_BAD_CRC] = PCM_P_SB_CRC_BAD,
		[PCM_SB_BIGENDIAN] = PCM_P_SB_BIGENDIAN, [PCM_SB_BAD_SEG_NUM] = PCM_P_SB_SEG_NUM_RANGE,
	};
	enum pcm_sb_verdict v;
	uint32_t fit = pcm_seg_num_for_size(k->size);
	int rc;

	if (k->size < PCM_SB_OFF + PCM_SB_SIZE) {
		k->res->not_pcache = true;
		chk_report(k, PCM_P_SB_TOO_SMALL, PCM_SB_OFF, "superblock",
			   "device is %llu bytes", (unsigned long long)k->size);
		k->stop = true;
		return 0;
	}
	rc = pcm_read_sb(k->dev, &k->sb, NULL);
	if (rc)
		return rc;
	v = pcm_sb_check(&k->sb, k->size);
	k->seg_num = k->sb.seg_num;
	if (v != PCM_SB_OK) {
		k->res->not_pcache = v == PCM_SB_UNFORMATTED || v == PCM_SB_BAD_MAGIC ||
				     v == PCM_SB_TOO_SMALL;
		chk_report(k, code[v], PCM_SB_OFF, "superblock", "%s (seg_num %u, device fits %u)",
			   pcm_sb_verdict_str(v), k->sb.seg_num, fit);
		k->stop = true;
		return 0;
	}
	if (k->sb.seg_num < fit && k->sb.seg_num < PCM_SEGS_MAX)
		chk_report(k, PCM_P_SB_SEG_NUM_SHORT, PCM_SB_OFF, "superblock",
			   "seg_num %u, the device fits %u", k->sb.seg_num, fit);
	if ((k->sb.flags & ~PCM_SB_F_BIGENDIAN) || k->sb.pad)
		chk_report(k, PCM_P_SB_UNUSED_BITS, PCM_SB_OFF, "superblock",
			   "flags 0x%x, padding 0x%x", k->sb.flags, k->sb.pad);
	return 0;
}

static int chk_cache_info(struct chk *k)
{
	const uint64_t off[2] = { PCM_CACHE_INFO_OFF, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT };
	uint8_t raw[2][24];
	int pick = chk_replicas(k, off, PCM_CACHE_INFO_SIZE, &ci_codes, "cache_info", raw);
	uint32_t f;

	if (pick < -1)
		return pick;
	if (pick < 0) {
		k->stop = true;
		return 0;
	}
	pcm_cache_info_decode(raw[pick], &k->ci);
	f = k->ci.flags;
	k->n_segs = k->ci.n_segs;
	if (!(f & PCM_CI_F_INIT_DONE)) {
		chk_report(k, PCM_P_CI_NOT_INIT_DONE, off[pick], "cache_info", "flags 0x%x", f);
		k->stop = true;
		return 0;
	}
	if (k->n_segs == 0 || k->n_segs > k->seg_num) {
		chk_report(k, PCM_P_CI_N_SEGS_RANGE, off[pick], "cache_info",
			   "n_segs %u, seg_num %u", k->n_segs, k->seg_num);
		k->stop = true;
		return 0;
	}
	if (k->n_segs < k->seg_num)
		chk_report(k, PCM_P_CI_N_SEGS_SHORT, off[pick], "cache_info",
			   "n_segs %u, seg_num %u", k->n_segs, k->seg_num);
	if (pcm_ci_cache_mode(f))
		chk_report(k, PCM_P_CI_CACHE_MODE, off[pick], "cache_info", "mode %u (%s)",
			   pcm_ci_cache_mode(f), pcm_cache_mode_name(pcm_ci_cache_mode(f)));
	if (pcm_ci_gc_percent(f) > PCM_GC_PERCENT_MAX)
		chk_report(k, PCM_P_CI_GC_PERCENT, off[pick], "cache_info", "gc_percent %u%s",
			   pcm_ci_gc_percent(f), pcm_ci_gc_percent(f) > 100 ? ": GC never runs" : "");
	if ((f >> 13) || k->ci.reserved)
		chk_report(k, PCM_P_CI_UNKNOWN_BITS, off[pick], "cache_info",
			   "flags 0x%x, reserved 0x%x", f, k->ci.reserved);
	return 0;
}

/* Unused bytes that a format zeroes (§1.2, §1.3); relative to base. */
static const struct { uint32_t from, to; } seg_unused[] = {
	{ PCM_SEG_INFO_SIZE, PCM_SEG_INFO_SLOT },
	{ PCM_SEG_INFO_SLOT + PCM_SEG_INFO_SIZE, PCM_SEG_CTRL_OFF },
	{ PCM_SEG_CTRL_OFF + 2 * PCM_SEG_GEN_SIZE, PCM_DATA_OFF },
};
static const struct { uint32_t from, to; } dev_unused[] = {
	{ PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SIZE, PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT },
	{ PCM_CACHE_INFO_OFF + PCM_CACHE_INFO_SLOT + PCM_CACHE_INFO_SIZE, PCM_CACHE_CTRL_OFF },
	{ PCM_CACHE_CTRL_OFF + 4 * PCM_POS_SIZE, PCM_META_END },
};

/* Index of the first non-zero byte of p[0, n), or n: a word at a time, as most of
 * these bytes are zero and a check visits every segment's. */
static uint32_t first_nonzero(const uint8_t *p, uint32_t n)
{
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (w)
			break;
	}
	for (; i < n; i++)
		if (p[i])
			break;
	return i;
}

/* A problem in the unused bytes b[from, to) of a buffer read from base: reported once. */
static void chk_unused_buf(struct chk *k, uint64_t base, const uint8_t *b, uint32_t from,
			   uint32_t to, const char *what)
{
	uint32_t i = from + first_nonzero(b + from, to - from);

	if (i < to)
		chk_report(k, PCM_P_META_NONZERO, base + i, what,
			   "byte 0x%02x at offset %u of [%u, %u)", b[i], i, from, to);
}

static int chk_unused(struct chk *k, uint64_t base, uint32_t from, uint32_t to, const char *what)
{
	uint8_t buf[PCM_META_END];
	int rc;

	if (to > sizeof(buf))
		return -EINVAL;
	rc = pcm_dev_read(k->dev, base + from, buf + from, to - from);
	if (!rc)
		chk_unused_buf(k, base, buf, from, to, what);
	return rc;
}

/* One replicated record of a segment header already read into hdr. */
static int seg_replicas(struct chk *k, const uint8_t *hdr, uint64_t base, const uint32_t rel[2],
			size_t size, const struct rep_codes *codes, uint32_t i, uint32_t d,
			const char *part, uint8_t raw[2][24])
{
	const uint64_t off[2] = { base + rel[0], base + rel[1] };
	char what[64];
	int pick;

	memcpy(raw[0], hdr + rel[0], size);
	memcpy(raw[1], hdr + rel[1], size);
	pick = chk_replicas_quiet(size, raw);
	if (pick >= 0)
		return pick;
	snprintf(what, sizeof(what), "segment %u (device segment %u) %s", i, d, part);
	return chk_replicas_judge(k, off, size, codes, what, raw);
}

/* One segment's header [0, DATA_OFF), read at once: info, gen, unused bytes. */
static int chk_segment(struct chk *k, uint32_t i, uint32_t d, struct pcm_seg_info *si)
{
	static const uint32_t irel[2] = { 0, PCM_SEG_INFO_SLOT };
	static const uint32_t grel[2] = { PCM_SEG_CTRL_OFF, PCM_SEG_CTRL_OFF + PCM_SEG_GEN_SIZE };
	uint64_t base = pcm_seg_base(d);
	uint8_t hdr[PCM_DATA_OFF], raw[2][24];
	char what[64];
	int pick, rc = pcm_dev_read(k->dev, base, hdr, sizeof(hdr));

	if (rc)
		return rc;
	pick = seg_replicas(k, hdr, base, irel, PCM_SEG_INFO_SIZE, &si_codes, i, d, "info", raw);
	if (pick < 0) {
		k->stop = true;
		return 0;
	}
	pcm_seg_info_decode(raw[pick], si);
	if (((si->flags & PCM_SEGI_TYPE_MASK) >> PCM_SEGI_TYPE_SHIFT) != PCM_SEGI_TYPE_DATA) {
		snprintf(what, sizeof(what), "segment %u (device segment %u) info", i, d);
		chk_report(k, PCM_P_SEG_TYPE, base + irel[pick], what, "flags 0x%x", si->flags);
	}
	seg_replicas(k, hdr, base, grel, PCM_SEG_GEN_SIZE, &gen_codes, i, d, "gen", raw);
	for (size_t u = 0; u < sizeof(seg_unused) / sizeof(seg_unused[0]); u++) {
		if (first_nonzero(hdr + seg_unused[u].from, seg_unused[u].to - seg_unused[u].from) ==
		    seg_unused[u].to - seg_unused[u].from)
			continue;
		snprintf(what, sizeof(what), "segment %u (device segment %u) metadata", i, d);
		chk_unused_buf(k, base, hdr, seg_unused[u].from, seg_unused[u].to, what);
	}
	return 0;
}

/* The static chain, in the kernel's order of checks (§4, §5.5 step 8). */
static int chk_chain(struct chk *k)
{
	uint8_t *seen = calloc(k->seg_num, 1);
	struct pcm_seg_info si = { 0 };
	int rc = 0;

	if (!seen)
		return -ENOMEM;
	for (uint32_t i = 0; !rc && !k->stop && i < k->n_segs; i++) {
		uint32_t d = i ? si.next_seg : k->ci.seg_id;

		if (i && !(si.flags & PCM_SEGI_F_HAS_NEXT)) {
			chk_report(k, PCM_P_CHAIN_NO_NEXT, UINT64_MAX, "segment chain",
				   "cache segment %u has no successor; n_segs is %u", i - 1, k->n_segs);
			k->stop = true;
			break;
		}
		if (d >= k->seg_num) {
			chk_report(k, PCM_P_CHAIN_RANGE, UINT64_MAX, "segment chain",
				   "cache segment %u maps to device segment %u, seg_num %u", i, d,
				   k->seg_num);
			k->stop = true;
			break;
		}
		if (seen[d]++)
			chk_report(k, PCM_P_CHAIN_DUPLICATE, pcm_seg_base(d), "segment chain",
				   "cache segment %u maps to device segment %u again", i, d);
		rc = chk_segment(k, i, d, &si);
	}
	free(seen);
	return rc;
}

static int chk_tail(struct chk *k, int which)
{
	uint64_t base = which ? PCM_DIRTY_TAIL_OFF : PCM_KEY_TAIL_OFF;
	const uint64_t off[2] = { base, base + PCM_POS_SIZE };
	const char *what = which ? "dirty_tail" : "key_tail";
	struct pcm_pos_rec p;
	uint8_t raw[2][24];
	int pick = chk_replicas(k, off, PCM_POS_SIZE, &tail_codes, what, raw);

	if (pick < -1)
		return pick;
	if (pick < 0) {
		k->stop = true;
		return 0;
	}
	pcm_pos_rec_decode(raw[pick], &p);
	if (p.pos.cseg >= k->n_segs || p.pos.seg_off >= PCM_DATA_SIZE) {
		chk_report(k, PCM_P_TAIL_RANGE, off[pick], what, "%u:%u with n_segs %u",
			   p.pos.cseg, p.pos.seg_off, k->n_segs);
		k->stop = true;
	}
	return 0;
}

int chk_meta(struct chk *k)
{
	int rc = chk_sb(k);

	if (!rc && !k->stop)
		rc = chk_cache_info(k);
	for (size_t u = 0; !rc && !k->stop && u < sizeof(dev_unused) / sizeof(dev_unused[0]); u++)
		rc = chk_unused(k, 0, dev_unused[u].from, dev_unused[u].to, "cache metadata area");
	if (!rc && !k->stop)
		rc = chk_chain(k);
	if (!rc && !k->stop) {
		rc = chk_tail(k, 0);
		if (!rc)   /* report both tails: repair needs to know */
			rc = chk_tail(k, 1);
	}
	return rc;
}
