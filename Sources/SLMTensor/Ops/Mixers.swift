import CSLMKernels

/// How `causalConv` computes: directly (O(T·K) per channel, SIMD over channels) or
/// through FFTs (O(T log T) per channel). `automatic` takes the FFT once the kernel
/// reaching the sequence, min(K, T), is at least `fftThreshold` taps (measured by
/// `slm bench mixers`, see docs/BENCHMARKS.md).
public enum ConvolutionForm: String, Sendable, CaseIterable {
    case automatic, direct, fft

    public static let fftThreshold = 2048
}

/// Causal depthwise convolution over time: x [B, T, C], weight [C, K] → [B, T, C] with
/// y[t, c] = Σ_{k<K} weight[c, k] · x[t − (K−1) + k, c], x being zero before the start.
/// weight[c, K−1] multiplies the current token. A kernel as long as the context is the
/// long convolution of SymbioSLM.
public func causalConv(_ x: Tensor, weight: Tensor, form: ConvolutionForm = .automatic) -> Tensor {
    let (B, T, C, K) = checked { () throws(ShapeError) -> (Int, Int, Int, Int) in
        guard x.rank == 3 else { throw ShapeError("causalConv: input \(x.shape) must be [batch, time, channels]") }
        guard weight.rank == 2, weight.shape[0] == x.shape[2], weight.shape[1] >= 1 else {
            throw ShapeError("causalConv: weight \(weight.shape) must be [\(x.shape[2]), taps]")
        }
        return (x.shape[0], x.shape[1], x.shape[2], weight.shape[1])
    }
    switch form {
    case .fft: return fftCausalConv(x, weight: weight, B, T, C, K)
    case .automatic where min(K, T) >= ConvolutionForm.fftThreshold: return fftCausalConv(x, weight: weight, B, T, C, K)
    default: return directCausalConv(x, weight: weight, B * T, T, C, K)
    }
}

/// The FFT form: channels split across threads, each with its own spectra.
private func fftCausalConv(_ x: Tensor, weight: Tensor, _ B: Int, _ T: Int, _ C: Int, _ K: Int) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, pw = weight.data, py = out.data
    Parallel.forRanges(C, grain: 1) { c in
        slm_causal_conv_fft_fwd(Int64(c.lowerBound), Int64(c.upperBound), Int64(B), Int64(T), Int64(C), Int64(K), px, pw, py)
    }
    Autograd.record(out, op: "causalConv", inputs: [x, weight]) { g in
        let dx = x.requiresGrad ? x.gradBuffer().data : nil, dw = weight.requiresGrad ? weight.gradBuffer().data : nil
        let pg = g.data
        Parallel.forRanges(C, grain: 1) { c in
            slm_causal_conv_fft_bwd(Int64(c.lowerBound), Int64(c.upperBound), Int64(B), Int64(T), Int64(C), Int64(K),
                                    px, pw, pg, dx, dw)
        }
    }
    return out
}

private func directCausalConv(_ x: Tensor, weight: Tensor, _ rows: Int, _ T: Int, _ C: Int, _ K: Int) -> Tensor {
    let wt = transposedMatrix(weight)  // [K, C]: one tap's channels contiguous
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, pw = wt.data, py = out.data
    let grain = max(1, 65_536 / max(1, C * min(K, T)))
    Parallel.forRanges(rows, grain: grain) { r in
        slm_causal_conv_fwd(Int64(r.lowerBound), Int64(r.upperBound), Int64(T), Int64(C), Int64(K), px, pw, py)
    }
    Autograd.record(out, op: "causalConv", inputs: [x, weight]) { [wt] g in
        let pg = g.data, pw = wt.data
        if x.requiresGrad {
            let dx = x.gradBuffer().data
            Parallel.forRanges(rows, grain: grain) { r in
                slm_causal_conv_bwd_data(Int64(r.lowerBound), Int64(r.upperBound), Int64(T), Int64(C), Int64(K), pg, pw, dx)
            }
        }
        if weight.requiresGrad {
            let chunks = Parallel.chunkCount(rows, grain: grain)
            let partial = Tensor(zeros: [chunks, K, C])
            let pp = partial.data
            _ = Parallel.forChunks(rows, grain: grain) { c, r in
                slm_causal_conv_bwd_weight(Int64(r.lowerBound), Int64(r.upperBound), Int64(T), Int64(C), Int64(K),
                                           px, pg, pp + c * K * C)
            }
            let dw = weight.gradBuffer().data
            for c in 0..<chunks {
                let part = pp + c * K * C
                for k in 0..<K { for ch in 0..<C { dw[ch * K + k] += part[k * C + ch] } }
            }
        }
    }
    return out
}

