// swift-slm CPU kernels.
//
// Every kernel works on raw row-major float buffers; the tensor layer above decides
// shapes and threads. Each kernel exists as a plain scalar reference (`*_ref`) and as
// SIMD versions (AVX2, AVX-512) compiled with function target attributes; the
// un-suffixed entry point dispatches to the best version this CPU supports.
//
// Conventions: counts are int64_t; "backward" kernels ADD into their gradient
// outputs (dx += ...), so gradients of a tensor used twice accumulate naturally.
#ifndef SLM_KERNELS_H
#define SLM_KERNELS_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - CPU features and dispatch

typedef enum {
    SLM_ISA_SCALAR = 0,
    SLM_ISA_AVX2 = 1,
    SLM_ISA_AVX512 = 2,
} slm_isa;

/// Best instruction set this CPU supports for the elementwise/row kernels.
slm_isa slm_isa_detected(void);
/// The instruction set the dispatching entry points use now.
slm_isa slm_isa_active(void);
/// Forces a (supported) level; returns the level actually set. For benchmarks.
slm_isa slm_isa_set(slm_isa isa);
const char *slm_isa_name(slm_isa isa);
/// 1 if the CPU executes AVX-512 BF16 instructions (vdpbf16ps, vcvtneps2bf16).
int slm_cpu_has_avx512bf16(void);

// MARK: - Elementwise (y may alias an input)

void slm_add(int64_t n, const float *a, const float *b, float *y);
void slm_sub(int64_t n, const float *a, const float *b, float *y);
void slm_mul(int64_t n, const float *a, const float *b, float *y);
/// y = alpha * x
void slm_scale(int64_t n, float alpha, const float *x, float *y);
/// y += alpha * x
void slm_axpy(int64_t n, float alpha, const float *x, float *y);
/// y[r, :] = x[r, :] + b  (b has `cols` entries)
void slm_add_rowvec(int64_t rows, int64_t cols, const float *x, const float *b, float *y);
/// db += sum over rows of dy[r, :]
void slm_colsum_acc(int64_t rows, int64_t cols, const float *dy, float *db);
/// Sum of x, accumulated in double.
double slm_sum(int64_t n, const float *x);
/// Sum of x², accumulated in double (gradient norms).
double slm_sumsq(int64_t n, const float *x);

/// GELU, tanh approximation (GPT-2).
void slm_gelu_fwd(int64_t n, const float *x, float *y);
void slm_gelu_bwd(int64_t n, const float *x, const float *dy, float *dx);
/// SiLU: x * sigmoid(x).
void slm_silu_fwd(int64_t n, const float *x, float *y);
void slm_silu_bwd(int64_t n, const float *x, const float *dy, float *dx);
/// SwiGLU: y = silu(g) * u.
void slm_swiglu_fwd(int64_t n, const float *g, const float *u, float *y);
void slm_swiglu_bwd(int64_t n, const float *g, const float *u, const float *dy,
                    float *dg, float *du);

// MARK: - Row kernels (rows of `cols` contiguous floats)

void slm_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y);
void slm_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx);

/// w and b may be NULL (no affine). mean and rstd receive one value per row.
void slm_layernorm_fwd(int64_t rows, int64_t cols, const float *x, const float *w,
                       const float *b, float eps, float *y, float *mean, float *rstd);
/// dw and db may be NULL.
void slm_layernorm_bwd(int64_t rows, int64_t cols, const float *x, const float *w,
                       const float *mean, const float *rstd, const float *dy,
                       float *dx, float *dw, float *db);

void slm_rmsnorm_fwd(int64_t rows, int64_t cols, const float *x, const float *w,
                     float eps, float *y, float *rstd);
void slm_rmsnorm_bwd(int64_t rows, int64_t cols, const float *x, const float *w,
                     const float *rstd, const float *dy, float *dx, float *dw);

/// Cross-entropy of logits against targets; rows whose target equals `ignore_index`
/// get loss 0. Writes the per-row loss and log-sum-exp.
void slm_xent_fwd(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                  int32_t ignore_index, float *loss, float *lse);
/// dlogits += scale * (softmax(logits) - onehot(target)) on rows that are not ignored.
void slm_xent_bwd(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                  int32_t ignore_index, const float *lse, float scale, float *dlogits);

// MARK: - Dropout with a counter-based mask

