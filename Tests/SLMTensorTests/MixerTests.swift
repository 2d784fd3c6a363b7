import CSLMKernels
import Foundation
import SLMTestSupport
import Testing
@testable import SLMTensor

/// The sequence mixers of MonarchSLM and SymbioSLM: values against their definitions,
/// gradients against finite differences, SIMD kernels against the scalar references.
@Suite struct MixerTests {
    // MARK: Values

    @Test func causalConvByHand() {
        // One channel, taps [0.5, 2]: y[t] = 0.5·x[t−1] + 2·x[t].
        let x = Tensor([1, 2, 3], shape: [1, 3, 1]), w = Tensor([0.5, 2], shape: [1, 2])
        #expect(causalConv(x, weight: w).toArray() == [2, 4.5, 7])
        // A kernel longer than the sequence sees only the positions that exist.
        let long = Tensor([9, 9, 1, 10], shape: [1, 4])
        #expect(causalConv(x, weight: long).toArray() == [10, 21, 41])  // 10·3 + 1·2 + 9·1
    }

    /// The FFT form against the direct one: kernels shorter than, as long as and longer
    /// than the sequence, several sequences, and a length that is not a power of two.
    @Test(arguments: [(1, 3, 2, 2), (2, 7, 5, 7), (3, 16, 4, 9), (2, 33, 6, 64), (1, 300, 3, 300)])
    func fftFormMatchesTheDirectForm(_ sizes: (Int, Int, Int, Int)) {
        let (B, T, C, K) = sizes
        let x = randomTensor([B, T, C], seed: 21), w = randomTensor([C, K], seed: 22, scale: 0.3)
        let g = randomTensor([B, T, C], seed: 23)
        var results: [[Float]] = []
        for form in [ConvolutionForm.direct, .fft] {
            x.requiresGrad = true
            w.requiresGrad = true
            x.clearGrad()
            w.clearGrad()
            let y = causalConv(x, weight: w, form: form)
            y.backward(gradient: g)
            results.append(y.toArray() + x.grad!.toArray() + w.grad!.toArray())
        }
        expectClose(results[1], results[0], tolerance: 2e-4 * Float(K).squareRoot())
    }

    @Test func fftFormGradients() {
        let x = randomTensor([2, 6, 5], seed: 7)
        expectGradients([x, randomTensor([5, 6], seed: 12, scale: 0.3)]) { causalConv($0[0], weight: $0[1], form: .fft) }
        expectGradients([x, randomTensor([5, 9], seed: 13, scale: 0.3)]) { causalConv($0[0], weight: $0[1], form: .fft) }
    }

