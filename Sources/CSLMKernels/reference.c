// Scalar reference kernels: the plainest correct version of every kernel, with double
// accumulators where a sum is taken. The SIMD versions are tested against these.
#include "slm_kernels.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void slm_add_ref(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void slm_sub_ref(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] - b[i];
}

void slm_mul_ref(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void slm_scale_ref(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

void slm_axpy_ref(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

double slm_sumsq_ref(int64_t n, const float *x) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

void slm_dropout_fwd_ref(int64_t n, uint64_t seed, int64_t offset, float p, const float *x, float *y) {
    const uint32_t threshold = slm_dropout_threshold(p);
    const float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * ((slm_dropout_hash(seed, (uint32_t)(offset + i)) >> 8) >= threshold ? keep : 0.0f);
}

void slm_dropout_bwd_ref(int64_t n, uint64_t seed, int64_t offset, float p, const float *dy, float *dx) {
    const uint32_t threshold = slm_dropout_threshold(p);
    const float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i] * ((slm_dropout_hash(seed, (uint32_t)(offset + i)) >> 8) >= threshold ? keep : 0.0f);
}

void slm_adamw_ref(int64_t n, const slm_adamw_args *a, float *w, const float *g, float *m, float *v) {
    for (int64_t i = 0; i < n; i++) {
        m[i] = a->beta1 * m[i] + (1 - a->beta1) * g[i];
        v[i] = a->beta2 * v[i] + (1 - a->beta2) * g[i] * g[i];
        float update = (m[i] / a->correction1) / (sqrtf(v[i] / a->correction2) + a->eps);
        w[i] = w[i] - a->decay * w[i] - a->lr * update;
    }
}

void slm_add_rowvec_ref(int64_t rows, int64_t cols, const float *x, const float *b, float *y) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] + b[c];
}

void slm_colsum_acc_ref(int64_t rows, int64_t cols, const float *dy, float *db) {
    for (int64_t c = 0; c < cols; c++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += dy[r * cols + c];
        db[c] += (float)s;
    }
}

double slm_sum_ref(int64_t n, const float *x) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

// GELU (tanh form): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

void slm_gelu_fwd_ref(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        y[i] = 0.5f * v * (1.0f + t);
    }
}

void slm_gelu_bwd_ref(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        float dt = GELU_K * (1.0f + 3.0f * GELU_C * v * v);
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt;
        dx[i] += dy[i] * d;
    }
}

static inline float sigmoidf_ref(float v) { return 1.0f / (1.0f + expf(-v)); }

void slm_silu_fwd_ref(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf_ref(x[i]);
}

void slm_silu_bwd_ref(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf_ref(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void slm_swiglu_fwd_ref(int64_t n, const float *g, const float *u, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = g[i] * sigmoidf_ref(g[i]) * u[i];
}

void slm_swiglu_bwd_ref(int64_t n, const float *g, const float *u, const float *dy,
                        float *dg, float *du) {
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf_ref(g[i]);
        float silu = g[i] * s;
        dg[i] += dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] += dy[i] * silu;
    }
}

void slm_softmax_fwd_ref(int64_t rows, int64_t cols, const float *x, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float m = -INFINITY;
        for (int64_t c = 0; c < cols; c++) m = fmaxf(m, xr[c]);
        double s = 0;
        for (int64_t c = 0; c < cols; c++) {
            yr[c] = expf(xr[c] - m);
            s += yr[c];
        }
        float inv = (float)(1.0 / s);
        for (int64_t c = 0; c < cols; c++) yr[c] *= inv;
    }
}

void slm_softmax_bwd_ref(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        double dot = 0;
        for (int64_t c = 0; c < cols; c++) dot += (double)yr[c] * dyr[c];
        for (int64_t c = 0; c < cols; c++) dx[r * cols + c] += yr[c] * (dyr[c] - (float)dot);
    }
}

void slm_layernorm_fwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                           const float *b, float eps, float *y, float *mean, float *rstd) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double s = 0;
        for (int64_t c = 0; c < cols; c++) s += xr[c];
        double mu = s / (double)cols;
        double v = 0;
        for (int64_t c = 0; c < cols; c++) v += (xr[c] - mu) * (xr[c] - mu);
        double rs = 1.0 / sqrt(v / (double)cols + eps);
        for (int64_t c = 0; c < cols; c++) {
            float h = (float)((xr[c] - mu) * rs);
            y[r * cols + c] = h * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        }
        mean[r] = (float)mu;
        rstd[r] = (float)rs;
    }
}

