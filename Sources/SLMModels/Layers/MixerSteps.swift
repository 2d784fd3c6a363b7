import Foundation
import SLMTensor

// The mixers one position at a time, for decoding: each reads the rows a `MixerMemory`
// holds (inputs of positions 0…t) and writes the output row of position t. The batched
// ops (causalConv, monarchMix) are what these are tested against.

extension CausalConvolution {
    /// out[c] = Σ_{k<K} w[c,k] · x[t−(K−1)+k, c], with x = 0 before the start: per channel
    /// one dot product of its last n = min(K, t+1) taps with its last n inputs. O(K·d),
    /// O(t·d) for the long convolution.
    func step(_ m: MixerMemory, position t: Int, into out: UnsafeMutablePointer<Float>) {
        let taps = weight.shape[1], n = min(taps, t + 1), w = UnsafePointer(weight.data)
        for c in 0..<m.width { out[c] = dot(w + c * taps + (taps - n), m.channel(c) + (t + 1 - n), n) }
    }
}

/// Σ a[i]·b[i], 16 lanes at a time.
@inline(__always)
private func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var lanes = SIMD16<Float>(), i = 0
    while i + 16 <= n {
        lanes += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
        i += 16
    }
    var sum = lanes.sum()
    while i < n {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}

extension MonarchFactors {
    /// Position t = t₁·p + t₂ of the causal Monarch mixer, per head h:
    /// y[t] = Σ_{s₁<t₁} L1[h][t₂,t₁,s₁] · z[s₁][t₂] + L1[h][t₂,t₁,t₁] · (tril(L2[h][t₁]) · x_{t₁})[t₂],
    /// with z[s₁] = L2[h][s₁] · x_{s₁} kept for completed blocks: O(p·d). When t ends its
    /// block, that block's products are computed for the positions after it.
    func step(_ m: MixerMemory, position t: Int, into out: UnsafeMutablePointer<Float>) {
        let heads = l1.shape[0], p = l1.shape[1], d = m.width, dh = d / heads
        let t1 = t / p, t2 = t % p
        out.update(repeating: 0, count: d)
        for h in 0..<heads {
            let f1 = UnsafePointer(l1.data) + h * p * p * p, f2 = UnsafePointer(l2.data) + h * p * p * p
            let y = out + h * dh
            let row = f1 + (t2 * p + t1) * p    // L1[h][t₂, t₁, ·]
            for s1 in 0..<t1 {
                let a = row[s1], z = m.blockProducts + (s1 * p + t2) * d + h * dh
                for c in 0..<dh { y[c] += a * z[c] }
            }
            let diagonal = row[t1], lower = f2 + (t1 * p + t2) * p    // L2[h][t₁, t₂, ·]
            for s2 in 0...t2 {
                let a = diagonal * lower[s2], x = m.input(t1 * p + s2) + h * dh
                for c in 0..<dh { y[c] += a * x[c] }
            }
        }
        if t2 == p - 1 { completeBlock(t1, m) }
    }

    /// The products of every block completed within the first `count` positions (after a
    /// batched read).
    func catchUp(_ m: MixerMemory, count: Int) {
        for b in 0..<(count / l1.shape[1]) { completeBlock(b, m) }
    }

    /// z[b] = L2[h][b] · x_b for every head, into the memory's block products.
    private func completeBlock(_ b: Int, _ m: MixerMemory) {
        let heads = l1.shape[0], p = l1.shape[1], d = m.width, dh = d / heads
        for h in 0..<heads {
            let block = UnsafePointer(l2.data) + h * p * p * p + b * p * p    // L2[h][b]
            for i in 0..<p {
                let z = m.blockProducts + (b * p + i) * d + h * dh
                z.update(repeating: 0, count: dh)
                for j in 0..<p {
                    let a = block[i * p + j], x = m.input(b * p + j) + h * dh
                    for c in 0..<dh { z[c] += a * x[c] }
                }
            }
        }
    }
}
