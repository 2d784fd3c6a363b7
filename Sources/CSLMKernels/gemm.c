// Matrix multiply backends, loaded at run time so the package builds and runs with or
// without them: oneDNN 2.x matmul primitives (fp32 and bf16, cached per shape), Apple
// Accelerate, any CBLAS (OpenBLAS), and the plain reference loop as a last resort.
#include "internal.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__APPLE__)
#include <Accelerate/Accelerate.h>
#endif

#if !defined(__APPLE__)
#include "dnnl_abi.h"
#define SLM_HAVE_DNNL 1
#endif

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
// Threads for BLAS, as set by slm_gemm_set_threads (0: the library's default).
static _Atomic int gemm_threads = 0;
static pthread_mutex_t gemm_lock = PTHREAD_MUTEX_INITIALIZER;
static slm_gemm_backend active_backend = SLM_GEMM_REFERENCE;
static char load_notes[1024];

static void note(const char *msg) {
    size_t used = strlen(load_notes);
    snprintf(load_notes + used, sizeof load_notes - used, "%s%s", used ? "; " : "", msg);
}

// MARK: - CBLAS (dlopen)

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc);
static cblas_sgemm_fn p_cblas_sgemm;
static void (*p_blas_set_threads)(int);

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static int load_cblas(void) {
#if defined(__APPLE__)
    p_cblas_sgemm = (cblas_sgemm_fn)(void *)cblas_sgemm;
    return 1;
#else
    const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        p_cblas_sgemm = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
        if (!p_cblas_sgemm) {
            dlclose(h);
            continue;
        }
        p_blas_set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
        // Debian's OpenBLAS runs its AVX2 (Haswell) kernels on CPUs it does not know,
        // even when they have AVX-512, at about half the speed. It reads its core type
        // only from the environment the process started with, so all we can do is say so.
        const char *(*corename)(void) = (const char *(*)(void))dlsym(h, "openblas_get_corename");
        if (corename && slm_isa_detected() == SLM_ISA_AVX512 && strcmp(corename(), "SkylakeX") != 0 &&
            strcmp(corename(), "Cooperlake") != 0 && strcmp(corename(), "SapphireRapids") != 0) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "OpenBLAS uses its %s kernels on this AVX-512 CPU; start with OPENBLAS_CORETYPE=SkylakeX for about twice the speed",
                     corename());
            note(msg);
        }
        return 1;
    }
    note("no CBLAS library found (install libopenblas0: scripts/setup.sh)");
    return 0;
#endif
}

static void cblas_batched(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc, int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    for (int64_t i = 0; i < batch; i++)
        p_cblas_sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS, tb ? CBLAS_TRANS : CBLAS_NO_TRANS,
                      (int)M, (int)N, (int)K, alpha, A + i * sa, (int)lda, B + i * sb, (int)ldb, beta,
                      C + i * sc, (int)ldc);
}

// MARK: - oneDNN (dlopen, 2.x C API declared in dnnl_abi.h)

#ifdef SLM_HAVE_DNNL
#define DNNL_FN(name) static name##_fn p_##name
DNNL_FN(dnnl_version);
DNNL_FN(dnnl_engine_create);
DNNL_FN(dnnl_stream_create);
DNNL_FN(dnnl_stream_wait);
DNNL_FN(dnnl_memory_desc_init_by_strides);
DNNL_FN(dnnl_memory_create);
DNNL_FN(dnnl_memory_set_data_handle);
DNNL_FN(dnnl_memory_destroy);
DNNL_FN(dnnl_matmul_desc_init);
DNNL_FN(dnnl_primitive_attr_create);
DNNL_FN(dnnl_primitive_attr_destroy);
DNNL_FN(dnnl_primitive_attr_set_output_scales);
DNNL_FN(dnnl_primitive_attr_set_post_ops);
DNNL_FN(dnnl_post_ops_create);
DNNL_FN(dnnl_post_ops_destroy);
DNNL_FN(dnnl_post_ops_append_sum);
DNNL_FN(dnnl_primitive_desc_create);
DNNL_FN(dnnl_primitive_desc_destroy);
DNNL_FN(dnnl_primitive_create);
DNNL_FN(dnnl_primitive_execute);
DNNL_FN(dnnl_primitive_destroy);
static void (*p_omp_set_num_threads)(int);

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static int load_dnnl(void) {
    // oneDNN runs on OpenMP. GNU OpenMP's idle threads spin after every parallel
    // region by default, which slows whatever our own threads run next on a small
    // machine: let them sleep unless the user chose otherwise.
    if (!getenv("GOMP_SPINCOUNT")) setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        void *v3 = dlopen("libdnnl.so.3", RTLD_LAZY | RTLD_LOCAL);
        if (v3) dlclose(v3);
        note(v3 ? "only oneDNN 3 is installed, whose API differs; install oneDNN 2 (libdnnl2: scripts/setup.sh)"
                : "oneDNN not found (install libdnnl2: scripts/setup.sh)");
        return 0;
    }
