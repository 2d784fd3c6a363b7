// The SIMD kernels compiled for AVX2 + FMA (8 float lanes).
#if defined(__x86_64__)
#include <immintrin.h>
#include "internal.h"

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

static inline float slm_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float slm_hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define VW 8
typedef __m256 vf;
typedef __m256i vi;
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ZERO() _mm256_setzero_ps()
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_DIV(a, b) _mm256_div_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ROUND(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_CVTI(v) _mm256_cvtps_epi32(v)
#define V_IADD(a, b) _mm256_add_epi32(a, b)
#define V_ISET1(x) _mm256_set1_epi32(x)
#define V_ISLLI(v, n) _mm256_slli_epi32(v, n)
#define V_ICAST(v) _mm256_castsi256_ps(v)
#define V_HSUM(v) slm_hsum256(v)
#define V_HMAX(v) slm_hmax256(v)
#define V_SQRT(v) _mm256_sqrt_ps(v)
#define V_ILOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define V_IMUL(a, b) _mm256_mullo_epi32(a, b)
#define V_IXOR(a, b) _mm256_xor_si256(a, b)
#define V_ISRLI(v, n) _mm256_srli_epi32(v, n)
// a >= b as "not b > a"; the shifted hashes are non-negative, so signed compares are exact.
#define V_SELECT_IGE(a, b, x) _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(b, a)), x)
#define V_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define V_STORE_F16(p, v) _mm_storeu_si128((__m128i *)(void *)(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define V_LOAD_I8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))))
#define FN(name) name##_avx2

#include "simd_template.h"

#pragma clang attribute pop
#endif
