// The ternary GEMV (BitNet b1.58 decoding), included by simd_template.h for each
// instruction set. Weights are 2-bit codes c = t + 1 in TQ2_0 order (slm_kernels.h);
// activations int8. maddubs multiplies unsigned codes by signed activations in pairs
// (at most 2·2·128 in magnitude, so the int16 sums never saturate), madd with ones
// widens them to int32, and sum t·x = sum c·x − sum x. AVX-512 takes two groups per
// 512-bit load; AVX2, and AVX-512's odd last group, one per 256-bit load.

static inline int32_t FN(hsum_i32x8)(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// acc += the codes of one 128-weight group (32 bytes at w) times x[0..128).
static inline __m256i FN(t2_group)(__m256i acc, const uint8_t *w, const int8_t *x) {
    const __m256i three = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i p = _mm256_loadu_si256((const __m256i *)w);
    __m256i c0 = _mm256_and_si256(p, three), c1 = _mm256_and_si256(_mm256_srli_epi16(p, 2), three);
    __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(p, 4), three), c3 = _mm256_and_si256(_mm256_srli_epi16(p, 6), three);
    __m256i s = _mm256_maddubs_epi16(c0, _mm256_loadu_si256((const __m256i *)x));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c1, _mm256_loadu_si256((const __m256i *)(x + 32))));
    __m256i u = _mm256_maddubs_epi16(c2, _mm256_loadu_si256((const __m256i *)(x + 64)));
    u = _mm256_add_epi16(u, _mm256_maddubs_epi16(c3, _mm256_loadu_si256((const __m256i *)(x + 96))));
    // Two int16 sums of at most 1024 each: still far from saturating.
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(s, u), ones));
}

static int32_t FN(t2_row)(int64_t groups, const uint8_t *w, const int8_t *x) {
    int64_t g = 0;
    int32_t total = 0;
#if VW == 16
    const __m512i three = _mm512_set1_epi8(3), ones = _mm512_set1_epi16(1);
    __m512i acc = _mm512_setzero_si512();
    for (; g + 2 <= groups; g += 2) {
        __m512i p = _mm512_loadu_si512((const void *)(w + 32 * g));
        const int8_t *xg = x + g * SLM_T2_GROUP;
        __m512i s = _mm512_setzero_si512();
        for (int l = 0; l < 4; l++) {
            __m512i xv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xg + 32 * l))),
                                            _mm256_loadu_si256((const __m256i *)(xg + SLM_T2_GROUP + 32 * l)), 1);
            __m512i c = _mm512_and_si512(l == 0 ? p : l == 1 ? _mm512_srli_epi16(p, 2) : l == 2 ? _mm512_srli_epi16(p, 4)
                                                                                                   : _mm512_srli_epi16(p, 6), three);
            s = _mm512_add_epi16(s, _mm512_maddubs_epi16(c, xv));
        }
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(s, ones));
    }
    total = _mm512_reduce_add_epi32(acc);
#endif
    __m256i acc8 = _mm256_setzero_si256();
    for (; g < groups; g++) acc8 = FN(t2_group)(acc8, w + 32 * g, x + g * SLM_T2_GROUP);
    return total + FN(hsum_i32x8)(acc8);
}

static void FN(gemv_t2)(int64_t rows, int64_t cols, const uint8_t *wq, const float *scales, const int8_t *xq,
                        int32_t xq_sum, float x_scale, const float *bias, float *y, int accumulate) {
    const int64_t groups = cols / SLM_T2_GROUP, ld = cols / 4;
    for (int64_t r = 0; r < rows; r++) {
        float v = (float)(FN(t2_row)(groups, wq + r * ld, xq) - xq_sum) * (scales[r] * x_scale) + (bias ? bias[r] : 0.0f);
        y[r] = accumulate ? y[r] + v : v;
    }
}