#define LOAD(name)                                                        \
    if (!(p_##name = (name##_fn)dlsym(h, #name))) {                       \
        note("oneDNN lacks " #name);                                      \
        return 0;                                                         \
    }
    LOAD(dnnl_version);
    if (p_dnnl_version()->major != 2) {
        note("libdnnl.so.2 is not oneDNN 2.x");
        return 0;
    }
    LOAD(dnnl_engine_create);
    LOAD(dnnl_stream_create);
    LOAD(dnnl_stream_wait);
    LOAD(dnnl_memory_desc_init_by_strides);
    LOAD(dnnl_memory_create);
    LOAD(dnnl_memory_set_data_handle);
    LOAD(dnnl_memory_destroy);
    LOAD(dnnl_matmul_desc_init);
    LOAD(dnnl_primitive_attr_create);
    LOAD(dnnl_primitive_attr_destroy);
    LOAD(dnnl_primitive_attr_set_output_scales);
    LOAD(dnnl_primitive_attr_set_post_ops);
    LOAD(dnnl_post_ops_create);
    LOAD(dnnl_post_ops_destroy);
    LOAD(dnnl_post_ops_append_sum);
    LOAD(dnnl_primitive_desc_create);
    LOAD(dnnl_primitive_desc_destroy);
    LOAD(dnnl_primitive_create);
    LOAD(dnnl_primitive_execute);
    LOAD(dnnl_primitive_destroy);
#undef LOAD
    p_omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
    // Our own cache (below) keeps the primitives in use. oneDNN's global one (1,024 by
    // default) would keep every shape ever seen besides, with its generated code: a
    // server reading prompts in chunks of ever new lengths grew by ~30% in 10 minutes.
    dnnl_set_primitive_cache_capacity_fn set_capacity =
        (dnnl_set_primitive_cache_capacity_fn)dlsym(h, "dnnl_set_primitive_cache_capacity");
    if (set_capacity && !getenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY") && !getenv("DNNL_PRIMITIVE_CACHE_CAPACITY"))
        set_capacity(0);
    if (p_dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        note("oneDNN could not create a CPU engine");
        return 0;
    }
    return 1;
}

// One cached primitive per distinct problem: shapes, strides, types and scalars.
typedef struct {
    int64_t dtype, ta, tb, batch, M, N, K, lda, ldb, ldc, sa, sb, sc;
    float alpha, beta;
} gemm_key;

typedef struct {
    gemm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} gemm_entry;

// Bounded, so a long-running process that meets many shapes (prompt lengths in a server)
// does not grow without limit: past the bound, entries are replaced round-robin.
#define CACHE_MAX 256
static gemm_entry cache[CACHE_MAX];
static int64_t cache_len, cache_victim;

static void entry_destroy(gemm_entry *e) {
    if (e->prim) p_dnnl_primitive_destroy(e->prim);
    if (e->a) p_dnnl_memory_destroy(e->a);
    if (e->b) p_dnnl_memory_destroy(e->b);
    if (e->c) p_dnnl_memory_destroy(e->c);
    memset(e, 0, sizeof *e);
}

// dims/strides of a (possibly batched, possibly transposed) rows x cols operand.
static int operand_md(dnnl_memory_desc_t *md, dnnl_data_type_t dt, int64_t batch, int64_t stride,
                      int64_t rows, int64_t cols, int64_t ld, int64_t trans) {
    dnnl_dims_t dims, strides;
    int nd = 0;
    if (batch > 1) {
        dims[nd] = stride == 0 ? 1 : batch; // stride 0: one matrix broadcast over the batch
        strides[nd++] = stride == 0 ? rows * ld : stride;
    }
    dims[nd] = rows;
    strides[nd++] = trans ? 1 : ld;
    dims[nd] = cols;
    strides[nd++] = trans ? ld : 1;
    return p_dnnl_memory_desc_init_by_strides(md, nd, dims, dt, strides) == dnnl_success;
}

static gemm_entry *dnnl_entry(const gemm_key *k) {
    for (int64_t i = 0; i < cache_len; i++)
        if (memcmp(&cache[i].key, k, sizeof *k) == 0) return &cache[i];
    dnnl_data_type_t dt = k->dtype ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t amd, bmd, cmd;
    if (!operand_md(&amd, dt, k->batch, k->sa, k->M, k->K, k->lda, k->ta) ||
        !operand_md(&bmd, dt, k->batch, k->sb, k->K, k->N, k->ldb, k->tb) ||
        !operand_md(&cmd, dnnl_f32, k->batch, k->sc, k->M, k->N, k->ldc, 0))
        return NULL;
    dnnl_matmul_desc_t desc;
    if (p_dnnl_matmul_desc_init(&desc, &amd, &bmd, NULL, &cmd) != dnnl_success) return NULL;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t ops;
    p_dnnl_primitive_attr_create(&attr);
    p_dnnl_post_ops_create(&ops);
    if (k->alpha != 1.0f) p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha);
    if (k->beta != 0.0f) p_dnnl_post_ops_append_sum(ops, k->beta);
    p_dnnl_primitive_attr_set_post_ops(attr, ops);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = p_dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    p_dnnl_post_ops_destroy(ops);
    p_dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return NULL;
    gemm_entry e;
    memset(&e, 0, sizeof e);
    e.key = *k;
    st = p_dnnl_primitive_create(&e.prim, pd);
    p_dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return NULL;
    if (p_dnnl_memory_create(&e.a, &amd, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        p_dnnl_memory_create(&e.b, &bmd, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        p_dnnl_memory_create(&e.c, &cmd, engine, DNNL_MEMORY_NONE) != dnnl_success) {
        entry_destroy(&e);
        return NULL;
    }
    gemm_entry *slot;
    if (cache_len < CACHE_MAX) {
        slot = &cache[cache_len++];
    } else {
        slot = &cache[cache_victim];
        cache_victim = (cache_victim + 1) % CACHE_MAX;
        entry_destroy(slot);
    }
    *slot = e;
    return slot;
}

// OpenMP keeps its thread count per calling thread, so a count set on one thread does
// not reach GEMMs issued from another (a server's generation thread, a worker). Each
// thread therefore applies the wanted count itself before its GEMMs. Small problems run
// on one thread: waking a sleeping OpenMP worker (~0.1 ms) costs more than it saves
// below ~16 MFLOP (about 70 µs on one core).
static _Thread_local int thread_omp_setting = -1;
#define SMALL_GEMM_FLOPS (1LL << 24)

static void apply_threads(double flops) {
    int want = atomic_load(&gemm_threads);
    if (want <= 0) return;
    if (flops < (double)SMALL_GEMM_FLOPS) want = 1;
    if (p_omp_set_num_threads && thread_omp_setting != want) {
        p_omp_set_num_threads(want);
        thread_omp_setting = want;
    }
}

static int onednn_matmul(int dtype, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                     const void *A, int64_t lda, const void *B, int64_t ldb, float beta, float *C,
                     int64_t ldc, int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.dtype = dtype; k.ta = ta != 0; k.tb = tb != 0; k.batch = batch;
    k.M = M; k.N = N; k.K = K; k.lda = lda; k.ldb = ldb; k.ldc = ldc;
    k.sa = batch > 1 ? sa : 0; k.sb = batch > 1 ? sb : 0; k.sc = batch > 1 ? sc : 0;
    k.alpha = alpha; k.beta = beta;
    pthread_mutex_lock(&gemm_lock);
    apply_threads(2.0 * (double)M * (double)N * (double)K * (double)batch);
    gemm_entry *e = dnnl_entry(&k);
    int ok = 0;
    if (e) {
        p_dnnl_memory_set_data_handle(e->a, (void *)A);
        p_dnnl_memory_set_data_handle(e->b, (void *)B);
        p_dnnl_memory_set_data_handle(e->c, C);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
        ok = p_dnnl_primitive_execute(e->prim, stream, 3, args) == dnnl_success &&
             p_dnnl_stream_wait(stream) == dnnl_success;
    }
    pthread_mutex_unlock(&gemm_lock);
    return ok;
}
#endif

// MARK: - Choosing a backend

static void choose_backend(void) {
    const char *want = getenv("SLM_GEMM_BACKEND");
    int allow_dnnl = !want || strcmp(want, "onednn") == 0;
    int allow_blas = !want || strcmp(want, "cblas") == 0 || strcmp(want, "accelerate") == 0;
    if (want && !allow_dnnl && !allow_blas && strcmp(want, "reference") != 0)
        note("unknown SLM_GEMM_BACKEND (use onednn, cblas, accelerate or reference)");
#ifdef SLM_HAVE_DNNL
    if (allow_dnnl && load_dnnl()) {
        active_backend = SLM_GEMM_ONEDNN;
        // Keep CBLAS too only as a fallback for shapes oneDNN refuses.
        load_cblas();
        return;
    }
#endif
    if (allow_blas && load_cblas()) {
#if defined(__APPLE__)
        active_backend = SLM_GEMM_ACCELERATE;
#else
        active_backend = SLM_GEMM_CBLAS;
#endif
        return;
    }
    active_backend = SLM_GEMM_REFERENCE;
}

slm_gemm_backend slm_gemm_init(void) {
    pthread_once(&init_once, choose_backend);
    return active_backend;
}

slm_gemm_backend slm_gemm_backend_active(void) { return slm_gemm_init(); }

const char *slm_gemm_load_notes(void) {
    slm_gemm_init();
    return load_notes;
}

const char *slm_gemm_backend_name(slm_gemm_backend b) {
    switch (b) {
    case SLM_GEMM_ONEDNN: return "onednn";
    case SLM_GEMM_CBLAS: return "cblas";
    case SLM_GEMM_ACCELERATE: return "accelerate";
    default: return "reference";
    }
}

void slm_gemm_set_threads(int n) {
    slm_gemm_init();
    if (n < 1) n = 1;
    atomic_store(&gemm_threads, n);  // each thread applies it before its next GEMM
    if (p_blas_set_threads) p_blas_set_threads(n);
}

// MARK: - Entry points

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc, int64_t batch,
                    int64_t sc) {
    for (int64_t i = 0; i < batch; i++)
        for (int64_t r = 0; r < M; r++) {
            float *row = C + i * sc + r * ldc;
            if (beta == 0.0f) memset(row, 0, sizeof(float) * (size_t)N);
            else slm_scale(N, beta, row, row);
        }
}

int slm_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
              int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    slm_gemm_init();
    if (M <= 0 || N <= 0 || batch <= 0) return 0;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc, batch, sc);
        return 0;
    }
