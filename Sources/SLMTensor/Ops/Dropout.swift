import CSLMKernels

/// Zeroes each element with probability `p` and scales the rest by 1/(1-p). One draw
/// from `rng` seeds a counter-based mask, so the same seed drops the same elements, and
/// the mask is recomputed in the backward pass instead of stored. p = 0 returns x itself.
public func dropout(_ x: Tensor, p: Float, rng: inout RNG) -> Tensor {
    precondition(p >= 0 && p < 1, "dropout: probability \(p) must be in [0, 1)")
    precondition(x.count <= Int(UInt32.max), "dropout: \(x.count) elements exceed the mask's 2^32 indices")
    if p == 0 { return x }
    let seed = rng.next()
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Kernels.elements(x.count) { s, n in slm_dropout_fwd(Int64(n), seed, Int64(s), p, px + s, py + s) }
    Autograd.record(out, op: "dropout", inputs: [x]) { g in
        let pg = g.data, pdx = x.gradBuffer().data
        Kernels.elements(x.count) { s, n in slm_dropout_bwd(Int64(n), seed, Int64(s), p, pg + s, pdx + s) }
    }
    return out
}