/// The causal Monarch mixer: x [B, T, C] with T ≤ p², factors l1, l2 [H, p, p, p]. Head h
/// mixes channels [h·C/H, (h+1)·C/H) over time with M_h = Pᵀ·B(L1[h])·P·B(L2[h]) masked
/// to s ≤ t: y[t, c] = Σ_{s≤t} M_h[t, s] · x[s, c], where (B(L)·v)[b·p+i] = Σ_j L[b,i,j]·v[b·p+j]
/// and (P·v)[a·p+b] = v[b·p+a]. Shorter sequences use M's top-left block.
///
/// Computed in factored form, never as a T×T matrix: with t = t₁p + t₂ and s = s₁p + s₂,
/// M[t, s] = L1[t₂, t₁, s₁] · L2[s₁, t₂, s₂], so
/// y[t] = Σ_{s₁<t₁} L1[t₂,t₁,s₁] · (L2[s₁]·x_{s₁})[t₂] + L1[t₂,t₁,t₁] · (tril(L2[t₁])·x_{t₁})[t₂]:
/// O(T·p·C) work.
public func monarchMix(_ x: Tensor, l1: Tensor, l2: Tensor) -> Tensor {
    let (B, T, C, H, p) = checked { () throws(ShapeError) -> (Int, Int, Int, Int, Int) in
        guard x.rank == 3 else { throw ShapeError("monarchMix: input \(x.shape) must be [batch, time, channels]") }
        guard l1.rank == 4, l1.shape == l2.shape, l1.shape[1] == l1.shape[2], l1.shape[2] == l1.shape[3] else {
            throw ShapeError("monarchMix: factors \(l1.shape) and \(l2.shape) must both be [heads, p, p, p]")
        }
        let H = l1.shape[0], p = l1.shape[1], C = x.shape[2]
        guard H >= 1, C % H == 0 else { throw ShapeError("monarchMix: \(C) channels do not split into \(H) heads") }
        guard x.shape[1] <= p * p else {
            throw ShapeError("monarchMix: \(x.shape[1]) positions exceed the mixer's length p² = \(p * p)")
        }
        return (x.shape[0], x.shape[1], C, H, p)
    }
    let nb = (T + p - 1) / p
    let u = Tensor(uninitialized: [B, nb * p, C]), ut = Tensor(uninitialized: [B, nb * p, C])
    let out = Tensor(uninitialized: x.shape)
    let args = slm_monarch_args(B: Int64(B), T: Int64(T), C: Int64(C), H: Int64(H), p: Int64(p),
                                L1: l1.data, L2: l2.data, x: x.data, u: u.data, ut: ut.data, y: out.data)
    withUnsafePointer(to: args) { a in
        Parallel.forRanges(B * H) { r in slm_monarch_fwd(a, Int64(r.lowerBound), Int64(r.upperBound)) }
    }
    Autograd.record(out, op: "monarchMix", inputs: [x, l1, l2]) { [u, ut] g in
        withExtendedLifetime((u, ut)) {
            let dx = x.requiresGrad ? x.gradBuffer() : Tensor(zeros: x.shape)
            let d1 = l1.requiresGrad ? l1.gradBuffer() : Tensor(zeros: l1.shape)
            let d2 = l2.requiresGrad ? l2.gradBuffer() : Tensor(zeros: l2.shape)
            let du = Tensor(uninitialized: u.shape), dut = Tensor(uninitialized: u.shape)
            let pg = g.data, pdx = dx.data, pd1 = d1.data, pd2 = d2.data, pdu = du.data, pdut = dut.data
            withUnsafePointer(to: args) { a in
                Parallel.forRanges(H) { r in
                    slm_monarch_bwd(a, pg, pdx, pd1, pd2, pdu, pdut, Int64(r.lowerBound), Int64(r.upperBound))
                }
            }
            withExtendedLifetime((dx, d1, d2, du, dut)) {}
        }
    }
    return out
}

/// A copy of a [rows, cols] matrix transposed to [cols, rows] (no gradient).
private func transposedMatrix(_ m: Tensor) -> Tensor {
    let rows = m.shape[0], cols = m.shape[1]
    let t = Tensor(uninitialized: [cols, rows])
    let src = m.data, dst = t.data
    for r in 0..<rows { for c in 0..<cols { dst[c * rows + r] = src[r * cols + c] } }
    return t
}
