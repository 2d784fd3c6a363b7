// Causal depthwise convolution through FFTs, for kernels as long as the context
// (SymbioSLM's long convolution): O(T log T) per channel instead of O(T·K).
//
// Layout as slm_causal_conv_*: x, y [B, T, C] row-major, w [C, K] with w[c, K-1] on the
// current token. With the lag form h_c[m] = w[c, K-1-m] (m < min(K, T)):
//   y[t] = Σ_{m≤t} h[m]·x[t-m]          (a linear convolution, first T outputs)
//   dx[j] = Σ_{t≥j} h[t-j]·g[t]          (a correlation with h)
//   dh[m] = Σ_t g[t]·x[t-m]              (a correlation with x)
// each one product of spectra of size N ≥ 2T, so the circular wrap never reaches the
// outputs kept. Work is split by channel ranges [c0, c1): a thread owns its channels'
// outputs and weight gradients.
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "slm_kernels.h"

typedef float complex cfloat;

static int64_t fft_size(int64_t T) {
    int64_t n = 1;
    while (n < 2 * T) n <<= 1;
    return n;
}

// Twiddles e^{-2πik/N}, k < N/2.
static void make_twiddles(int64_t n, cfloat *tw) {
    for (int64_t k = 0; k < n / 2; k++) {
        double a = -2.0 * M_PI * (double)k / (double)n;
        tw[k] = (float)cos(a) + (float)sin(a) * I;
    }
}

// In-place iterative radix-2 FFT; inverse uses conjugate twiddles and does not scale.
static void fft(cfloat *a, int64_t n, const cfloat *tw, int inverse) {
    for (int64_t i = 1, j = 0; i < n; i++) {
        int64_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j |= bit;
        if (i < j) { cfloat t = a[i]; a[i] = a[j]; a[j] = t; }
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
        int64_t half = len / 2, step = n / len;
        for (int64_t s = 0; s < n; s += len) {
            for (int64_t k = 0; k < half; k++) {
                cfloat w = inverse ? conjf(tw[k * step]) : tw[k * step];
                cfloat u = a[s + k], v = a[s + k + half] * w;
                a[s + k] = u + v;
                a[s + k + half] = u - v;
            }
        }
    }
}

// Column c of batch b (stride C), zero-padded to n.
static void load_column(cfloat *dst, int64_t n, const float *src, int64_t T, int64_t C) {
    for (int64_t t = 0; t < T; t++) dst[t] = src[t * C];
    for (int64_t t = T; t < n; t++) dst[t] = 0;
}

// The lag form of channel c's taps that reach T outputs, zero-padded to n.
static void load_taps(cfloat *dst, int64_t n, const float *w, int64_t c, int64_t K, int64_t T) {
    int64_t m_end = K < T ? K : T;
    for (int64_t m = 0; m < m_end; m++) dst[m] = w[c * K + (K - 1 - m)];
    for (int64_t m = m_end; m < n; m++) dst[m] = 0;
}

void slm_causal_conv_fft_fwd(int64_t c0, int64_t c1, int64_t B, int64_t T, int64_t C, int64_t K,
                             const float *x, const float *w, float *y) {
    int64_t n = fft_size(T);
    cfloat *tw = malloc(sizeof(cfloat) * (size_t)(n / 2));
    cfloat *h = malloc(sizeof(cfloat) * (size_t)n), *a = malloc(sizeof(cfloat) * (size_t)n);
    make_twiddles(n, tw);
    float scale = 1.0f / (float)n;
    for (int64_t c = c0; c < c1; c++) {
        load_taps(h, n, w, c, K, T);
        fft(h, n, tw, 0);
        for (int64_t b = 0; b < B; b++) {
            load_column(a, n, x + b * T * C + c, T, C);
            fft(a, n, tw, 0);
            for (int64_t i = 0; i < n; i++) a[i] *= h[i];
            fft(a, n, tw, 1);
            float *out = y + b * T * C + c;
            for (int64_t t = 0; t < T; t++) out[t * C] = crealf(a[t]) * scale;
        }
    }
    free(tw);
    free(h);
    free(a);
}

void slm_causal_conv_fft_bwd(int64_t c0, int64_t c1, int64_t B, int64_t T, int64_t C, int64_t K,
                             const float *x, const float *w, const float *dy, float *dx, float *dw) {
    int64_t n = fft_size(T);
    cfloat *tw = malloc(sizeof(cfloat) * (size_t)(n / 2));
    cfloat *h = malloc(sizeof(cfloat) * (size_t)n), *g = malloc(sizeof(cfloat) * (size_t)n);
    cfloat *a = malloc(sizeof(cfloat) * (size_t)n), *dh = malloc(sizeof(cfloat) * (size_t)n);
    make_twiddles(n, tw);
    float scale = 1.0f / (float)n;
    int64_t m_end = K < T ? K : T;
    for (int64_t c = c0; c < c1; c++) {
        load_taps(h, n, w, c, K, T);
        fft(h, n, tw, 0);
        for (int64_t i = 0; i < n; i++) dh[i] = 0;
        for (int64_t b = 0; b < B; b++) {
            load_column(g, n, dy + b * T * C + c, T, C);
            fft(g, n, tw, 0);
            if (dw) {
                load_column(a, n, x + b * T * C + c, T, C);
                fft(a, n, tw, 0);
                for (int64_t i = 0; i < n; i++) dh[i] += g[i] * conjf(a[i]);
            }
            if (dx) {
                for (int64_t i = 0; i < n; i++) a[i] = g[i] * conjf(h[i]);
                fft(a, n, tw, 1);
                float *out = dx + b * T * C + c;
                for (int64_t t = 0; t < T; t++) out[t * C] += crealf(a[t]) * scale;
            }
        }
        if (dw) {
            fft(dh, n, tw, 1);
            for (int64_t m = 0; m < m_end; m++) dw[c * K + (K - 1 - m)] += crealf(dh[m]) * scale;
        }
    }
    free(tw);
    free(h);
    free(g);
    free(a);
    free(dh);
}
