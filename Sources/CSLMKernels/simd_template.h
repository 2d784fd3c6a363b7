// SIMD kernels written once against a handful of vector macros, then compiled for each
// instruction set by simd_avx512.c and simd_avx2.c (which define the macros and wrap
// this file in a target attribute). Vector bodies run over whole vectors; tails fall
// back to scalar code. Not a public header: include only from those two files.
//
// Required macros: VW (lanes), vf / vi (float / int32 vectors), V_LOAD, V_STORE, V_SET1,
// V_ZERO, V_ADD, V_SUB, V_MUL, V_DIV, V_MAX, V_MIN, V_FMA(a,b,c) = a*b+c, V_ROUND,
// V_CVTI, V_IADD, V_ISET1, V_ISLLI, V_ICAST, V_HSUM, V_HMAX, V_SQRT, V_ILOAD, V_IMUL
// (low 32 bits), V_IXOR, V_ISRLI, V_SELECT_IGE(a, b, x) = (int a >= int b) ? x : 0,
// V_LOAD_I8(p) (VW int8 values widened to floats), FN(name).

#include <math.h>
#include <stdlib.h>
#include <string.h>

// e^x for x in roughly [-87, 88]: range reduction by ln 2, degree-6 polynomial
// (Cephes' expf coefficients), exponent rebuilt with integer arithmetic.
static inline vf FN(vexp)(vf x) {
    x = V_MIN(V_MAX(x, V_SET1(-87.3f)), V_SET1(88.3f));
    vf n = V_ROUND(V_MUL(x, V_SET1(1.44269504088896341f)));
    vf r = V_FMA(n, V_SET1(-0.693359375f), x);
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    vf p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    p = V_FMA(p, V_MUL(r, r), V_ADD(r, V_SET1(1.0f)));
    vi e = V_ISLLI(V_IADD(V_CVTI(n), V_ISET1(127)), 23);
    return V_MUL(p, V_ICAST(e));
}

static inline vi FN(vfmix32)(vi h) {
    h = V_IXOR(h, V_ISRLI(h, 16));
    h = V_IMUL(h, V_ISET1((int32_t)0x85ebca6bu));
    h = V_IXOR(h, V_ISRLI(h, 13));
    h = V_IMUL(h, V_ISET1((int32_t)0xc2b2ae35u));
    return V_IXOR(h, V_ISRLI(h, 16));
}

static inline vf FN(vsigmoid)(vf x) {
    vf one = V_SET1(1.0f);
    return V_DIV(one, V_ADD(one, FN(vexp)(V_SUB(V_ZERO(), x))));
}

// tanh(u) = 1 - 2 / (1 + e^{2u}); saturates correctly at both ends.
static inline vf FN(vtanh)(vf u) {
    vf one = V_SET1(1.0f);
    vf e = FN(vexp)(V_ADD(u, u));
    return V_SUB(one, V_DIV(V_SET1(2.0f), V_ADD(one, e)));
}

static inline float FN(sigmoid1)(float v) { return 1.0f / (1.0f + expf(-v)); }

#define SLM_BINARY(name, VOP, EXPR)                                                        \
    static void FN(name)(int64_t n, const float *a, const float *b, float *y) {            \
        int64_t i = 0;                                                                     \
        for (; i + VW <= n; i += VW) V_STORE(y + i, VOP(V_LOAD(a + i), V_LOAD(b + i)));    \
        for (; i < n; i++) y[i] = EXPR;                                                    \
    }
SLM_BINARY(add, V_ADD, a[i] + b[i])
SLM_BINARY(sub, V_SUB, a[i] - b[i])
SLM_BINARY(mul, V_MUL, a[i] * b[i])
#undef SLM_BINARY

static void FN(scale)(int64_t n, float alpha, const float *x, float *y) {
    vf va = V_SET1(alpha);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, V_MUL(va, V_LOAD(x + i)));
    for (; i < n; i++) y[i] = alpha * x[i];
}

static void FN(axpy)(int64_t n, float alpha, const float *x, float *y) {
    vf va = V_SET1(alpha);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, V_FMA(va, V_LOAD(x + i), V_LOAD(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

static void FN(add_rowvec)(int64_t rows, int64_t cols, const float *x, const float *b, float *y) {
    for (int64_t r = 0; r < rows; r++) FN(add)(cols, x + r * cols, b, y + r * cols);
}

static void FN(colsum_acc)(int64_t rows, int64_t cols, const float *dy, float *db) {
    for (int64_t r = 0; r < rows; r++) FN(add)(cols, db, dy + r * cols, db);
}

static double FN(sum)(int64_t n, const float *x) {
    // Float lanes over blocks of 4096, blocks summed in double: fast and accurate enough.
    double total = 0;
    for (int64_t start = 0; start < n; start += 4096) {
        int64_t end = start + 4096 < n ? start + 4096 : n, i = start;
        vf acc = V_ZERO();
        for (; i + VW <= end; i += VW) acc = V_ADD(acc, V_LOAD(x + i));
        double part = V_HSUM(acc);
        for (; i < end; i++) part += x[i];
        total += part;
    }
    return total;
}

static double FN(sumsq)(int64_t n, const float *x) {
    double total = 0;
    for (int64_t start = 0; start < n; start += 4096) {
        int64_t end = start + 4096 < n ? start + 4096 : n, i = start;
        vf acc = V_ZERO();
        for (; i + VW <= end; i += VW) {
            vf v = V_LOAD(x + i);
            acc = V_FMA(v, v, acc);
        }
        double part = V_HSUM(acc);
        for (; i < end; i++) part += (double)x[i] * x[i];
        total += part;
    }
    return total;
}

// The keep factor (1/(1-p) or 0) of VW consecutive elements from index `first` on;
// lane for lane the same integers as slm_dropout_hash.
static inline vf FN(dropout_factor)(uint64_t seed, uint32_t first, vi lanes, vi threshold, vf keep) {
    vi idx = V_IADD(V_ISET1((int32_t)first), lanes);
    vi h = V_IADD(V_IMUL(idx, V_ISET1((int32_t)0x9e3779b1u)), V_ISET1((int32_t)(uint32_t)seed));
    h = FN(vfmix32)(h);
    h = FN(vfmix32)(V_IXOR(h, V_ISET1((int32_t)(uint32_t)(seed >> 32))));
    return V_SELECT_IGE(V_ISRLI(h, 8), threshold, keep);
}

static const int32_t FN(lane_index)[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void FN(dropout_fwd)(int64_t n, uint64_t seed, int64_t offset, float p, const float *x, float *y) {
    const vi lanes = V_ILOAD(FN(lane_index)), threshold = V_ISET1((int32_t)slm_dropout_threshold(p));
    const vf keep = V_SET1(1.0f / (1.0f - p));
    int64_t i = 0;
    for (; i + VW <= n; i += VW)
        V_STORE(y + i, V_MUL(V_LOAD(x + i), FN(dropout_factor)(seed, (uint32_t)(offset + i), lanes, threshold, keep)));
    if (i < n) slm_dropout_fwd_ref(n - i, seed, offset + i, p, x + i, y + i);
}

static void FN(dropout_bwd)(int64_t n, uint64_t seed, int64_t offset, float p, const float *dy, float *dx) {
    const vi lanes = V_ILOAD(FN(lane_index)), threshold = V_ISET1((int32_t)slm_dropout_threshold(p));
    const vf keep = V_SET1(1.0f / (1.0f - p));
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf f = FN(dropout_factor)(seed, (uint32_t)(offset + i), lanes, threshold, keep);
        V_STORE(dx + i, V_FMA(V_LOAD(dy + i), f, V_LOAD(dx + i)));
    }
    if (i < n) slm_dropout_bwd_ref(n - i, seed, offset + i, p, dy + i, dx + i);
}

static void FN(adamw)(int64_t n, const slm_adamw_args *a, float *w, const float *g, float *m, float *v) {
    const vf b1 = V_SET1(a->beta1), b2 = V_SET1(a->beta2), nb1 = V_SET1(1 - a->beta1), nb2 = V_SET1(1 - a->beta2);
    const vf ic1 = V_SET1(1.0f / a->correction1), ic2 = V_SET1(1.0f / a->correction2);
    const vf eps = V_SET1(a->eps), lr = V_SET1(a->lr), keepw = V_SET1(1.0f - a->decay);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf gi = V_LOAD(g + i);
        vf mi = V_FMA(b1, V_LOAD(m + i), V_MUL(nb1, gi));
        vf vi_ = V_FMA(b2, V_LOAD(v + i), V_MUL(nb2, V_MUL(gi, gi)));
        V_STORE(m + i, mi);
        V_STORE(v + i, vi_);
        vf update = V_DIV(V_MUL(mi, ic1), V_ADD(V_SQRT(V_MUL(vi_, ic2)), eps));
        V_STORE(w + i, V_SUB(V_MUL(keepw, V_LOAD(w + i)), V_MUL(lr, update)));
    }
    if (i < n) slm_adamw_ref(n - i, a, w + i, g + i, m + i, v + i);
}

#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

static void FN(gelu_fwd)(int64_t n, const float *x, float *y) {
    const vf k = V_SET1(GELU_K), c = V_SET1(GELU_C), half = V_SET1(0.5f), one = V_SET1(1.0f);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(x + i);
        vf t = FN(vtanh)(V_MUL(V_MUL(k, v), V_FMA(c, V_MUL(v, v), one)));
        V_STORE(y + i, V_MUL(V_MUL(half, v), V_ADD(one, t)));
    }
    for (; i < n; i++) {
        float v = x[i], t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        y[i] = 0.5f * v * (1.0f + t);
    }
}

static void FN(gelu_bwd)(int64_t n, const float *x, const float *dy, float *dx) {
    const vf k = V_SET1(GELU_K), c = V_SET1(GELU_C), c3 = V_SET1(3.0f * GELU_C);
    const vf half = V_SET1(0.5f), one = V_SET1(1.0f);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(x + i), v2 = V_MUL(v, v);
        vf t = FN(vtanh)(V_MUL(V_MUL(k, v), V_FMA(c, v2, one)));
        vf dt = V_MUL(k, V_FMA(c3, v2, one));
        vf sech2 = V_SUB(one, V_MUL(t, t));
        vf d = V_FMA(V_MUL(half, v), V_MUL(sech2, dt), V_MUL(half, V_ADD(one, t)));
        V_STORE(dx + i, V_FMA(V_LOAD(dy + i), d, V_LOAD(dx + i)));
    }
    for (; i < n; i++) {
        float v = x[i], t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        float dt = GELU_K * (1.0f + 3.0f * GELU_C * v * v);
        dx[i] += dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
    }
}