void slm_layernorm_bwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                           const float *mean, const float *rstd, const float *dy,
                           float *dx, float *dw, float *db) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double a = 0, c2 = 0;
        for (int64_t c = 0; c < cols; c++) {
            double h = (xr[c] - mean[r]) * rstd[r];
            double g = dyr[c] * (w ? w[c] : 1.0f);
            a += g;
            c2 += g * h;
        }
        a /= (double)cols;
        c2 /= (double)cols;
        for (int64_t c = 0; c < cols; c++) {
            double h = (xr[c] - mean[r]) * rstd[r];
            double g = dyr[c] * (w ? w[c] : 1.0f);
            dx[r * cols + c] += (float)(rstd[r] * (g - a - h * c2));
            if (dw) dw[c] += (float)(dyr[c] * h);
            if (db) db[c] += dyr[c];
        }
    }
}

void slm_rmsnorm_fwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                         float eps, float *y, float *rstd) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double ss = 0;
        for (int64_t c = 0; c < cols; c++) ss += (double)xr[c] * xr[c];
        double rs = 1.0 / sqrt(ss / (double)cols + eps);
        for (int64_t c = 0; c < cols; c++) y[r * cols + c] = (float)(xr[c] * rs) * (w ? w[c] : 1.0f);
        rstd[r] = (float)rs;
    }
}

void slm_rmsnorm_bwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                         const float *rstd, const float *dy, float *dx, float *dw) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double c2 = 0;
        for (int64_t c = 0; c < cols; c++) c2 += (double)dyr[c] * (w ? w[c] : 1.0f) * xr[c] * rstd[r];
        c2 /= (double)cols;
        for (int64_t c = 0; c < cols; c++) {
            double h = xr[c] * rstd[r];
            double g = dyr[c] * (w ? w[c] : 1.0f);
            dx[r * cols + c] += (float)(rstd[r] * (g - h * c2));
            if (dw) dw[c] += (float)(dyr[c] * h);
        }
    }
}

void slm_xent_fwd_ref(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                      int32_t ignore_index, float *loss, float *lse) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = logits + r * cols;
        float m = -INFINITY;
        for (int64_t c = 0; c < cols; c++) m = fmaxf(m, xr[c]);
        double s = 0;
        for (int64_t c = 0; c < cols; c++) s += exp((double)xr[c] - m);
        lse[r] = (float)(m + log(s));
        loss[r] = targets[r] == ignore_index ? 0.0f : lse[r] - xr[targets[r]];
    }
}

void slm_xent_bwd_ref(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                      int32_t ignore_index, const float *lse, float scale, float *dlogits) {
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        for (int64_t c = 0; c < cols; c++) {
            float p = expf(logits[r * cols + c] - lse[r]);
            dlogits[r * cols + c] += scale * (p - (c == targets[r] ? 1.0f : 0.0f));
        }
    }
}

void slm_rope(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos0,
              const float *cos_table, const float *sin_table, const float *x, float *y,
              int inverse) {
    // Memory-bound and cheap next to the matmuls around it: one plain version.
    const int64_t half = D / 2;
    const float sign = inverse ? -1.0f : 1.0f;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float *cs = cos_table + (pos0 + t) * half;
            const float *sn = sin_table + (pos0 + t) * half;
            for (int64_t h = 0; h < H; h++) {
                const float *xr = x + ((b * T + t) * H + h) * D;
                float *yr = y + ((b * T + t) * H + h) * D;
                for (int64_t i = 0; i < half; i++) {
                    float x1 = xr[i], x2 = xr[i + half], c = cs[i], s = sign * sn[i];
                    yr[i] = x1 * c - x2 * s;
                    yr[i + half] = x2 * c + x1 * s;
                }
            }
        }
}

// Attention reference: materialises one row of scores at a time, in double.
void slm_attention_fwd_ref(const slm_attention_args *a, int64_t task_begin, int64_t task_end) {
    const int64_t G = a->Hq / a->Hkv, D = a->D, off = a->Tk - a->Tq;
    const int64_t ldq = slm_attention_ldq(a), ldkv = slm_attention_ldkv(a);
    double *s = malloc(sizeof(double) * (size_t)a->Tk);
    for (int64_t task = task_begin; task < task_end; task++) {
        int64_t b = task / a->Hkv, kvh = task % a->Hkv;
        for (int64_t g = 0; g < G; g++) {
            int64_t h = kvh * G + g;
            for (int64_t i = 0; i < a->Tq; i++) {
                const float *q = a->q + (b * a->Tq + i) * ldq + h * D;
                int64_t n = i + off + 1;
                double m = -INFINITY, l = 0;
                for (int64_t j = 0; j < n; j++) {
                    const float *k = a->k + (b * a->Tk + j) * ldkv + kvh * D;
                    double d = 0;
                    for (int64_t c = 0; c < D; c++) d += (double)q[c] * k[c];
                    s[j] = d * a->scale;
                    if (s[j] > m) m = s[j];
                }
                for (int64_t j = 0; j < n; j++) { s[j] = exp(s[j] - m); l += s[j]; }
                float *o = a->out + ((b * a->Tq + i) * a->Hq + h) * D;
                for (int64_t c = 0; c < D; c++) {
                    double acc = 0;
                    for (int64_t j = 0; j < n; j++)
                        acc += s[j] * a->v[(b * a->Tk + j) * ldkv + kvh * D + c];
                    o[c] = (float)(acc / l);
                }
                if (a->lse) a->lse[(b * a->Hq + h) * a->Tq + i] = (float)(m + log(l));
            }
        }
    }
    free(s);
}

