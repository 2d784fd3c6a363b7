// Picks the kernel table for this CPU once, and forwards every public entry point to it.
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const slm_kernel_table slm_kernels_scalar = {
    .add = slm_add_ref,
    .sub = slm_sub_ref,
    .mul = slm_mul_ref,
    .scale = slm_scale_ref,
    .axpy = slm_axpy_ref,
    .add_rowvec = slm_add_rowvec_ref,
    .colsum_acc = slm_colsum_acc_ref,
    .sum = slm_sum_ref,
    .sumsq = slm_sumsq_ref,
    .dropout_fwd = slm_dropout_fwd_ref,
    .dropout_bwd = slm_dropout_bwd_ref,
    .adamw = slm_adamw_ref,
    .gelu_fwd = slm_gelu_fwd_ref,
    .gelu_bwd = slm_gelu_bwd_ref,
    .silu_fwd = slm_silu_fwd_ref,
    .silu_bwd = slm_silu_bwd_ref,
    .swiglu_fwd = slm_swiglu_fwd_ref,
    .swiglu_bwd = slm_swiglu_bwd_ref,
    .softmax_fwd = slm_softmax_fwd_ref,
    .softmax_bwd = slm_softmax_bwd_ref,
    .layernorm_fwd = slm_layernorm_fwd_ref,
    .layernorm_bwd = slm_layernorm_bwd_ref,
    .rmsnorm_fwd = slm_rmsnorm_fwd_ref,
    .rmsnorm_bwd = slm_rmsnorm_bwd_ref,
    .xent_fwd = slm_xent_fwd_ref,
    .xent_bwd = slm_xent_bwd_ref,
    .attention_fwd = slm_attention_fwd_ref,
    .attention_bwd = slm_attention_bwd_ref,
    .gemv_f32 = slm_gemv_f32_ref,
    .batched_gemv_f32 = slm_batched_gemv_f32_ref,
    .gemv_i8 = slm_gemv_i8_ref,
    .gemv_t2 = slm_gemv_t2_ref,
    .attention_decode = slm_attention_decode_ref,
    .kv_store = slm_kv_store_ref,
    .sigmoid_fwd = slm_sigmoid_fwd_ref,
    .sigmoid_bwd = slm_sigmoid_bwd_ref,
    .softmax_cols_fwd = slm_softmax_cols_fwd_ref,
    .softmax_cols_bwd = slm_softmax_cols_bwd_ref,
    .causal_conv_fwd = slm_causal_conv_fwd_ref,
    .causal_conv_bwd_data = slm_causal_conv_bwd_data_ref,
    .causal_conv_bwd_weight = slm_causal_conv_bwd_weight_ref,
    .monarch_fwd = slm_monarch_fwd_ref,
    .monarch_bwd = slm_monarch_bwd_ref,
};

slm_isa slm_isa_detected(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return SLM_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return SLM_ISA_AVX2;
#endif
    return SLM_ISA_SCALAR;
}

int slm_cpu_has_avx512bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static const slm_kernel_table *table_for(slm_isa isa) {
#if defined(__x86_64__)
    if (isa == SLM_ISA_AVX512) return &slm_kernels_avx512;
    if (isa == SLM_ISA_AVX2) return &slm_kernels_avx2;
#endif
    return &slm_kernels_scalar;
}

// -1 until first use. SLM_ISA=scalar|avx2|avx512 caps the level (for testing the
// slower paths on a fast machine).
static _Atomic int active_isa = -1;

static slm_isa initial_isa(void) {
    slm_isa best = slm_isa_detected();
    const char *env = getenv("SLM_ISA");
    if (env) {
        slm_isa want = best;
        if (strcmp(env, "scalar") == 0) want = SLM_ISA_SCALAR;
        else if (strcmp(env, "avx2") == 0) want = SLM_ISA_AVX2;
        else if (strcmp(env, "avx512") == 0) want = SLM_ISA_AVX512;
        if (want < best) best = want;
    }
    return best;
}

slm_isa slm_isa_active(void) {
    int isa = atomic_load_explicit(&active_isa, memory_order_relaxed);
    if (isa < 0) {
        isa = (int)initial_isa();
        atomic_store(&active_isa, isa);
    }
    return (slm_isa)isa;
}

