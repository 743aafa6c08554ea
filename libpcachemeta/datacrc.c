/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Data CRCs judged ahead of the replay by a pool of threads.  A load checks
 * the data CRC of every key of the log (§6.5 check 4, §6.9), and on big keys
 * that is most of a verified replay's time.  A second walk of the log (§6.4)
 * runs ahead of the replay's own and queues its keys in chunks on a ring; the
 * worker threads, and the replay's thread while it would otherwise wait, judge
 * whole chunks with pcm_key_check(); the replay takes the verdicts back in log
 * order.  A verdict is used only for the very key it was made for (same kset,
 * slot and bytes), so the replay sees exactly what checking inline gives.
 * Everything lives in struct dcrc: two replays in one process share nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datacrc.h"

enum {
	CHUNK_KEYS = 512,           /* a chunk ends at this many keys ... */
	CHUNK_BYTES = 1u << 20,     /* ... or this much data: thread hand-offs stay rare */
	PAR_MIN_BYTES = 4u << 20,   /* threads start only once this much data is queued */
	THREADS_MAX = 64,
};

/* A verdict is matched to its key with memcmp: decoded keys have no padding. */
_Static_assert(sizeof(struct pcm_key) == 40, "struct pcm_key has padding");

struct dc_key {
	struct pcm_key k;
	struct pcm_pos kset;        /* where the ahead walk met it: kset and slot */
	uint32_t slot;
	enum pcm_key_verdict v;
};

enum dc_state { DC_QUEUED, DC_BUSY, DC_DONE };

struct dc_chunk {
	struct dc_key key[CHUNK_KEYS];
	unsigned n;
	enum dc_state state;        /* under mu */
};

struct dcrc {
	const struct pcm_cache *c;
	struct pcm_walk *ahead;     /* the walk that runs ahead of the replay's */
	unsigned ahead_i;           /* next slot of its current kset */
	bool ahead_keys, ahead_done;
	uint64_t queued_bytes;
	/* chunk sequence numbers: use <= claim <= fill, fill - use <= nring */
	struct dc_chunk *ring;
	unsigned nring;
	uint64_t use, claim, fill;  /* claim and fill under mu */
	struct dc_chunk *cur;       /* chunk `use` once judged, NULL before */
	unsigned cur_i;
	bool broken;                /* the walks parted: inline from there on */
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	atomic_bool stop;
	pthread_t *tid;
	unsigned threads, started;
	bool tried;
};

unsigned dcrc_threads_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > THREADS_MAX ? THREADS_MAX : (unsigned)n;
}

/* ---- the ahead walk ---- */

/* The next key of the log after the last one queued; false at the walk's end. */
static bool ahead_next(struct dcrc *d, struct dc_key *e)
{
	struct pcm_walk *w = d->ahead;

	while (!d->ahead_keys || d->ahead_i >= w->hdr.key_num) {
		enum pcm_walk_event ev = d->ahead_done ? PCM_WALK_END : pcm_walk_next(w);

		if (ev != PCM_WALK_KSET && ev != PCM_WALK_LAST) {
			d->ahead_done = true;
			return false;
		}
		/* a LAST kset's key_num names a segment, not keys (§2.7) */
		d->ahead_keys = ev == PCM_WALK_KSET;
		d->ahead_i = 0;
	}
	pcm_walk_key(w, d->ahead_i, &e->k);
	e->kset = w->pos;
	e->slot = d->ahead_i++;
	return true;
}

/* Fills ch with the next keys of the log; their number. */
static unsigned chunk_fill(struct dcrc *d, struct dc_chunk *ch)
{
	uint64_t bytes = 0;

	ch->n = 0;
	while (ch->n < CHUNK_KEYS && bytes < CHUNK_BYTES && ahead_next(d, &ch->key[ch->n])) {
		uint32_t len = ch->key[ch->n++].k.len;

		/* a bad key's len may be anything; at most a data area is ever read (§6.5) */
		bytes += len < PCM_DATA_SIZE ? len : PCM_DATA_SIZE;
	}
	d->queued_bytes += bytes;
	return ch->n;
}

/* ---- judging ---- */

static void chunk_judge(struct dcrc *d, struct dc_chunk *ch)
{
	for (unsigned i = 0; i < ch->n; i++) {
		if (atomic_load_explicit(&d->stop, memory_order_relaxed))
			return;   /* nobody will read the rest */
		ch->key[i].v = pcm_key_check(d->c, &ch->key[i].k, true);
	}
}

/* The oldest chunk nobody judges yet, now BUSY, or NULL.  Under mu. */
static struct dc_chunk *claim(struct dcrc *d)
{
	struct dc_chunk *ch;

	if (d->claim == d->fill)
		return NULL;
	ch = &d->ring[d->claim++ % d->nring];
	ch->state = DC_BUSY;
	return ch;
}

/* Judges ch outside the lock; the replay's thread may wait for it.  Under mu. */
static void judge_unlocked(struct dcrc *d, struct dc_chunk *ch)
{
	pthread_mutex_unlock(&d->mu);
	chunk_judge(d, ch);
	pthread_mutex_lock(&d->mu);
	ch->state = DC_DONE;
	pthread_cond_signal(&d->done);
}