void slm_attention_bwd_ref(const slm_attention_args *a, const float *dout, float *dq, float *dk,
                           float *dv, int64_t task_begin, int64_t task_end) {
    const int64_t G = a->Hq / a->Hkv, D = a->D, off = a->Tk - a->Tq;
    const int64_t ldq = slm_attention_ldq(a), ldkv = slm_attention_ldkv(a);
    double *p = malloc(sizeof(double) * (size_t)a->Tk);
    for (int64_t task = task_begin; task < task_end; task++) {
        int64_t b = task / a->Hkv, kvh = task % a->Hkv;
        for (int64_t g = 0; g < G; g++) {
            int64_t h = kvh * G + g;
            for (int64_t i = 0; i < a->Tq; i++) {
                int64_t row = (b * a->Tq + i) * a->Hq + h, qrow = (b * a->Tq + i) * ldq + h * D;
                const float *q = a->q + qrow, *o = a->out + row * D, *dO = dout + row * D;
                float lse = a->lse[(b * a->Hq + h) * a->Tq + i];
                int64_t n = i + off + 1;
                double Di = 0;
                for (int64_t c = 0; c < D; c++) Di += (double)dO[c] * o[c];
                for (int64_t j = 0; j < n; j++) {
                    const float *k = a->k + (b * a->Tk + j) * ldkv + kvh * D;
                    double d = 0;
                    for (int64_t c = 0; c < D; c++) d += (double)q[c] * k[c];
                    p[j] = exp(d * a->scale - lse);
                }
                for (int64_t j = 0; j < n; j++) {
                    int64_t kvrow = (b * a->Tk + j) * ldkv + kvh * D;
                    const float *k = a->k + kvrow, *v = a->v + kvrow;
                    double dp = 0;
                    for (int64_t c = 0; c < D; c++) dp += (double)dO[c] * v[c];
                    double ds = p[j] * (dp - Di) * a->scale;
                    for (int64_t c = 0; c < D; c++) {
                        dq[qrow + c] += (float)(ds * k[c]);
                        dk[kvrow + c] += (float)(ds * q[c]);
                        dv[kvrow + c] += (float)(p[j] * dO[c]);
                    }
                }
            }
        }
    }
    free(p);
}

uint16_t slm_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
    return (uint16_t)(u >> 16);
}

void slm_f32_to_bf16_ref(int64_t n, const float *x, uint16_t *y) {
    for (int64_t i = 0; i < n; i++) y[i] = slm_bf16_round(x[i]);
}

void slm_bf16_to_f32(int64_t n, const uint16_t *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)x[i] << 16;
        memcpy(&y[i], &u, 4);
    }
}

void slm_sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t p = 0; p < K; p++) {
                float a = trans_a ? A[p * lda + i] : A[i * lda + p];
                float b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                acc += (double)a * b;
            }
            float prior = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = alpha * (float)acc + prior;
        }
}

// MARK: decoding one token

void slm_gemv_f32_ref(int64_t rows, int64_t cols, const float *w, const float *x, const float *bias,
                      float *y, int accumulate) {
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0;
        for (int64_t k = 0; k < cols; k++) acc += (double)w[r * cols + k] * x[k];
        float v = (float)acc + (bias ? bias[r] : 0.0f);
        y[r] = accumulate ? y[r] + v : v;
    }
}

void slm_batched_gemv_f32_ref(int64_t n, int64_t rows, int64_t cols, const float *w, const float *x, int64_t ldx,
                              const float *bias, float *y, int64_t ldy, int accumulate) {
    for (int64_t i = 0; i < n; i++) slm_gemv_f32_ref(rows, cols, w, x + i * ldx, bias, y + i * ldy, accumulate);
}