static void FN(silu_fwd)(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(x + i);
        V_STORE(y + i, V_MUL(v, FN(vsigmoid)(v)));
    }
    for (; i < n; i++) y[i] = x[i] * FN(sigmoid1)(x[i]);
}

// d silu / dx = s (1 + x (1 - s))
static inline vf FN(vsilu_grad)(vf v, vf s) {
    vf one = V_SET1(1.0f);
    return V_MUL(s, V_FMA(v, V_SUB(one, s), one));
}

static void FN(silu_bwd)(int64_t n, const float *x, const float *dy, float *dx) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(x + i);
        vf d = FN(vsilu_grad)(v, FN(vsigmoid)(v));
        V_STORE(dx + i, V_FMA(V_LOAD(dy + i), d, V_LOAD(dx + i)));
    }
    for (; i < n; i++) {
        float s = FN(sigmoid1)(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

static void FN(swiglu_fwd)(int64_t n, const float *g, const float *u, float *y) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(g + i);
        V_STORE(y + i, V_MUL(V_MUL(v, FN(vsigmoid)(v)), V_LOAD(u + i)));
    }
    for (; i < n; i++) y[i] = g[i] * FN(sigmoid1)(g[i]) * u[i];
}

static void FN(swiglu_bwd)(int64_t n, const float *g, const float *u, const float *dy,
                           float *dg, float *du) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(g + i), s = FN(vsigmoid)(v), d = V_LOAD(dy + i);
        V_STORE(dg + i, V_FMA(V_MUL(d, V_LOAD(u + i)), FN(vsilu_grad)(v, s), V_LOAD(dg + i)));
        V_STORE(du + i, V_FMA(d, V_MUL(v, s), V_LOAD(du + i)));
    }
    for (; i < n; i++) {
        float s = FN(sigmoid1)(g[i]);
        dg[i] += dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] += dy[i] * g[i] * s;
    }
}

static inline float FN(row_max)(int64_t n, const float *x) {
    int64_t i = 0;
    float m = -INFINITY;
    if (n >= VW) {
        vf vm = V_LOAD(x);
        for (i = VW; i + VW <= n; i += VW) vm = V_MAX(vm, V_LOAD(x + i));
        m = V_HMAX(vm);
    }
    for (; i < n; i++) m = fmaxf(m, x[i]);
    return m;
}

static inline float FN(row_dot)(int64_t n, const float *a, const float *b) {
    vf acc = V_ZERO();
    int64_t i = 0;
    for (; i + VW <= n; i += VW) acc = V_FMA(V_LOAD(a + i), V_LOAD(b + i), acc);
    float s = V_HSUM(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// y = exp(x * scale - shift), returns the sum of y.
static inline float FN(row_exp)(int64_t n, const float *x, float scale, float shift, float *y) {
    vf vs = V_SET1(scale), vsh = V_SET1(shift), acc = V_ZERO();
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf e = FN(vexp)(V_SUB(V_MUL(V_LOAD(x + i), vs), vsh));
        V_STORE(y + i, e);
        acc = V_ADD(acc, e);
    }
    float s = V_HSUM(acc);
    for (; i < n; i++) {
        y[i] = expf(x[i] * scale - shift);
        s += y[i];
    }
    return s;
}

static void FN(softmax_fwd)(int64_t rows, int64_t cols, const float *x, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float s = FN(row_exp)(cols, xr, 1.0f, FN(row_max)(cols, xr), yr);
        FN(scale)(cols, 1.0f / s, yr, yr);
    }
}

static void FN(softmax_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        const float d = FN(row_dot)(cols, yr, dyr);
        const vf dot = V_SET1(d);
        int64_t i = 0;
        for (; i + VW <= cols; i += VW)
            V_STORE(dxr + i, V_FMA(V_LOAD(yr + i), V_SUB(V_LOAD(dyr + i), dot), V_LOAD(dxr + i)));
        for (; i < cols; i++) dxr[i] += yr[i] * (dyr[i] - d);
    }
}

