// Decode attention's two loops over a KV cache, included by simd_template.h once per
// element type of the cache: KV_T (float or uint16_t half), KV_LOAD(p) (VW floats from
// p), KV_FLOAT(x) (one element as a float) and AD_NAME(name) set by the includer.
//
// One query against the cached keys with 8 FMA chains. The small-GEMM tile used below
// (and by AVX-512) keeps 2 chains for a single query row, and Zen 3's 4-cycle FMA latency
// held it to a quarter of the FMA rate; with 8 chains the loop waits on the cache instead:
// 1.4x on Zen 3 over 16 streams' caches (docs/BENCHMARKS.md). On the Xeon the same change
// measured no gain, so AVX-512 keeps the small GEMM for fp32 caches (f16 ones take these
// loops on every instruction set).
#define AD_BLOCK (8 * VW)

// s[j] = q · Kᵀ[:, j] for j < n (n a multiple of VW), 8 vectors of keys per block, one row of Kᵀ
// (one dimension of every key in the block) per step.
static void AD_NAME(ad_scores)(int64_t n, int64_t D, const float *q, const KV_T *kt, int64_t ldk, float *s) {
    int64_t j0 = 0;
    for (; j0 + AD_BLOCK <= n; j0 += AD_BLOCK) {
        vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO(), a4 = V_ZERO(), a5 = V_ZERO(), a6 = V_ZERO(), a7 = V_ZERO();
        for (int64_t d = 0; d < D; d++) {
            const KV_T *r = kt + d * ldk + j0;
            const vf qd = V_SET1(q[d]);
            a0 = V_FMA(qd, KV_LOAD(r), a0), a1 = V_FMA(qd, KV_LOAD(r + VW), a1);
            a2 = V_FMA(qd, KV_LOAD(r + 2 * VW), a2), a3 = V_FMA(qd, KV_LOAD(r + 3 * VW), a3);
            a4 = V_FMA(qd, KV_LOAD(r + 4 * VW), a4), a5 = V_FMA(qd, KV_LOAD(r + 5 * VW), a5);
            a6 = V_FMA(qd, KV_LOAD(r + 6 * VW), a6), a7 = V_FMA(qd, KV_LOAD(r + 7 * VW), a7);
        }
        V_STORE(s + j0, a0), V_STORE(s + j0 + VW, a1), V_STORE(s + j0 + 2 * VW, a2), V_STORE(s + j0 + 3 * VW, a3);
        V_STORE(s + j0 + 4 * VW, a4), V_STORE(s + j0 + 5 * VW, a5), V_STORE(s + j0 + 6 * VW, a6), V_STORE(s + j0 + 7 * VW, a7);
    }
    // The last keys, a vector at a time: two chains over alternate dimensions.
    for (; j0 < n; j0 += VW) {
        vf a = V_ZERO(), b = V_ZERO();
        int64_t d = 0;
        for (; d + 2 <= D; d += 2) {
            a = V_FMA(V_SET1(q[d]), KV_LOAD(kt + d * ldk + j0), a);
            b = V_FMA(V_SET1(q[d + 1]), KV_LOAD(kt + (d + 1) * ldk + j0), b);
        }
        if (d < D) a = V_FMA(V_SET1(q[d]), KV_LOAD(kt + d * ldk + j0), a);
        V_STORE(s + j0, V_ADD(a, b));
    }
}

// o = Σ_j p[j] · V[j, :] for j < n, V rows D values apart: 8 vectors of dimensions per pass.
static void AD_NAME(ad_values)(int64_t n, int64_t D, const float *p, const KV_T *v, float *o) {
    int64_t d0 = 0;
    for (; d0 + AD_BLOCK <= D; d0 += AD_BLOCK) {
        vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO(), a4 = V_ZERO(), a5 = V_ZERO(), a6 = V_ZERO(), a7 = V_ZERO();
        for (int64_t j = 0; j < n; j++) {
            const KV_T *r = v + j * D + d0;
            const vf pj = V_SET1(p[j]);
            a0 = V_FMA(pj, KV_LOAD(r), a0), a1 = V_FMA(pj, KV_LOAD(r + VW), a1);
            a2 = V_FMA(pj, KV_LOAD(r + 2 * VW), a2), a3 = V_FMA(pj, KV_LOAD(r + 3 * VW), a3);
            a4 = V_FMA(pj, KV_LOAD(r + 4 * VW), a4), a5 = V_FMA(pj, KV_LOAD(r + 5 * VW), a5);
            a6 = V_FMA(pj, KV_LOAD(r + 6 * VW), a6), a7 = V_FMA(pj, KV_LOAD(r + 7 * VW), a7);
        }
        V_STORE(o + d0, a0), V_STORE(o + d0 + VW, a1), V_STORE(o + d0 + 2 * VW, a2), V_STORE(o + d0 + 3 * VW, a3);
        V_STORE(o + d0 + 4 * VW, a4), V_STORE(o + d0 + 5 * VW, a5), V_STORE(o + d0 + 6 * VW, a6), V_STORE(o + d0 + 7 * VW, a7);
    }
    // Head sizes that are not a multiple of 64: the rest a vector, then a value, at a time.
    for (; d0 + VW <= D; d0 += VW) {
        vf a = V_ZERO(), b = V_ZERO();
        int64_t j = 0;
        for (; j + 2 <= n; j += 2) {
            a = V_FMA(V_SET1(p[j]), KV_LOAD(v + j * D + d0), a);
            b = V_FMA(V_SET1(p[j + 1]), KV_LOAD(v + (j + 1) * D + d0), b);
        }
        if (j < n) a = V_FMA(V_SET1(p[j]), KV_LOAD(v + j * D + d0), a);
        V_STORE(o + d0, V_ADD(a, b));
    }
    for (; d0 < D; d0++) {
        float acc = 0;
        for (int64_t j = 0; j < n; j++) acc += p[j] * KV_FLOAT(v[j * D + d0]);
        o[d0] = acc;
    }
}
#undef AD_BLOCK
#undef KV_T
#undef KV_LOAD
#undef KV_FLOAT
#undef AD_NAME
