// Batch-1 decoding: a small persistent thread pool and the parallel regions of one token
// (GEMV rows split across threads, attention heads split across threads).
//
// Why not DispatchQueue.concurrentPerform: a token of a 6-layer model runs ~30 parallel
// regions in under a millisecond, and waking a sleeping worker costs tens of
// microseconds on this kind of VM. Here each worker has its own mailbox (a sequence
// number on its own cache line); after a job it spins on that word for SPIN_NS, so the
// next region of the same token starts within a fraction of a microsecond, and only
// then sleeps on a condition variable, so an idle pool burns no CPU.
//
// Tasks are claimed, not assigned: every thread (the caller included) takes the next
// unclaimed task from one shared counter until none are left. On a machine shared
// with other processes a worker is often descheduled for a whole time slice; with a
// static split the caller would wait for it, here the caller simply runs its tasks
// and waits only for tasks a worker has actually started.
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

// How long an idle worker keeps spinning before it sleeps. Long enough to bridge the
// gap between two tokens (sampling, streaming text: tens of microseconds), short
// enough that a pool left alone costs nothing measurable.
#define SPIN_NS 200000LL
#define MAX_WORKERS 63

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

typedef struct {
    _Alignas(64) _Atomic uint64_t seq;  // bumped by the caller: a job to join
    _Atomic int sleeping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
} worker_slot;

static worker_slot slots[MAX_WORKERS];
static _Atomic int64_t started = 0;
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;

// The job in flight. `claim` packs the job's generation (high 32 bits) and the next
// unclaimed task (low 32 bits); a task is claimed by a compare-and-swap that also
// checks the generation, so a worker that wakes late can never run a task of a job it
// did not read.
//
// The job's description lives in one of two slots, chosen by the generation's parity.
// A worker may read a slot late (it loaded `claim`, was preempted, and the caller has
// meanwhile finished that job). With one slot it could then pair the old `claim` with
// the next job's description, and since the next job may have more tasks, claim and run
// a task twice (a hang when the caller then counts one task too many, wrong sums before
// that). With two, the slot of generation g is rewritten only for g + 2, after g + 1 was
// published, so a claim of g whose compare-and-swap succeeds always read g's own slot.
typedef struct {
    _Atomic(slm_pool_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t tasks;
} job_slot;

static _Alignas(64) _Atomic uint64_t claim = 0;
static _Alignas(64) _Atomic int64_t finished = 0;
static job_slot jobs[2];

// Claims and runs tasks of the current job until none are left.
static void run_tasks(void) {
    uint64_t w = atomic_load_explicit(&claim, memory_order_acquire);
    for (;;) {
        const job_slot *job = &jobs[(w >> 32) & 1];
        slm_pool_fn fn = atomic_load_explicit(&job->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&job->ctx, memory_order_relaxed);
        int64_t tasks = atomic_load_explicit(&job->tasks, memory_order_relaxed);
        int64_t task = (int64_t)(w & 0xffffffffu);
        if (task >= tasks) return;
        if (atomic_compare_exchange_weak_explicit(&claim, &w, w + 1, memory_order_acq_rel, memory_order_acquire)) {
            fn(ctx, task, tasks);
            atomic_fetch_add_explicit(&finished, 1, memory_order_release);
            w = atomic_load_explicit(&claim, memory_order_acquire);
        }
    }
}

static void *worker_main(void *arg) {
    worker_slot *s = arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq == seen) {
            int64_t until = now_ns() + SPIN_NS;
            for (int spins = 1;; spins++) {
                // Busy-wait with PAUSE for ~20 µs (the gap between two regions of a
                // token), then yield between checks: on a machine shared with other
                // processes the caller may be waiting for this very core, and a worker
                // burning its time slice would only delay the job it waits for.
                if (spins < 512) CPU_RELAX();
                else sched_yield();
                seq = atomic_load_explicit(&s->seq, memory_order_acquire);
                if (seq != seen) break;
                if ((spins & 63) == 0 && now_ns() > until) {
                    // Sleep. `sleeping` and `seq` are both seq_cst: either the caller sees
                    // sleeping == 1 and signals under the lock, or we see its new seq here.
                    pthread_mutex_lock(&s->lock);
                    atomic_store(&s->sleeping, 1);
                    while ((seq = atomic_load(&s->seq)) == seen) pthread_cond_wait(&s->wake, &s->lock);
                    atomic_store(&s->sleeping, 0);
                    pthread_mutex_unlock(&s->lock);
                    break;
                }
            }
        }
        seen = seq;
        run_tasks();
    }
    return NULL;
}

