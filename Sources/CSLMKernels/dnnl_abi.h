// The few parts of oneDNN 2.x's C ABI that gemm.c uses, declared here so that the build
// never needs oneDNN's headers: the library is found with dlopen when the program starts,
// and installing it later takes effect without a rebuild. Values are those of oneDNN
// 2.0–2.7 (dnnl_types.h); oneDNN 3 changed this API and is not used.
#ifndef SLM_DNNL_ABI_H
#define SLM_DNNL_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef int dnnl_status_t;          // dnnl_success = 0
typedef int dnnl_data_type_t;
typedef int dnnl_engine_kind_t;
typedef int64_t dnnl_dim_t;
typedef dnnl_dim_t dnnl_dims_t[12]; // DNNL_MAX_NDIMS

enum {
    dnnl_success = 0,
    dnnl_bf16 = 2,
    dnnl_f32 = 3,
    dnnl_cpu = 1,
    dnnl_stream_default_flags = 1,
    DNNL_ARG_SRC = 1,
    DNNL_ARG_DST = 17,
    DNNL_ARG_WEIGHTS = 33,
};
#define DNNL_MEMORY_NONE NULL

typedef struct slm_dnnl_opaque *dnnl_engine_t, *dnnl_stream_t, *dnnl_memory_t, *dnnl_primitive_t,
    *dnnl_primitive_desc_t, *dnnl_primitive_attr_t, *dnnl_post_ops_t;

// Descriptors are plain structs that the library fills in and reads through pointers; only
// their size matters here. oneDNN 2.6 has 696 bytes (memory) and 2,800 (matmul), so these
// buffers leave room for every 2.x release.
typedef struct { _Alignas(16) unsigned char bytes[2048]; } dnnl_memory_desc_t;
typedef struct { _Alignas(16) unsigned char bytes[8192]; } dnnl_matmul_desc_t;

typedef struct {
    int arg;
    dnnl_memory_t memory;
} dnnl_exec_arg_t;

typedef struct {
    int major, minor, patch;
    const char *hash;
    unsigned cpu_runtime, gpu_runtime;
} dnnl_version_t;

// The functions, as pointer types for dlsym.
typedef const dnnl_version_t *(*dnnl_version_fn)(void);
typedef dnnl_status_t (*dnnl_set_primitive_cache_capacity_fn)(int);
typedef dnnl_status_t (*dnnl_engine_create_fn)(dnnl_engine_t *, dnnl_engine_kind_t, size_t);
typedef dnnl_status_t (*dnnl_stream_create_fn)(dnnl_stream_t *, dnnl_engine_t, unsigned);
typedef dnnl_status_t (*dnnl_stream_wait_fn)(dnnl_stream_t);
typedef dnnl_status_t (*dnnl_memory_desc_init_by_strides_fn)(dnnl_memory_desc_t *, int, const dnnl_dims_t,
                                                             dnnl_data_type_t, const dnnl_dims_t);
typedef dnnl_status_t (*dnnl_memory_create_fn)(dnnl_memory_t *, const dnnl_memory_desc_t *, dnnl_engine_t, void *);
typedef dnnl_status_t (*dnnl_memory_set_data_handle_fn)(dnnl_memory_t, void *);
typedef dnnl_status_t (*dnnl_memory_destroy_fn)(dnnl_memory_t);
typedef dnnl_status_t (*dnnl_matmul_desc_init_fn)(dnnl_matmul_desc_t *, const dnnl_memory_desc_t *,
                                                  const dnnl_memory_desc_t *, const dnnl_memory_desc_t *,
                                                  const dnnl_memory_desc_t *);
typedef dnnl_status_t (*dnnl_primitive_attr_create_fn)(dnnl_primitive_attr_t *);
typedef dnnl_status_t (*dnnl_primitive_attr_destroy_fn)(dnnl_primitive_attr_t);
typedef dnnl_status_t (*dnnl_primitive_attr_set_output_scales_fn)(dnnl_primitive_attr_t, dnnl_dim_t, int, const float *);
typedef dnnl_status_t (*dnnl_primitive_attr_set_post_ops_fn)(dnnl_primitive_attr_t, dnnl_post_ops_t);
typedef dnnl_status_t (*dnnl_post_ops_create_fn)(dnnl_post_ops_t *);
typedef dnnl_status_t (*dnnl_post_ops_destroy_fn)(dnnl_post_ops_t);
typedef dnnl_status_t (*dnnl_post_ops_append_sum_fn)(dnnl_post_ops_t, float);
typedef dnnl_status_t (*dnnl_primitive_desc_create_fn)(dnnl_primitive_desc_t *, const void *op_desc,
                                                       dnnl_primitive_attr_t, dnnl_engine_t, dnnl_primitive_desc_t);
typedef dnnl_status_t (*dnnl_primitive_desc_destroy_fn)(dnnl_primitive_desc_t);
typedef dnnl_status_t (*dnnl_primitive_create_fn)(dnnl_primitive_t *, dnnl_primitive_desc_t);
typedef dnnl_status_t (*dnnl_primitive_execute_fn)(dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t *);
typedef dnnl_status_t (*dnnl_primitive_destroy_fn)(dnnl_primitive_t);

#endif
