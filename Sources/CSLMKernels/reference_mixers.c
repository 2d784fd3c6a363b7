// Scalar reference kernels of the sequence mixers (causal convolutions, the causal
// Monarch mixer), the sigmoid and the column softmax: the plainest correct loops, with
// double accumulators. The SIMD versions in mixers_template.h are tested against these.
#include "slm_kernels.h"

#include <math.h>
#include <string.h>

void slm_sigmoid_fwd_ref(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void slm_sigmoid_bwd_ref(int64_t n, const float *y, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

void slm_softmax_cols_fwd_ref(int64_t rows, int64_t cols, const float *x, float *y) {
    for (int64_t c = 0; c < cols; c++) {
        float m = -INFINITY;
        for (int64_t r = 0; r < rows; r++) m = fmaxf(m, x[r * cols + c]);
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += exp((double)x[r * cols + c] - m);
        for (int64_t r = 0; r < rows; r++) y[r * cols + c] = (float)(exp((double)x[r * cols + c] - m) / s);
    }
}

void slm_softmax_cols_bwd_ref(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
    for (int64_t c = 0; c < cols; c++) {
        double dot = 0;
        for (int64_t r = 0; r < rows; r++) dot += (double)y[r * cols + c] * dy[r * cols + c];
        for (int64_t r = 0; r < rows; r++) dx[r * cols + c] += (float)(y[r * cols + c] * (dy[r * cols + c] - dot));
    }
}

void slm_causal_conv_fwd_ref(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                             const float *wt, float *y) {
    for (int64_t r = r0; r < r1; r++) {
        int64_t t = r % T;
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t j = 0; j < K && j <= t; j++) s += (double)wt[(K - 1 - j) * C + c] * x[(r - j) * C + c];
            y[r * C + c] = (float)s;
        }
    }
}

void slm_causal_conv_bwd_data_ref(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *dy,
                                  const float *wt, float *dx) {
    for (int64_t r = r0; r < r1; r++) {
        int64_t t = r % T;
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t j = 0; j < K && t + j < T; j++) s += (double)wt[(K - 1 - j) * C + c] * dy[(r + j) * C + c];
            dx[r * C + c] += (float)s;
        }
    }
}

void slm_causal_conv_bwd_weight_ref(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                    const float *dy, float *dwt) {
    for (int64_t j = 0; j < K; j++) {
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t r = r0; r < r1; r++) {
                if (r % T >= j) s += (double)dy[r * C + c] * x[(r - j) * C + c];
            }
            dwt[(K - 1 - j) * C + c] += (float)s;
        }
    }
}

// Head h's factors: L[h][a][b][c] at ((h*p + a)*p + b)*p + c.
#define L_AT(L, h, a, b, c) (L)[(((h) * p + (a)) * p + (b)) * p + (c)]

void slm_monarch_fwd_ref(const slm_monarch_args *a, int64_t task_begin, int64_t task_end) {
    const int64_t T = a->T, C = a->C, p = a->p, dh = C / a->H, nb = (T + p - 1) / p;
    for (int64_t task = task_begin; task < task_end; task++) {
        const int64_t b = task / a->H, h = task % a->H, c0 = h * dh;
        const float *x = a->x + b * T * C;
        float *u = a->u + b * nb * p * C, *ut = a->ut + b * nb * p * C, *y = a->y + b * T * C;
        for (int64_t s1 = 0; s1 < nb; s1++) {
            int64_t n = T - s1 * p < p ? T - s1 * p : p;
            for (int64_t i = 0; i < p; i++) {
                for (int64_t c = c0; c < c0 + dh; c++) {
                    double full = 0, lower = 0;
                    for (int64_t j = 0; j < n; j++) {
                        double v = (double)L_AT(a->L2, h, s1, i, j) * x[(s1 * p + j) * C + c];
                        full += v;
                        if (j <= i) lower += v;
                    }
                    u[(s1 * p + i) * C + c] = (float)full;
                    ut[(s1 * p + i) * C + c] = (float)lower;
                }
            }
        }
        for (int64_t t = 0; t < T; t++) {
            int64_t t1 = t / p, t2 = t % p;
            for (int64_t c = c0; c < c0 + dh; c++) {
                double s = (double)L_AT(a->L1, h, t2, t1, t1) * ut[(t1 * p + t2) * C + c];
                for (int64_t s1 = 0; s1 < t1; s1++) s += (double)L_AT(a->L1, h, t2, t1, s1) * u[(s1 * p + t2) * C + c];
                y[t * C + c] = (float)s;
            }
        }
    }
}

void slm_monarch_bwd_ref(const slm_monarch_args *a, const float *dy, float *dx, float *dL1, float *dL2,
                         float *du, float *dut, int64_t head_begin, int64_t head_end) {
    const int64_t T = a->T, C = a->C, p = a->p, dh = C / a->H, nb = (T + p - 1) / p;
    for (int64_t h = head_begin; h < head_end; h++) {
        const int64_t c0 = h * dh;
        for (int64_t b = 0; b < a->B; b++) {
            const float *x = a->x + b * T * C, *g = dy + b * T * C;
            const float *u = a->u + b * nb * p * C, *ut = a->ut + b * nb * p * C;
            float *gu = du + b * nb * p * C, *gut = dut + b * nb * p * C, *gx = dx + b * T * C;
            for (int64_t r = 0; r < nb * p; r++) {
                for (int64_t c = c0; c < c0 + dh; c++) gu[r * C + c] = gut[r * C + c] = 0;
            }
            // Through the combination y[t] = Σ_{s1<t1} L1[t2,t1,s1] u[s1,t2] + L1[t2,t1,t1] ut[t1,t2].
            for (int64_t t = 0; t < T; t++) {
                int64_t t1 = t / p, t2 = t % p;
                for (int64_t s1 = 0; s1 <= t1; s1++) {
                    const float *src = s1 < t1 ? u : ut;
                    float *dst = s1 < t1 ? gu : gut;
                    float l = L_AT(a->L1, h, t2, t1, s1);
                    double dot = 0;
                    for (int64_t c = c0; c < c0 + dh; c++) {
                        dot += (double)g[t * C + c] * src[(s1 * p + t2) * C + c];
                        dst[(s1 * p + t2) * C + c] += l * g[t * C + c];
                    }
                    L_AT(dL1, h, t2, t1, s1) += (float)dot;
                }
            }
            // Through the block products u = L2 x and ut = tril(L2) x.
            for (int64_t s1 = 0; s1 < nb; s1++) {
                int64_t n = T - s1 * p < p ? T - s1 * p : p;
                for (int64_t i = 0; i < p; i++) {
                    for (int64_t j = 0; j < n; j++) {
                        double dot = 0;
                        for (int64_t c = c0; c < c0 + dh; c++) {
                            double d = gu[(s1 * p + i) * C + c] + (j <= i ? gut[(s1 * p + i) * C + c] : 0.0);
                            dot += d * x[(s1 * p + j) * C + c];
                        }
                        L_AT(dL2, h, s1, i, j) += (float)dot;
                    }
                }
                for (int64_t j = 0; j < n; j++) {
                    for (int64_t c = c0; c < c0 + dh; c++) {
                        double s = 0;
                        for (int64_t i = 0; i < p; i++) {
                            double d = gu[(s1 * p + i) * C + c] + (j <= i ? gut[(s1 * p + i) * C + c] : 0.0);
                            s += (double)L_AT(a->L2, h, s1, i, j) * d;
                        }
                        gx[(s1 * p + j) * C + c] += (float)s;
                    }
                }
            }
        }
    }
}
#undef L_AT
