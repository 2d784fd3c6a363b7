// SIMD sequence mixers (see slm_kernels.h for what each computes), written against the
// vector macros of simd_template.h and included from it: vectors run along channels,
// which are contiguous in every layout here. The Monarch products reuse small_gemm.

static void FN(sigmoid_fwd)(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, FN(vsigmoid)(V_LOAD(x + i)));
    for (; i < n; i++) y[i] = FN(sigmoid1)(x[i]);
}

static void FN(sigmoid_bwd)(int64_t n, const float *y, const float *dy, float *dx) {
    const vf one = V_SET1(1.0f);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = V_LOAD(y + i);
        V_STORE(dx + i, V_FMA(V_MUL(V_LOAD(dy + i), v), V_SUB(one, v), V_LOAD(dx + i)));
    }
    for (; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

static void FN(softmax_cols_fwd)(int64_t rows, int64_t cols, const float *x, float *y) {
    int64_t c = 0;
    for (; c + VW <= cols; c += VW) {
        vf m = V_LOAD(x + c);
        for (int64_t r = 1; r < rows; r++) m = V_MAX(m, V_LOAD(x + r * cols + c));
        vf s = V_ZERO();
        for (int64_t r = 0; r < rows; r++) {
            vf e = FN(vexp)(V_SUB(V_LOAD(x + r * cols + c), m));
            V_STORE(y + r * cols + c, e);
            s = V_ADD(s, e);
        }
        vf inv = V_DIV(V_SET1(1.0f), s);
        for (int64_t r = 0; r < rows; r++) V_STORE(y + r * cols + c, V_MUL(V_LOAD(y + r * cols + c), inv));
    }
    if (c < cols) {
        // The remaining columns, through the reference on a strided view.
        for (; c < cols; c++) {
            float m = x[c];
            for (int64_t r = 1; r < rows; r++) m = fmaxf(m, x[r * cols + c]);
            float s = 0;
            for (int64_t r = 0; r < rows; r++) s += (y[r * cols + c] = expf(x[r * cols + c] - m));
            for (int64_t r = 0; r < rows; r++) y[r * cols + c] /= s;
        }
    }
}

static void FN(softmax_cols_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
    int64_t c = 0;
    for (; c + VW <= cols; c += VW) {
        vf dot = V_ZERO();
        for (int64_t r = 0; r < rows; r++) dot = V_FMA(V_LOAD(y + r * cols + c), V_LOAD(dy + r * cols + c), dot);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t o = r * cols + c;
            V_STORE(dx + o, V_FMA(V_LOAD(y + o), V_SUB(V_LOAD(dy + o), dot), V_LOAD(dx + o)));
        }
    }
    for (; c < cols; c++) {
        float dot = 0;
        for (int64_t r = 0; r < rows; r++) dot += y[r * cols + c] * dy[r * cols + c];
        for (int64_t r = 0; r < rows; r++) dx[r * cols + c] += y[r * cols + c] * (dy[r * cols + c] - dot);
    }
}

// MARK: causal convolutions

// Channels are taken 2·VW at a time with the accumulators in registers across the taps.
static void FN(causal_conv_fwd)(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                const float *wt, float *y) {
    for (int64_t r = r0; r < r1; r++) {
        const int64_t taps = (r % T) + 1 < K ? (r % T) + 1 : K;
        int64_t c = 0;
        for (; c + 2 * VW <= C; c += 2 * VW) {
            vf a0 = V_ZERO(), a1 = V_ZERO();
            for (int64_t j = 0; j < taps; j++) {
                const float *w = wt + (K - 1 - j) * C + c, *xs = x + (r - j) * C + c;
                a0 = V_FMA(V_LOAD(w), V_LOAD(xs), a0);
                a1 = V_FMA(V_LOAD(w + VW), V_LOAD(xs + VW), a1);
            }
            V_STORE(y + r * C + c, a0);
            V_STORE(y + r * C + c + VW, a1);
        }
        for (; c < C; c++) {
            float s = 0;
            for (int64_t j = 0; j < taps; j++) s += wt[(K - 1 - j) * C + c] * x[(r - j) * C + c];
            y[r * C + c] = s;
        }
    }
}

