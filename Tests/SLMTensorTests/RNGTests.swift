import Foundation
import SLMTestSupport
import Testing
@testable import SLMTensor

@Suite struct RNGTests {
    /// xoshiro256** seeded by SplitMix64(42), computed independently (Python big ints).
    @Test func goldenSequence() {
        var r = RNG(seed: 42)
        #expect(r.next() == 0x1578_0B2E_0C2E_C716)
        #expect(r.next() == 0x6104_D986_6D11_3A7E)
        #expect(r.next() == 0xAE17_5332_39E4_99A1)
        var f = RNG(seed: 42)
        #expect(f.nextFloat() == 0.08386296033859253)
    }

    @Test func sameSeedSameTensor() {
        var a = RNG(seed: 7), b = RNG(seed: 7), c = RNG(seed: 8)
        let x = Tensor.randn([100], rng: &a).toArray(), y = Tensor.randn([100], rng: &b).toArray()
        #expect(x == y)
        #expect(x != Tensor.randn([100], rng: &c).toArray())
    }

    @Test func normalMoments() {
        var r = RNG(seed: 1)
        let x = (0..<200_000).map { _ in r.nextNormal() }
        let mean = x.reduce(0, +) / Double(x.count)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)
        #expect(abs(mean) < 0.01)
        #expect(abs(variance - 1) < 0.015)
        let t = Tensor.randn([10_000], mean: 3, std: 0.5, rng: &r).toArray()
        #expect(abs(t.reduce(0, +) / 10_000 - 3) < 0.02)
    }

    @Test func portableLogarithm() {
        for x in [1e-300, 1e-8, 0.1, 0.5, 0.70710678, 1, 1.41421357, 2, 3, 10, 1e5, 1e300] {
            #expect(abs(RNG.log(x) - Foundation.log(x)) <= 4e-16 * max(1, abs(Foundation.log(x))))
        }
    }

    @Test func stateRoundTrip() {
        var a = RNG(seed: 3)
        _ = a.next()
        var b = RNG(state: a.state)
        #expect(a.next() == b.next())
    }
}
