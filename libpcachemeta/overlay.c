/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A copy-on-write overlay over a device: writes land in memory pages and in
 * an ordered write log, reads see them.  Repair plans on an overlay, so a dry
 * run and a real run take the same path, and the real run replays the log.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "overlay.h"

#define PAGE OV_PAGE

struct ov_page {
	uint64_t no;     /* page number + 1; 0 empty */
	uint8_t *data;
};

struct pcm_overlay {
	struct pcm_dev *base;
	struct ov_page *tab;
	uint64_t cap, used;
	struct pcm_ov_write *log;
	uint64_t nlog, caplog;
};

struct pcm_overlay *ov_new(struct pcm_dev *base)
{
	struct pcm_overlay *ov = calloc(1, sizeof(*ov));

	if (ov)
		ov->base = base;
	return ov;
}

void ov_free(struct pcm_overlay *ov)
{
	if (!ov)
		return;
	for (uint64_t i = 0; i < ov->cap; i++)
		free(ov->tab[i].data);
	for (uint64_t i = 0; i < ov->nlog; i++)
		free(ov->log[i].data);
	free(ov->tab);
	free(ov->log);
	free(ov);
}

static struct ov_page *slot(struct ov_page *tab, uint64_t cap, uint64_t no)
{
	uint64_t s = (no * 0x9E3779B97F4A7C15ull) >> 20;

	for (s &= cap - 1; tab[s].no && tab[s].no != no + 1; s = (s + 1) & (cap - 1))
		;
	return &tab[s];
}

static int grow(struct pcm_overlay *ov)
{
	uint64_t cap = ov->cap ? ov->cap * 2 : 256;
	struct ov_page *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint64_t i = 0; i < ov->cap; i++)
		if (ov->tab[i].no)
			*slot(t, cap, ov->tab[i].no - 1) = ov->tab[i];
	free(ov->tab);
	ov->tab = t;
	ov->cap = cap;
	return 0;
}

static const uint8_t *page_get(const struct pcm_overlay *ov, uint64_t no)
{
	struct ov_page *p;

	if (!ov->cap)
		return NULL;
	p = slot(ov->tab, ov->cap, no);
	return p->no ? p->data : NULL;
}

/* The page's overlay copy, made from the base on first write. */
static uint8_t *page_cow(struct pcm_overlay *ov, uint64_t no, int *rc)
{
	struct ov_page *p;
	uint64_t size = pcm_dev_size(ov->base), off = no * PAGE;

	if ((ov->used + 1) * 2 > ov->cap && (*rc = grow(ov)))
		return NULL;
	p = slot(ov->tab, ov->cap, no);
	if (p->no)
		return p->data;
	p->data = calloc(1, PAGE);
	if (!p->data) {
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = pcm_dev_read(ov->base, off, p->data, size - off < PAGE ? size - off : PAGE);
	if (*rc) {
		free(p->data);
		p->data = NULL;
		return NULL;
	}
	p->no = no + 1;
	ov->used++;
	return p->data;
}

/* How many bytes from off (at most len) no overlay page covers: they read as the base. */
uint64_t ov_clean_len(const struct pcm_overlay *ov, uint64_t off, uint64_t len)
{
	uint64_t n = 0;

	if (!ov->used)
		return len;
	while (n < len && !page_get(ov, (off + n) / PAGE))
		n += PAGE - (off + n) % PAGE;
	return n < len ? n : len;
}

int ov_read(struct pcm_overlay *ov, uint64_t off, void *buf, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		uint64_t no = off / PAGE;
		uint32_t in = (uint32_t)(off % PAGE);
		size_t n = PAGE - in < len ? PAGE - in : len;
		const uint8_t *p = page_get(ov, no);
		int rc;

		if (p)
			memcpy(out, p + in, n);
		else if ((rc = pcm_dev_read(ov->base, off, out, n)))
			return rc;
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int log_write(struct pcm_overlay *ov, uint64_t off, const void *buf, size_t len)
{
	struct pcm_ov_write *w;

	if (ov->nlog == ov->caplog) {
		uint64_t cap = ov->caplog ? ov->caplog * 2 : 64;
		struct pcm_ov_write *l = realloc(ov->log, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		ov->log = l;
		ov->caplog = cap;
	}
	w = &ov->log[ov->nlog];
	w->data = malloc(len ? len : 1);
	if (!w->data)
		return -ENOMEM;
	if (buf)
		memcpy(w->data, buf, len);
	else
		memset(w->data, 0, len);
	w->off = off;
	w->len = len;
	ov->nlog++;
	return 0;
}

/* buf NULL writes zeros. */
int ov_write(struct pcm_overlay *ov, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	int rc = log_write(ov, off, buf, len);

	while (!rc && len) {
		uint64_t no = off / PAGE;
		uint32_t at = (uint32_t)(off % PAGE);
		size_t n = PAGE - at < len ? PAGE - at : len;
		uint8_t *p = page_cow(ov, no, &rc);

		if (!p)
			break;
		if (in) {
			memcpy(p + at, in, n);
			in += n;
		} else {
			memset(p + at, 0, n);
		}
		off += n;
		len -= n;
	}
	return rc;
}

const struct pcm_ov_write *ov_writes(const struct pcm_overlay *ov, uint64_t *n)
{
	*n = ov->nlog;
	return ov->log;
}