static void FN(layernorm_fwd)(int64_t rows, int64_t cols, const float *x, const float *w,
                              const float *b, float eps, float *y, float *mean, float *rstd) {
    const vf one = V_SET1(1.0f), zero = V_ZERO();
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mu = (float)(FN(sum)(cols, xr) / (double)cols);
        vf vmu = V_SET1(mu), acc = V_ZERO();
        int64_t i = 0;
        for (; i + VW <= cols; i += VW) {
            vf d = V_SUB(V_LOAD(xr + i), vmu);
            acc = V_FMA(d, d, acc);
        }
        float var = V_HSUM(acc);
        for (; i < cols; i++) var += (xr[i] - mu) * (xr[i] - mu);
        float rs = 1.0f / sqrtf(var / (float)cols + eps);
        vf vrs = V_SET1(rs);
        for (i = 0; i + VW <= cols; i += VW) {
            vf h = V_MUL(V_SUB(V_LOAD(xr + i), vmu), vrs);
            vf vw = w ? V_LOAD(w + i) : one, vb = b ? V_LOAD(b + i) : zero;
            V_STORE(yr + i, V_FMA(h, vw, vb));
        }
        for (; i < cols; i++) yr[i] = (xr[i] - mu) * rs * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
        mean[r] = mu;
        rstd[r] = rs;
    }
}

static void FN(layernorm_bwd)(int64_t rows, int64_t cols, const float *x, const float *w,
                              const float *mean, const float *rstd, const float *dy,
                              float *dx, float *dw, float *db) {
    const vf one = V_SET1(1.0f);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        const vf vmu = V_SET1(mean[r]), vrs = V_SET1(rstd[r]);
        vf va = V_ZERO(), vc = V_ZERO();
        int64_t i = 0;
        for (; i + VW <= cols; i += VW) {
            vf h = V_MUL(V_SUB(V_LOAD(xr + i), vmu), vrs);
            vf g = V_MUL(V_LOAD(dyr + i), w ? V_LOAD(w + i) : one);
            va = V_ADD(va, g);
            vc = V_FMA(g, h, vc);
        }
        float a = V_HSUM(va), c = V_HSUM(vc);
        for (; i < cols; i++) {
            float h = (xr[i] - mean[r]) * rstd[r], g = dyr[i] * (w ? w[i] : 1.0f);
            a += g;
            c += g * h;
        }
        a /= (float)cols;
        c /= (float)cols;
        const vf vam = V_SET1(a), vcm = V_SET1(c);
        for (i = 0; i + VW <= cols; i += VW) {
            vf d = V_LOAD(dyr + i);
            vf h = V_MUL(V_SUB(V_LOAD(xr + i), vmu), vrs);
            vf g = V_MUL(d, w ? V_LOAD(w + i) : one);
            vf t = V_SUB(V_SUB(g, vam), V_MUL(h, vcm));
            V_STORE(dxr + i, V_FMA(vrs, t, V_LOAD(dxr + i)));
            if (dw) V_STORE(dw + i, V_FMA(d, h, V_LOAD(dw + i)));
            if (db) V_STORE(db + i, V_ADD(d, V_LOAD(db + i)));
        }
        for (; i < cols; i++) {
            float h = (xr[i] - mean[r]) * rstd[r], g = dyr[i] * (w ? w[i] : 1.0f);
            dxr[i] += rstd[r] * (g - a - h * c);
            if (dw) dw[i] += dyr[i] * h;
            if (db) db[i] += dyr[i];
        }
    }
}

static void FN(rmsnorm_fwd)(int64_t rows, int64_t cols, const float *x, const float *w,
                            float eps, float *y, float *rstd) {
    const vf one = V_SET1(1.0f);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float rs = 1.0f / sqrtf(FN(row_dot)(cols, xr, xr) / (float)cols + eps);
        vf vrs = V_SET1(rs);
        int64_t i = 0;
        for (; i + VW <= cols; i += VW)
            V_STORE(yr + i, V_MUL(V_MUL(V_LOAD(xr + i), vrs), w ? V_LOAD(w + i) : one));
        for (; i < cols; i++) yr[i] = xr[i] * rs * (w ? w[i] : 1.0f);
        rstd[r] = rs;
    }
}

static void FN(rmsnorm_bwd)(int64_t rows, int64_t cols, const float *x, const float *w,
                            const float *rstd, const float *dy, float *dx, float *dw) {
    const vf one = V_SET1(1.0f);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        const float rs = rstd[r];
        const vf vrs = V_SET1(rs);
        vf vc = V_ZERO();
        int64_t i = 0;
        for (; i + VW <= cols; i += VW) {
            vf g = V_MUL(V_LOAD(dyr + i), w ? V_LOAD(w + i) : one);
            vc = V_FMA(g, V_LOAD(xr + i), vc);
        }
        float c = V_HSUM(vc);
        for (; i < cols; i++) c += dyr[i] * (w ? w[i] : 1.0f) * xr[i];
        c = c * rs / (float)cols;
        const vf vcm = V_SET1(c);
        for (i = 0; i + VW <= cols; i += VW) {
            vf d = V_LOAD(dyr + i), h = V_MUL(V_LOAD(xr + i), vrs);
            vf g = V_MUL(d, w ? V_LOAD(w + i) : one);
            V_STORE(dxr + i, V_FMA(vrs, V_SUB(g, V_MUL(h, vcm)), V_LOAD(dxr + i)));
            if (dw) V_STORE(dw + i, V_FMA(d, h, V_LOAD(dw + i)));
        }
        for (; i < cols; i++) {
            float h = xr[i] * rs, g = dyr[i] * (w ? w[i] : 1.0f);
            dxr[i] += rs * (g - h * c);
            if (dw) dw[i] += dyr[i] * h;
        }
    }
}

static void FN(xent_fwd)(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                         int32_t ignore_index, float *loss, float *lse) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = logits + r * cols;
        float m = FN(row_max)(cols, xr);
        // Sum of exponentials without storing them: same loop as row_exp, no output.
        vf vm = V_SET1(m), acc = V_ZERO();
        int64_t i = 0;
        for (; i + VW <= cols; i += VW) acc = V_ADD(acc, FN(vexp)(V_SUB(V_LOAD(xr + i), vm)));
        float s = V_HSUM(acc);
        for (; i < cols; i++) s += expf(xr[i] - m);
        lse[r] = m + logf(s);
        loss[r] = targets[r] == ignore_index ? 0.0f : lse[r] - xr[targets[r]];
    }
}

static void FN(xent_bwd)(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                         int32_t ignore_index, const float *lse, float scale, float *dlogits) {
    const vf vs = V_SET1(scale);
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        const float *xr = logits + r * cols;
        float *dr = dlogits + r * cols;
        vf vl = V_SET1(lse[r]);
        int64_t i = 0;
        for (; i + VW <= cols; i += VW)
            V_STORE(dr + i, V_FMA(vs, FN(vexp)(V_SUB(V_LOAD(xr + i), vl)), V_LOAD(dr + i)));
        for (; i < cols; i++) dr[i] += scale * expf(xr[i] - lse[r]);
        dr[targets[r]] -= scale;
    }
}

// MARK: attention

static float *FN(scratch)(int64_t floats) {
    void *p = NULL;
    size_t bytes = ((size_t)floats * sizeof(float) + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) abort();
    return (float *)p;
}

