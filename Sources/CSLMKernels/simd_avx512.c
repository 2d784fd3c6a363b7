// The SIMD kernels compiled for AVX-512 (16 float lanes), plus the AVX-512 BF16
// conversion. Target attributes, not compiler flags, select the instructions, so the
// rest of the package still runs on any x86-64 CPU.
#if defined(__x86_64__)
#include <immintrin.h>
#include "internal.h"

#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx2"))), apply_to = function)

#define VW 16
typedef __m512 vf;
typedef __m512i vi;
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ZERO() _mm512_setzero_ps()
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_DIV(a, b) _mm512_div_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ROUND(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_CVTI(v) _mm512_cvtps_epi32(v)
#define V_IADD(a, b) _mm512_add_epi32(a, b)
#define V_ISET1(x) _mm512_set1_epi32(x)
#define V_ISLLI(v, n) _mm512_slli_epi32(v, n)
#define V_ICAST(v) _mm512_castsi512_ps(v)
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HMAX(v) _mm512_reduce_max_ps(v)
#define V_SQRT(v) _mm512_sqrt_ps(v)
#define V_ILOAD(p) _mm512_loadu_si512((const void *)(p))
#define V_IMUL(a, b) _mm512_mullo_epi32(a, b)
#define V_IXOR(a, b) _mm512_xor_si512(a, b)
#define V_ISRLI(v, n) _mm512_srli_epi32(v, n)
#define V_SELECT_IGE(a, b, x) _mm512_maskz_mov_ps(_mm512_cmpge_epi32_mask(a, b), x)
#define V_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define V_STORE_F16(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define V_LOAD_I8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define FN(name) name##_avx512

#include "simd_template.h"

#pragma clang attribute pop

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void slm_f32_to_bf16_avx512bf16(int64_t n, const float *x, uint16_t *y) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        memcpy(y + i, &h, sizeof h);
    }
    for (; i < n; i++) y[i] = slm_bf16_round(x[i]);
}
#endif
