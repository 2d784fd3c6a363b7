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
// The convolution kernels work on blocks of 4 positions of one sequence and one vector
// of channels: a tap's weights are loaded once for the 4 positions, and the 4 input rows
// slide by one row per tap, so each step of 4 FMAs loads 2 vectors instead of 8 (this is
// what makes the long convolution compute-bound instead of cache-bound). Positions
// outside a full block, and channels past the last vector, take the row-at-a-time path.

// y[r] for one row r, channels [c0, C).
static void FN(conv_fwd_row)(int64_t r, int64_t c0, int64_t T, int64_t C, int64_t K, const float *x,
                             const float *wt, float *y) {
    const int64_t taps = (r % T) + 1 < K ? (r % T) + 1 : K;
    int64_t c = c0;
    for (; c + VW <= C; c += VW) {
        vf a = V_ZERO();
        for (int64_t j = 0; j < taps; j++) a = V_FMA(V_LOAD(wt + (K - 1 - j) * C + c), V_LOAD(x + (r - j) * C + c), a);
        V_STORE(y + r * C + c, a);
    }
    for (; c < C; c++) {
        float s = 0;
        for (int64_t j = 0; j < taps; j++) s += wt[(K - 1 - j) * C + c] * x[(r - j) * C + c];
        y[r * C + c] = s;
    }
}

static void FN(causal_conv_fwd)(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                const float *wt, float *y) {
    int64_t r = r0;
    while (r < r1) {
        const int64_t pos = r % T;
        if (r + 4 > r1 || pos + 4 > T) {
            FN(conv_fwd_row)(r, 0, T, C, K, x, wt, y);
            r++;
            continue;
        }
        // Rows r..r+3 have pos+1 … pos+4 taps (at most K): all four share the first t0.
        const int64_t t0 = pos + 1 < K ? pos + 1 : K;
        int64_t c = 0;
        for (; c + VW <= C; c += VW) {
            vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
            vf x0 = V_LOAD(x + r * C + c), x1 = V_LOAD(x + (r + 1) * C + c);
            vf x2 = V_LOAD(x + (r + 2) * C + c), x3 = V_LOAD(x + (r + 3) * C + c);
            for (int64_t j = 0; j < t0; j++) {
                vf w = V_LOAD(wt + (K - 1 - j) * C + c);
                a0 = V_FMA(w, x0, a0);
                a1 = V_FMA(w, x1, a1);
                a2 = V_FMA(w, x2, a2);
                a3 = V_FMA(w, x3, a3);
                x3 = x2;
                x2 = x1;
                x1 = x0;
                if (j + 1 < t0) x0 = V_LOAD(x + (r - j - 1) * C + c);
            }
            // Rows 1..3 reach up to 3 taps further back, while the sequence allows.
            for (int64_t j = t0; j < K && j <= pos + 3; j++) {
                vf w = V_LOAD(wt + (K - 1 - j) * C + c);
                if (j <= pos + 1) a1 = V_FMA(w, V_LOAD(x + (r + 1 - j) * C + c), a1);
                if (j <= pos + 2) a2 = V_FMA(w, V_LOAD(x + (r + 2 - j) * C + c), a2);
                a3 = V_FMA(w, V_LOAD(x + (r + 3 - j) * C + c), a3);
            }
            V_STORE(y + r * C + c, a0);
            V_STORE(y + (r + 1) * C + c, a1);
            V_STORE(y + (r + 2) * C + c, a2);
            V_STORE(y + (r + 3) * C + c, a3);
        }
        if (c < C)
            for (int64_t i = 0; i < 4; i++) FN(conv_fwd_row)(r + i, c, T, C, K, x, wt, y);
        r += 4;
    }
}

// dx[r] += … for one row r, channels [c0, C).
static void FN(conv_bwd_data_row)(int64_t r, int64_t c0, int64_t T, int64_t C, int64_t K, const float *dy,
                                  const float *wt, float *dx) {
    const int64_t ahead = T - (r % T), taps = ahead < K ? ahead : K;
    int64_t c = c0;
    for (; c + VW <= C; c += VW) {
        vf a = V_LOAD(dx + r * C + c);
        for (int64_t j = 0; j < taps; j++) a = V_FMA(V_LOAD(wt + (K - 1 - j) * C + c), V_LOAD(dy + (r + j) * C + c), a);
        V_STORE(dx + r * C + c, a);
    }
    for (; c < C; c++) {
        float s = 0;
        for (int64_t j = 0; j < taps; j++) s += wt[(K - 1 - j) * C + c] * dy[(r + j) * C + c];
        dx[r * C + c] += s;
    }
}