slm_isa slm_isa_set(slm_isa isa) {
    slm_isa best = slm_isa_detected();
    if (isa > best) isa = best;
    atomic_store(&active_isa, (int)isa);
    return isa;
}

const char *slm_isa_name(slm_isa isa) {
    switch (isa) {
    case SLM_ISA_AVX512: return "avx512";
    case SLM_ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

const slm_kernel_table *slm_kernel_table_for(slm_isa isa) {
    slm_isa best = slm_isa_detected();
    return table_for(isa > best ? best : isa);
}

#define K (table_for(slm_isa_active()))

void slm_add(int64_t n, const float *a, const float *b, float *y) { K->add(n, a, b, y); }
void slm_sub(int64_t n, const float *a, const float *b, float *y) { K->sub(n, a, b, y); }
void slm_mul(int64_t n, const float *a, const float *b, float *y) { K->mul(n, a, b, y); }
void slm_scale(int64_t n, float alpha, const float *x, float *y) { K->scale(n, alpha, x, y); }
void slm_axpy(int64_t n, float alpha, const float *x, float *y) { K->axpy(n, alpha, x, y); }
void slm_add_rowvec(int64_t rows, int64_t cols, const float *x, const float *b, float *y) {
    K->add_rowvec(rows, cols, x, b, y);
}
void slm_colsum_acc(int64_t rows, int64_t cols, const float *dy, float *db) {
    K->colsum_acc(rows, cols, dy, db);
}
double slm_sum(int64_t n, const float *x) { return K->sum(n, x); }
double slm_sumsq(int64_t n, const float *x) { return K->sumsq(n, x); }
void slm_dropout_fwd(int64_t n, uint64_t seed, int64_t offset, float p, const float *x, float *y) {
    K->dropout_fwd(n, seed, offset, p, x, y);
}
void slm_dropout_bwd(int64_t n, uint64_t seed, int64_t offset, float p, const float *dy, float *dx) {
    K->dropout_bwd(n, seed, offset, p, dy, dx);
}
void slm_adamw(int64_t n, const slm_adamw_args *a, float *w, const float *g, float *m, float *v) {
    K->adamw(n, a, w, g, m, v);
}
void slm_gelu_fwd(int64_t n, const float *x, float *y) { K->gelu_fwd(n, x, y); }
void slm_gelu_bwd(int64_t n, const float *x, const float *dy, float *dx) { K->gelu_bwd(n, x, dy, dx); }
void slm_silu_fwd(int64_t n, const float *x, float *y) { K->silu_fwd(n, x, y); }
void slm_silu_bwd(int64_t n, const float *x, const float *dy, float *dx) { K->silu_bwd(n, x, dy, dx); }
void slm_swiglu_fwd(int64_t n, const float *g, const float *u, float *y) { K->swiglu_fwd(n, g, u, y); }
void slm_swiglu_bwd(int64_t n, const float *g, const float *u, const float *dy, float *dg, float *du) {
    K->swiglu_bwd(n, g, u, dy, dg, du);
}
void slm_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y) {
    K->softmax_fwd(rows, cols, x, y);
}
void slm_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
    K->softmax_bwd(rows, cols, y, dy, dx);
}
void slm_layernorm_fwd(int64_t rows, int64_t cols, const float *x, const float *w, const float *b,
                       float eps, float *y, float *mean, float *rstd) {
    K->layernorm_fwd(rows, cols, x, w, b, eps, y, mean, rstd);
}
void slm_layernorm_bwd(int64_t rows, int64_t cols, const float *x, const float *w,
                       const float *mean, const float *rstd, const float *dy, float *dx,
                       float *dw, float *db) {
    K->layernorm_bwd(rows, cols, x, w, mean, rstd, dy, dx, dw, db);
}
void slm_rmsnorm_fwd(int64_t rows, int64_t cols, const float *x, const float *w, float eps,
                     float *y, float *rstd) {
    K->rmsnorm_fwd(rows, cols, x, w, eps, y, rstd);
}
void slm_rmsnorm_bwd(int64_t rows, int64_t cols, const float *x, const float *w,
                     const float *rstd, const float *dy, float *dx, float *dw) {
    K->rmsnorm_bwd(rows, cols, x, w, rstd, dy, dx, dw);
}
void slm_xent_fwd(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                  int32_t ignore_index, float *loss, float *lse) {
    K->xent_fwd(rows, cols, logits, targets, ignore_index, loss, lse);
}
void slm_xent_bwd(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                  int32_t ignore_index, const float *lse, float scale, float *dlogits) {
    K->xent_bwd(rows, cols, logits, targets, ignore_index, lse, scale, dlogits);
}
void slm_attention_fwd(const slm_attention_args *a, int64_t task_begin, int64_t task_end) {
    K->attention_fwd(a, task_begin, task_end);
}
void slm_attention_bwd(const slm_attention_args *a, const float *dout, float *dq, float *dk,
                       float *dv, int64_t task_begin, int64_t task_end) {
    K->attention_bwd(a, dout, dq, dk, dv, task_begin, task_end);
}