// Transposes the 8×8 block at src (rows `stride` apart) into dst (rows `ldd` apart).
// AVX (256-bit) shuffles, available under both targets.
static inline void FN(transpose8x8)(const float *src, int64_t stride, float *dst, int64_t ldd) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + stride);
    __m256 r2 = _mm256_loadu_ps(src + 2 * stride), r3 = _mm256_loadu_ps(src + 3 * stride);
    __m256 r4 = _mm256_loadu_ps(src + 4 * stride), r5 = _mm256_loadu_ps(src + 5 * stride);
    __m256 r6 = _mm256_loadu_ps(src + 6 * stride), r7 = _mm256_loadu_ps(src + 7 * stride);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// dst[d * ldt + j] = src[j * stride + d] for j < T, zero for T <= j < ldt: 8×8 blocks,
// then scalar edges.
static void FN(transpose_rows)(const float *src, int64_t stride, int64_t T, int64_t D,
                               int64_t ldt, float *dst) {
    const int64_t T8 = T / 8 * 8, D8 = D / 8 * 8;
    for (int64_t j = 0; j < T8; j += 8) {
        for (int64_t d = 0; d < D8; d += 8) FN(transpose8x8)(src + j * stride + d, stride, dst + d * ldt + j, ldt);
        for (int64_t d = D8; d < D; d++)
            for (int64_t jj = j; jj < j + 8; jj++) dst[d * ldt + jj] = src[jj * stride + d];
    }
    for (int64_t j = T8; j < T; j++)
        for (int64_t d = 0; d < D; d++) dst[d * ldt + j] = src[j * stride + d];
    for (int64_t d = 0; d < D; d++) memset(dst + d * ldt + T, 0, sizeof(float) * (size_t)(ldt - T));
}

