/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encode/decode of every on-media record (§2). */
#include <string.h>

#include "le.h"
#include "ondisk.h"

static void hdr_decode(const struct od_meta_header *d, struct pcm_meta_header *h)
{
	h->crc = get_le32(d->crc);
	h->seq = d->seq;
	h->version = d->version;
	h->res = get_le16(d->res);
}

static void hdr_encode(const struct pcm_meta_header *h, struct od_meta_header *d)
{
	put_le32(d->crc, h->crc);
	d->seq = h->seq;
	d->version = h->version;
	put_le16(d->res, h->res);
}

void pcm_sb_decode(const void *buf, struct pcm_sb *sb)
{
	const struct od_sb *d = buf;

	sb->crc = get_le32(d->crc);
	sb->flags = get_le32(d->flags);
	sb->magic = get_le64(d->magic);
	sb->seg_num = get_le32(d->seg_num);
	sb->pad = get_le32(d->pad);
}

void pcm_sb_encode(const struct pcm_sb *sb, void *buf)
{
	struct od_sb *d = buf;

	put_le32(d->crc, sb->crc);
	put_le32(d->flags, sb->flags);
	put_le64(d->magic, sb->magic);
	put_le32(d->seg_num, sb->seg_num);
	put_le32(d->pad, sb->pad);
}

void pcm_cache_info_decode(const void *buf, struct pcm_cache_info *ci)
{
	const struct od_cache_info *d = buf;

	hdr_decode(&d->h, &ci->h);
	ci->seg_id = get_le32(d->seg_id);
	ci->n_segs = get_le32(d->n_segs);
	ci->flags = get_le32(d->flags);
	ci->reserved = get_le32(d->reserved);
}

void pcm_cache_info_encode(const struct pcm_cache_info *ci, void *buf)
{
	struct od_cache_info *d = buf;

	hdr_encode(&ci->h, &d->h);
	put_le32(d->seg_id, ci->seg_id);
	put_le32(d->n_segs, ci->n_segs);
	put_le32(d->flags, ci->flags);
	put_le32(d->reserved, ci->reserved);
}

void pcm_pos_rec_decode(const void *buf, struct pcm_pos_rec *p)
{
	const struct od_pos *d = buf;

	hdr_decode(&d->h, &p->h);
	p->pos.cseg = get_le32(d->cseg);
	p->pos.seg_off = get_le32(d->seg_off);
}

void pcm_pos_rec_encode(const struct pcm_pos_rec *p, void *buf)
{
	struct od_pos *d = buf;

	hdr_encode(&p->h, &d->h);
	put_le32(d->cseg, p->pos.cseg);
	put_le32(d->seg_off, p->pos.seg_off);
}

void pcm_seg_info_decode(const void *buf, struct pcm_seg_info *si)
{
	const struct od_seg_info *d = buf;

	hdr_decode(&d->h, &si->h);
	si->flags = get_le32(d->flags);
	si->next_seg = get_le32(d->next_seg);
}

void pcm_seg_info_encode(const struct pcm_seg_info *si, void *buf)
{
	struct od_seg_info *d = buf;

	hdr_encode(&si->h, &d->h);
	put_le32(d->flags, si->flags);
	put_le32(d->next_seg, si->next_seg);
}

void pcm_seg_gen_decode(const void *buf, struct pcm_seg_gen *g)
{
	const struct od_seg_gen *d = buf;

	hdr_decode(&d->h, &g->h);
	g->gen = get_le64(d->gen);
}

void pcm_seg_gen_encode(const struct pcm_seg_gen *g, void *buf)
{
	struct od_seg_gen *d = buf;

	hdr_encode(&g->h, &d->h);
	put_le64(d->gen, g->gen);
}

void pcm_kset_hdr_decode(const void *buf, struct pcm_kset_hdr *k)
{
	const struct od_kset *d = buf;

	k->crc = get_le32(d->crc);
	k->key_num = get_le32(d->key_num);
	k->magic = get_le64(d->magic);
	k->flags = get_le64(d->flags);
}

void pcm_kset_hdr_encode(const struct pcm_kset_hdr *k, void *buf)
{
	struct od_kset *d = buf;

	put_le32(d->crc, k->crc);
	put_le32(d->key_num, k->key_num);
	put_le64(d->magic, k->magic);
	put_le64(d->flags, k->flags);
}

void pcm_key_decode(const void *buf, struct pcm_key *k)
{
	const struct od_key *d = buf;

	k->off = get_le64(d->off);
	k->len = get_le32(d->len);
	k->flags = get_le32(d->flags);
	k->cseg = get_le32(d->cseg);
	k->seg_off = get_le32(d->seg_off);
	k->seg_gen = get_le64(d->seg_gen);
	k->data_crc = get_le32(d->data_crc);
	k->reserved = get_le32(d->reserved);
}

void pcm_key_encode(const struct pcm_key *k, void *buf)
{
	struct od_key *d = buf;

	put_le64(d->off, k->off);
	put_le32(d->len, k->len);
	put_le32(d->flags, k->flags);
	put_le32(d->cseg, k->cseg);
	put_le32(d->seg_off, k->seg_off);
	put_le64(d->seg_gen, k->seg_gen);
	put_le32(d->data_crc, k->data_crc);
	put_le32(d->reserved, k->reserved);
}

uint32_t pcm_record_crc(const void *buf, size_t size)
{
	return pcm_kcrc((const uint8_t *)buf + 4, size - 4);
}

void pcm_record_seal(void *buf, size_t size)
{
	put_le32(buf, pcm_record_crc(buf, size));
}

bool pcm_record_crc_ok(const void *buf, size_t size)
{
	return get_le32(buf) == pcm_record_crc(buf, size);
}

uint32_t pcm_seg_num_for_size(uint64_t dev_size)
{
	if (dev_size < PCM_SEGMENTS_OFF)
		return 0;
	uint64_t n = (dev_size - PCM_SEGMENTS_OFF) / PCM_SEG_SIZE;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

const char *pcm_cache_mode_name(unsigned mode)
{
	static const char *const names[] = { "writeback", "writethrough", "writearound",
					     "writeonly" };
	return mode < 4 ? names[mode] : "unknown";
}