/// Element i of a tensor is kept when a hash of (seed, i) lands at or above p, so the
/// mask needs no memory: the backward pass recomputes it. `offset` is the index of x[0]
/// within the tensor (for ranges split across threads); indices must stay below 2^32.
/// y = x * mask / (1 - p)
void slm_dropout_fwd(int64_t n, uint64_t seed, int64_t offset, float p, const float *x, float *y);
/// dx += dy * mask / (1 - p)
void slm_dropout_bwd(int64_t n, uint64_t seed, int64_t offset, float p, const float *dy, float *dx);

// MARK: - AdamW

typedef struct {
    float lr, beta1, beta2, eps;
    /// 1 - beta^t, the bias corrections of the two moments.
    float correction1, correction2;
    /// lr * weight decay for this tensor (0 for no decay).
    float decay;
} slm_adamw_args;

/// One AdamW update of n weights w from gradients g, with moments m and v.
void slm_adamw(int64_t n, const slm_adamw_args *a, float *w, const float *g, float *m, float *v);

// MARK: - Rotary position embedding ("rotate half" pairing, as Hugging Face Llama)

/// x: [B, T, H, D]; cos/sin: tables [T_max, D/2]; positions start at `pos0`.
/// inverse != 0 rotates by the negative angle (the backward pass).
void slm_rope(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos0,
              const float *cos_table, const float *sin_table, const float *x, float *y,
              int inverse);

// MARK: - Fused causal attention

/// q: [B, Tq, Hq, D]; k, v: [B, Tk, Hkv, D]; out: [B, Tq, Hq, D];
/// lse (optional): [B, Hq, Tq]. Query i sees keys j <= i + (Tk - Tq).
/// Hq must be a multiple of Hkv (grouped-query attention).
/// ldq / ldkv: floats from one token's q (k, v) row to the next's, for q, k and v that
/// live inside a wider tensor (GPT-2's fused QKV projection); 0 means packed (Hq·D, Hkv·D).
/// Their gradients use the same strides.
typedef struct {
    int64_t B, Tq, Tk, Hq, Hkv, D;
    int64_t ldq, ldkv;
    float scale;
    const float *q, *k, *v;
    float *out;
    float *lse;
} slm_attention_args;

/// Processes the (batch, kv-head) tasks [task_begin, task_end) of B*Hkv tasks.
void slm_attention_fwd(const slm_attention_args *a, int64_t task_begin, int64_t task_end);
/// Gradients are added into dq [B,Tq,Hq,D], dk and dv [B,Tk,Hkv,D]. Needs out and lse
/// from the forward pass; recomputes the probabilities instead of storing them.
void slm_attention_bwd(const slm_attention_args *a, const float *dout, float *dq, float *dk,
                       float *dv, int64_t task_begin, int64_t task_end);

// MARK: - Decoding one token (batch 1)

/// y[r] = dot(W[r, :], x) (+ bias[r]) for r < rows; W row-major [rows, cols].
/// accumulate != 0 adds into y (the residual stream) instead of overwriting it.
/// bias may be NULL.
void slm_gemv_f32(int64_t rows, int64_t cols, const float *w, const float *x, const float *bias,
                  float *y, int accumulate);
/// The same for n inputs at once (decoding several streams): Y[i, r] = dot(W[r, :], X[i, :])
/// (+ bias[r]) for i < n, r < rows, with X rows `ldx` and Y rows `ldy` floats apart.
void slm_batched_gemv_f32(int64_t n, int64_t rows, int64_t cols, const float *w, const float *x, int64_t ldx,
                          const float *bias, float *y, int64_t ldy, int accumulate);
/// The same with int8 weights and one fp32 scale per row: W[r, k] = scale[r] * wq[r, k].
/// Activations stay fp32; the int8 values are widened to float inside the dot product.
void slm_gemv_i8(int64_t rows, int64_t cols, const int8_t *wq, const float *scales,
                 const float *x, const float *bias, float *y, int accumulate);