void slm_gemv_t2_ref(int64_t rows, int64_t cols, const uint8_t *wq, const float *scales, const int8_t *xq,
                     int32_t xq_sum, float x_scale, const float *bias, float *y, int accumulate) {
    (void)xq_sum;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = wq + r * (cols / 4);
        int64_t dot = 0;
        for (int64_t k = 0; k < cols; k++) {
            int64_t g = k / SLM_T2_GROUP, i = k % SLM_T2_GROUP, m = i % 32, pair = i / 32;
            int t = (row[g * 32 + m] >> (2 * pair) & 3) - 1;
            dot += (int64_t)t * xq[k];
        }
        float v = (float)dot * (scales[r] * x_scale) + (bias ? bias[r] : 0.0f);
        y[r] = accumulate ? y[r] + v : v;
    }
}

void slm_gemv_i8_ref(int64_t rows, int64_t cols, const int8_t *wq, const float *scales,
                     const float *x, const float *bias, float *y, int accumulate) {
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0;
        for (int64_t k = 0; k < cols; k++) acc += (double)wq[r * cols + k] * x[k];
        float v = (float)(acc * scales[r]) + (bias ? bias[r] : 0.0f);
        y[r] = accumulate ? y[r] + v : v;
    }
}

uint16_t slm_f16_from_f32(float f) {
    if (f > 65504.0f) f = 65504.0f;  // clamped, so no key or value becomes infinite (NaN passes)
    if (f < -65504.0f) f = -65504.0f;
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffff;
    if (x > 0x7f800000) return sign | 0x7e00;
    uint32_t h, rem, half;
    if (x >= 0x38800000) {  // a normal half: rebias the exponent, keep 10 of 23 mantissa bits
        h = (x - 0x38000000) >> 13, rem = x & 0x1fff, half = 0x1000;
    } else if (x >= 0x33000000) {  // a subnormal half: the value in units of 2^-24
        const uint32_t m = (x & 0x7fffff) | 0x800000, shift = 126 - (x >> 23);
        h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    } else {
        return sign;
    }
    if (rem > half || (rem == half && (h & 1))) h++;  // a carry moves into the exponent, as it should
    return sign | (uint16_t)h;
}

float slm_f32_from_f16(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    uint32_t x;
    if (e == 0x1f) {
        x = sign | 0x7f800000 | (m << 13);
    } else if (e != 0) {
        x = sign | ((e + 112) << 23) | (m << 13);
    } else {
        float f = (float)m * 0x1p-24f;
        memcpy(&x, &f, sizeof x);
        x |= sign;
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static inline float kv_at(slm_kv_format kv, const void *base, int64_t i) {
    return kv == SLM_KV_F16 ? slm_f32_from_f16(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

void slm_attention_decode_ref(const slm_attention_decode_args *a, int64_t head_begin, int64_t head_end) {
    const int64_t D = a->D, G = a->Hq / a->Hkv, n = a->n;
    for (int64_t h = head_begin; h < head_end; h++) {
        const int64_t kvh = h / G, k0 = kvh * D * a->ldk, v0 = kvh * a->ldv * D;
        const float *q = a->q + h * D;
        float *s = a->scores + h * a->ldk, *o = a->out + h * D;
        double m = -INFINITY, l = 0;
        for (int64_t j = 0; j < n; j++) {
            double d = 0;
            for (int64_t c = 0; c < D; c++) d += (double)q[c] * kv_at(a->kv, a->kt, k0 + c * a->ldk + j);
            s[j] = (float)(d * a->scale);
            if (s[j] > m) m = s[j];
        }
        for (int64_t j = 0; j < n; j++) {
            s[j] = (float)exp(s[j] - m);
            l += s[j];
        }
        for (int64_t c = 0; c < D; c++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) acc += (double)s[j] * kv_at(a->kv, a->v, v0 + j * D + c);
            o[c] = (float)(acc / l);
        }
    }
}

void slm_kv_store_ref(slm_kv_format kv, int64_t Hkv, int64_t D, int64_t ldk, int64_t ldv, int64_t pos,
                      const float *k, const float *v, void *kt, void *vc) {
    for (int64_t h = 0; h < Hkv; h++)
        for (int64_t c = 0; c < D; c++) {
            const int64_t ki = (h * D + c) * ldk + pos, vi = (h * ldv + pos) * D + c;
            if (kv == SLM_KV_F16) {
                ((uint16_t *)kt)[ki] = slm_f16_from_f32(k[h * D + c]);
                ((uint16_t *)vc)[vi] = slm_f16_from_f32(v[h * D + c]);
            } else {
                ((float *)kt)[ki] = k[h * D + c];
                ((float *)vc)[vi] = v[h * D + c];
            }
        }
}