#ifdef SLM_HAVE_DNNL
    if (active_backend == SLM_GEMM_ONEDNN &&
        onednn_matmul(0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc))
        return 0;
#endif
    if (p_cblas_sgemm && M < INT32_MAX && N < INT32_MAX && K < INT32_MAX) {
        cblas_batched(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
        return 0;
    }
    for (int64_t i = 0; i < batch; i++)
        slm_sgemm_ref(ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
    return 0;
}

// Without a bf16 GEMM, widen both operands (only as they are addressed) and use fp32.
static int bf16_by_widening(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                            const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                            float beta, float *C, int64_t ldc, int64_t batch, int64_t sa,
                            int64_t sb, int64_t sc) {
    int64_t arows = ta ? K : M, brows = tb ? N : K;
    int64_t alen = (batch - 1) * sa + arows * lda, blen = (batch - 1) * sb + brows * ldb;
    float *a = malloc(sizeof(float) * (size_t)alen), *b = malloc(sizeof(float) * (size_t)blen);
    if (!a || !b) {
        free(a);
        free(b);
        return -1;
    }
    slm_bf16_to_f32(alen, A, a);
    slm_bf16_to_f32(blen, B, b);
    int rc = slm_sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, C, ldc, batch, sa, sb, sc);
    free(a);
    free(b);
    return rc;
}

int slm_gemm_bf16(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                  int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc,
                  int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    slm_gemm_init();
    if (M <= 0 || N <= 0 || batch <= 0) return 0;
#ifdef SLM_HAVE_DNNL
    if (active_backend == SLM_GEMM_ONEDNN && K > 0 &&
        onednn_matmul(1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc))
        return 0;
#endif
    return bf16_by_widening(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
}