// One register tile of a small matrix product: rows [0, mr) and NV vectors of columns.
// C(i, j) (+)= sum_kk A(i, kk) * B[kk * ldb + j], with A(i, kk) = a[i * ars + kk * acs], so
// A may be read as stored or transposed. Called with constant mr and nv, so the
// accumulators live in registers.
#define TILE_ROWS 6
static inline __attribute__((always_inline)) void FN(tile)(const int mr, const int nv, int64_t k,
        const float *a, int64_t ars, int64_t acs, const float *b, int64_t ldb,
        float *c, int64_t ldc, int accumulate) {
    vf acc[TILE_ROWS][2];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = accumulate ? V_LOAD(c + i * ldc + v * VW) : V_ZERO();
    for (int64_t kk = 0; kk < k; kk++) {
        const float *bk = b + kk * ldb, *ak = a + kk * acs;
        vf b0 = V_LOAD(bk), b1 = nv > 1 ? V_LOAD(bk + VW) : b0;
        for (int i = 0; i < mr; i++) {
            vf ai = V_SET1(ak[i * ars]);
            acc[i][0] = V_FMA(ai, b0, acc[i][0]);
            if (nv > 1) acc[i][1] = V_FMA(ai, b1, acc[i][1]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) V_STORE(c + i * ldc + v * VW, acc[i][v]);
}

#define TILE_CASES(NV)                                                                      \
    switch (mr) {                                                                           \
    case 6: FN(tile)(6, NV, k, ai, ars, acs, b + j, ldb, ci, ldc, accumulate); break;        \
    case 5: FN(tile)(5, NV, k, ai, ars, acs, b + j, ldb, ci, ldc, accumulate); break;        \
    case 4: FN(tile)(4, NV, k, ai, ars, acs, b + j, ldb, ci, ldc, accumulate); break;        \
    case 3: FN(tile)(3, NV, k, ai, ars, acs, b + j, ldb, ci, ldc, accumulate); break;        \
    case 2: FN(tile)(2, NV, k, ai, ars, acs, b + j, ldb, ci, ldc, accumulate); break;        \
    default: FN(tile)(1, NV, k, ai, ars, acs, b + j, ldb, ci, ldc, accumulate); break;       \
    }

// One cache block of small_gemm: every row tile against all n columns and all k.
static void FN(small_gemm_block)(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs,
                                 const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate) {
    for (int64_t i = 0, mr; i < m; i += mr) {
        // 7 to 11 rows left go as two tiles of at least 3, not a full one and a thin one:
        // a tile of r rows keeps 2r FMA chains, and the pipes need 8 to stay busy.
        const int64_t rest = m - i;
        mr = rest > TILE_ROWS && rest < 2 * TILE_ROWS ? rest / 2 : rest < TILE_ROWS ? rest : TILE_ROWS;
        const float *ai = a + i * ars;
        int64_t j = 0;
        for (; j + 2 * VW <= n; j += 2 * VW) {
            float *ci = c + i * ldc + j;
            TILE_CASES(2)
        }
        for (; j + VW <= n; j += VW) {
            float *ci = c + i * ldc + j;
            TILE_CASES(1)
        }
        for (; j < n; j++)
            for (int r = 0; r < mr; r++) {
                float s = accumulate ? c[(i + r) * ldc + j] : 0.0f;
                for (int64_t kk = 0; kk < k; kk++) s += ai[r * ars + kk * acs] * b[kk * ldb + j];
                c[(i + r) * ldc + j] = s;
            }
    }
}
#undef TILE_CASES

// Cache blocks of small_gemm: a KC × NC block of B (16 KiB) stays in L1 while every row
// tile reads it. Unblocked, a long context made each row tile stream B from L2 with rows a
// page apart (B = Kᵀ with T = 4,096: a 64-row panel touches 64 pages). The k blocks
// continue the sums in C in the same order, so the results are bit for bit the same.
#define SG_KC 64
#define SG_NC 64

// C[m x n] (+)= A[m x k] * B[k x n] for the small, oddly shaped products of attention
// (k and n are a head size or a block of keys). B and C rows are `ldb` and `ldc` apart;
// A is addressed through row and column strides (see tile).
static void FN(small_gemm)(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs,
                           const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate) {
    // At least one pass, so that k = 0 still writes zeros (or leaves C) as a block does.
    for (int64_t k0 = 0; k0 == 0 || k0 < k; k0 += SG_KC) {
        const int64_t kb = k - k0 < SG_KC ? k - k0 : SG_KC;
        for (int64_t j0 = 0; j0 < n; j0 += SG_NC) {
            const int64_t nb = n - j0 < SG_NC ? n - j0 : SG_NC;
            FN(small_gemm_block)(m, nb, kb, a + k0 * acs, ars, acs, b + k0 * ldb + j0, ldb, c + j0, ldc, accumulate || k0 > 0);
        }
    }
}

// Queries are processed in blocks of this many rows: each block's scores against all the
// keys it may see form a small matrix product. Smaller blocks waste less work above the
// causal diagonal, larger ones reuse each key more often.
#define ATT_QUERY_BLOCK 32

static inline int64_t FN(round_up)(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

// The row length of the transposed keys (and values): whole vectors, and an odd number of
// 64-byte lines. With T a multiple of 256, rows 1 KiB apart all fall in 4 of L1's 64 sets,
// and a 64-row block of them evicts itself as a product reads it.
static inline int64_t FN(transposed_ld)(int64_t T) {
    const int64_t ld = FN(round_up)(T, 16);
    return (ld / 16) % 2 ? ld : ld + 16;
}

// Keys are visited in blocks: forward, a query block's scores against one key block
// (32 × 128, 16 KiB) stay in L1, and the softmax's per-row work is spread over 128 keys
// (blocks of 64 measured slower at T = 4,096); backward, each block's dK and dV rows stay
// in cache while every query block that sees it adds to them.
#define ATT_FWD_KEY_BLOCK 128
#define ATT_KEY_BLOCK 64

// Per task (one batch entry and one key/value head, with its group of query heads), per
// query block, key block by key block with an online softmax: S = Q·Kᵀ for the block,
// each row's running max m and sum l updated, the output rows rescaled by exp(m_old −
// m_new) and P·V added; at the end O /= l. Nothing larger than a block of scores is kept
// (the keys, transposed once per task, are O(T·D)). As fast as a whole row of scores
// per query (the earlier kernel) on the Xeon: 73–75 GFLOP/s on one thread at T = 4,096.
static void FN(attention_fwd)(const slm_attention_args *a, int64_t task_begin, int64_t task_end) {
    const int64_t D = a->D, G = a->Hq / a->Hkv, Tk = a->Tk, Tq = a->Tq, off = Tk - Tq;
    const int64_t ldt = FN(transposed_ld)(Tk), kvstride = slm_attention_ldkv(a), qstride = slm_attention_ldq(a);
    const int64_t ostride = a->Hq * D;
    float *kt = FN(scratch)(D * ldt), *s = FN(scratch)(ATT_QUERY_BLOCK * ATT_FWD_KEY_BLOCK);
    float m[ATT_QUERY_BLOCK], l[ATT_QUERY_BLOCK];
    for (int64_t task = task_begin; task < task_end; task++) {
        const int64_t b = task / a->Hkv, kvh = task % a->Hkv;
        const float *kb = a->k + b * Tk * kvstride + kvh * D;
        const float *vb = a->v + b * Tk * kvstride + kvh * D;
        FN(transpose_rows)(kb, kvstride, Tk, D, ldt, kt);
        for (int64_t g = 0; g < G; g++) {
            const int64_t h = kvh * G + g;
            for (int64_t i0 = 0; i0 < Tq; i0 += ATT_QUERY_BLOCK) {
                const int64_t rows = Tq - i0 < ATT_QUERY_BLOCK ? Tq - i0 : ATT_QUERY_BLOCK;
                const int64_t n = i0 + rows + off;  // keys the block's last row sees
                const float *qb = a->q + (b * Tq + i0) * qstride + h * D;
                float *ob = a->out + ((b * Tq + i0) * a->Hq + h) * D;
                for (int64_t r = 0; r < rows; r++) {
                    m[r] = -INFINITY;
                    l[r] = 0;
                }
                for (int64_t j0 = 0; j0 < n; j0 += ATT_FWD_KEY_BLOCK) {
                    const int64_t kn = n - j0 < ATT_FWD_KEY_BLOCK ? n - j0 : ATT_FWD_KEY_BLOCK;
                    FN(small_gemm)(rows, FN(round_up)(kn, VW), D, qb, qstride, 1, kt + j0, ldt, s, ATT_FWD_KEY_BLOCK, 0);
                    for (int64_t r = 0; r < rows; r++) {
                        float *sr = s + r * ATT_FWD_KEY_BLOCK;
                        int64_t seen = i0 + r + off + 1 - j0;  // keys of this block row r sees
                        if (seen > kn) seen = kn;
                        if (seen <= 0) {  // the whole block lies above the diagonal
                            memset(sr, 0, sizeof(float) * (size_t)kn);
                            continue;
                        }
                        const float mn = fmaxf(m[r], FN(row_max)(seen, sr) * a->scale);
                        const float kept = expf(m[r] - mn);  // 0 for the first block (m = -inf)
                        l[r] = l[r] * kept + FN(row_exp)(seen, sr, a->scale, mn, sr);
                        memset(sr + seen, 0, sizeof(float) * (size_t)(kn - seen));
                        if (j0 > 0 && kept != 1.0f) FN(scale)(D, kept, ob + r * ostride, ob + r * ostride);
                        m[r] = mn;
                    }
                    FN(small_gemm)(rows, D, kn, s, ATT_FWD_KEY_BLOCK, 1, vb + j0 * kvstride, kvstride, ob, ostride, j0 > 0);
                }
                for (int64_t r = 0; r < rows; r++) {
                    FN(scale)(D, 1.0f / l[r], ob + r * ostride, ob + r * ostride);
                    if (a->lse) a->lse[(b * a->Hq + h) * Tq + i0 + r] = m[r] + logf(l[r]);
                }
            }
        }
    }
    free(kt);
    free(s);
}

// Recomputes P from the saved log-sum-exps, then per key block and query block:
// dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)) · scale, dQ += dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO.
// Key blocks outside query blocks: the dK and dV blocks are reused from cache rather
// than streamed through memory once per query block. Every sum runs in the same order as
// over whole rows, so the results do not depend on the blocks.
static void FN(attention_bwd)(const slm_attention_args *a, const float *dout, float *dq, float *dk,
                              float *dv, int64_t task_begin, int64_t task_end) {
    const int64_t D = a->D, G = a->Hq / a->Hkv, Tk = a->Tk, Tq = a->Tq, off = Tk - Tq;
    const int64_t ldt = FN(transposed_ld)(Tk), kvstride = slm_attention_ldkv(a), qstride = slm_attention_ldq(a);
    const int64_t ostride = a->Hq * D, ldp = FN(round_up)(ATT_KEY_BLOCK, VW);
    float *kt = FN(scratch)(D * ldt), *vt = FN(scratch)(D * ldt);
    float *p = FN(scratch)(ATT_QUERY_BLOCK * ldp), *ds = FN(scratch)(ATT_QUERY_BLOCK * ldp);
    float *dk_acc = FN(scratch)(Tk * D), *dv_acc = FN(scratch)(Tk * D), *di = FN(scratch)(Tq);
    for (int64_t task = task_begin; task < task_end; task++) {
        const int64_t b = task / a->Hkv, kvh = task % a->Hkv;
        const int64_t kvoff = b * Tk * kvstride + kvh * D;
        const float *kb = a->k + kvoff, *vb = a->v + kvoff;
        FN(transpose_rows)(kb, kvstride, Tk, D, ldt, kt);
        FN(transpose_rows)(vb, kvstride, Tk, D, ldt, vt);
        memset(dk_acc, 0, sizeof(float) * (size_t)(Tk * D));
        memset(dv_acc, 0, sizeof(float) * (size_t)(Tk * D));
        for (int64_t g = 0; g < G; g++) {
            const int64_t h = kvh * G + g;
            const float *lse = a->lse + (b * a->Hq + h) * Tq;
            for (int64_t i = 0; i < Tq; i++) {
                const int64_t row = ((b * Tq + i) * a->Hq + h) * D;
                di[i] = FN(row_dot)(D, dout + row, a->out + row);
            }
            for (int64_t j0 = 0; j0 < Tk; j0 += ATT_KEY_BLOCK) {
                // The first query block with a row that sees key j0 (row i sees keys ≤ i + off).
                const int64_t first = j0 - off > 0 ? (j0 - off) / ATT_QUERY_BLOCK * ATT_QUERY_BLOCK : 0;
                for (int64_t i0 = first; i0 < Tq; i0 += ATT_QUERY_BLOCK) {
                    const int64_t rows = Tq - i0 < ATT_QUERY_BLOCK ? Tq - i0 : ATT_QUERY_BLOCK;
                    const int64_t n = i0 + rows + off;  // keys the block's last row sees (> j0 from `first` on)
                    const int64_t nb = n - j0 < ATT_KEY_BLOCK ? n - j0 : ATT_KEY_BLOCK, npad = FN(round_up)(nb, VW);
                    const int64_t ofirst = ((b * Tq + i0) * a->Hq + h) * D, qfirst = (b * Tq + i0) * qstride + h * D;
                    const float *qb = a->q + qfirst, *dob = dout + ofirst;
                    FN(small_gemm)(rows, npad, D, qb, qstride, 1, kt + j0, ldt, p, ldp, 0);
                    FN(small_gemm)(rows, npad, D, dob, ostride, 1, vt + j0, ldt, ds, ldp, 0);
                    for (int64_t r = 0; r < rows; r++) {
                        int64_t seen = i0 + r + off + 1 - j0;  // keys of this block the row sees
                        seen = seen < 0 ? 0 : seen > nb ? nb : seen;
                        float *pr = p + r * ldp, *dsr = ds + r * ldp;
                        FN(row_exp)(seen, pr, a->scale, lse[i0 + r], pr);
                        const vf vdi = V_SET1(di[i0 + r]), vsc = V_SET1(a->scale);
                        int64_t j = 0;
                        for (; j + VW <= seen; j += VW)
                            V_STORE(dsr + j, V_MUL(V_MUL(V_LOAD(pr + j), V_SUB(V_LOAD(dsr + j), vdi)), vsc));
                        for (; j < seen; j++) dsr[j] = pr[j] * (dsr[j] - di[i0 + r]) * a->scale;
                        memset(pr + seen, 0, sizeof(float) * (size_t)(nb - seen));
                        memset(dsr + seen, 0, sizeof(float) * (size_t)(nb - seen));
                    }
                    FN(small_gemm)(rows, D, nb, ds, ldp, 1, kb + j0 * kvstride, kvstride, dq + qfirst, qstride, 1);
                    FN(small_gemm)(nb, D, rows, ds, 1, ldp, qb, qstride, dk_acc + j0 * D, D, 1);
                    FN(small_gemm)(nb, D, rows, p, 1, ldp, dob, ostride, dv_acc + j0 * D, D, 1);
                }
            }
        }
        for (int64_t j = 0; j < Tk; j++) {
            FN(axpy)(D, 1.0f, dk_acc + j * D, dk + kvoff + j * kvstride);
            FN(axpy)(D, 1.0f, dv_acc + j * D, dv + kvoff + j * kvstride);
        }
    }
    free(kt);
    free(vt);
    free(p);
    free(ds);
    free(dk_acc);
    free(dv_acc);
    free(di);
}


// MARK: decoding one token

// Stores one GEMV output: adds the bias, then writes or accumulates.
static inline void FN(gemv_put)(float *y, int64_t r, float v, const float *bias, int accumulate) {
    v += bias ? bias[r] : 0.0f;
    y[r] = accumulate ? y[r] + v : v;
}

// A batch-1 GEMV is bound by how fast the weights arrive, not by arithmetic.
// With AVX-512: four rows at a time, so each load of x feeds four FMAs and four weight
// streams keep loads in flight. With AVX2 (measured on Zen 3, 32,000 × 288 weights out
// of cache): one row at a time with four accumulators, a single sequential stream that
// the hardware prefetcher follows, streams 12.0–13.3 GB/s on one core against 10.1–11.0
// for four rows, and 16–21 against 16–20 GB/s on two.
#if VW == 8
#define W_T float
#define W_LOAD(p) V_LOAD(p)
#define TR_NAME FN(two_rows_f32)
#include "gemv_two_rows_template.h"
#define W_T int8_t
#define W_LOAD(p) V_LOAD_I8(p)
#define TR_NAME FN(two_rows_i8)
#include "gemv_two_rows_template.h"
#endif

static void FN(gemv_f32)(int64_t rows, int64_t cols, const float *w, const float *x, const float *bias,
                         float *y, int accumulate) {
    int64_t r = 0;
#if VW == 8
    // Row i of the first half beside row i of the second: two streams far apart. One
    // stream (one row at a time) left a core's memory bandwidth unused: 30-35 against
    // 39-47 GB/s on two cores over 37 MB of weights (docs/BENCHMARKS.md).
    const int64_t half = rows / 2;
    for (; r < half; r++) {
        float s0, s1;
        FN(two_rows_f32)(cols, w + r * cols, w + (r + half) * cols, x, &s0, &s1);
        FN(gemv_put)(y, r, s0, bias, accumulate);
        FN(gemv_put)(y, r + half, s1, bias, accumulate);
    }
    if (rows % 2) FN(gemv_put)(y, rows - 1, FN(row_dot)(cols, w + (rows - 1) * cols, x), bias, accumulate);
#else
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = w + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
        int64_t k = 0;
        for (; k + VW <= cols; k += VW) {
            vf xv = V_LOAD(x + k);
            a0 = V_FMA(V_LOAD(w0 + k), xv, a0);
            a1 = V_FMA(V_LOAD(w1 + k), xv, a1);
            a2 = V_FMA(V_LOAD(w2 + k), xv, a2);
            a3 = V_FMA(V_LOAD(w3 + k), xv, a3);
        }
        float s0 = V_HSUM(a0), s1 = V_HSUM(a1), s2 = V_HSUM(a2), s3 = V_HSUM(a3);
        for (; k < cols; k++) {
            s0 += w0[k] * x[k];
            s1 += w1[k] * x[k];
            s2 += w2[k] * x[k];
            s3 += w3[k] * x[k];
        }
        FN(gemv_put)(y, r, s0, bias, accumulate);
        FN(gemv_put)(y, r + 1, s1, bias, accumulate);
        FN(gemv_put)(y, r + 2, s2, bias, accumulate);
        FN(gemv_put)(y, r + 3, s3, bias, accumulate);
    }
    for (; r < rows; r++) FN(gemv_put)(y, r, FN(row_dot)(cols, w + r * cols, x), bias, accumulate);
#endif
}

// Several streams at once (batched decoding): Y[i, r] (+)= X[i, :] · W[r, :] (+ bias[r]).
// A register tile of 4 weight rows × BG_STREAMS streams: each weight vector loaded feeds
// every stream of the tile and each input vector every row, so the loop is bound by
// FMAs, not by loads as the one-stream GEMV above (5 loads per 4 FMAs). AVX2 has 16
// registers: 8 accumulators there, 16 with AVX-512's 32.
#if VW == 16
#define BG_STREAMS 4
#else
#define BG_STREAMS 2
#endif

// Stores one stream's four sums (rows r..r+3, as a 128-bit vector) with bias and accumulate.
static inline void FN(bgemv_put4)(float *y, __m128 v, const float *bias, int accumulate) {
    if (bias) v = _mm_add_ps(v, _mm_loadu_ps(bias));
    if (accumulate) v = _mm_add_ps(v, _mm_loadu_ps(y));
    _mm_storeu_ps(y, v);
}

// A full tile's 4 × BG_STREAMS sums by a shuffle tree instead of one horizontal sum per
// accumulator (45 shuffles and adds for AVX-512's 16 sums instead of 128): first across
// streams, so that each 128-bit lane holds one stream's partials, then within lanes
// across rows, so that lane s ends as stream s's four rows, ready to store.
static inline __attribute__((always_inline)) void FN(bgemv_reduce_store)(vf acc[4][BG_STREAMS], float *y, int64_t ldy,
                                                                        const float *bias, int accumulate) {
    vf d[4];
    for (int r = 0; r < 4; r++) {
#if VW == 16
        vf c01 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[r][0], acc[r][1], 0x44), _mm512_shuffle_f32x4(acc[r][0], acc[r][1], 0xEE));
        vf c23 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[r][2], acc[r][3], 0x44), _mm512_shuffle_f32x4(acc[r][2], acc[r][3], 0xEE));
        d[r] = _mm512_add_ps(_mm512_shuffle_f32x4(c01, c23, 0x88), _mm512_shuffle_f32x4(c01, c23, 0xDD));
