import Foundation
import Testing
@testable import SLMTensor

@Suite struct OpProfileTests {
    /// A linear layer, GELU and cross-entropy, forward and backward, under a profile.
    private func step(_ w: Tensor, _ x: Tensor) {
        let loss = crossEntropy(gelu(linear(x, weight: w)), targets: [0, 1, 2, 3])
        loss.backward()
    }

    @Test func chargesEveryOpForwardAndBackward() {
        var rng = RNG(seed: 1)
        let w = Tensor.randn([8, 64], rng: &rng, requiresGrad: true)
        let x = Tensor.randn([4, 64], rng: &rng)
        let profile = OpProfile()
        let started = Date()
        profile.collect {
            for _ in 0..<3 {
                step(w, x)
                OpProfile.mark("between")
            }
        }
        let wall = Date().timeIntervalSince(started)
        for op in ["linear", "gelu", "crossEntropy"] {
            let e = profile.entries[op]
            #expect(e?.calls == 3, "\(op)")
            #expect((e?.forwardSeconds ?? 0) > 0 && (e?.backwardSeconds ?? 0) > 0, "\(op)")
        }
        #expect(profile.entries["between"]?.calls == 3)
        // linear counts its products: 2·rows·in·out forward, the same again for dW (x
        // needs no gradient here, so there is no dX); other ops count none.
        #expect(profile.entries["linear"]?.forwardFlops == Double(3 * 2 * 4 * 64 * 8))
        #expect(profile.entries["linear"]?.backwardFlops == Double(3 * 2 * 4 * 64 * 8))
        #expect(profile.entries["gelu"]?.forwardFlops == 0 && profile.entries["gelu"]?.backwardFlops == 0)
        // Charged intervals do not overlap, so together they fit in the wall time.
        let charged = profile.entries.values.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds }
        #expect(charged <= wall)
        profile.reset()
        #expect(profile.entries.isEmpty)
    }

    /// A batched matmul with both operands needing gradients: two backward products.
    @Test func matmulCountsItsProducts() {
        var rng = RNG(seed: 3)
        let a = Tensor.randn([2, 3, 5], rng: &rng, requiresGrad: true), b = Tensor.randn([2, 5, 7], rng: &rng, requiresGrad: true)
        let profile = OpProfile()
        profile.collect { matmul(a, b).sum().backward() }
        #expect(profile.entries["matmul"]?.forwardFlops == Double(2 * 2 * 3 * 5 * 7))
        #expect(profile.entries["matmul"]?.backwardFlops == Double(2 * 2 * 2 * 3 * 5 * 7))
    }

    /// Fused attention counts its products over the causal pairs only: 3 queries after one
    /// cached key see 2, 3 and 4 keys (9 pairs), 2·D each per product, for every batch entry
    /// and query head; two products forward, five backward.
    @Test func attentionCountsItsCausalProducts() {
        var rng = RNG(seed: 4)
        let q = Tensor.randn([2, 3, 4, 8], rng: &rng, requiresGrad: true)
        let k = Tensor.randn([2, 4, 2, 8], rng: &rng, requiresGrad: true), v = Tensor.randn([2, 4, 2, 8], rng: &rng)
        let profile = OpProfile()
        profile.collect { attention(q, k, v).sum().backward() }
        let product = Double(9 * 2 * 8 * 2 * 4)
        #expect(profile.entries["attention"]?.forwardFlops == 2 * product)
        #expect(profile.entries["attention"]?.backwardFlops == 5 * product)
    }

    @Test func nothingIsChargedOutsideAProfile() {
        var rng = RNG(seed: 2)
        let w = Tensor.randn([8, 64], rng: &rng, requiresGrad: true)
        let profile = OpProfile()
        step(w, Tensor.randn([4, 64], rng: &rng))
        OpProfile.mark("outside")
        #expect(profile.entries.isEmpty)
        // Inference (no graph) is not charged to ops either.
        profile.collect { _ = Autograd.noGrad { gelu(linear(Tensor.randn([4, 64], rng: &rng), weight: w)) } }
        #expect(profile.entries.isEmpty)
    }
}