/// Ternary weights, 2 bits each (BitNet b1.58): W[r, k] = scale[r] * t, t in {-1, 0, 1}
/// stored as t + 1. A row is `cols` / 4 bytes, cols a multiple of SLM_T2_GROUP; in each
/// group of 128 weights (32 bytes), byte m holds weights m, m+32, m+64 and m+96 in its
/// bit pairs 0-1, 2-3, 4-5 and 6-7 (llama.cpp's TQ2_0 order). Activations come
/// quantised to int8 (`slm_quantize_act_i8`): y[r] (+)= scale[r] * x_scale * sum_k t * xq[k] (+ bias[r]).
#define SLM_T2_GROUP 128
void slm_gemv_t2(int64_t rows, int64_t cols, const uint8_t *wq, const float *scales, const int8_t *xq,
                 int32_t xq_sum, float x_scale, const float *bias, float *y, int accumulate);
/// BitNet's activation quantiser: xq[k] = clamp(round(x[k] * 127 / max|x|), -128, 127)
/// (ties to even), zero past n up to `padded`; *x_scale = max|x| / 127 (so x ≈ xq * x_scale),
/// *xq_sum = the sum of xq.
void slm_quantize_act_i8(int64_t n, int64_t padded, const float *x, int8_t *xq, float *x_scale, int32_t *xq_sum);

/// How a decoder's KV cache stores keys and values: fp32, or IEEE half floats (f16, as
/// uint16; half the bytes that attention streams per token, values clamped to ±65504).
typedef enum { SLM_KV_F32 = 0, SLM_KV_F16 = 1 } slm_kv_format;

/// One query per head against a KV cache. Keys are stored transposed per KV head,
/// kt[kvh][d][ldk] (so a query's scores vectorise across keys; ldk is the padded
/// capacity, a multiple of 64, and unused columns must be finite); values row-wise,
/// v[kvh][ldv][d]; both as `kv` says. The query sees keys 0..<n. scores: Hq * ldk
/// floats of scratch.
typedef struct {
    int64_t Hq, Hkv, D, n, ldk, ldv;
    float scale;
    const float *q;
    const void *kt, *v;
    float *out, *scores;
    slm_kv_format kv;
} slm_attention_decode_args;

/// Stores one position's keys and values (k, v: [Hkv, D] floats) into a cache laid out
/// as slm_attention_decode reads it: column `pos` of kt, row `pos` of v.
void slm_kv_store(slm_kv_format kv, int64_t Hkv, int64_t D, int64_t ldk, int64_t ldv, int64_t pos,
                  const float *k, const float *v, void *kt, void *vc);

/// IEEE half floats, round to nearest even (portable; the reference for the kernels).
uint16_t slm_f16_from_f32(float f);
float slm_f32_from_f16(uint16_t h);

/// Processes query heads [head_begin, head_end).
void slm_attention_decode(const slm_attention_decode_args *a, int64_t head_begin, int64_t head_end);

/// How a decode matrix stores its weights.
typedef enum { SLM_WEIGHTS_F32 = 0, SLM_WEIGHTS_I8 = 1, SLM_WEIGHTS_T2 = 2 } slm_weight_format;

/// A weight matrix in decode layout: row-major [rows, cols], fp32, int8 + row scales, or
/// packed ternary + row scales (cols then padded to SLM_T2_GROUP; inputs are quantised to int8).
typedef struct {
    int64_t rows, cols;
    int64_t inputs;        ///< values of x read: cols, or for ternary the width before padding
    slm_weight_format format;
    const void *w;
    const float *scales;   ///< one per row (int8 and ternary)
    const float *bias;     ///< rows entries, or NULL
} slm_matrix;

/// Activations the decode GEMV applies to its output rows (within the same parallel task).
typedef enum { SLM_ACT_NONE = 0, SLM_ACT_GELU = 1 } slm_activation;

/// y (+)= m x, rows split across `threads` threads of the decode pool, then `act` on y.
void slm_decode_gemv(int64_t threads, const slm_matrix *m, const float *x, float *y,
                     int accumulate, slm_activation act);
/// Y[j] (+)= m X[j] for n inputs (rows of X, ldx apart; outputs ldy apart): the streams
/// of a batched decoding step. Threads split the rows, and each thread takes its rows in
/// small chunks, every input per chunk, so the weights come from memory once for all n.
void slm_decode_gemm(int64_t threads, const slm_matrix *m, int64_t n, const float *x, int64_t ldx, float *y,
                     int64_t ldy, int accumulate);
/// y = silu(gate x) * (up x) in one parallel region; `scratch` holds up->rows floats.
void slm_decode_gemv_swiglu(int64_t threads, const slm_matrix *gate, const slm_matrix *up,
                            const float *x, float *y, float *scratch);