void slm_gemv_f32(int64_t rows, int64_t cols, const float *w, const float *x, const float *bias,
                  float *y, int accumulate) {
    K->gemv_f32(rows, cols, w, x, bias, y, accumulate);
}
void slm_batched_gemv_f32(int64_t n, int64_t rows, int64_t cols, const float *w, const float *x, int64_t ldx,
                          const float *bias, float *y, int64_t ldy, int accumulate) {
    K->batched_gemv_f32(n, rows, cols, w, x, ldx, bias, y, ldy, accumulate);
}
void slm_gemv_i8(int64_t rows, int64_t cols, const int8_t *wq, const float *scales,
                 const float *x, const float *bias, float *y, int accumulate) {
    K->gemv_i8(rows, cols, wq, scales, x, bias, y, accumulate);
}
void slm_gemv_t2(int64_t rows, int64_t cols, const uint8_t *wq, const float *scales, const int8_t *xq,
                 int32_t xq_sum, float x_scale, const float *bias, float *y, int accumulate) {
    K->gemv_t2(rows, cols, wq, scales, xq, xq_sum, x_scale, bias, y, accumulate);
}
void slm_attention_decode(const slm_attention_decode_args *a, int64_t head_begin, int64_t head_end) {
    K->attention_decode(a, head_begin, head_end);
}
void slm_kv_store(slm_kv_format kv, int64_t Hkv, int64_t D, int64_t ldk, int64_t ldv, int64_t pos,
                  const float *k, const float *v, void *kt, void *vc) {
    K->kv_store(kv, Hkv, D, ldk, ldv, pos, k, v, kt, vc);
}

void slm_f32_to_bf16(int64_t n, const float *x, uint16_t *y) {
#if defined(__x86_64__)
    if (slm_cpu_has_avx512bf16() && slm_isa_active() == SLM_ISA_AVX512) {
        slm_f32_to_bf16_avx512bf16(n, x, y);
        return;
    }
#endif
    slm_f32_to_bf16_ref(n, x, y);
}

void slm_sigmoid_fwd(int64_t n, const float *x, float *y) { K->sigmoid_fwd(n, x, y); }
void slm_sigmoid_bwd(int64_t n, const float *y, const float *dy, float *dx) { K->sigmoid_bwd(n, y, dy, dx); }
void slm_softmax_cols_fwd(int64_t rows, int64_t cols, const float *x, float *y) { K->softmax_cols_fwd(rows, cols, x, y); }
void slm_softmax_cols_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
    K->softmax_cols_bwd(rows, cols, y, dy, dx);
}
void slm_causal_conv_fwd(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t Kw, const float *x, const float *wt,
                         float *y) {
    K->causal_conv_fwd(r0, r1, T, C, Kw, x, wt, y);
}
void slm_causal_conv_bwd_data(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t Kw, const float *dy,
                              const float *wt, float *dx) {
    K->causal_conv_bwd_data(r0, r1, T, C, Kw, dy, wt, dx);
}
void slm_causal_conv_bwd_weight(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t Kw, const float *x,
                                const float *dy, float *dwt) {
    K->causal_conv_bwd_weight(r0, r1, T, C, Kw, x, dy, dwt);
}
void slm_monarch_fwd(const slm_monarch_args *a, int64_t task_begin, int64_t task_end) {
    K->monarch_fwd(a, task_begin, task_end);
}
void slm_monarch_bwd(const slm_monarch_args *a, const float *dy, float *dx, float *dL1, float *dL2, float *du,
                     float *dut, int64_t head_begin, int64_t head_end) {
    K->monarch_bwd(a, dy, dx, dL1, dL2, du, dut, head_begin, head_end);
}