static void FN(causal_conv_bwd_data)(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *dy,
                                     const float *wt, float *dx) {
    for (int64_t r = r0; r < r1; r++) {
        const int64_t ahead = T - (r % T), taps = ahead < K ? ahead : K;
        int64_t c = 0;
        for (; c + 2 * VW <= C; c += 2 * VW) {
            vf a0 = V_LOAD(dx + r * C + c), a1 = V_LOAD(dx + r * C + c + VW);
            for (int64_t j = 0; j < taps; j++) {
                const float *w = wt + (K - 1 - j) * C + c, *g = dy + (r + j) * C + c;
                a0 = V_FMA(V_LOAD(w), V_LOAD(g), a0);
                a1 = V_FMA(V_LOAD(w + VW), V_LOAD(g + VW), a1);
            }
            V_STORE(dx + r * C + c, a0);
            V_STORE(dx + r * C + c + VW, a1);
        }
        for (; c < C; c++) {
            float s = 0;
            for (int64_t j = 0; j < taps; j++) s += wt[(K - 1 - j) * C + c] * dy[(r + j) * C + c];
            dx[r * C + c] += s;
        }
    }
}

static void FN(causal_conv_bwd_weight)(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                       const float *dy, float *dwt) {
    for (int64_t j = 0; j < K; j++) {
        float *d = dwt + (K - 1 - j) * C;
        int64_t c = 0;
        for (; c + 2 * VW <= C; c += 2 * VW) {
            vf a0 = V_ZERO(), a1 = V_ZERO();
            for (int64_t r = r0, t = r0 % T; r < r1; r++, t = t + 1 == T ? 0 : t + 1) {
                if (t < j) continue;
                const float *g = dy + r * C + c, *xs = x + (r - j) * C + c;
                a0 = V_FMA(V_LOAD(g), V_LOAD(xs), a0);
                a1 = V_FMA(V_LOAD(g + VW), V_LOAD(xs + VW), a1);
            }
            V_STORE(d + c, V_ADD(V_LOAD(d + c), a0));
            V_STORE(d + c + VW, V_ADD(V_LOAD(d + c + VW), a1));
        }
        for (; c < C; c++) {
            float s = 0;
            for (int64_t r = r0; r < r1; r++)
                if (r % T >= j) s += dy[r * C + c] * x[(r - j) * C + c];
            d[c] += s;
        }
    }
}

// MARK: Monarch

// dst = the p×p block src with entries outside the kept triangle zeroed: strict = 1 keeps
// j < i (the blocks before the diagonal), 0 keeps j <= i.
static void FN(masked_block)(int64_t p, const float *src, int strict, float *dst) {
    for (int64_t i = 0; i < p; i++)
        for (int64_t j = 0; j < p; j++) dst[i * p + j] = (strict ? j < i : j <= i) ? src[i * p + j] : 0.0f;
}

static void FN(monarch_fwd)(const slm_monarch_args *a, int64_t task_begin, int64_t task_end) {
    const int64_t T = a->T, C = a->C, p = a->p, pp = p * p, dh = C / a->H, nb = (T + p - 1) / p;
    float *mask = FN(scratch)(pp);
    for (int64_t task = task_begin; task < task_end; task++) {
        const int64_t b = task / a->H, h = task % a->H, c0 = h * dh;
        const float *x = a->x + b * T * C + c0, *L1 = a->L1 + h * pp * p, *L2 = a->L2 + h * pp * p;
        float *u = a->u + b * nb * p * C + c0, *ut = a->ut + b * nb * p * C + c0, *y = a->y + b * T * C + c0;
        for (int64_t s1 = 0; s1 < nb; s1++) {
            const int64_t n = T - s1 * p < p ? T - s1 * p : p;
            const float *xs = x + s1 * p * C, *l2 = L2 + s1 * pp;
            FN(small_gemm)(p, dh, n, l2, p, 1, xs, C, u + s1 * p * C, C, 0);
            FN(masked_block)(p, l2, 0, mask);
            FN(small_gemm)(p, dh, n, mask, p, 1, xs, C, ut + s1 * p * C, C, 0);
        }
        // Per offset t2 within a block: the rows t1·p + t2 of y are a strictly lower
        // triangular [nb × nb] slice of L1 times the rows s1·p + t2 of u, plus the diagonal.
        for (int64_t t2 = 0; t2 < p && t2 < T; t2++) {
            const int64_t m = (T - 1 - t2) / p + 1;  // blocks t1 with t1·p + t2 < T
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < m; j++) mask[i * m + j] = j < i ? L1[(t2 * p + i) * p + j] : 0.0f;
            FN(small_gemm)(m, dh, m, mask, m, 1, u + t2 * C, p * C, y + t2 * C, p * C, 0);
            for (int64_t t1 = 0; t1 < m; t1++)
                FN(axpy)(dh, L1[(t2 * p + t1) * p + t1], ut + (t1 * p + t2) * C, y + (t1 * p + t2) * C);
        }
    }
    free(mask);
}