/// Single-query attention for `count` independent queries (a batch of streams, each on
/// its own cache and position; all with one head count): one region whose tasks are the
/// (query, head) pairs, claimed by the threads in turn.
void slm_decode_attention(int64_t threads, const slm_attention_decode_args *a, int64_t count);

// MARK: - Decode thread pool

/// A task of a parallel region: `task` in [0, tasks).
typedef void (*slm_pool_fn)(void *ctx, int64_t task, int64_t tasks);
/// Runs fn(ctx, t, tasks) once for each t in [0, tasks) on up to `threads` threads (the
/// caller and persistent workers; each claims the next task until none are left) and
/// returns when all are done. Idle workers spin for a short while (a token's next region
/// usually comes within microseconds), then sleep on a condition variable, so an idle
/// pool costs no CPU. One region runs at a time (callers serialise).
void slm_pool_run(int64_t threads, int64_t tasks, slm_pool_fn fn, void *ctx);
/// Worker threads started so far (for tests).
int64_t slm_pool_workers(void);

// MARK: - bfloat16

void slm_f32_to_bf16(int64_t n, const float *x, uint16_t *y);
void slm_bf16_to_f32(int64_t n, const uint16_t *x, float *y);

// MARK: - Sequence mixers (MonarchSLM, SymbioSLM)

/// y = sigmoid(x); backward: dx += dy · y · (1 - y) (from the output y).
void slm_sigmoid_fwd(int64_t n, const float *x, float *y);
void slm_sigmoid_bwd(int64_t n, const float *y, const float *dy, float *dx);
/// Softmax down each column of a [rows, cols] matrix (rows is small: the organelle gate);
/// backward adds into dx.
void slm_softmax_cols_fwd(int64_t rows, int64_t cols, const float *x, float *y);
void slm_softmax_cols_bwd(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx);

/// Causal depthwise convolution over time on rows [r0, r1) of x, y: [rows, C], sequences
/// of T rows each (row r is position r % T): y[t,c] = Σ_{j < K, j <= t} wt[K-1-j, c] · x[t-j, c].
/// wt is the weight [C, K] transposed to [K, C], so one tap's channels are contiguous;
/// its last row multiplies the current token.
void slm_causal_conv_fwd(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                         const float *wt, float *y);
/// dx[s,c] += Σ_{j < K, t+j < T} wt[K-1-j, c] · dy[s+j, c], rows [r0, r1).
void slm_causal_conv_bwd_data(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *dy,
                              const float *wt, float *dx);
/// dwt[K-1-j, c] += Σ_{r in [r0, r1), r % T >= j} dy[r, c] · x[r-j, c].
void slm_causal_conv_bwd_weight(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                const float *dy, float *dwt);

/// The same convolution through FFTs of size ≥ 2T (fft_conv.c), on channels [c0, c1) of
/// B sequences, with the weight in its own [C, K] layout: O(T log T) per channel. For long
/// kernels (SymbioSLM's long convolution); one code path for every ISA.
void slm_causal_conv_fft_fwd(int64_t c0, int64_t c1, int64_t B, int64_t T, int64_t C, int64_t K,
                             const float *x, const float *w, float *y);
/// dx += (correlation of dy with the taps) and dw += (correlation of dy with x), summed
/// over the batch, on channels [c0, c1); either output may be NULL.
void slm_causal_conv_fft_bwd(int64_t c0, int64_t c1, int64_t B, int64_t T, int64_t C, int64_t K,
                             const float *x, const float *w, const float *dy, float *dx, float *dw);

