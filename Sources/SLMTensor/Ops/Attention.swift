import CSLMKernels
import Foundation

/// Causal scaled-dot-product attention as one fused op, with grouped-query attention.
///
/// q: [B, Tq, Hq, D]; k, v: [B, Tk, Hkv, D] with Hq a multiple of Hkv (each group of
/// Hq/Hkv query heads shares one key/value head). Query i sees keys j <= i + (Tk - Tq), so
/// Tk > Tq continues a cached prefix. Result: [B, Tq, Hq, D].
///
/// Only the output and one log-sum-exp per query row are kept for the backward pass,
/// which recomputes the attention probabilities: no B×H×T×T tensor stays alive.
public func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float? = nil) -> Tensor {
    let dims = checked { () throws(ShapeError) -> (b: Int, tq: Int, tk: Int, hq: Int, hkv: Int, d: Int) in
        guard q.rank == 4, k.rank == 4 else {
            throw ShapeError("attention: q and k must be [B, T, H, D], got \(q.shape) and \(k.shape)")
        }
        guard k.shape == v.shape else { throw ShapeError("attention: k \(k.shape) and v \(v.shape) differ") }
        guard q.shape[0] == k.shape[0], q.shape[3] == k.shape[3] else {
            throw ShapeError("attention: batch or head size of q \(q.shape) and k \(k.shape) differ")
        }
        guard k.shape[2] > 0, q.shape[2] % k.shape[2] == 0 else {
            throw ShapeError("attention: \(q.shape[2]) query heads are not a multiple of \(k.shape[2]) key/value heads (q \(q.shape), k \(k.shape))")
        }
        guard k.shape[1] >= q.shape[1] else {
            throw ShapeError("attention: fewer keys (\(k.shape[1])) than queries (\(q.shape[1])) for q \(q.shape), k \(k.shape)")
        }
        return (q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3])
    }
    let out = Tensor(uninitialized: q.shape)
    let lse = Tensor(uninitialized: [dims.b, dims.hq, dims.tq])
    let args = slm_attention_args(
        B: Int64(dims.b), Tq: Int64(dims.tq), Tk: Int64(dims.tk), Hq: Int64(dims.hq), Hkv: Int64(dims.hkv),
        D: Int64(dims.d), scale: scale ?? 1 / Float(dims.d).squareRoot(),
        q: q.data, k: k.data, v: v.data, out: out.data, lse: lse.data)
    let tasks = dims.b * dims.hkv
    // Multiply-adds per task; small problems (decoding one token) stay on one thread.
    let workPerTask = dims.tq * dims.tk * dims.d * (dims.hq / dims.hkv)
    let grain = max(1, (1 << 18) / max(workPerTask, 1))
    withExtendedLifetime(lse) {
        withUnsafePointer(to: args) { a in
            Parallel.forRanges(tasks, grain: grain) { r in slm_attention_fwd(a, Int64(r.lowerBound), Int64(r.upperBound)) }
        }
    }
    // args points into out (alive while its node runs) and lse (captured).
    Autograd.record(out, op: "attention", inputs: [q, k, v]) { [lse] g in
        // Inputs that need no gradient still get a scratch buffer for the kernel to fill.
        func target(_ t: Tensor) -> Tensor { t.requiresGrad ? t.gradBuffer() : Tensor(zeros: t.shape) }
        let dq = target(q), dk = target(k), dv = target(v)
        let pg = g.data
        withExtendedLifetime(lse) {
            withUnsafePointer(to: args) { a in
                Parallel.forRanges(tasks, grain: grain) { r in
                    slm_attention_bwd(a, pg, dq.data, dk.data, dv.data, Int64(r.lowerBound), Int64(r.upperBound))
                }
            }
        }
    }
    return out
}
