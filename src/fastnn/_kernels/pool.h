/* A small thread pool for DenseStack's inference: fnn_parallel(fn, ctx,
 * parts, max_threads) runs fn(ctx, part, worker) for every part in
 * [0, parts), spread over the calling thread (worker 0) and pool threads
 * (workers 1, 2, ...), min(fnn_pool_threads(), max_threads) threads in all,
 * and returns when all are done.
 *
 * - One job runs at a time. A call made while another thread's job runs
 *   does its parts itself, in its own thread: never blocked, never wrong.
 * - Workers spin briefly after a job (a batch loop calls again soon), then
 *   sleep on a condition variable.
 * - Threads start at the first job that wants them. After fork() the child
 *   has none: its first job starts its own.
 * - Threads are started, and the one-job lock taken, through CPython's
 *   thread API (the interpreter's own pthreads calls), so that the module
 *   needs no glibc symbols newer than the manylinux baseline: glibc 2.34
 *   gave pthread_create and pthread_mutex_trylock new symbol versions. The
 *   waits use pthread mutexes and condition variables.
 * - Without POSIX threads (Windows builds), every job runs in the caller.
 */
#ifndef FASTNN_POOL_H
#define FASTNN_POOL_H

#include <stddef.h>

typedef void (*fnn_task)(void* ctx, ptrdiff_t part, int worker);

#define FNN_POOL_MAX 256

/* A flag that a job's parts may clear from any thread. (MSVC builds run
 * every job in one thread: see below.) */
#if defined(_MSC_VER)
static inline int fnn_flag_get(const int* flag) { return *(const volatile int*)flag; }
static inline void fnn_flag_clear(int* flag) { *(volatile int*)flag = 0; }
#else
static inline int fnn_flag_get(const int* flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}
static inline void fnn_flag_clear(int* flag)
{
    __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
}
#endif

#if defined(_WIN32)

/* The setting is kept (and reported), but jobs run in the caller. */
static int fnn_pool_wanted = 1;
static inline void fnn_pool_set_threads(int n) { fnn_pool_wanted = n < 1 ? 1 : n; }
static inline int fnn_pool_threads(void) { return fnn_pool_wanted; }
static inline int fnn_pool_init(void) { return 0; }
static inline int fnn_parallel(fnn_task fn, void* ctx, ptrdiff_t parts,
                               int max_threads)
{
    ptrdiff_t p;
    (void)max_threads;
    for (p = 0; p < parts; p++)
        fn(ctx, p, 0);
    return 1;
}

#else

#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FNN_PAUSE() _mm_pause()
#else
#define FNN_PAUSE() ((void)0)
#endif

/* Pause instructions a worker spins before sleeping (about 0.1 to 0.5 ms). */
#define FNN_SPINS 4000

static struct {
    pthread_mutex_t lock;   /* guards the condition variables and the job */
    pthread_cond_t wake, done;
    int wanted;             /* threads per job, the caller included */
    int started;            /* pool threads running */
    int atfork;             /* the fork handlers are registered */
    /* the job: */
    unsigned long gen;      /* bumped for each job */
    fnn_task fn;
    void* ctx;
    ptrdiff_t parts;
    ptrdiff_t next;         /* the next part to take */
    int helpers;            /* pool threads taking part */
    int busy;               /* of those, the ones not yet done */
    unsigned long born[FNN_POOL_MAX];  /* gen when each thread was made */
} fnn_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
              PTHREAD_COND_INITIALIZER, 1};

/* Held by the thread whose job runs (a CPython lock: any thread may
 * release it, as the fork handler in the child does). */
static PyThread_type_lock fnn_pool_run = NULL;

/* Allocates the one-job lock; call once, with the GIL held. Returns 0, or -1
 * without memory (every job then runs in its caller). */
static int fnn_pool_init(void)
{
    if (fnn_pool_run == NULL)
        fnn_pool_run = PyThread_allocate_lock();
    return fnn_pool_run == NULL ? -1 : 0;
}

static inline void fnn_pool_set_threads(int n)
{
    __atomic_store_n(&fnn_pool.wanted,
                     n < 1 ? 1 : (n > FNN_POOL_MAX ? FNN_POOL_MAX : n),
                     __ATOMIC_RELAXED);
}

static inline int fnn_pool_threads(void)
{
    return __atomic_load_n(&fnn_pool.wanted, __ATOMIC_RELAXED);
}

static void fnn_pool_take_parts(int worker)
{
    ptrdiff_t p;
    while ((p = __atomic_fetch_add(&fnn_pool.next, 1, __ATOMIC_RELAXED))
           < fnn_pool.parts)
        fnn_pool.fn(fnn_pool.ctx, p, worker);
}