/// The causal Monarch mixer in factored form. For head h (channels [h·C/H, (h+1)·C/H))
/// and t = t1·p + t2: y[t] = Σ_{s1 < t1} L1[h,t2,t1,s1] · u[s1·p + t2] + L1[h,t2,t1,t1] · ut[t1·p + t2],
/// where u = L2[h,s1] · x_{s1} and ut = tril(L2[h,s1]) · x_{s1} over the blocks x_{s1} of
/// p positions (zero past T). T <= p·p.
typedef struct {
    int64_t B, T, C, H, p;
    const float *L1, *L2;   ///< [H, p, p, p] each
    const float *x;         ///< [B, T, C]
    float *u, *ut;          ///< [B, nb·p, C], nb = ceil(T/p): written by forward, read by backward
    float *y;               ///< [B, T, C]
} slm_monarch_args;
/// Tasks are (batch, head) pairs, task = b·H + h.
void slm_monarch_fwd(const slm_monarch_args *a, int64_t task_begin, int64_t task_end);
/// Heads [head_begin, head_end), every batch (so each head's dL1, dL2 have one writer).
/// Adds into dx, dL1, dL2; du and dut are scratch of u's size.
void slm_monarch_bwd(const slm_monarch_args *a, const float *dy, float *dx, float *dL1, float *dL2,
                     float *du, float *dut, int64_t head_begin, int64_t head_end);

// MARK: - Per-ISA kernel tables (for tests and benchmarks that compare versions)

typedef struct {
    void (*add)(int64_t, const float *, const float *, float *);
    void (*sub)(int64_t, const float *, const float *, float *);
    void (*mul)(int64_t, const float *, const float *, float *);
    void (*scale)(int64_t, float, const float *, float *);
    void (*axpy)(int64_t, float, const float *, float *);
    void (*add_rowvec)(int64_t, int64_t, const float *, const float *, float *);
    void (*colsum_acc)(int64_t, int64_t, const float *, float *);
    double (*sum)(int64_t, const float *);
    double (*sumsq)(int64_t, const float *);
    void (*dropout_fwd)(int64_t, uint64_t, int64_t, float, const float *, float *);
    void (*dropout_bwd)(int64_t, uint64_t, int64_t, float, const float *, float *);
    void (*adamw)(int64_t, const slm_adamw_args *, float *, const float *, float *, float *);
    void (*gelu_fwd)(int64_t, const float *, float *);
    void (*gelu_bwd)(int64_t, const float *, const float *, float *);
    void (*silu_fwd)(int64_t, const float *, float *);
    void (*silu_bwd)(int64_t, const float *, const float *, float *);
    void (*swiglu_fwd)(int64_t, const float *, const float *, float *);
    void (*swiglu_bwd)(int64_t, const float *, const float *, const float *, float *, float *);
    void (*softmax_fwd)(int64_t, int64_t, const float *, float *);
    void (*softmax_bwd)(int64_t, int64_t, const float *, const float *, float *);
    void (*layernorm_fwd)(int64_t, int64_t, const float *, const float *, const float *, float,
                          float *, float *, float *);
    void (*layernorm_bwd)(int64_t, int64_t, const float *, const float *, const float *,
                          const float *, const float *, float *, float *, float *);
    void (*rmsnorm_fwd)(int64_t, int64_t, const float *, const float *, float, float *, float *);
    void (*rmsnorm_bwd)(int64_t, int64_t, const float *, const float *, const float *,
                        const float *, float *, float *);
    void (*xent_fwd)(int64_t, int64_t, const float *, const int32_t *, int32_t, float *, float *);
    void (*xent_bwd)(int64_t, int64_t, const float *, const int32_t *, int32_t, const float *,
                     float, float *);
    void (*attention_fwd)(const slm_attention_args *, int64_t, int64_t);
    void (*attention_bwd)(const slm_attention_args *, const float *, float *, float *, float *,
                          int64_t, int64_t);
    void (*gemv_f32)(int64_t, int64_t, const float *, const float *, const float *, float *, int);
    void (*batched_gemv_f32)(int64_t, int64_t, int64_t, const float *, const float *, int64_t, const float *,
                             float *, int64_t, int);
    void (*gemv_i8)(int64_t, int64_t, const int8_t *, const float *, const float *, const float *,
                    float *, int);
    void (*gemv_t2)(int64_t, int64_t, const uint8_t *, const float *, const int8_t *, int32_t, float,
                    const float *, float *, int);
    void (*attention_decode)(const slm_attention_decode_args *, int64_t, int64_t);
    void (*kv_store)(slm_kv_format, int64_t, int64_t, int64_t, int64_t, int64_t, const float *, const float *, void *, void *);
    void (*sigmoid_fwd)(int64_t, const float *, float *);
    void (*sigmoid_bwd)(int64_t, const float *, const float *, float *);
    void (*softmax_cols_fwd)(int64_t, int64_t, const float *, float *);
    void (*softmax_cols_bwd)(int64_t, int64_t, const float *, const float *, float *);
    void (*causal_conv_fwd)(int64_t, int64_t, int64_t, int64_t, int64_t, const float *, const float *, float *);
    void (*causal_conv_bwd_data)(int64_t, int64_t, int64_t, int64_t, int64_t, const float *, const float *, float *);
    void (*causal_conv_bwd_weight)(int64_t, int64_t, int64_t, int64_t, int64_t, const float *, const float *, float *);
    void (*monarch_fwd)(const slm_monarch_args *, int64_t, int64_t);
    void (*monarch_bwd)(const slm_monarch_args *, const float *, float *, float *, float *, float *, float *,
                        int64_t, int64_t);
} slm_kernel_table;

