import SLMTensor
import SLMTestSupport
import Testing

/// scatterAddRows, the combine step of a mixture of experts.
@Suite struct RoutingTests {
    @Test func addsWeightedRowsByHand() {
        let values = Tensor([1, 2, 3, 4, 5, 6], shape: [3, 2])
        let weights = Tensor([0.5, 2, -1], shape: [3, 1])
        // Slots 0 and 2 add into row 1; slot 1 into row 0; row 2 stays zero.
        let out = scatterAddRows(values, weights: weights, rows: [1, 0, 1], count: 3)
        #expect(out.shape.dims == [3, 2])
        #expect(out.toArray() == [6, 8, 0.5 - 5, 1 - 6, 0, 0])
    }

    @Test func gradientsMatchFiniteDifferences() {
        let values = randomTensor([7, 5], seed: 1), weights = randomTensor([7, 1], seed: 2)
        let rows: [Int32] = [2, 0, 2, 3, 1, 2, 0]
        let check = gradientCheck([values, weights]) { t in scatterAddRows(t[0], weights: t[1], rows: rows, count: 4) }
        #expect(check.passed, "\(check.detail)")
    }

    @Test func wideRowsSplitAcrossThreadsAddEverySlot() {
        // Enough columns for several column ranges; many slots per row.
        let n = 64, width = 96
        let values = randomTensor([n, width], seed: 3), weights = randomTensor([n, 1], seed: 4)
        let rows = (0..<n).map { Int32($0 % 5) }
        let out = scatterAddRows(values, weights: weights, rows: rows, count: 5).toArray()
        let v = values.toArray(), w = weights.toArray()
        var expected = [Float](repeating: 0, count: 5 * width)
        for i in 0..<n { for c in 0..<width { expected[Int(rows[i]) * width + c] += w[i] * v[i * width + c] } }
        expectClose(out, expected, tolerance: 1e-5)
    }
}