static void *worker(void *arg)
{
	struct dcrc *d = arg;
	struct dc_chunk *ch;

	pthread_mutex_lock(&d->mu);
	while (!atomic_load(&d->stop)) {
		if ((ch = claim(d)))
			judge_unlocked(d, ch);
		else
			pthread_cond_wait(&d->work, &d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/*
 * Starts the workers once.  They take no asynchronous signal: those stay with
 * the caller's threads.  Faults stay open, as a blocked SIGBUS kills the process
 * and the device's guard turns one from a media error into -EIO (§10.7).
 */
static void start_workers(struct dcrc *d)
{
	sigset_t all, old;

	d->tried = true;
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (d->started < d->threads - 1 &&
	       !pthread_create(&d->tid[d->started], NULL, worker, d))
		d->started++;   /* a thread that fails to start: the others judge more */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Queues chunks until the ring is full or the ahead walk has ended. */
static void refill(struct dcrc *d)
{
	while (d->fill - d->use < d->nring && !d->ahead_done) {
		struct dc_chunk *ch = &d->ring[d->fill % d->nring];

		if (!chunk_fill(d, ch))
			break;
		pthread_mutex_lock(&d->mu);
		ch->state = DC_QUEUED;
		d->fill++;
		pthread_cond_signal(&d->work);
		pthread_mutex_unlock(&d->mu);
	}
	/* a small log is judged by the replay's thread alone: no thread to pay for */
	if (!d->tried && d->queued_bytes >= PAR_MIN_BYTES)
		start_workers(d);
}

/* Chunk `use`, judged; judges queued chunks itself rather than wait idle. */
static struct dc_chunk *chunk_wait(struct dcrc *d)
{
	struct dc_chunk *ch = &d->ring[d->use % d->nring], *mine;

	pthread_mutex_lock(&d->mu);
	while (ch->state != DC_DONE) {
		if ((mine = claim(d)))
			judge_unlocked(d, mine);
		else
			pthread_cond_wait(&d->done, &d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return ch;
}

/* The next queued key in log order, or NULL when the ahead walk has none. */
static const struct dc_key *next_key(struct dcrc *d)
{
	if (d->cur && d->cur_i == d->cur->n) {   /* used up: its slot is free again */
		d->cur = NULL;
		d->use++;
		d->cur_i = 0;
	}
	if (!d->cur) {
		refill(d);
		if (d->use == d->fill)
			return NULL;
		d->cur = chunk_wait(d);
	}
	return &d->cur->key[d->cur_i++];
}

/* Tells the workers to finish; they are joined by dcrc_free. */
static void stop_workers(struct dcrc *d)
{
	pthread_mutex_lock(&d->mu);
	atomic_store(&d->stop, true);
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->mu);
}

enum pcm_key_verdict dcrc_verdict(struct dcrc *d, const struct pcm_walk *w, unsigned i,
				  const struct pcm_key *k)
{
	const struct dc_key *e = d->broken ? NULL : next_key(d);

	if (e && pcm_pos_eq(e->kset, w->pos) && e->slot == i && !memcmp(&e->k, k, sizeof(*k)))
		return e->v;
	/* only a device changing under the replay parts the two walks */
	if (!d->broken) {
		d->broken = true;
		stop_workers(d);
	}
	return pcm_key_check(d->c, k, true);
}

/* ---- life cycle ---- */

unsigned dcrc_workers(const struct dcrc *d)
{
	return d ? d->started : 0;
}

int dcrc_new(const struct pcm_cache *c, struct pcm_pos start, unsigned threads,
	     struct dcrc **out)
{
	struct dcrc *d;

	*out = NULL;
	threads = threads ? threads : dcrc_threads_default();
	if (threads > THREADS_MAX)
		threads = THREADS_MAX;
	if (threads < 2)
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->c = c;
	d->threads = threads;
	d->nring = 2 * threads + 2;   /* a chunk for each thread to judge, as many queued */
	d->ring = malloc(d->nring * sizeof(*d->ring));
	d->ahead = malloc(sizeof(*d->ahead));
	d->tid = malloc(threads * sizeof(*d->tid));
	atomic_init(&d->stop, false);
	if (!d->ring || !d->ahead || !d->tid || pthread_mutex_init(&d->mu, NULL)) {
		free(d->ring);
		free(d->ahead);
		free(d->tid);
		free(d);
		return -ENOMEM;
	}
	pthread_cond_init(&d->work, NULL);   /* cannot fail with default attributes */
	pthread_cond_init(&d->done, NULL);
	pcm_walk_init(d->ahead, c, start);
	*out = d;
	return 0;
}

void dcrc_free(struct dcrc *d)
{
	if (!d)
		return;
	stop_workers(d);
	for (unsigned t = 0; t < d->started; t++)
		pthread_join(d->tid[t], NULL);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->done);
	pthread_mutex_destroy(&d->mu);
	free(d->ring);
	free(d->ahead);
	free(d->tid);
	free(d);
}
