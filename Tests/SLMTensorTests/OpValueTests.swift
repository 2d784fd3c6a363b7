import Foundation
import SLMTestSupport
import Testing
@testable import SLMTensor

/// Forward results against values worked out by hand or in Double.
@Suite struct OpValueTests {
    @Test func matmulByHand() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), b = Tensor([7, 8, 9, 10, 11, 12], shape: [3, 2])
        #expect(matmul(a, b).toArray() == [58, 64, 139, 154])
        #expect(matmul(a, a, transposeB: true).toArray() == [14, 32, 32, 77])
        #expect(matmul(a, a, transposeA: true).toArray() == [17, 22, 27, 22, 29, 36, 27, 36, 45])
    }

    @Test func linearAddsBias() {
        let x = Tensor([1, 2], shape: [1, 2]), w = Tensor([1, 0, 0, 1, 1, 1], shape: [3, 2])
        let b = Tensor([10, 20, 30], shape: [3])
        #expect(linear(x, weight: w, bias: b).toArray() == [11, 22, 33])
    }

    @Test func broadcasting() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), b = Tensor([10, 20], shape: [2, 1])
        #expect((a + b).toArray() == [11, 12, 13, 24, 25, 26])
        #expect((a - Tensor([1, 1, 1], shape: [3])).toArray() == [0, 1, 2, 3, 4, 5])
        #expect((Tensor([2], shape: [1]) * a).toArray() == [2, 4, 6, 8, 10, 12])
    }

    @Test func softmaxAndCrossEntropy() {
        let x = Tensor([0, log(3)], shape: [1, 2])
        expectClose(softmax(x).toArray(), [0.25, 0.75], tolerance: 1e-6)
        // Uniform logits over V classes: loss ln V whatever the target.
        let uniform = Tensor.zeros([4, 7])
        #expect(abs(crossEntropy(uniform, targets: [0, 1, 2, 6]).item() - Float(log(7.0))) < 1e-5)
        // -log softmax(x)[1] = log(1 + 3) - log 3
        let loss = crossEntropy(x, targets: [1]).item()
        #expect(abs(loss - Float(log(4.0) - log(3.0))) < 1e-6)
        // Ignored rows do not count towards the mean.
        let two = Tensor([0, Float(log(3.0)), 5, 5], shape: [2, 2])
        #expect(abs(crossEntropy(two, targets: [1, -100]).item() - loss) < 1e-6)
    }

    @Test func layerNormAndRMSNormByHand() {
        let x = Tensor([1, 2, 3, 4], shape: [1, 4])
        // mean 2.5, variance 1.25
        let expected = [1, 2, 3, 4].map { Float((Double($0) - 2.5) / (1.25 + 1e-5).squareRoot()) }
        expectClose(layerNorm(x, weight: nil, bias: nil).toArray(), expected, tolerance: 1e-6)
        let rms = (30.0 / 4 + 1e-5).squareRoot()
        let w = Tensor([1, 2, 1, 2], shape: [4])
        expectClose(rmsNorm(x, weight: w).toArray(), [1 / rms, 4 / rms, 3 / rms, 8 / rms].map(Float.init), tolerance: 1e-6)
    }

    @Test func activationsAgainstDouble() {
        let values: [Float] = [-6, -2.5, -1, -0.1, 0, 0.3, 1, 2.7, 7]
        let x = Tensor(values, shape: [values.count])
        let gExpected = values.map { v -> Float in
            let d = Double(v)
            return Float(0.5 * d * (1 + tanh(0.7978845608028654 * (d + 0.044715 * d * d * d))))
        }
        expectClose(gelu(x).toArray(), gExpected, tolerance: 2e-6)
        let sExpected = values.map { Float(Double($0) / (1 + exp(-Double($0)))) }
        expectClose(silu(x).toArray(), sExpected, tolerance: 2e-6)
    }

    @Test func ropeRotatesPairsByPosition() {
        let table = RotaryEmbedding(headDim: 4, maxPositions: 8, theta: 10_000)
        // One head of [1, 0, 0, 1] at position 3: pair (0, 2) turns by 3 rad, pair (1, 3) by 3/100 rad.
        let x = Tensor([1, 0, 0, 1], shape: [1, 1, 1, 4])
        let y = rope(x, table, offset: 3).toArray()
        let a0 = 3.0, a1 = 3.0 / 100
        expectClose(y, [Float(cos(a0)), Float(-sin(a1)), Float(sin(a0)), Float(cos(a1))], tolerance: 1e-6)
    }

    @Test func attentionOfOneQueryIsAWeightedMean() {
        // Last query of three sees all three keys: out = Σ softmax(q·k/√d) v.
        let q = Tensor([0, 0, 0, 0, 1, 0], shape: [1, 3, 1, 2])
        let k = Tensor([1, 0, 0, 1, 2, 0], shape: [1, 3, 1, 2])
        let v = Tensor([1, 10, 2, 20, 3, 30], shape: [1, 3, 1, 2])
        let s = [1.0, 0.0, 2.0].map { $0 / 2.0.squareRoot() }
        let e = s.map { exp($0) }, z = e.reduce(0, +)
        let o0 = (e[0] * 1 + e[1] * 2 + e[2] * 3) / z, o1 = (e[0] * 10 + e[1] * 20 + e[2] * 30) / z
        let out = attention(q, k, v).toArray()
        expectClose(Array(out[4...]), [Float(o0), Float(o1)], tolerance: 1e-5)
        // The first query sees only the first key.
        expectClose(Array(out[0..<2]), [1, 10], tolerance: 1e-6)
    }

    @Test func groupedQueryAttentionEqualsRepeatedKeyValueHeads() {
        let q = randomTensor([2, 6, 4, 8], seed: 40)
        let k = randomTensor([2, 6, 2, 8], seed: 41), v = randomTensor([2, 6, 2, 8], seed: 42)
        // Repeat each KV head for its 2 query heads, as a plain multi-head layout.
        func repeated(_ t: Tensor) -> Tensor {
            let parts = t.split([1, 1], axis: 2)
            return concat([parts[0], parts[0], parts[1], parts[1]], axis: 2)
        }
        expectClose(attention(q, k, v).toArray(), attention(q, repeated(k), repeated(v)).toArray(), tolerance: 1e-5)
    }

    @Test func shapingValues() {
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        #expect(x.transposed(0, 1).toArray() == [1, 4, 2, 5, 3, 6])
        #expect(x.slice(axis: 1, 1..<3).toArray() == [2, 3, 5, 6])
        #expect(concat([x, x.slice(axis: 1, 0..<1)], axis: 1).toArray() == [1, 2, 3, 1, 4, 5, 6, 4])
        #expect(x.sum(axis: 0).toArray() == [5, 7, 9])
        #expect(x.mean(axis: 1).toArray() == [2, 5])
        #expect(x.sum().item() == 21)
        #expect(x.reshaped([3, -1]).shape == [3, 2])
    }

    @Test func dropoutIsSeededAndScaled() {
        let x = Tensor.ones([1000])
        var r1 = RNG(seed: 7), r2 = RNG(seed: 7)
        let a = dropout(x, p: 0.3, rng: &r1).toArray(), b = dropout(x, p: 0.3, rng: &r2).toArray()
        #expect(a == b)
        let dropped = a.filter { $0 == 0 }.count
        #expect(dropped > 240 && dropped < 360)
        #expect(a.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-6 })
    }

    @Test func bfloat16RoundTrip() {
        let x = Tensor([1, -2.5, 3.14159, 1e-3, 65504], shape: [5])
        let back = x.converted(to: .bfloat16).converted(to: .float32).toArray()
        // bf16 keeps 8 significant bits: relative error below 2^-8.
        for (a, b) in zip(x.toArray(), back) { #expect(abs(a - b) <= abs(a) / 256) }
        #expect(back[0] == 1 && back[1] == -2.5)
    }
}

