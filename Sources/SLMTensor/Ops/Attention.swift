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
    let dims = checked { () throws(ShapeError) -> AttentionDims in
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
        return AttentionDims(b: q.shape[0], tq: q.shape[1], tk: k.shape[1], hq: q.shape[2], hkv: k.shape[2], d: q.shape[3])
    }
    return causalAttention(dims, inputs: [q, k, v], q: q.data, k: k.data, v: v.data, ldq: 0, ldkv: 0, scale: scale) {
        // Inputs that need no gradient still get a scratch buffer for the kernel to fill.
        let targets = [q, k, v].map { $0.requiresGrad ? $0.gradBuffer() : Tensor(zeros: $0.shape) }
        return (targets[0].data, targets[1].data, targets[2].data, targets)
    }
}

/// Self-attention straight from GPT-2's fused projection: qkv [B, T, 3·H·D] holds each
/// token's queries, keys and values side by side. The kernel reads them with a row
/// stride and writes their gradients into one buffer the same way, so no split copies.
public func attention(packedQKV qkv: Tensor, heads: Int, scale: Float? = nil) -> Tensor {
    let dims = checked { () throws(ShapeError) -> AttentionDims in
        guard qkv.rank == 3, heads > 0, qkv.shape[2] % (3 * heads) == 0 else {
            throw ShapeError("attention: packed qkv must be [B, T, 3·H·D] with H = \(heads), got \(qkv.shape)")
        }
        let d = qkv.shape[2] / (3 * heads)
        return AttentionDims(b: qkv.shape[0], tq: qkv.shape[1], tk: qkv.shape[1], hq: heads, hkv: heads, d: d)
    }
    let width = heads * dims.d, p = qkv.data
    return causalAttention(dims, inputs: [qkv], q: p, k: p + width, v: p + 2 * width, ldq: 3 * width,
                           ldkv: 3 * width, scale: scale) {
        let (g, fresh) = qkv.requiresGrad ? qkv.gradBufferForWriting() : (Tensor(uninitialized: qkv.shape), true)
        if fresh { g.data.update(repeating: 0, count: g.count) }
        return (g.data, g.data + width, g.data + 2 * width, [g])
    }
}

struct AttentionDims {
    let b, tq, tk, hq, hkv, d: Int
}

/// Floating-point operations of one of fused attention's products (the scores, or the
/// weighted values) over the (query, key) pairs the causal mask keeps: query i sees
/// i + 1 + (keys − queries) keys. The forward pass makes two such products, the backward
/// five (the scores again, dP, dQ, dK, dV).
public func causalAttentionProductFlops(batch: Int, queries: Int, keys: Int, heads: Int, headSize: Int) -> Double {
    let pairs = Double(queries) * Double(queries + 1) / 2 + Double(queries) * Double(keys - queries)
    return 2 * pairs * Double(headSize) * Double(batch * heads)
}

/// Runs the kernel over (batch, key/value head) tasks on all threads and records the
/// backward pass, which gets its gradient pointers from `gradients` (plus the tensors
/// that own them).
private func causalAttention(
    _ dims: AttentionDims, inputs: [Tensor], q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, ldq: Int, ldkv: Int, scale: Float?,
    gradients: @escaping () -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, [Tensor])
) -> Tensor {
    let out = Tensor(uninitialized: [dims.b, dims.tq, dims.hq, dims.d])
    let lse = Tensor(uninitialized: [dims.b, dims.hq, dims.tq])
    let args = slm_attention_args(
        B: Int64(dims.b), Tq: Int64(dims.tq), Tk: Int64(dims.tk), Hq: Int64(dims.hq), Hkv: Int64(dims.hkv),
        D: Int64(dims.d), ldq: Int64(ldq), ldkv: Int64(ldkv), scale: scale ?? 1 / Float(dims.d).squareRoot(),
        q: q, k: k, v: v, out: out.data, lse: lse.data)
    let tasks = dims.b * dims.hkv
    // Multiply-adds per task; small problems (decoding one token) stay on one thread.
    let workPerTask = dims.tq * dims.tk * dims.d * (dims.hq / dims.hkv)
    let grain = max(1, (1 << 18) / max(workPerTask, 1))
    withExtendedLifetime(lse) {
        withUnsafePointer(to: args) { a in
            Parallel.forRanges(tasks, grain: grain) { r in slm_attention_fwd(a, Int64(r.lowerBound), Int64(r.upperBound)) }
        }
    }
    // args points into the inputs (alive while the graph holds them), out (alive while its
    // node runs) and lse (captured).
    let product = causalAttentionProductFlops(batch: dims.b, queries: dims.tq, keys: dims.tk, heads: dims.hq, headSize: dims.d)
    Autograd.record(out, op: "attention", inputs: inputs, flops: (2 * product, 5 * product)) { [lse] g in
        let (dq, dk, dv, owners) = gradients()
        let pg = g.data
        withExtendedLifetime((lse, owners)) {
            withUnsafePointer(to: args) { a in
                Parallel.forRanges(tasks, grain: grain) { r in
                    slm_attention_bwd(a, pg, dq, dk, dv, Int64(r.lowerBound), Int64(r.upperBound))
                }
            }
        }
    }
    return out
}