static void FN(monarch_bwd)(const slm_monarch_args *a, const float *dy, float *dx, float *dL1, float *dL2,
                            float *du, float *dut, int64_t head_begin, int64_t head_end) {
    const int64_t T = a->T, C = a->C, p = a->p, pp = p * p, dh = C / a->H, nb = (T + p - 1) / p;
    float *mask = FN(scratch)(pp);
    for (int64_t h = head_begin; h < head_end; h++) {
        const int64_t c0 = h * dh;
        const float *L1 = a->L1 + h * pp * p, *L2 = a->L2 + h * pp * p;
        float *gL1 = dL1 + h * pp * p, *gL2 = dL2 + h * pp * p;
        for (int64_t b = 0; b < a->B; b++) {
            const float *x = a->x + b * T * C + c0, *g = dy + b * T * C + c0;
            const float *u = a->u + b * nb * p * C + c0, *ut = a->ut + b * nb * p * C + c0;
            float *gu = du + b * nb * p * C + c0, *gut = dut + b * nb * p * C + c0, *gx = dx + b * T * C + c0;
            for (int64_t r = 0; r < nb * p; r++) {
                memset(gu + r * C, 0, sizeof(float) * (size_t)dh);
                memset(gut + r * C, 0, sizeof(float) * (size_t)dh);
            }
            for (int64_t t2 = 0; t2 < p && t2 < T; t2++) {
                const int64_t m = (T - 1 - t2) / p + 1;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < m; j++) mask[i * m + j] = j < i ? L1[(t2 * p + i) * p + j] : 0.0f;
                // du rows s1·p + t2 = maskᵀ · dy rows t1·p + t2.
                FN(small_gemm)(m, dh, m, mask, 1, m, g + t2 * C, p * C, gu + t2 * C, p * C, 0);
                for (int64_t t1 = 0; t1 < m; t1++) {
                    const float *gt = g + (t1 * p + t2) * C;
                    float *l1row = gL1 + (t2 * p + t1) * p;
                    for (int64_t s1 = 0; s1 < t1; s1++) l1row[s1] += FN(row_dot)(dh, gt, u + (s1 * p + t2) * C);
                    l1row[t1] += FN(row_dot)(dh, gt, ut + (t1 * p + t2) * C);
                    FN(axpy)(dh, L1[(t2 * p + t1) * p + t1], gt, gut + (t1 * p + t2) * C);
                }
            }
            for (int64_t s1 = 0; s1 < nb; s1++) {
                const int64_t n = T - s1 * p < p ? T - s1 * p : p;
                const float *xs = x + s1 * p * C, *l2 = L2 + s1 * pp;
                const float *bu = gu + s1 * p * C, *but = gut + s1 * p * C;
                float *gl2 = gL2 + s1 * pp;
                for (int64_t i = 0; i < p; i++)
                    for (int64_t j = 0; j < n; j++) {
                        float d = FN(row_dot)(dh, bu + i * C, xs + j * C);
                        if (j <= i) d += FN(row_dot)(dh, but + i * C, xs + j * C);
                        gl2[i * p + j] += d;
                    }
                // dx rows j = L2ᵀ · du + tril(L2)ᵀ · dut.
                FN(small_gemm)(n, dh, p, l2, 1, p, bu, C, gx + s1 * p * C, C, 1);
                FN(masked_block)(p, l2, 0, mask);
                FN(small_gemm)(n, dh, p, mask, 1, p, but, C, gx + s1 * p * C, C, 1);
            }
        }
    }
    free(mask);
}