/// BitNet b1.58's quantisers on hand-computed values, and their straight-through gradients.
@Suite struct QuantizationTests {
    @Test func ternaryWeightsRoundToTheAbsmeanGrid() {
        // mean|W| = 4/6; W/s = 0.15, −0.75, 1.5, −0.075, 0.45, 3.075 → 0, −1, 1 (clamped), 0, 0, 1 (clamped).
        let w = Tensor([0.1, -0.5, 1.0, -0.05, 0.3, 2.05], shape: [2, 3])
        let s: Float = 4.0 / 6.0
        expectClose(ternaryWeights(w).toArray(), [0, -s, s, 0, 0, s], tolerance: 1e-6)
        #expect(ternaryWeights(Tensor.zeros([4])).toArray() == [0, 0, 0, 0], "an all-zero tensor stays zero")
    }

    @Test func int8ActivationsRoundEachRowByItsAbsmax() {
        // Row 1: γ = 1, x·127 = 63.5, −127, 31.75, 12.7 → 64 (half to even), −127, 32, 13.
        // Row 2: γ = 4, x·127/4 = 31.75, −0.3175, 127, 0 → 32, 0, 127, 0.
        let x = Tensor([0.5, -1.0, 0.25, 0.1, 1.0, -0.01, 4.0, 0], shape: [2, 4])
        expectClose(int8Activations(x).toArray(), [64 / 127, -1, 32 / 127, 13 / 127, 32 * 4 / 127, 0, 4, 0], tolerance: 1e-6)
    }

    @Test func gradientsPassStraightThrough() {
        let w = Tensor([0.1, -0.5, 1.0, -0.05], shape: [4]), x = Tensor([0.3, -2, 0.7, 0.01], shape: [1, 4])
        w.requiresGrad = true
        x.requiresGrad = true
        let c = Tensor([1, 2, -3, 4], shape: [4])
        (ternaryWeights(w) * c).sum().backward()
        (int8Activations(x) * c.reshaped([1, 4])).sum().backward()
        #expect(w.grad!.toArray() == [1, 2, -3, 4])
        #expect(x.grad!.toArray() == [1, 2, -3, 4])
    }
}