#else
        d[r] = _mm256_add_ps(_mm256_permute2f128_ps(acc[r][0], acc[r][1], 0x20), _mm256_permute2f128_ps(acc[r][0], acc[r][1], 0x31));
#endif
    }
#if VW == 16
#define BG_SHUF(a, b, imm) _mm512_shuffle_ps(a, b, imm)
#else
#define BG_SHUF(a, b, imm) _mm256_shuffle_ps(a, b, imm)
#endif
    vf g01 = V_ADD(BG_SHUF(d[0], d[1], 0x44), BG_SHUF(d[0], d[1], 0xEE));
    vf g23 = V_ADD(BG_SHUF(d[2], d[3], 0x44), BG_SHUF(d[2], d[3], 0xEE));
    vf sums = V_ADD(BG_SHUF(g01, g23, 0x88), BG_SHUF(g01, g23, 0xDD));
#undef BG_SHUF
#if VW == 16
    FN(bgemv_put4)(y, _mm512_extractf32x4_ps(sums, 0), bias, accumulate);
    FN(bgemv_put4)(y + ldy, _mm512_extractf32x4_ps(sums, 1), bias, accumulate);
    FN(bgemv_put4)(y + 2 * ldy, _mm512_extractf32x4_ps(sums, 2), bias, accumulate);
    FN(bgemv_put4)(y + 3 * ldy, _mm512_extractf32x4_ps(sums, 3), bias, accumulate);
