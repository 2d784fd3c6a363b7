import Foundation
import SLMTestSupport
import Testing
@testable import SLMTensor

/// `linear` with bf16 products: exact where the operands are bf16 numbers already, and
/// within bf16's rounding (8 significant bits) elsewhere.
@Suite struct MixedPrecisionTests {
    /// Values k/16 with |k| < 64 have at most 7 significant bits: bf16 holds them exactly.
    func bf16Exact(_ shape: Shape, seed: UInt64, requiresGrad: Bool = true) -> Tensor {
        var rng = RNG(seed: seed)
        let values = (0..<shape.count).map { _ in Float(Int(rng.next() % 127) - 63) / 16 }
        return Tensor(values, shape: shape, requiresGrad: requiresGrad)
    }

    /// Forward output and input/weight/bias gradients of one linear layer.
    func run(_ precision: MatmulPrecision, x: Tensor, w: Tensor, b: Tensor, inputMajor: Bool,
             upstream: Tensor) -> [[Float]] {
        for t in [x, w, b] { t.zeroGrad() }
        let y = MatmulPrecision.$current.withValue(precision) { linear(x, weight: w, bias: b, inputMajor: inputMajor) }
        y.backward(gradient: upstream)
        return [y.toArray(), x.grad!.toArray(), w.grad!.toArray(), b.grad!.toArray()]
    }

    @Test(arguments: [false, true])
    func bf16EqualsFp32OnBf16Numbers(inputMajor: Bool) {
        let x = bf16Exact([3, 5, 24], seed: 1), b = bf16Exact([40], seed: 3)
        let w = bf16Exact(inputMajor ? [24, 40] : [40, 24], seed: 2)
        let upstream = bf16Exact([3, 5, 40], seed: 4, requiresGrad: false)
        let fp32 = run(.fp32, x: x, w: w, b: b, inputMajor: inputMajor, upstream: upstream)
        let bf16 = run(.bf16, x: x, w: w, b: b, inputMajor: inputMajor, upstream: upstream)
        // Products of bf16 numbers are exact in fp32; only the summation order may differ.
        for (a, c) in zip(fp32, bf16) { expectClose(a, c, tolerance: 1e-4) }
    }

    @Test func bf16RoundsOtherNumbers() {
        let x = randomTensor([64, 96], seed: 5), w = randomTensor([80, 96], seed: 6)
        x.requiresGrad = true
        w.requiresGrad = true
        let b = Tensor(zeros: [80], requiresGrad: true), upstream = randomTensor([64, 80], seed: 7)
        let fp32 = run(.fp32, x: x, w: w, b: b, inputMajor: false, upstream: upstream)
        let bf16 = run(.bf16, x: x, w: w, b: b, inputMajor: false, upstream: upstream)
        for (a, c) in zip(fp32, bf16) {
            let scale = a.map(abs).max()!
            let worst = zip(a, c).map { abs($0 - $1) }.max()!
            // Both operands carry a relative error of at most 2^-9; sums of 80-96 terms of
            // both signs stay far below 2% of the largest entry.
            #expect(worst < 0.02 * scale)
            // The bias gradient never goes through a product; everything else must show rounding.
            if a != fp32[3] { #expect(worst > 0) }
        }
        #expect(fp32[3] == bf16[3])
    }

    @Test func precisionFollowsTheForwardScope() {
        let x = randomTensor([8, 32], seed: 8), w = randomTensor([16, 32], seed: 9)
        w.requiresGrad = true
        let y = MatmulPrecision.$current.withValue(.bf16) { linear(x, weight: w) }
        y.backward(gradient: Tensor([Float](repeating: 1, count: 8 * 16), shape: [8, 16]))
        let reference = MatmulPrecision.$current.withValue(.bf16) { () -> [Float] in
            let w2 = Tensor(w.toArray(), shape: w.shape, requiresGrad: true)
            linear(x, weight: w2).backward(gradient: Tensor([Float](repeating: 1, count: 8 * 16), shape: [8, 16]))
            return w2.grad!.toArray()
        }
        // The backward ran outside the scope and still used bf16 operands.
        #expect(w.grad!.toArray() == reference)
    }
}