static void ensure_workers(int64_t n) {
    int64_t have = atomic_load(&started);
    for (int64_t i = have; i < n; i++) {
        worker_slot *s = &slots[i];
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->wake, NULL);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, s) != 0) abort();
        pthread_attr_destroy(&attr);
        atomic_store(&started, i + 1);
    }
}

int64_t slm_pool_workers(void) { return atomic_load(&started); }

// Back-off when the machine is oversubscribed. A worker preempted in the middle of a
// task holds the caller up for a scheduler time slice (milliseconds), far longer than
// the task. When that happens the next regions run on the caller alone, for a stretch
// that doubles while stalls recur (up to ~100 tokens) and shrinks again after regions
// that finish cleanly. On a quiet machine no wait comes near STALL_NS and this never
// triggers. Heuristic state: relaxed atomics, races only blur the counts.
#define STALL_NS 300000LL
#define BACKOFF_MIN 64
#define BACKOFF_MAX 4096
static _Atomic int64_t backoff_left = 0;
static _Atomic int64_t backoff_next = BACKOFF_MIN;

void slm_pool_run(int64_t threads, int64_t tasks, slm_pool_fn fn, void *ctx) {
    if (threads > MAX_WORKERS + 1) threads = MAX_WORKERS + 1;
    if (threads > tasks) threads = tasks;
    if (threads > 1 && atomic_load_explicit(&backoff_left, memory_order_relaxed) > 0) {
        atomic_fetch_sub_explicit(&backoff_left, 1, memory_order_relaxed);
        threads = 1;
    }
    if (threads <= 1) {
        for (int64_t t = 0; t < tasks; t++) fn(ctx, t, tasks);
        return;
    }
    pthread_mutex_lock(&submit_lock);
    ensure_workers(threads - 1);
    uint64_t generation = ((atomic_load_explicit(&claim, memory_order_relaxed) >> 32) + 1) & 0xffffffffu;
    job_slot *job = &jobs[generation & 1];
    atomic_store_explicit(&job->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&job->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&job->tasks, tasks, memory_order_relaxed);
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    atomic_store_explicit(&claim, generation << 32, memory_order_release);
    for (int64_t i = 0; i < threads - 1; i++) {
        worker_slot *s = &slots[i];
        atomic_fetch_add(&s->seq, 1);  // seq_cst: pairs with `sleeping`
        if (atomic_load(&s->sleeping)) {
            pthread_mutex_lock(&s->lock);
            pthread_cond_signal(&s->wake);
            pthread_mutex_unlock(&s->lock);
        }
    }
    run_tasks();
    // Every task is claimed; wait for those that workers are still running. A worker
    // preempted in the middle of one can take a while: spin a little, then yield.
    int64_t yielding_since = 0, waited = 0;
    for (int spins = 0; atomic_load_explicit(&finished, memory_order_acquire) != tasks; spins++) {
        if (spins < 1000) {
            CPU_RELAX();  // ~35 µs of PAUSE on Zen 5
        } else {
            if (yielding_since == 0) yielding_since = now_ns();
            sched_yield();
        }
    }
    if (yielding_since) waited = now_ns() - yielding_since;
    if (waited > STALL_NS) {
        int64_t n = atomic_load_explicit(&backoff_next, memory_order_relaxed);
        atomic_store_explicit(&backoff_left, n, memory_order_relaxed);
        atomic_store_explicit(&backoff_next, n * 2 < BACKOFF_MAX ? n * 2 : BACKOFF_MAX, memory_order_relaxed);
    } else if (yielding_since == 0) {
        int64_t n = atomic_load_explicit(&backoff_next, memory_order_relaxed);
        if (n > BACKOFF_MIN) atomic_store_explicit(&backoff_next, n - 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&submit_lock);
}

// MARK: - Parallel regions of one token

// Rows per task are rounded to this, so tasks write whole cache lines of y and the
// 4-row kernel rarely runs a remainder.
#define ROW_ALIGN 16
// Below this many weights a GEMV runs on the calling thread: splitting it costs more
// in synchronisation than it saves.
#define PARALLEL_MIN_WEIGHTS (64 * 1024)

static void row_range(int64_t rows, int64_t task, int64_t tasks, int64_t *begin, int64_t *end) {
    int64_t blocks = (rows + ROW_ALIGN - 1) / ROW_ALIGN;
    int64_t b0 = blocks * task / tasks, b1 = blocks * (task + 1) / tasks;
    *begin = b0 * ROW_ALIGN < rows ? b0 * ROW_ALIGN : rows;
    *end = b1 * ROW_ALIGN < rows ? b1 * ROW_ALIGN : rows;
}

// The input of a ternary GEMV, quantised once before the rows are split.
typedef struct {
    const int8_t *q;
    int32_t sum;
    float scale;
} quantized_input;

void slm_quantize_act_i8(int64_t n, int64_t padded, const float *x, int8_t *xq, float *x_scale, int32_t *xq_sum) {
    float peak = 0;
    for (int64_t k = 0; k < n; k++) peak = fmaxf(peak, fabsf(x[k]));
    // As the training quantiser: up = 127 / max(peak, 1e-5), x ≈ xq / up.
    const float up = 127.0f / fmaxf(peak, 1e-5f);
    int32_t sum = 0;
    for (int64_t k = 0; k < n; k++) {
        float v = nearbyintf(x[k] * up);  // ties to even in the default rounding mode
        int32_t q = v > 127 ? 127 : v < -128 ? -128 : (int32_t)v;
        xq[k] = (int8_t)q;
        sum += q;
    }
    for (int64_t k = n; k < padded; k++) xq[k] = 0;
    *x_scale = 1.0f / up;
    *xq_sum = sum;
}

static void gemv_rows(const slm_matrix *m, int64_t r0, int64_t r1, const float *x, const quantized_input *xq,
                      float *y, int accumulate) {
    if (r1 <= r0) return;
    const float *bias = m->bias ? m->bias + r0 : NULL;
    switch (m->format) {
    case SLM_WEIGHTS_T2:
        slm_gemv_t2(r1 - r0, m->cols, (const uint8_t *)m->w + r0 * (m->cols / 4), m->scales + r0, xq->q, xq->sum,
                    xq->scale, bias, y + r0, accumulate);
        break;
    case SLM_WEIGHTS_I8:
        slm_gemv_i8(r1 - r0, m->cols, (const int8_t *)m->w + r0 * m->cols, m->scales + r0, x, bias, y + r0,
                    accumulate);
        break;
    default:
        slm_gemv_f32(r1 - r0, m->cols, (const float *)m->w + r0 * m->cols, x, bias, y + r0, accumulate);
    }
}

// Tasks per thread: a few, so that a thread that falls behind (preempted, or slower
// memory) hands work to the others, while each claim (~0.1 µs) stays rare.
#define TASKS_PER_THREAD 4

static int64_t tasks_for(int64_t threads, int64_t weights, int64_t rows) {
    if (threads <= 1 || weights < PARALLEL_MIN_WEIGHTS) return 1;
    int64_t most = (rows + ROW_ALIGN - 1) / ROW_ALIGN, want = threads * TASKS_PER_THREAD;
    return want < most ? want : most;
}

typedef struct {
    const slm_matrix *m, *up;
    const float *x;
    const quantized_input *xq;
    float *y, *scratch;
    int accumulate;
    slm_activation act;
} gemv_job;

static void gemv_task(void *ctx, int64_t task, int64_t tasks) {
    const gemv_job *j = ctx;
    int64_t r0, r1;
    row_range(j->m->rows, task, tasks, &r0, &r1);
    gemv_rows(j->m, r0, r1, j->x, j->xq, j->y, j->accumulate);
    if (j->act == SLM_ACT_GELU && r1 > r0) slm_gelu_fwd(r1 - r0, j->y + r0, j->y + r0);
}

// A ternary matrix reads x as int8: quantised here, on the calling thread, into `buffer`
// (on the stack for the usual widths) before the rows are split.
#define STACK_INPUT 16384
static int8_t *quantize_input(const slm_matrix *m, const float *x, int8_t *stack, quantized_input *out) {
    int8_t *q = m->cols <= STACK_INPUT ? stack : malloc((size_t)m->cols);
    // x has `inputs` values; the padding columns (zero weights) read zeros.
    slm_quantize_act_i8(m->inputs, m->cols, x, q, &out->scale, &out->sum);
    out->q = q;
    return q == stack ? NULL : q;
}

void slm_decode_gemv(int64_t threads, const slm_matrix *m, const float *x, float *y, int accumulate,
                     slm_activation act) {
    int8_t stack[m->format == SLM_WEIGHTS_T2 && m->cols <= STACK_INPUT ? m->cols : 1];
    quantized_input xq = {0};
    int8_t *heap = m->format == SLM_WEIGHTS_T2 ? quantize_input(m, x, stack, &xq) : NULL;
    gemv_job j = {.m = m, .x = x, .xq = &xq, .y = y, .accumulate = accumulate, .act = act};
    slm_pool_run(threads, tasks_for(threads, m->rows * m->cols, m->rows), gemv_task, &j);
    free(heap);
}

// Rows per chunk of a batched GEMV: a chunk's weights (at most 16 rows) stay in L1/L2
// while every input passes over them.
#define BATCH_ROW_CHUNK 16

typedef struct {
    const slm_matrix *m;
    int64_t n, ldx, ldy;
    const float *x;
    const quantized_input *xq;  // n of them for a ternary matrix
    float *y;
    int accumulate;
} gemm_job;

static void gemm_task(void *ctx, int64_t task, int64_t tasks) {
    const gemm_job *j = ctx;
    int64_t r0, r1;
    row_range(j->m->rows, task, tasks, &r0, &r1);
    if (j->m->format == SLM_WEIGHTS_F32) {
        if (r1 > r0)
            slm_batched_gemv_f32(j->n, r1 - r0, j->m->cols, (const float *)j->m->w + r0 * j->m->cols, j->x, j->ldx,
                                 j->m->bias ? j->m->bias + r0 : NULL, j->y + r0, j->ldy, j->accumulate);
        return;
    }
    for (int64_t c0 = r0; c0 < r1; c0 += BATCH_ROW_CHUNK) {
        int64_t c1 = c0 + BATCH_ROW_CHUNK < r1 ? c0 + BATCH_ROW_CHUNK : r1;
        for (int64_t i = 0; i < j->n; i++)
            gemv_rows(j->m, c0, c1, j->x + i * j->ldx, j->xq ? j->xq + i : NULL, j->y + i * j->ldy, j->accumulate);
    }
}

void slm_decode_gemm(int64_t threads, const slm_matrix *m, int64_t n, const float *x, int64_t ldx, float *y,
                     int64_t ldy, int accumulate) {
    quantized_input *xq = NULL;
    int8_t *codes = NULL;
    if (m->format == SLM_WEIGHTS_T2) {
        xq = malloc((size_t)n * sizeof *xq);
        codes = malloc((size_t)(n * m->cols));
        for (int64_t i = 0; i < n; i++) {
            slm_quantize_act_i8(m->inputs, m->cols, x + i * ldx, codes + i * m->cols, &xq[i].scale, &xq[i].sum);
            xq[i].q = codes + i * m->cols;
        }
    }
    gemm_job j = {.m = m, .n = n, .ldx = ldx, .ldy = ldy, .x = x, .xq = xq, .y = y, .accumulate = accumulate};
    slm_pool_run(threads, tasks_for(threads, m->rows * m->cols, m->rows), gemm_task, &j);
    free(codes);
    free(xq);
}

// Gate and up rows of the same range in one task, then SwiGLU on that range: no
// barrier between the two projections and the activation.
static void swiglu_task(void *ctx, int64_t task, int64_t tasks) {
    const gemv_job *j = ctx;
    int64_t r0, r1;
    row_range(j->m->rows, task, tasks, &r0, &r1);
    if (r1 <= r0) return;
    gemv_rows(j->m, r0, r1, j->x, j->xq, j->y, 0);
    gemv_rows(j->up, r0, r1, j->x, j->xq, j->scratch, 0);
    slm_swiglu_fwd(r1 - r0, j->y + r0, j->scratch + r0, j->y + r0);
}

void slm_decode_gemv_swiglu(int64_t threads, const slm_matrix *gate, const slm_matrix *up, const float *x,
                            float *y, float *scratch) {
    // Gate and up read the same x: one quantisation serves both (ternary models make both ternary).
    int8_t stack[gate->format == SLM_WEIGHTS_T2 && gate->cols <= STACK_INPUT ? gate->cols : 1];
    quantized_input xq = {0};
    int8_t *heap = gate->format == SLM_WEIGHTS_T2 ? quantize_input(gate, x, stack, &xq) : NULL;
    gemv_job j = {.m = gate, .up = up, .x = x, .xq = &xq, .y = y, .scratch = scratch};
    slm_pool_run(threads, tasks_for(threads, 2 * gate->rows * gate->cols, gate->rows), swiglu_task, &j);
    free(heap);
}

typedef struct {
    const slm_attention_decode_args *a;
    int64_t heads;
} attention_job;

static void attention_task(void *ctx, int64_t task, int64_t tasks) {
    (void)tasks;
    const attention_job *j = ctx;
    int64_t head = task % j->heads;
    slm_attention_decode(j->a + task / j->heads, head, head + 1);
}

void slm_decode_attention(int64_t threads, const slm_attention_decode_args *a, int64_t count) {
    if (count <= 0) return;
    // Work per head ~ 2·n·D multiply-adds: short contexts are cheaper on one thread.
    int64_t work = 0;
    for (int64_t i = 0; i < count; i++) work += a[i].n * a[i].D * a[i].Hq;
    if (work < 16 * 1024) threads = 1;
    attention_job j = {.a = a, .heads = a[0].Hq};
    slm_pool_run(threads, count * a[0].Hq, attention_task, &j);
}
