// Internal to CSLMKernels.
#ifndef SLM_INTERNAL_H
#define SLM_INTERNAL_H
#include "slm_kernels.h"


extern const slm_kernel_table slm_kernels_avx512;
extern const slm_kernel_table slm_kernels_avx2;

uint16_t slm_bf16_round(float f);
void slm_f32_to_bf16_avx512bf16(int64_t n, const float *x, uint16_t *y);

#endif
