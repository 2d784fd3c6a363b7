// The AVX2 batch-1 GEMVs' inner loop, included by simd_template.h once per weight type:
// W_T (float or int8_t), W_LOAD(p) (VW weights from p as floats) and TR_NAME set by the
// includer. Sums rows w0 and w1 against x with two accumulators each, so that a GEMV
// reads two rows far apart side by side: two sequential streams, which Zen 3's
// prefetchers follow together (docs/BENCHMARKS.md, the AVX2 section).
static inline __attribute__((always_inline)) void TR_NAME(int64_t cols, const W_T *w0, const W_T *w1, const float *x,
                                                          float *s0, float *s1) {
    vf a0 = V_ZERO(), a1 = V_ZERO(), b0 = V_ZERO(), b1 = V_ZERO();
    int64_t k = 0;
    for (; k + 2 * VW <= cols; k += 2 * VW) {
        const vf x0 = V_LOAD(x + k), x1 = V_LOAD(x + k + VW);
        a0 = V_FMA(W_LOAD(w0 + k), x0, a0);
        a1 = V_FMA(W_LOAD(w0 + k + VW), x1, a1);
        b0 = V_FMA(W_LOAD(w1 + k), x0, b0);
        b1 = V_FMA(W_LOAD(w1 + k + VW), x1, b1);
    }
    if (k + VW <= cols) {
        const vf x0 = V_LOAD(x + k);
        a0 = V_FMA(W_LOAD(w0 + k), x0, a0);
        b0 = V_FMA(W_LOAD(w1 + k), x0, b0);
        k += VW;
    }
    float t0 = V_HSUM(V_ADD(a0, a1)), t1 = V_HSUM(V_ADD(b0, b1));
    for (; k < cols; k++) {
        t0 += (float)w0[k] * x[k];
        t1 += (float)w1[k] * x[k];
    }
    *s0 = t0, *s1 = t1;
}
#undef W_T
#undef W_LOAD
#undef TR_NAME
