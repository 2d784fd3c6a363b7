// Internal to CSLMKernels.
#ifndef SLM_INTERNAL_H
#define SLM_INTERNAL_H
#include "slm_kernels.h"


extern const slm_kernel_table slm_kernels_avx512;
extern const slm_kernel_table slm_kernels_avx2;

uint16_t slm_bf16_round(float f);

// Dropout's counter-based hash: two rounds of MurmurHash3's 32-bit finaliser over the
// element index, keyed by the two halves of the seed. The SIMD versions compute the same
// integers lane by lane, so every version drops the same elements.
static inline uint32_t slm_fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t slm_dropout_hash(uint64_t seed, uint32_t index) {
    uint32_t h = slm_fmix32(index * 0x9e3779b1u + (uint32_t)seed);
    return slm_fmix32(h ^ (uint32_t)(seed >> 32));
}

// Row strides of an attention call, with 0 meaning packed.
static inline int64_t slm_attention_ldq(const slm_attention_args *a) { return a->ldq ? a->ldq : a->Hq * a->D; }
static inline int64_t slm_attention_ldkv(const slm_attention_args *a) { return a->ldkv ? a->ldkv : a->Hkv * a->D; }

// Elements whose hash, shifted to 24 bits, is below this are dropped.
static inline uint32_t slm_dropout_threshold(float p) { return (uint32_t)((double)p * 16777216.0); }
void slm_f32_to_bf16_avx512bf16(int64_t n, const float *x, uint16_t *y);

#endif
