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

// In-place sum over all ranks of `count` bfloat16 values (uint16 bit patterns), each
// addition done in fp32 and rounded to nearest even. 0 on success.
int slm_mpi_allreduce_bf16(uint16_t *buffer, int64_t count);

// MPI_Abort on the world communicator: every rank stops.
void slm_mpi_abort(int code);

// MPI_Finalize. 0 on success.
int slm_mpi_finalize(void);

#endif
