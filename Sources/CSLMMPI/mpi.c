#include "slm_mpi.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// OpenMPI's C types are pointers to opaque structs; as handles we only pass them on.
typedef void *mpi_handle;
typedef void (*mpi_user_function)(void *in, void *inout, int *len, mpi_handle *datatype);

static struct {
    int (*init)(int *, char ***);
    int (*comm_rank)(mpi_handle, int *);
    int (*comm_size)(mpi_handle, int *);
    int (*allreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle);
    int (*iallreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle, mpi_handle *);
    int (*test)(mpi_handle *, int *, void *);
    int (*wait)(mpi_handle *, void *);
    int (*op_create)(mpi_user_function, int, mpi_handle *);
    int (*abort)(mpi_handle, int);
    int (*finalize)(void);
    mpi_handle comm_world, float_type, uint16_type, op_sum;
    mpi_handle bf16_sum;
    int loaded;
} mpi;

// OpenMPI defines MPI_IN_PLACE as ((void *) 1) and MPI_STATUS_IGNORE as a null pointer.
#define SLM_MPI_IN_PLACE ((void *)1)
#define SLM_MPI_STATUS_IGNORE ((void *)0)

int slm_mpi_load(char *error, size_t error_size) {
    if (mpi.loaded) return 0;
    const char *name = getenv("SLM_MPI_LIBRARY");
    if (!name || !*name) name = "libmpi.so.40";
    // RTLD_GLOBAL: OpenMPI loads its own components with dlopen and they need its symbols.
    void *h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(error, error_size, "could not open %s (%s); install OpenMPI (Debian: apt-get install openmpi-bin)", name, dlerror());
        return -1;
    }
    struct { void **slot; const char *symbol; } table[] = {
        {(void **)&mpi.init, "MPI_Init"},
        {(void **)&mpi.comm_rank, "MPI_Comm_rank"},
        {(void **)&mpi.comm_size, "MPI_Comm_size"},
        {(void **)&mpi.allreduce, "MPI_Allreduce"},
        {(void **)&mpi.iallreduce, "MPI_Iallreduce"},
        {(void **)&mpi.test, "MPI_Test"},
        {(void **)&mpi.wait, "MPI_Wait"},
        {(void **)&mpi.op_create, "MPI_Op_create"},
        {(void **)&mpi.abort, "MPI_Abort"},
        {(void **)&mpi.finalize, "MPI_Finalize"},
        {(void **)&mpi.comm_world, "ompi_mpi_comm_world"},
        {(void **)&mpi.float_type, "ompi_mpi_float"},
        {(void **)&mpi.uint16_type, "ompi_mpi_uint16_t"},
        {(void **)&mpi.op_sum, "ompi_mpi_op_sum"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        *table[i].slot = dlsym(h, table[i].symbol);
        if (!*table[i].slot) {
            snprintf(error, error_size, "%s has no %s: only OpenMPI's ABI is supported (MPICH is not)", name, table[i].symbol);
            return -1;
        }
    }
    mpi.loaded = 1;
    return 0;
}

static float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static void bf16_sum(void *in, void *inout, int *len, mpi_handle *datatype) {
    (void)datatype;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

int slm_mpi_init(int *rank, int *size) {
    if (!mpi.loaded) return -1;
    if (mpi.init(NULL, NULL) != 0) return -1;
    if (mpi.comm_rank(mpi.comm_world, rank) != 0 || mpi.comm_size(mpi.comm_world, size) != 0) return -1;
    return mpi.op_create(bf16_sum, 1, &mpi.bf16_sum);
}

// MPI counts are ints: long buffers go in slices.
int slm_mpi_allreduce_f32(float *buffer, int64_t count) {
    for (int64_t start = 0; start < count; start += INT_MAX / 2) {
        int n = (int)(count - start < INT_MAX / 2 ? count - start : INT_MAX / 2);
        if (mpi.allreduce(SLM_MPI_IN_PLACE, buffer + start, n, mpi.float_type, mpi.op_sum, mpi.comm_world) != 0) return -1;
    }
    return 0;
}

int slm_mpi_start_allreduce(void *buffer, int count, int bf16, void **request) {
    return mpi.iallreduce(SLM_MPI_IN_PLACE, buffer, count, bf16 ? mpi.uint16_type : mpi.float_type,
                          bf16 ? mpi.bf16_sum : mpi.op_sum, mpi.comm_world, request);
}

int slm_mpi_test(void **request, int *done) { return mpi.test(request, done, SLM_MPI_STATUS_IGNORE); }

int slm_mpi_wait(void **request) { return mpi.wait(request, SLM_MPI_STATUS_IGNORE); }

void slm_mpi_abort(int code) {
    if (mpi.loaded) mpi.abort(mpi.comm_world, code);
    exit(code);
}

int slm_mpi_finalize(void) { return mpi.loaded ? mpi.finalize() : 0; }