#else
    FN(bgemv_put4)(y, _mm256_castps256_ps128(sums), bias, accumulate);
    FN(bgemv_put4)(y + ldy, _mm256_extractf128_ps(sums, 1), bias, accumulate);
#endif
}

// `next`, when not NULL, is the next block's weights (4 rows): prefetched a line per
// row and step, so they arrive while this block computes.
static inline __attribute__((always_inline)) void FN(bgemv_tile)(const int nr, const int ns, int64_t cols,
        const float *w, const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy, int accumulate,
        const float *next) {
    vf acc[4][BG_STREAMS];
    for (int r = 0; r < nr; r++)
        for (int s = 0; s < ns; s++) acc[r][s] = V_ZERO();
    int64_t k = 0;
    for (; k + VW <= cols; k += VW) {
        if (next && (k * 4) % 64 == 0)
            for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(next + r * cols + k), _MM_HINT_T0);
        vf wv[4];
        for (int r = 0; r < nr; r++) wv[r] = V_LOAD(w + r * cols + k);
        for (int s = 0; s < ns; s++) {
            vf xv = V_LOAD(x + s * ldx + k);
            for (int r = 0; r < nr; r++) acc[r][s] = V_FMA(wv[r], xv, acc[r][s]);
        }
    }
    if (nr == 4 && ns == BG_STREAMS && k == cols) {
        FN(bgemv_reduce_store)(acc, y, ldy, bias, accumulate);
        return;
    }
    for (int s = 0; s < ns; s++)
        for (int r = 0; r < nr; r++) {
            float v = V_HSUM(acc[r][s]);
            for (int64_t kk = k; kk < cols; kk++) v += w[r * cols + kk] * x[s * ldx + kk];
            FN(gemv_put)(y + s * ldy, r, v, bias, accumulate);
        }
}

#define BG_STREAM_CASES(NR)                                                                        \
    switch (ns) {                                                                                  \
    case 1: FN(bgemv_tile)(NR, 1, cols, wr, xi, ldx, br, yi, ldy, accumulate, pf); break;         \
    case 2: FN(bgemv_tile)(NR, 2, cols, wr, xi, ldx, br, yi, ldy, accumulate, pf); break;         \
    case 3: FN(bgemv_tile)(NR, 3 <= BG_STREAMS ? 3 : 1, cols, wr, xi, ldx, br, yi, ldy, accumulate, pf); break; \
    default: FN(bgemv_tile)(NR, BG_STREAMS, cols, wr, xi, ldx, br, yi, ldy, accumulate, pf); break; \
    }

// Streams in blocks whose inputs stay in L1 (about 24 KiB of them); within one, rows in
// blocks of 4, whose weights stay in L1 while every stream of the block passes over them.
#define BG_BLOCK_FLOATS 6144
static void FN(batched_gemv_f32)(int64_t n, int64_t rows, int64_t cols, const float *w, const float *x, int64_t ldx,
                                 const float *bias, float *y, int64_t ldy, int accumulate) {
    int64_t block = BG_BLOCK_FLOATS / (cols > 0 ? cols : 1) / BG_STREAMS * BG_STREAMS;
    if (block < BG_STREAMS) block = BG_STREAMS;
    for (int64_t i0 = 0; i0 < n; i0 += block) {
        const int64_t i1 = i0 + block < n ? i0 + block : n;
        for (int64_t r = 0; r < rows; r += 4) {
            const int nr = (int)(rows - r < 4 ? rows - r : 4);
            const float *wr = w + r * cols, *br = bias ? bias + r : NULL;
            for (int64_t i = i0; i < i1; i += BG_STREAMS) {
                const int ns = (int)(i1 - i < BG_STREAMS ? i1 - i : BG_STREAMS);
                const float *xi = x + i * ldx;
                const float *pf = i == i0 && r + 8 <= rows ? wr + 4 * cols : NULL;
                float *yi = y + i * ldy + r;
                switch (nr) {
                case 4: BG_STREAM_CASES(4) break;
                case 3: BG_STREAM_CASES(3) break;
                case 2: BG_STREAM_CASES(2) break;
                default: BG_STREAM_CASES(1) break;
                }
            }
        }
    }
}
#undef BG_STREAM_CASES
#undef BG_BLOCK_FLOATS
#undef BG_STREAMS

