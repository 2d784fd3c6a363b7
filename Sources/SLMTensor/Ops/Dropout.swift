import CSLMKernels

/// Zeroes each element with probability `p` and scales the rest by 1/(1-p). The mask
/// comes from `rng`, so the same seed drops the same elements. p = 0 returns x itself.
public func dropout(_ x: Tensor, p: Float, rng: inout RNG) -> Tensor {
    precondition(p >= 0 && p < 1, "dropout: probability \(p) must be in [0, 1)")
    if p == 0 { return x }
    let mask = Tensor(uninitialized: x.shape)
    let keep = 1 / (1 - p), pm = mask.data
    for i in 0..<x.count { pm[i] = rng.nextFloat() < p ? 0 : keep }
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    withExtendedLifetime(mask) {
        Kernels.elements(x.count) { s, n in slm_mul(Int64(n), px + s, pm + s, py + s) }
    }
    Autograd.record(out, op: "dropout", inputs: [x]) { [mask] g in
        let masked = Tensor(uninitialized: x.shape), pg = g.data, pd = masked.data, pm = mask.data
        Kernels.elements(x.count) { s, n in slm_mul(Int64(n), pg + s, pm + s, pd + s) }
        Kernels.accumulate(masked, into: x.gradBuffer())
    }
    return out
}
