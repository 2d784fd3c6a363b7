import CSLMKernels

/// Row-major matrix multiply, C = alpha * op(A) op(B) + beta * C, on the fastest backend
/// found at run time (oneDNN, Accelerate, CBLAS, else plain loops).
public enum Gemm {
    public static var backendName: String {
        String(cString: slm_gemm_backend_name(slm_gemm_init()))
    }

    /// Why a faster backend was not loaded, if one was not.
    public static var loadNotes: String { String(cString: slm_gemm_load_notes()) }

    /// op(A) is m x k, op(B) is k x n, C is m x n; `batch` matrices apart by the strides
    /// (a stride of 0 reuses one matrix for the whole batch).
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                             batch: Int = 1, strideA: Int = 0, strideB: Int = 0, strideC: Int = 0) {
        Parallel.prepareBLAS()
        let rc = slm_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha,
                           a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc),
                           Int64(batch), Int64(strideA), Int64(strideB), Int64(strideC))
        precondition(rc == 0, "sgemm: backend failed for \(m)x\(n)x\(k)")
    }

    /// Same with bfloat16 operands, float32 accumulation and output.
    public static func gemmBF16(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                                beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                                batch: Int = 1, strideA: Int = 0, strideB: Int = 0, strideC: Int = 0) {
        Parallel.prepareBLAS()
        let rc = slm_gemm_bf16(transA ? 1 : 0, transB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha,
                               a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc),
                               Int64(batch), Int64(strideA), Int64(strideB), Int64(strideC))
        precondition(rc == 0, "gemmBF16: backend failed for \(m)x\(n)x\(k)")
    }
}