    /// The dense reference: M_h = Pᵀ·B(L1[h])·P·B(L2[h]) as explicit T×T matrices, masked
    /// to s ≤ t, applied to each head's channels. Plain loops, nothing shared with the op.
    static func denseMonarch(_ x: [Float], B: Int, T: Int, C: Int, l1: [Float], l2: [Float], H: Int, p: Int) -> [Float] {
        let n = p * p, dh = C / H
        func blockDiagonal(_ l: [Float], head h: Int) -> [[Double]] {
            var m = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
            for b in 0..<p { for i in 0..<p { for j in 0..<p { m[b * p + i][b * p + j] = Double(l[((h * p + b) * p + i) * p + j]) } } }
            return m
        }
        var perm = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)  // (P·v)[a·p+b] = v[b·p+a]
        for a in 0..<p { for b in 0..<p { perm[a * p + b][b * p + a] = 1 } }
        func product(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
            (0..<n).map { i in (0..<n).map { j in (0..<n).reduce(0) { $0 + a[i][$1] * b[$1][j] } } }
        }
        let permT = (0..<n).map { i in (0..<n).map { j in perm[j][i] } }
        var y = [Float](repeating: 0, count: B * T * C)
        for h in 0..<H {
            let m = product(product(product(permT, blockDiagonal(l1, head: h)), perm), blockDiagonal(l2, head: h))
            for b in 0..<B { for t in 0..<T { for c in h * dh..<(h + 1) * dh {
                var s = 0.0
                for src in 0...t { s += m[t][src] * Double(x[(b * T + src) * C + c]) }
                y[(b * T + t) * C + c] = Float(s)
            } } }
        }
        return y
    }

    @Test(arguments: [(3, 9), (3, 7), (4, 16), (4, 5), (4, 1)])
    func monarchMatchesTheDenseMaskedMatrix(_ sizes: (Int, Int)) {
        let (p, T) = sizes, B = 2, H = 2, C = 6
        let x = randomTensor([B, T, C], seed: 1), l1 = randomTensor([H, p, p, p], seed: 2), l2 = randomTensor([H, p, p, p], seed: 3)
        let dense = Self.denseMonarch(x.toArray(), B: B, T: T, C: C, l1: l1.toArray(), l2: l2.toArray(), H: H, p: p)
        expectClose(monarchMix(x, l1: l1, l2: l2).toArray(), dense, tolerance: 1e-4)
    }

    @Test func monarchIsCausal() {
        // Changing a later position leaves every earlier output as it was.
        let x = randomTensor([1, 9, 4], seed: 4), l1 = randomTensor([2, 3, 3, 3], seed: 5), l2 = randomTensor([2, 3, 3, 3], seed: 6)
        let before = monarchMix(x, l1: l1, l2: l2).toArray()
        x.data[6 * 4 + 1] += 5
        let after = monarchMix(x, l1: l1, l2: l2).toArray()
        #expect(Array(before[0..<24]) == Array(after[0..<24]))
        #expect(before[6 * 4 + 1] != after[6 * 4 + 1])
    }

    @Test func sigmoidAndColumnSoftmaxValues() {
        expectClose(sigmoid(Tensor([0, 2, -3], shape: [3])).toArray(), [0.5, 0.880797, 0.047426], tolerance: 1e-5)
        let s = columnSoftmax(Tensor([0, 1, 0, 1, 0, 5], shape: [3, 2])).toArray()
        // Column 0: softmax(0, 0, 0); column 1: softmax(1, 1, 5).
        let e = Float(1 / (2 + exp(4.0)))
        expectClose(s, [1 / 3, e, 1 / 3, e, 1 / 3, 1 - 2 * e], tolerance: 1e-6)
    }

    // MARK: Gradients

    @Test func causalConvGradients() {
        let x = randomTensor([2, 6, 5], seed: 7)
        expectGradients([x, randomTensor([5, 4], seed: 8)]) { causalConv($0[0], weight: $0[1]) }
        // The long form: a kernel longer than the sequence.
        expectGradients([x, randomTensor([5, 8], seed: 9, scale: 0.3)]) { causalConv($0[0], weight: $0[1]) }
        // Wide enough for the SIMD body.
        expectGradients([randomTensor([2, 5, 37], seed: 10), randomTensor([37, 3], seed: 11)]) { causalConv($0[0], weight: $0[1]) }
    }

    @Test(arguments: [(2, 4), (3, 9), (3, 8), (4, 11)])
    func monarchGradients(_ sizes: (Int, Int)) {
        let (p, T) = sizes
        let x = randomTensor([2, T, 6], seed: 12), l1 = randomTensor([3, p, p, p], seed: 13, scale: 0.5)
        let l2 = randomTensor([3, p, p, p], seed: 14, scale: 0.5)
        let check = gradientCheck([x, l1, l2], samples: 64) { monarchMix($0[0], l1: $0[1], l2: $0[2]) }
        #expect(check.passed, "\(check.detail)")
    }

    @Test func sigmoidAndColumnSoftmaxGradients() {
        expectGradients([randomTensor([3, 37], seed: 15, scale: 2)]) { sigmoid($0[0]) }
        expectGradients([randomTensor([3, 37], seed: 16, scale: 2)]) { columnSoftmax($0[0]) }
    }

    // MARK: SIMD against the references

    static let isas: [slm_isa] = [SLM_ISA_AVX2, SLM_ISA_AVX512].filter { $0.rawValue <= slm_isa_detected().rawValue }

    @Test(arguments: isas)
    func convolutionKernels(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        // Short and long kernels, sequences that are not a multiple of the 4-row blocks,
        // channel counts with vector tails.
        for (T, C, K) in [(7, 37, 4), (6, 40, 9), (16, 64, 16), (5, 3, 2), (33, 40, 33), (23, 19, 64), (13, 48, 6), (4, 16, 7)] {
            let rows = 2 * T
            let x = randomArray(rows * C, seed: 20), wt = randomArray(K * C, seed: 21), dy = randomArray(rows * C, seed: 22)
            for (r0, r1) in [(0, rows), (3, rows - 2), (1, T + 2)] {
                var y1 = [Float](repeating: 0, count: rows * C), y2 = y1
                k.causal_conv_fwd(Int64(r0), Int64(r1), Int64(T), Int64(C), Int64(K), x, wt, &y1)
                slm_causal_conv_fwd_ref(Int64(r0), Int64(r1), Int64(T), Int64(C), Int64(K), x, wt, &y2)
                expectClose(y1, y2, tolerance: 1e-4)
                var dx1 = randomArray(rows * C, seed: 23), dx2 = dx1
                k.causal_conv_bwd_data(Int64(r0), Int64(r1), Int64(T), Int64(C), Int64(K), dy, wt, &dx1)
                slm_causal_conv_bwd_data_ref(Int64(r0), Int64(r1), Int64(T), Int64(C), Int64(K), dy, wt, &dx2)
                expectClose(dx1, dx2, tolerance: 1e-4)
                var dw1 = randomArray(K * C, seed: 24), dw2 = dw1
                k.causal_conv_bwd_weight(Int64(r0), Int64(r1), Int64(T), Int64(C), Int64(K), x, dy, &dw1)
                slm_causal_conv_bwd_weight_ref(Int64(r0), Int64(r1), Int64(T), Int64(C), Int64(K), x, dy, &dw2)
                expectClose(dw1, dw2, tolerance: 1e-3)
            }
        }
    }

    @Test(arguments: isas)
    func monarchKernels(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for (p, T, H, C) in [(4, 16, 2, 38), (4, 13, 2, 64), (8, 64, 4, 128), (5, 1, 1, 8)] {
            let B = 2, nb = (T + p - 1) / p, uCount = B * nb * p * C
            let x = randomArray(B * T * C, seed: 30), l1 = randomArray(H * p * p * p, seed: 31)
            let l2 = randomArray(H * p * p * p, seed: 32), dy = randomArray(B * T * C, seed: 33)
            func run(_ fwd: (UnsafePointer<slm_monarch_args>, Int64, Int64) -> Void,
                     _ bwd: (UnsafePointer<slm_monarch_args>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                             UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int64) -> Void)
                -> (y: [Float], dx: [Float], d1: [Float], d2: [Float]) {
                var u = [Float](repeating: 0, count: uCount), ut = u, du = u, dut = u
                var y = [Float](repeating: 0, count: B * T * C)
                var dx = randomArray(B * T * C, seed: 34), d1 = randomArray(l1.count, seed: 35), d2 = randomArray(l2.count, seed: 36)
                x.withUnsafeBufferPointer { px in l1.withUnsafeBufferPointer { p1 in l2.withUnsafeBufferPointer { p2 in
                    u.withUnsafeMutableBufferPointer { pu in ut.withUnsafeMutableBufferPointer { put in y.withUnsafeMutableBufferPointer { py in
                        var a = slm_monarch_args(B: Int64(B), T: Int64(T), C: Int64(C), H: Int64(H), p: Int64(p), L1: p1.baseAddress,
                                                 L2: p2.baseAddress, x: px.baseAddress, u: pu.baseAddress, ut: put.baseAddress, y: py.baseAddress)
                        fwd(&a, 0, Int64(B * H))
                        bwd(&a, dy, &dx, &d1, &d2, &du, &dut, 0, Int64(H))
                    } } }
                } } }
                return (y, dx, d1, d2)
            }
            let fast = run({ k.monarch_fwd($0, $1, $2) }, { k.monarch_bwd($0, $1, $2, $3, $4, $5, $6, $7, $8) })
            let reference = run({ slm_monarch_fwd_ref($0, $1, $2) }, { slm_monarch_bwd_ref($0, $1, $2, $3, $4, $5, $6, $7, $8) })
            expectClose(fast.y, reference.y, tolerance: 1e-3)
            expectClose(fast.dx, reference.dx, tolerance: 1e-3)
            expectClose(fast.d1, reference.d1, tolerance: 1e-3)
            expectClose(fast.d2, reference.d2, tolerance: 1e-3)
        }
    }

    @Test(arguments: isas)
    func gateKernels(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for cols in [1, 8, 37] {
            let x = randomArray(3 * cols, seed: 40, scale: 3), dy = randomArray(3 * cols, seed: 41)
            var y1 = [Float](repeating: 0, count: 3 * cols), y2 = y1
            k.softmax_cols_fwd(3, Int64(cols), x, &y1)
            slm_softmax_cols_fwd_ref(3, Int64(cols), x, &y2)
            expectClose(y1, y2, tolerance: 1e-6)
            var dx1 = randomArray(3 * cols, seed: 42), dx2 = dx1
            k.softmax_cols_bwd(3, Int64(cols), y2, dy, &dx1)
            slm_softmax_cols_bwd_ref(3, Int64(cols), y2, dy, &dx2)
            expectClose(dx1, dx2, tolerance: 1e-6)
            k.sigmoid_fwd(Int64(3 * cols), x, &y1)
            slm_sigmoid_fwd_ref(Int64(3 * cols), x, &y2)
            expectClose(y1, y2, tolerance: 1e-6)
            k.sigmoid_bwd(Int64(3 * cols), y2, dy, &dx1)
            slm_sigmoid_bwd_ref(Int64(3 * cols), y2, dy, &dx2)
            expectClose(dx1, dx2, tolerance: 1e-6)
        }
    }
}