// Same shape for int8 weights: the bytes are widened to floats in registers, so a row
// costs a quarter of the memory traffic; the row scale is applied once to the sum.
static void FN(gemv_i8)(int64_t rows, int64_t cols, const int8_t *wq, const float *scales,
                        const float *x, const float *bias, float *y, int accumulate) {
    int64_t r = 0;
#if VW == 8
    // As the fp32 GEMV with AVX2: the two halves' rows side by side.
    const int64_t half = rows / 2;
    for (; r < half; r++) {
        float s0, s1;
        FN(two_rows_i8)(cols, wq + r * cols, wq + (r + half) * cols, x, &s0, &s1);
        FN(gemv_put)(y, r, s0 * scales[r], bias, accumulate);
        FN(gemv_put)(y, r + half, s1 * scales[r + half], bias, accumulate);
    }
    r = 2 * half;
#endif
    for (; r + 4 <= rows; r += 4) {
        const int8_t *w0 = wq + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
        int64_t k = 0;
        for (; k + VW <= cols; k += VW) {
            vf xv = V_LOAD(x + k);
            a0 = V_FMA(V_LOAD_I8(w0 + k), xv, a0);
            a1 = V_FMA(V_LOAD_I8(w1 + k), xv, a1);
            a2 = V_FMA(V_LOAD_I8(w2 + k), xv, a2);
            a3 = V_FMA(V_LOAD_I8(w3 + k), xv, a3);
        }
        float s0 = V_HSUM(a0), s1 = V_HSUM(a1), s2 = V_HSUM(a2), s3 = V_HSUM(a3);
        for (; k < cols; k++) {
            s0 += (float)w0[k] * x[k];
            s1 += (float)w1[k] * x[k];
            s2 += (float)w2[k] * x[k];
            s3 += (float)w3[k] * x[k];
        }
        FN(gemv_put)(y, r, s0 * scales[r], bias, accumulate);
        FN(gemv_put)(y, r + 1, s1 * scales[r + 1], bias, accumulate);
        FN(gemv_put)(y, r + 2, s2 * scales[r + 2], bias, accumulate);
        FN(gemv_put)(y, r + 3, s3 * scales[r + 3], bias, accumulate);
    }
    for (; r < rows; r++) {
        const int8_t *wr = wq + r * cols;
        vf a = V_ZERO();
        int64_t k = 0;
        for (; k + VW <= cols; k += VW) a = V_FMA(V_LOAD_I8(wr + k), V_LOAD(x + k), a);
        float s = V_HSUM(a);
        for (; k < cols; k++) s += (float)wr[k] * x[k];
        FN(gemv_put)(y, r, s * scales[r], bias, accumulate);
    }
}

#if VW == 8
#define KV_T float
#define KV_LOAD(p) V_LOAD(p)
#define KV_FLOAT(x) (x)
#define AD_NAME(name) FN(name)
#include "decode_attention_template.h"
#endif
#define KV_T uint16_t
#define KV_LOAD(p) V_LOAD_F16(p)
#define KV_FLOAT(x) slm_f32_from_f16(x)
#define AD_NAME(name) FN(name##_f16)
#include "decode_attention_template.h"

// One query row per head over the cached keys (stored transposed and padded to the
// vector width, so the scores vectorise over keys), softmax, weighted sum of values.
static void FN(attention_decode)(const slm_attention_decode_args *a, int64_t head_begin, int64_t head_end) {
    const int64_t D = a->D, G = a->Hq / a->Hkv, n = a->n, half = a->kv == SLM_KV_F16;
    for (int64_t h = head_begin; h < head_end; h++) {
        const int64_t keys = h / G * D * a->ldk, values = h / G * a->ldv * D;
        const float *q = a->q + h * D;
        float *s = a->scores + h * a->ldk, *o = a->out + h * D;
        if (half) {
            FN(ad_scores_f16)(FN(round_up)(n, VW), D, q, (const uint16_t *)a->kt + keys, a->ldk, s);
        } else {
#if VW == 8
            FN(ad_scores)(FN(round_up)(n, VW), D, q, (const float *)a->kt + keys, a->ldk, s);
#else
            FN(small_gemm)(1, FN(round_up)(n, VW), D, q, D, 1, (const float *)a->kt + keys, a->ldk, s, a->ldk, 0);
#endif
        }
        float m = FN(row_max)(n, s) * a->scale;
        float l = FN(row_exp)(n, s, a->scale, m, s);
        if (half) {
            FN(ad_values_f16)(n, D, s, (const uint16_t *)a->v + values, o);
        } else {
#if VW == 8
            FN(ad_values)(n, D, s, (const float *)a->v + values, o);
#else
            FN(small_gemm)(1, D, n, s, n, 1, (const float *)a->v + values, D, o, D, 0);
#endif
        }
        FN(scale)(D, 1.0f / l, o, o);
    }
}

// One position's keys (a column of each head's transposed block) and values (a row).
// f16: clamped to the largest finite half (NaN kept), rounded to nearest even.
static void FN(kv_store)(slm_kv_format kv, int64_t Hkv, int64_t D, int64_t ldk, int64_t ldv, int64_t pos,
                         const float *k, const float *v, void *kt, void *vc) {
    if (kv != SLM_KV_F16) {  // plain copies: nothing for vectors to add
        slm_kv_store_ref(kv, Hkv, D, ldk, ldv, pos, k, v, kt, vc);
        return;
    }
    uint16_t *kc = kt, *vr = vc, keys[VW];
    const vf hi = V_SET1(65504.0f), lo = V_SET1(-65504.0f);
    for (int64_t h = 0; h < Hkv; h++) {
        uint16_t *row = vr + (h * ldv + pos) * D, *col = kc + h * D * ldk + pos;
        int64_t c = 0;
        for (; c + VW <= D; c += VW) {
            V_STORE_F16(keys, V_MIN(hi, V_MAX(lo, V_LOAD(k + h * D + c))));
            for (int i = 0; i < VW; i++) col[(c + i) * ldk] = keys[i];
            V_STORE_F16(row + c, V_MIN(hi, V_MAX(lo, V_LOAD(v + h * D + c))));
        }
        for (; c < D; c++) {
            col[c * ldk] = slm_f16_from_f32(k[h * D + c]);
            row[c] = slm_f16_from_f32(v[h * D + c]);
        }
    }
}

#include "mixers_template.h"
#include "ternary_template.h"

const slm_kernel_table FN(slm_kernels) = {
    .add = FN(add),
    .sub = FN(sub),
    .mul = FN(mul),
    .scale = FN(scale),
    .axpy = FN(axpy),
    .add_rowvec = FN(add_rowvec),
    .colsum_acc = FN(colsum_acc),
    .sum = FN(sum),
    .sumsq = FN(sumsq),
    .dropout_fwd = FN(dropout_fwd),
    .dropout_bwd = FN(dropout_bwd),
    .adamw = FN(adamw),
    .gelu_fwd = FN(gelu_fwd),
    .gelu_bwd = FN(gelu_bwd),
    .silu_fwd = FN(silu_fwd),
    .silu_bwd = FN(silu_bwd),
    .swiglu_fwd = FN(swiglu_fwd),
    .swiglu_bwd = FN(swiglu_bwd),
    .softmax_fwd = FN(softmax_fwd),
    .softmax_bwd = FN(softmax_bwd),
    .layernorm_fwd = FN(layernorm_fwd),
    .layernorm_bwd = FN(layernorm_bwd),
    .rmsnorm_fwd = FN(rmsnorm_fwd),
    .rmsnorm_bwd = FN(rmsnorm_bwd),
    .xent_fwd = FN(xent_fwd),
    .xent_bwd = FN(xent_bwd),
    .attention_fwd = FN(attention_fwd),
    .attention_bwd = FN(attention_bwd),
    .gemv_f32 = FN(gemv_f32),
    .batched_gemv_f32 = FN(batched_gemv_f32),
    .gemv_i8 = FN(gemv_i8),
    .gemv_t2 = FN(gemv_t2),
    .attention_decode = FN(attention_decode),
    .kv_store = FN(kv_store),
    .sigmoid_fwd = FN(sigmoid_fwd),
    .sigmoid_bwd = FN(sigmoid_bwd),
    .softmax_cols_fwd = FN(softmax_cols_fwd),
    .softmax_cols_bwd = FN(softmax_cols_bwd),
    .causal_conv_fwd = FN(causal_conv_fwd),
    .causal_conv_bwd_data = FN(causal_conv_bwd_data),
    .causal_conv_bwd_weight = FN(causal_conv_bwd_weight),
    .monarch_fwd = FN(monarch_fwd),
    .monarch_bwd = FN(monarch_bwd),
};
