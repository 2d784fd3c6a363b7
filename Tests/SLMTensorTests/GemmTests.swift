import CSLMKernels
import SLMTestSupport
import Testing
@testable import SLMTensor

/// The active matrix-multiply backend against the plain reference loop.
@Suite struct GemmTests {
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func allTransposes(_ flags: (Bool, Bool)) {
        let (ta, tb) = flags
        for (m, n, k) in [(1, 1, 1), (5, 7, 3), (64, 48, 96), (33, 17, 130)] {
            let a = randomArray(m * k, seed: 1), b = randomArray(k * n, seed: 2)
            let c0 = randomArray(m * n, seed: 3)
            let lda = ta ? m : k, ldb = tb ? k : n
            for (alpha, beta) in [(Float(1), Float(0)), (1, 1), (0.5, -2)] {
                var got = c0, want = c0
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        Gemm.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                   b: pb.baseAddress!, ldb: ldb, beta: beta, c: &got, ldc: n)
                    }
                }
                slm_sgemm_ref(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb),
                              beta, &want, Int64(n))
                expectClose(got, want, tolerance: 1e-3)
            }
        }
    }

    @Test func batchedWithSharedOperand() {
        let batch = 3, m = 4, n = 5, k = 6
        let a = randomArray(batch * m * k, seed: 4), b = randomArray(k * n, seed: 5)
        var got = [Float](repeating: 0, count: batch * m * n), want = got
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                Gemm.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!,
                           ldb: n, c: &got, ldc: n, batch: batch, strideA: m * k, strideB: 0, strideC: m * n)
            }
        }
        for i in 0..<batch {
            want.withUnsafeMutableBufferPointer { w in
                a.withUnsafeBufferPointer { pa in
                    slm_sgemm_ref(0, 0, Int64(m), Int64(n), Int64(k), 1, pa.baseAddress! + i * m * k, Int64(k), b, Int64(n), 0,
                                  w.baseAddress! + i * m * n, Int64(n))
                }
            }
        }
        expectClose(got, want, tolerance: 1e-4)
    }

    @Test func bfloat16OperandsAccumulateInFloat() {
        let m = 16, n = 24, k = 40
        let a = randomArray(m * k, seed: 6), b = randomArray(n * k, seed: 7)
        var a16 = [UInt16](repeating: 0, count: a.count), b16 = [UInt16](repeating: 0, count: b.count)
        slm_f32_to_bf16_ref(Int64(a.count), a, &a16)
        slm_f32_to_bf16_ref(Int64(b.count), b, &b16)
        // The exact product of the bf16-rounded operands, computed in fp32 reference loops.
        var ar = [Float](repeating: 0, count: a.count), br = [Float](repeating: 0, count: b.count)
        slm_bf16_to_f32(Int64(a.count), a16, &ar)
        slm_bf16_to_f32(Int64(b.count), b16, &br)
        var got = [Float](repeating: 0, count: m * n), want = got
        Gemm.gemmBF16(transA: false, transB: true, m: m, n: n, k: k, a: a16, lda: k, b: b16, ldb: k, c: &got, ldc: n)
        slm_sgemm_ref(0, 1, Int64(m), Int64(n), Int64(k), 1, ar, Int64(k), br, Int64(k), 0, &want, Int64(n))
        expectClose(got, want, tolerance: 1e-3)
    }

    /// More distinct shapes than the primitive cache holds: entries get replaced and every
    /// result must still be right.
    @Test func manyShapesStayCorrect() {
        let n = 8, k = 12
        let b = randomArray(k * n, seed: 8)
        for m in 1...300 {
            let a = randomArray(m * k, seed: UInt64(m))
            var got = [Float](repeating: 0, count: m * n), want = got
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    Gemm.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                               b: pb.baseAddress!, ldb: n, c: &got, ldc: n)
                }
            }
            slm_sgemm_ref(0, 0, Int64(m), Int64(n), Int64(k), 1, a, Int64(k), b, Int64(n), 0, &want, Int64(n))
            if maxAbsDifference(got, want) > 1e-4 {
                Issue.record("m = \(m): max difference \(maxAbsDifference(got, want))")
                return
            }
        }
    }

    @Test func backendIsReported() {
        #expect(["onednn", "cblas", "accelerate", "reference"].contains(Gemm.backendName))
    }
}