static void FN(causal_conv_bwd_data)(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *dy,
                                     const float *wt, float *dx) {
    int64_t r = r0;
    while (r < r1) {
        const int64_t pos = r % T;
        if (r + 4 > r1 || pos + 4 > T) {
            FN(conv_bwd_data_row)(r, 0, T, C, K, dy, wt, dx);
            r++;
            continue;
        }
        // Row r+i sees T-pos-i positions ahead (at most K taps): all four share row 3's.
        const int64_t ahead = T - pos, t3 = ahead - 3 < K ? ahead - 3 : K;
        int64_t c = 0;
        for (; c + VW <= C; c += VW) {
            vf a0 = V_LOAD(dx + r * C + c), a1 = V_LOAD(dx + (r + 1) * C + c);
            vf a2 = V_LOAD(dx + (r + 2) * C + c), a3 = V_LOAD(dx + (r + 3) * C + c);
            vf g0 = V_LOAD(dy + r * C + c), g1 = V_LOAD(dy + (r + 1) * C + c);
            vf g2 = V_LOAD(dy + (r + 2) * C + c), g3 = V_LOAD(dy + (r + 3) * C + c);
            for (int64_t j = 0; j < t3; j++) {
                vf w = V_LOAD(wt + (K - 1 - j) * C + c);
                a0 = V_FMA(w, g0, a0);
                a1 = V_FMA(w, g1, a1);
                a2 = V_FMA(w, g2, a2);
                a3 = V_FMA(w, g3, a3);
                g0 = g1;
                g1 = g2;
                g2 = g3;
                if (j + 1 < t3) g3 = V_LOAD(dy + (r + 4 + j) * C + c);
            }
            // Rows 0..2 reach up to 3 taps further ahead, while the sequence allows.
            for (int64_t j = t3; j < K && j < ahead; j++) {
                vf w = V_LOAD(wt + (K - 1 - j) * C + c);
                a0 = V_FMA(w, V_LOAD(dy + (r + j) * C + c), a0);
                if (j < ahead - 1) a1 = V_FMA(w, V_LOAD(dy + (r + 1 + j) * C + c), a1);
                if (j < ahead - 2) a2 = V_FMA(w, V_LOAD(dy + (r + 2 + j) * C + c), a2);
            }
            V_STORE(dx + r * C + c, a0);
            V_STORE(dx + (r + 1) * C + c, a1);
            V_STORE(dx + (r + 2) * C + c, a2);
            V_STORE(dx + (r + 3) * C + c, a3);
        }
        if (c < C)
            for (int64_t i = 0; i < 4; i++) FN(conv_bwd_data_row)(r + i, c, T, C, K, dy, wt, dx);
        r += 4;
    }
}

// One stretch of a sequence at a time (rows that stay in cache while every tap visits
// them), taps 4 at a time: for each row, one gradient row and one new input row feed 4
// FMAs (the inputs x[r-j-i] slide by one row per row r).
static void FN(causal_conv_bwd_weight)(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                       const float *dy, float *dwt) {
    int64_t r = r0;
    while (r < r1) {
        const int64_t t = r % T, end = r - t + T < r1 ? r - t + T : r1;   // rows r..end-1, positions from t
        const int64_t last = t + (end - r) - 1;                           // the stretch's last position
        const int64_t jmax = K < last + 1 ? K : last + 1;                 // taps that reach some row
        int64_t j = 0;
        for (; j + 4 <= jmax; j += 4) {
            // Rows before q have positions below j+3: some of their 4 taps reach before the start.
            const int64_t q = r + (j + 3 > t ? j + 3 - t : 0);
            int64_t c = 0;
            for (; c + VW <= C; c += VW) {
                vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
                for (int64_t k = r; k < q && k < end; k++) {
                    const int64_t tk = t + (k - r);
                    vf g = V_LOAD(dy + k * C + c);
                    if (tk >= j) a0 = V_FMA(g, V_LOAD(x + (k - j) * C + c), a0);
                    if (tk >= j + 1) a1 = V_FMA(g, V_LOAD(x + (k - j - 1) * C + c), a1);
                    if (tk >= j + 2) a2 = V_FMA(g, V_LOAD(x + (k - j - 2) * C + c), a2);
                }
                if (q < end) {
                    vf x1 = V_LOAD(x + (q - j - 1) * C + c), x2 = V_LOAD(x + (q - j - 2) * C + c);
                    vf x3 = V_LOAD(x + (q - j - 3) * C + c);
                    for (int64_t k = q; k < end; k++) {
                        vf g = V_LOAD(dy + k * C + c), x0 = V_LOAD(x + (k - j) * C + c);
                        a0 = V_FMA(g, x0, a0);
                        a1 = V_FMA(g, x1, a1);
                        a2 = V_FMA(g, x2, a2);
                        a3 = V_FMA(g, x3, a3);
                        x3 = x2;
                        x2 = x1;
                        x1 = x0;
                    }
                }
                float *d = dwt + (K - 1 - j) * C + c;
                V_STORE(d, V_ADD(V_LOAD(d), a0));
                V_STORE(d - C, V_ADD(V_LOAD(d - C), a1));
                V_STORE(d - 2 * C, V_ADD(V_LOAD(d - 2 * C), a2));
                V_STORE(d - 3 * C, V_ADD(V_LOAD(d - 3 * C), a3));
            }
            for (; c < C; c++)
                for (int64_t i = 0; i < 4; i++) {
                    float s = 0;
                    for (int64_t k = r; k < end; k++)
                        if (t + (k - r) >= j + i) s += dy[k * C + c] * x[(k - j - i) * C + c];
                    dwt[(K - 1 - j - i) * C + c] += s;
                }
        }
        for (; j < jmax; j++) {
            float *d = dwt + (K - 1 - j) * C;
            const int64_t first = r + (j > t ? j - t : 0);
            int64_t c = 0;
            for (; c + VW <= C; c += VW) {
                vf a = V_ZERO();
                for (int64_t k = first; k < end; k++) a = V_FMA(V_LOAD(dy + k * C + c), V_LOAD(x + (k - j) * C + c), a);
                V_STORE(d + c, V_ADD(V_LOAD(d + c), a));
            }
            for (; c < C; c++) {
                float s = 0;
                for (int64_t k = first; k < end; k++) s += dy[k * C + c] * x[(k - j) * C + c];
                d[c] += s;
            }
        }
        r = end;
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
