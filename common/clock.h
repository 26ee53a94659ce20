/* Time as the programs measure and wait on it: a monotonic clock in seconds (durations, deadlines)
 * and a bounded wait on a condition variable (long polls that must also notice a stop flag). */
#ifndef FEDLORA_CLOCK_H
#define FEDLORA_CLOCK_H

#include <pthread.h>

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double clock_seconds(void);
/* pthread_cond_timedwait on cond for at most ms milliseconds; mu is held, as for the pthread call.
 * Callers re-check their condition afterwards (wakeups may be spurious or timed out). */
void clock_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, long ms);

#endif
