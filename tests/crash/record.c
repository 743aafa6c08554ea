/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The write/persist recorder of the crash harness: see record.h. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "device_int.h"
#include "record.h"

#define PAGE 4096u
#define MERGE_GAP 64u    /* equal bytes between two changed runs that still join them */

struct rec {
	struct pcm_dev *dev;
	uint8_t *base;
	uint64_t size, npages;
	pmem2_persist_fn old_persist;
	uint8_t *shadow;          /* per dirty page: its content at the last snapshot */
	uint8_t *dirty;           /* per page */
	uint32_t *list;           /* dirty pages in order of first store */
	uint64_t ndirty;
	uint64_t faults;
	uint64_t snap_first;      /* first event of the current snapshot */
	struct rec_ev *ev;
	size_t nev, capev;
	pthread_mutex_t lock;
};

static struct rec *volatile active;
static struct sigaction old_segv;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

static void chain(int sig, siginfo_t *si, void *uc)
{
	if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction) {
		old_segv.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_handler != SIG_DFL &&
	    old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
		return;
	}
	/* default action: return and fault again with SIGSEGV at its default */
	signal(SIGSEGV, SIG_DFL);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	struct rec *r = active;
	uint8_t *a = si ? (uint8_t *)si->si_addr : NULL;
	uint64_t pg;

	if (!r || !a || a < r->base || a >= r->base + r->size) {
		chain(sig, si, uc);
		return;
	}
	pg = (uint64_t)(a - r->base) / PAGE;
	if (!r->dirty[pg]) {
		/* still read-only: it holds what the last snapshot saw */
		memcpy(r->shadow + pg * PAGE, r->base + pg * PAGE, PAGE);
		r->dirty[pg] = 1;
		r->list[r->ndirty++] = (uint32_t)pg;
	}
	r->faults++;
	if (mprotect(r->base + pg * PAGE, PAGE, PROT_READ | PROT_WRITE))
		chain(sig, si, uc);
}

static void segv_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
}

static struct rec_ev *ev_add(struct rec *r)
{
	if (r->nev == r->capev) {
		size_t cap = r->capev ? r->capev * 2 : 256;
		struct rec_ev *e = realloc(r->ev, cap * sizeof(*e));

		if (!e)
			abort();   /* a test tool: out of memory ends the run */
		r->ev = e;
		r->capev = cap;
	}
	memset(&r->ev[r->nev], 0, sizeof(r->ev[0]));
	return &r->ev[r->nev++];
}

/* A changed run [off, off+len): joins the previous write of this snapshot when adjacent. */
static void write_add(struct rec *r, uint64_t off, uint64_t len)
{
	struct rec_ev *e;

	if (r->nev > r->snap_first) {
		e = &r->ev[r->nev - 1];
		if (e->type == REC_WRITE && e->off + e->len == off) {
			uint8_t *d = realloc(e->data, e->len + len);

			if (!d)
				abort();
			memcpy(d + e->len, r->base + off, len);
			e->data = d;
			e->len += len;
			return;
		}
	}
	e = ev_add(r);
	e->type = REC_WRITE;
	e->off = off;
	e->len = len;
	e->data = malloc(len);
	if (!e->data)
		abort();
	memcpy(e->data, r->base + off, len);
}

/* Turns the stores since the last snapshot into WRITE events; pages read-only again. */
static void snapshot(struct rec *r)
{
	r->snap_first = r->nev;
	for (uint64_t i = 0; i < r->ndirty; i++) {
		uint64_t pg = r->list[i];
		const uint8_t *now = r->base + pg * PAGE, *was = r->shadow + pg * PAGE;
		uint32_t o = 0;

		while (o < PAGE) {
			uint32_t s, end, gap;

			while (o < PAGE && now[o] == was[o])
				o++;
			if (o == PAGE)
				break;
			s = o;
			end = o;
			/* extend over changed bytes and short equal gaps */
			for (gap = 0; o < PAGE && gap <= MERGE_GAP; o++) {
				if (now[o] != was[o]) {
					end = o + 1;
					gap = 0;
				} else {
					gap++;
				}
			}
			write_add(r, pg * PAGE + s, end - s);
			o = end;
		}
		r->dirty[pg] = 0;
		mprotect(r->base + pg * PAGE, PAGE, PROT_READ);
	}
	r->ndirty = 0;
}

static void rec_persist(const void *ptr, size_t len)
{
	struct rec *r = active;
	struct rec_ev *e;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	snapshot(r);
	e = ev_add(r);
	e->type = REC_PERSIST;
	e->off = (uint64_t)((const uint8_t *)ptr - r->base);
	e->len = len;
	pthread_mutex_unlock(&r->lock);
}

int rec_attach(struct pcm_dev *dev, struct rec **out)
{
	struct rec *r;

	if (!dev->base || !(dev->flags & PCM_DEV_RDWR) || dev->ov || active)
		return -EINVAL;
	pthread_once(&segv_once, segv_install);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->dev = dev;
	r->base = dev->base;
	r->size = dev->size / PAGE * PAGE;
	r->npages = r->size / PAGE;
	r->dirty = calloc(r->npages, 1);
	r->list = calloc(r->npages, sizeof(*r->list));
	r->shadow = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	pthread_mutex_init(&r->lock, NULL);
	if (!r->dirty || !r->list || r->shadow == MAP_FAILED) {
		if (r->shadow == MAP_FAILED)
			r->shadow = NULL;
		rec_free(r);
		return -ENOMEM;
	}
	r->old_persist = dev->persist;
	dev->persist = rec_persist;
	active = r;
	if (mprotect(r->base, r->size, PROT_READ)) {
		int rc = -errno;

		rec_detach(r);
		rec_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void rec_mark(struct rec *r, uint64_t tag)
{
	struct rec_ev *e;

	pthread_mutex_lock(&r->lock);
	snapshot(r);
	e = ev_add(r);
	e->type = REC_MARK;
	e->tag = tag;
	pthread_mutex_unlock(&r->lock);
}

void rec_detach(struct rec *r)
{
	if (!r || active != r)
		return;
	pthread_mutex_lock(&r->lock);
	snapshot(r);
	r->dev->persist = r->old_persist;
	mprotect(r->base, r->size, PROT_READ | PROT_WRITE);
	active = NULL;
	pthread_mutex_unlock(&r->lock);
}

const struct rec_ev *rec_events(const struct rec *r, size_t *n)
{
	*n = r->nev;
	return r->ev;
}

uint64_t rec_faults(const struct rec *r)
{
	return r->faults;
}

void rec_free(struct rec *r)
{
	if (!r)
		return;
	rec_detach(r);
	for (size_t i = 0; i < r->nev; i++)
		free(r->ev[i].data);
	free(r->ev);
	if (r->shadow)
		munmap(r->shadow, r->size);
	free(r->dirty);
	free(r->list);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