/// The kernels built for `isa` (the scalar table when this CPU or build lacks it).
const slm_kernel_table *slm_kernel_table_for(slm_isa isa);

// MARK: - Scalar reference versions (tests compare the fast kernels against these)

void slm_add_ref(int64_t n, const float *a, const float *b, float *y);
void slm_sub_ref(int64_t n, const float *a, const float *b, float *y);
void slm_mul_ref(int64_t n, const float *a, const float *b, float *y);
void slm_scale_ref(int64_t n, float alpha, const float *x, float *y);
double slm_sum_ref(int64_t n, const float *x);
double slm_sumsq_ref(int64_t n, const float *x);
void slm_dropout_fwd_ref(int64_t n, uint64_t seed, int64_t offset, float p, const float *x, float *y);
void slm_dropout_bwd_ref(int64_t n, uint64_t seed, int64_t offset, float p, const float *dy, float *dx);
void slm_adamw_ref(int64_t n, const slm_adamw_args *a, float *w, const float *g, float *m, float *v);
void slm_axpy_ref(int64_t n, float alpha, const float *x, float *y);
void slm_add_rowvec_ref(int64_t rows, int64_t cols, const float *x, const float *b, float *y);
void slm_colsum_acc_ref(int64_t rows, int64_t cols, const float *dy, float *db);
void slm_gelu_fwd_ref(int64_t n, const float *x, float *y);
void slm_gelu_bwd_ref(int64_t n, const float *x, const float *dy, float *dx);
void slm_silu_fwd_ref(int64_t n, const float *x, float *y);
void slm_silu_bwd_ref(int64_t n, const float *x, const float *dy, float *dx);
void slm_swiglu_fwd_ref(int64_t n, const float *g, const float *u, float *y);
void slm_swiglu_bwd_ref(int64_t n, const float *g, const float *u, const float *dy,
                        float *dg, float *du);
void slm_softmax_fwd_ref(int64_t rows, int64_t cols, const float *x, float *y);
void slm_softmax_bwd_ref(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx);
void slm_layernorm_fwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                           const float *b, float eps, float *y, float *mean, float *rstd);
void slm_layernorm_bwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                           const float *mean, const float *rstd, const float *dy,
                           float *dx, float *dw, float *db);
void slm_rmsnorm_fwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                         float eps, float *y, float *rstd);
void slm_rmsnorm_bwd_ref(int64_t rows, int64_t cols, const float *x, const float *w,
                         const float *rstd, const float *dy, float *dx, float *dw);
void slm_xent_fwd_ref(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                      int32_t ignore_index, float *loss, float *lse);
void slm_xent_bwd_ref(int64_t rows, int64_t cols, const float *logits, const int32_t *targets,
                      int32_t ignore_index, const float *lse, float scale, float *dlogits);
void slm_attention_fwd_ref(const slm_attention_args *a, int64_t task_begin, int64_t task_end);
void slm_attention_bwd_ref(const slm_attention_args *a, const float *dout, float *dq, float *dk,
                           float *dv, int64_t task_begin, int64_t task_end);
void slm_f32_to_bf16_ref(int64_t n, const float *x, uint16_t *y);
void slm_batched_gemv_f32_ref(int64_t n, int64_t rows, int64_t cols, const float *w, const float *x, int64_t ldx,
                              const float *bias, float *y, int64_t ldy, int accumulate);
void slm_gemv_f32_ref(int64_t rows, int64_t cols, const float *w, const float *x, const float *bias,
                      float *y, int accumulate);
