/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Data CRC verdicts computed ahead of a replay by a pool of threads
 * (datacrc.c).  Internal to libpcachemeta, and to its tests and benchmarks.
 */
#ifndef PCM_DATACRC_H
#define PCM_DATACRC_H

#include "pcachemeta.h"

struct dcrc;

/* Online CPUs, at least 1: the default thread count. */
unsigned dcrc_threads_default(void);

/*
 * Judges, ahead of a replay walking from start, every key of the log with
 * pcm_key_check(c, k, true), using threads threads in all (the caller's
 * included; 0: dcrc_threads_default()).  *out is NULL when one thread is all
 * there is: the caller then checks inline.  The device must not change until
 * dcrc_free (the threads read ahead).  0 or -ENOMEM.
 */
int dcrc_new(const struct pcm_cache *c, struct pcm_pos start, unsigned threads,
	     struct dcrc **out);
/*
 * The verdict of key i of the replay's current kset w, k as decoded there:
 * what pcm_key_check(c, k, true) returns.  Keys must be asked for in log order.
 */
enum pcm_key_verdict dcrc_verdict(struct dcrc *d, const struct pcm_walk *w, unsigned i,
				  const struct pcm_key *k);
/* Worker threads started so far (0: everything was judged by the caller's thread). */
unsigned dcrc_workers(const struct dcrc *d);
/* Stops and joins the threads, frees d (NULL is fine). */
void dcrc_free(struct dcrc *d);

/*
 * pcm_replay_run with data CRCs judged by threads threads (0: all online CPUs,
 * 1: inline, one key after another), for tests and benchmarks.
 */
int replay_run_threads(const struct pcm_cache *c, const struct pcm_replay_opts *o,
		       unsigned threads, struct pcm_replay **out);

#endif
