#ifndef SLM_MPI_H
#define SLM_MPI_H

#include <stddef.h>
#include <stdint.h>

// MPI found at run time: OpenMPI's libmpi.so.40 is opened with dlopen and the few calls
// swift-slm uses are declared here, so neither the build nor a single-process run needs
// MPI. OpenMPI's handles (communicator, datatypes, operations) are the addresses of its
// global objects (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum); MPICH's are
// integers, so this shim speaks OpenMPI's ABI only.

// Opens the library (SLM_MPI_LIBRARY, else libmpi.so.40) and looks up every symbol.
// Returns 0, or -1 with a reason in `error`.
int slm_mpi_load(char *error, size_t error_size);

// MPI_Init, then this process's rank and the number of ranks. 0 on success.
int slm_mpi_init(int *rank, int *size);

// In-place sum over all ranks of `count` floats. 0 on success.
int slm_mpi_allreduce_f32(float *buffer, int64_t count);

// Starts an in-place sum over all ranks of `count` values and returns at once with a handle
// in `request`. The values are floats, or bfloat16 bit patterns when `bf16` is 1 (each
// addition then done in fp32 and rounded to nearest even). The buffer must stay untouched
// until slm_mpi_test reports the sum done or slm_mpi_wait returns. Every rank must start
// the same sums in the same order. 0 on success.
int slm_mpi_start_allreduce(void *buffer, int count, int bf16, void **request);

// Whether the sum behind `request` is done (`done` = 1; the handle is then released); also
// moves outstanding transfers on, which OpenMPI does only inside MPI calls. 0 on success.
int slm_mpi_test(void **request, int *done);

// Waits for the sum behind `request` and releases the handle. 0 on success.
int slm_mpi_wait(void **request);

// MPI_Abort on the world communicator: every rank stops.
void slm_mpi_abort(int code);

// MPI_Finalize. 0 on success.
int slm_mpi_finalize(void);

#endif
