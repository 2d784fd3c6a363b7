import Foundation
import SLMTestSupport
import Testing
@testable import SLMTensor

/// Every op's backward pass against central finite differences.
@Suite struct GradientTests {
    @Test(arguments: [
        ([2, 3, 4], [2, 3, 4]),  // same shape
        ([2, 3, 4], [4]),        // bias-like row vector
        ([4], [2, 3, 4]),        // row vector on the left
        ([2, 1, 4], [3, 1]),     // general broadcasting on both sides
        ([3, 4], [1, 1]),
    ] as [([Int], [Int])])
    func broadcastingArithmetic(_ shapes: ([Int], [Int])) {
        let a = randomTensor(Shape(shapes.0), seed: 1), b = randomTensor(Shape(shapes.1), seed: 2)
        expectGradients([a, b]) { $0[0] + $0[1] }
        expectGradients([a, b]) { $0[0] - $0[1] }
        expectGradients([a, b]) { $0[0] * $0[1] }
    }

    @Test func scaleAndNegate() {
        let x = randomTensor([5, 3], seed: 3)
        expectGradients([x]) { -scale($0[0], 2.5) }
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func matmulTransposes(_ flags: (Bool, Bool)) {
        let (ta, tb) = flags
        let a = randomTensor(ta ? [4, 3] : [3, 4], seed: 4), b = randomTensor(tb ? [5, 4] : [4, 5], seed: 5)
        expectGradients([a, b]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func batchedMatmul(_ flags: (Bool, Bool)) {
        let (ta, tb) = flags
        let a = randomTensor(ta ? [2, 3, 4, 3] : [2, 3, 3, 4], seed: 6)
        let b = randomTensor(tb ? [2, 3, 5, 4] : [2, 3, 4, 5], seed: 7)
        expectGradients([a, b]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        // One weight shared across the batch.
        let w = randomTensor(tb ? [5, 4] : [4, 5], seed: 8)
        expectGradients([a, w]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
    }

    @Test func linearWithAndWithoutBias() {
        let x = randomTensor([2, 3, 6], seed: 9), w = randomTensor([4, 6], seed: 10), b = randomTensor([4], seed: 11)
        expectGradients([x, w, b]) { linear($0[0], weight: $0[1], bias: $0[2]) }
        expectGradients([x, w]) { linear($0[0], weight: $0[1]) }
        // Input-major weights (GPT-2's Conv1D layout) give the same function of Wᵀ.
        let wt = randomTensor([6, 4], seed: 12)
        expectGradients([x, wt, b]) { linear($0[0], weight: $0[1], bias: $0[2], inputMajor: true) }
        let viaTranspose = linear(x, weight: wt.transposed(0, 1), bias: b).toArray()
        expectClose(linear(x, weight: wt, bias: b, inputMajor: true).toArray(), viaTranspose, tolerance: 1e-5)
    }

    @Test func embeddingScatterAddsRepeatedIndices() {
        let w = randomTensor([5, 3], seed: 12)
        expectGradients([w]) { embedding($0[0], indices: [1, 4, 1, 0, 1, 2], shape: [2, 3]) }
        // Row 1 was picked three times: its gradient is the sum of three output rows.
        w.clearGrad()
        embedding(w, indices: [1, 1, 1], shape: [3]).sum().backward()
        #expect(w.grad!.toArray() == [0, 0, 0, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func layerNormAffineAndPlain() {
        let x = randomTensor([4, 7], seed: 13, scale: 2), w = randomTensor([7], seed: 14), b = randomTensor([7], seed: 15)
        expectGradients([x, w, b]) { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        expectGradients([x]) { layerNorm($0[0], weight: nil, bias: nil) }
        // Wide rows exercise the SIMD body as well as the tail.
        let wide = randomTensor([3, 37], seed: 16), ww = randomTensor([37], seed: 17), wb = randomTensor([37], seed: 18)
        expectGradients([wide, ww, wb]) { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
    }

    @Test func rmsNorm() {
        let x = randomTensor([4, 37], seed: 19), w = randomTensor([37], seed: 20)
        expectGradients([x, w]) { SLMTensor.rmsNorm($0[0], weight: $0[1]) }
        expectGradients([x]) { SLMTensor.rmsNorm($0[0], weight: nil) }
    }

    @Test func activations() {
        let x = randomTensor([3, 37], seed: 21, scale: 2)
        expectGradients([x]) { gelu($0[0]) }
        expectGradients([x]) { silu($0[0]) }
        let g = randomTensor([3, 37], seed: 22, scale: 2)
        expectGradients([x, g]) { swiglu(gate: $0[0], up: $0[1]) }
        expectGradients([x]) { softmax($0[0]) }
    }

    @Test func rotaryEmbedding() {
        let table = RotaryEmbedding(headDim: 8, maxPositions: 16, theta: 100)
        let x = randomTensor([2, 3, 2, 8], seed: 23)
        expectGradients([x]) { rope($0[0], table) }
        expectGradients([x]) { rope($0[0], table, offset: 5) }
    }

    @Test(arguments: [
        (2, 5, 5, 4, 4, 8),   // multi-head
        (2, 5, 5, 4, 2, 8),   // grouped-query: 2 query heads per key/value head
        (1, 3, 7, 2, 1, 16),  // queries continuing a cached prefix of 4, one shared KV head
        (1, 40, 40, 2, 1, 4), // longer than one SIMD block of keys
    ] as [(Int, Int, Int, Int, Int, Int)])
    func causalAttention(_ c: (Int, Int, Int, Int, Int, Int)) {
        let (b, tq, tk, hq, hkv, d) = c
        let q = randomTensor([b, tq, hq, d], seed: 24), k = randomTensor([b, tk, hkv, d], seed: 25)
        let v = randomTensor([b, tk, hkv, d], seed: 26)
        expectGradients([q, k, v]) { attention($0[0], $0[1], $0[2]) }
    }

    /// GPT-2's fused projection read in place: same values and gradients as splitting it.
    @Test func attentionFromPackedQKV() {
        let (b, t, h, d) = (2, 37, 3, 8)
        let qkv = randomTensor([b, t, 3 * h * d], seed: 28)
        expectGradients([qkv]) { attention(packedQKV: $0[0], heads: h) }
        let packed = Tensor(qkv.toArray(), shape: qkv.shape, requiresGrad: true)
        let split = Tensor(qkv.toArray(), shape: qkv.shape, requiresGrad: true)
        let upstream = randomTensor([b, t, h, d], seed: 29)
        let y1 = attention(packedQKV: packed, heads: h)
        let parts = split.split([h * d, h * d, h * d], axis: 2).map { $0.reshaped([b, t, h, d]) }
        let y2 = attention(parts[0], parts[1], parts[2])
        expectClose(y1.toArray(), y2.toArray(), tolerance: 1e-6)
        y1.backward(gradient: upstream)
        y2.backward(gradient: upstream)
        expectClose(packed.grad!.toArray(), split.grad!.toArray(), tolerance: 1e-5)
    }

    @Test func crossEntropyWithIgnoredRows() {
        let logits = randomTensor([2, 3, 11], seed: 27, scale: 2)
        expectGradients([logits]) { crossEntropy($0[0], targets: [3, -100, 0, 10, 5, -100]) }
        expectGradients([logits]) { crossEntropy($0[0], targets: [3, 1, 0, 10, 5, 7]) }
    }

    /// The distillation term: hand-computed value, finite-difference gradient, and the
    /// teacher's softened targets.
    @Test func softCrossEntropyAgainstSoftenedTargets() {
        let z = Tensor([1, 2, 3, -1, 0, 4], shape: [2, 3])
        let p = Tensor([0.2, 0.3, 0.5, 0.6, 0.3, 0.1], shape: [2, 3])
        var expected = 0.0
        for r in 0..<2 {
            let row = (0..<3).map { Double(z.toArray()[r * 3 + $0]) / 2 }
            let lse = log(row.map(exp).reduce(0, +))
            expected += (0..<3).reduce(0.0) { $0 - Double(p.toArray()[r * 3 + $1]) * (row[$1] - lse) }
        }
        expected = expected / 2 * 4   // mean over rows, times T²
        #expect(abs(Double(softCrossEntropy(z, targets: p, temperature: 2).item()) - expected) < 1e-5)
        let logits = randomTensor([2, 3, 11], seed: 31, scale: 2)
        let targets = softmaxTargets(randomTensor([2, 3, 11], seed: 32, scale: 2), temperature: 1.5)
        let sums = (0..<6).map { r in targets.toArray()[(r * 11)..<(r * 11 + 11)].reduce(0, +) }
        #expect(sums.allSatisfy { abs($0 - 1) < 1e-5 })
        for temperature: Float in [1, 2.5] {
            expectGradients([logits]) { softCrossEntropy($0[0], targets: targets, temperature: temperature) }
        }
    }

    @Test func shaping() {
        let x = randomTensor([2, 3, 4], seed: 28)
        expectGradients([x]) { gelu($0[0].reshaped([6, -1])) }
        expectGradients([x]) { gelu($0[0].transposed(0, 2)) }
        expectGradients([x]) { gelu($0[0].slice(axis: 1, 1..<3)) }
        expectGradients([x]) { gelu($0[0].slice(axis: 0, 1..<2)) }
        expectGradients([x]) { x in
            let parts = x[0].split([1, 3], axis: 2)
            return parts[0] * scale(parts[1].sum(axis: 2, keepDims: true), 0.5)
        }
        let y = randomTensor([2, 2, 4], seed: 29)
        expectGradients([x, y]) { gelu(concat([$0[0], $0[1]], axis: 1)) }
    }

    @Test func reductions() {
        let x = randomTensor([2, 3, 4], seed: 30)
        expectGradients([x]) { gelu($0[0]).sum() }
        expectGradients([x]) { gelu($0[0]).mean() }
        expectGradients([x]) { gelu($0[0].sum(axis: 1)) }
        expectGradients([x]) { gelu($0[0].mean(axis: -1, keepDims: true)) }
    }

    @Test func dropoutGradientIsTheMask() {
        let x = randomTensor([64], seed: 31)
        var rng = RNG(seed: 5)
        let y = dropout(x.detached(), p: 0.25, rng: &rng)
        let xg = Tensor(x.toArray(), shape: [64], requiresGrad: true)
        var rng2 = RNG(seed: 5)
        dropout(xg, p: 0.25, rng: &rng2).sum().backward()
        for i in 0..<64 {
            let kept = y.data[i] != 0
            #expect(xg.grad!.data[i] == (kept ? Float(1 / 0.75) : 0))
        }
    }

    /// With DropoutRows, a rank's rows get the masks (and gradients) those rows get in
    /// the whole batch: masks follow the global sample index.
    @Test func dropoutMasksFollowTheGlobalRow() {
        let whole = randomTensor([4, 3, 5], seed: 8)
        var rng = RNG(seed: 11)
        let reference = dropout(whole, p: 0.3, rng: &rng).toArray()
        for rank in 0..<2 {
            let rows = [rank, rank + 2]
            let local = Tensor(rows.flatMap { Array(whole.toArray()[($0 * 15)..<($0 * 15 + 15)]) }, shape: [2, 3, 5], requiresGrad: true)
            var r = RNG(seed: 11)
            let y = DropoutRows.$current.withValue(DropoutRows(stride: 2, offset: rank)) { dropout(local, p: 0.3, rng: &r) }
            #expect(y.toArray() == rows.flatMap { Array(reference[($0 * 15)..<($0 * 15 + 15)]) })
            y.sum().backward()
            #expect(local.grad!.toArray() == y.toArray().map { $0 == 0 ? 0 : Float(1 / 0.7) })
        }
    }
}
