// Micro-benchmarks that measure what one core can do at best, so benchmark figures can
// be given as a share of a measured peak rather than of a datasheet number.
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float peak_sink;

#if defined(__x86_64__)
// Twelve independent FMA chains hide the FMA latency on every current x86 core.
#define CHAINS 12

__attribute__((target("avx512f,fma")))
static double fma_avx512(double seconds) {
    __m512 acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c * 1e-3f);
    const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
    int64_t iters = 0;
    double t0 = now_seconds(), t1;
    do {
        for (int r = 0; r < 4096; r++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
        iters += 4096;
        t1 = now_seconds();
    } while (t1 - t0 < seconds);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    peak_sink = _mm512_reduce_add_ps(s);
    return (double)iters * CHAINS * 16 * 2 / (t1 - t0);
}

__attribute__((target("avx2,fma")))
static double fma_avx2(double seconds) {
    __m256 acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c * 1e-3f);
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    int64_t iters = 0;
    double t0 = now_seconds(), t1;
    do {
        for (int r = 0; r < 4096; r++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
        iters += 4096;
        t1 = now_seconds();
    } while (t1 - t0 < seconds);
    float out[8];
    __m256 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    _mm256_storeu_ps(out, s);
    peak_sink = out[0];
    return (double)iters * CHAINS * 8 * 2 / (t1 - t0);
}

__attribute__((target("avx512f,avx512bf16")))
static double dpbf16_avx512(double seconds) {
    __m512 acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_setzero_ps();
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    int64_t iters = 0;
    double t0 = now_seconds(), t1;
    do {
        for (int r = 0; r < 4096; r++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
        iters += 4096;
        t1 = now_seconds();
    } while (t1 - t0 < seconds);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    peak_sink = _mm512_reduce_add_ps(s);
    // Each vdpbf16ps does 32 multiply-adds of bf16 pairs into 16 float lanes.
    return (double)iters * CHAINS * 32 * 2 / (t1 - t0);
}
#endif

double slm_measure_fma_flops(int bf16, double seconds) {
#if defined(__x86_64__)
    if (bf16) return slm_cpu_has_avx512bf16() ? dpbf16_avx512(seconds) : 0;
    slm_isa isa = slm_isa_detected();
    if (isa == SLM_ISA_AVX512) return fma_avx512(seconds);
    if (isa == SLM_ISA_AVX2) return fma_avx2(seconds);
#endif
    (void)bf16;
    (void)seconds;
    return 0;
}

double slm_measure_triad_bandwidth(int64_t bytes, int repeats) {
    int64_t n = bytes / (3 * (int64_t)sizeof(float));
    float *a = NULL, *b = NULL, *c = NULL;
    if (posix_memalign((void **)&a, 64, (size_t)n * 4) || posix_memalign((void **)&b, 64, (size_t)n * 4) ||
        posix_memalign((void **)&c, 64, (size_t)n * 4)) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
    double best = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_seconds();
        // a = b + s * c through the dispatched kernels: one read-read-write stream.
        memcpy(a, b, (size_t)n * 4);
        slm_axpy(n, 0.5f, c, a);
        double t = now_seconds() - t0;
        // memcpy reads b and writes a; axpy reads c and a and writes a: 5 streams.
        double bw = 5.0 * (double)n * 4 / t;
        if (bw > best) best = bw;
    }
    peak_sink = a[n / 2];
    free(a);
    free(b);
    free(c);
    return best;
}