void slm_gemv_t2_ref(int64_t rows, int64_t cols, const uint8_t *wq, const float *scales, const int8_t *xq,
                     int32_t xq_sum, float x_scale, const float *bias, float *y, int accumulate);
void slm_gemv_i8_ref(int64_t rows, int64_t cols, const int8_t *wq, const float *scales,
                     const float *x, const float *bias, float *y, int accumulate);
void slm_attention_decode_ref(const slm_attention_decode_args *a, int64_t head_begin, int64_t head_end);
void slm_kv_store_ref(slm_kv_format kv, int64_t Hkv, int64_t D, int64_t ldk, int64_t ldv, int64_t pos,
                      const float *k, const float *v, void *kt, void *vc);
void slm_sigmoid_fwd_ref(int64_t n, const float *x, float *y);
void slm_sigmoid_bwd_ref(int64_t n, const float *y, const float *dy, float *dx);
void slm_softmax_cols_fwd_ref(int64_t rows, int64_t cols, const float *x, float *y);
void slm_softmax_cols_bwd_ref(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx);
void slm_causal_conv_fwd_ref(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                             const float *wt, float *y);
void slm_causal_conv_bwd_data_ref(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *dy,
                                  const float *wt, float *dx);
void slm_causal_conv_bwd_weight_ref(int64_t r0, int64_t r1, int64_t T, int64_t C, int64_t K, const float *x,
                                    const float *dy, float *dwt);
void slm_monarch_fwd_ref(const slm_monarch_args *a, int64_t task_begin, int64_t task_end);
void slm_monarch_bwd_ref(const slm_monarch_args *a, const float *dy, float *dx, float *dL1, float *dL2,
                         float *du, float *dut, int64_t head_begin, int64_t head_end);

// MARK: - Matrix multiply (row-major): C = alpha * op(A) op(B) + beta * C

typedef enum {
    SLM_GEMM_REFERENCE = 0,  ///< the plain loops below, always available
    SLM_GEMM_CBLAS = 1,      ///< OpenBLAS (or another CBLAS) loaded at run time
    SLM_GEMM_ONEDNN = 2,     ///< oneDNN matmul primitives, loaded at run time
    SLM_GEMM_ACCELERATE = 3, ///< Apple Accelerate
} slm_gemm_backend;

/// Loads the fastest backend available (once; later calls return it). The order is
/// oneDNN, Accelerate, CBLAS, reference; SLM_GEMM_BACKEND=onednn|cblas|reference
/// overrides it. Safe to call from any thread.
slm_gemm_backend slm_gemm_init(void);
slm_gemm_backend slm_gemm_backend_active(void);
const char *slm_gemm_backend_name(slm_gemm_backend b);
/// Why a preferred backend could not be loaded (empty when nothing failed).
const char *slm_gemm_load_notes(void);
/// Threads the BLAS library may use.
void slm_gemm_set_threads(int n);

/// Batched: for i in [0, batch): C_i = alpha*op(A_i)op(B_i) + beta*C_i with
/// A_i = A + i*stride_a (stride 0 broadcasts one matrix), likewise B and C.
/// op(A) is M x K, op(B) is K x N, C is M x N. Returns 0 on success.
int slm_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc, int64_t batch, int64_t stride_a, int64_t stride_b,
              int64_t stride_c);
/// Same with bfloat16 operands and float32 accumulation and output.
int slm_gemm_bf16(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float beta,
                  float *C, int64_t ldc, int64_t batch, int64_t stride_a, int64_t stride_b,
                  int64_t stride_c);
/// The plain triple loop, for tests.
void slm_sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc);

// MARK: - Machine peaks (for benchmark shares of peak)

/// FLOP/s one thread reaches with independent fused multiply-adds at the widest
/// vector width (bf16 != 0: vdpbf16ps, counted as 2 FLOP per bf16 pair), over about
/// `seconds`. Returns 0 when the CPU lacks the instructions.
double slm_measure_fma_flops(int bf16, double seconds);
/// Bytes/s one thread streams through a read+write triad over `bytes` of memory.
double slm_measure_triad_bandwidth(int64_t bytes, int repeats);

// MARK: - Standard output (for the command-line tool)

/// Line-buffers stdout so progress reaches pipes and log files as it is printed.
void slm_stdout_line_buffered(void);
void slm_stdout_flush(void);

#ifdef __cplusplus
}
#endif
#endif