static void fnn_pool_worker(void* arg)
{
    int id = (int)(intptr_t)arg, i, helpers;
    unsigned long seen = fnn_pool.born[id], gen;
    for (;;) {
        for (i = 0; i < FNN_SPINS; i++) {
            if (__atomic_load_n(&fnn_pool.gen, __ATOMIC_ACQUIRE) != seen)
                break;
            FNN_PAUSE();
        }
        /* The job's fields are written under the lock with its gen: read
         * them under it too, so that a thread late for one job (not counted
         * in it) sees the next job whole, never a mix of two. */
        pthread_mutex_lock(&fnn_pool.lock);
        while ((gen = fnn_pool.gen) == seen)
            pthread_cond_wait(&fnn_pool.wake, &fnn_pool.lock);
        helpers = fnn_pool.helpers;
        pthread_mutex_unlock(&fnn_pool.lock);
        seen = gen;
        if (id > helpers)
            continue;  /* this job wants fewer threads */
        /* counted in busy: the job's fields stay as they are until we are done */
        fnn_pool_take_parts(id);
        if (__atomic_sub_fetch(&fnn_pool.busy, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&fnn_pool.lock);
            pthread_cond_signal(&fnn_pool.done);
            pthread_mutex_unlock(&fnn_pool.lock);
        }
    }
}

static void fnn_pool_prepare(void) { PyThread_acquire_lock(fnn_pool_run, WAIT_LOCK); }
static void fnn_pool_parent(void) { PyThread_release_lock(fnn_pool_run); }
static void fnn_pool_child(void)
{
    /* The pool threads are not in the child: start afresh. */
    pthread_mutex_init(&fnn_pool.lock, NULL);
    pthread_cond_init(&fnn_pool.wake, NULL);
    pthread_cond_init(&fnn_pool.done, NULL);
    fnn_pool.started = 0;
    PyThread_release_lock(fnn_pool_run);
}

/* Runs the job on at most max_threads threads (the caller's scratch is
 * sized for them: fnn_pool_threads() may change meanwhile); returns the
 * number of threads that took part. */
static int fnn_parallel(fnn_task fn, void* ctx, ptrdiff_t parts, int max_threads)
{
    int threads = fnn_pool_threads(), i;
    if (threads > max_threads)
        threads = max_threads;
    if (parts < threads)
        threads = (int)parts;
    if (threads <= 1 || fnn_pool_run == NULL
            || !PyThread_acquire_lock(fnn_pool_run, NOWAIT_LOCK)) {
        ptrdiff_t p;
        for (p = 0; p < parts; p++)
            fn(ctx, p, 0);
        return 1;
    }
    if (!fnn_pool.atfork)
        fnn_pool.atfork = pthread_atfork(fnn_pool_prepare, fnn_pool_parent,
                                         fnn_pool_child) == 0;
    if (fnn_pool.started < threads - 1 && fnn_pool.atfork) {
        for (i = fnn_pool.started; i < threads - 1; i++) {
            /* the thread waits for the job after this gen, which may
             * begin before the thread does */
            fnn_pool.born[i + 1] = fnn_pool.gen;
            if (PyThread_start_new_thread(fnn_pool_worker, (void*)(intptr_t)(i + 1))
                    == PYTHREAD_INVALID_THREAD_ID)
                break;
            fnn_pool.started = i + 1;
        }
    }
    pthread_mutex_lock(&fnn_pool.lock);
    fnn_pool.helpers = threads - 1 < fnn_pool.started ? threads - 1 : fnn_pool.started;
    fnn_pool.fn = fn;
    fnn_pool.ctx = ctx;
    fnn_pool.parts = parts;
    fnn_pool.next = 0;
    fnn_pool.busy = fnn_pool.helpers;
    if (fnn_pool.helpers > 0) {
        __atomic_add_fetch(&fnn_pool.gen, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&fnn_pool.wake);
    }
    pthread_mutex_unlock(&fnn_pool.lock);
    fnn_pool_take_parts(0);
    for (i = 0; i < FNN_SPINS * 4
         && __atomic_load_n(&fnn_pool.busy, __ATOMIC_ACQUIRE) > 0; i++)
        FNN_PAUSE();
    if (__atomic_load_n(&fnn_pool.busy, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&fnn_pool.lock);
        while (__atomic_load_n(&fnn_pool.busy, __ATOMIC_ACQUIRE) > 0)
            pthread_cond_wait(&fnn_pool.done, &fnn_pool.lock);
        pthread_mutex_unlock(&fnn_pool.lock);
    }
    threads = fnn_pool.helpers + 1;
    PyThread_release_lock(fnn_pool_run);
    return threads;
}

#endif
#endif  /* FASTNN_POOL_H */
