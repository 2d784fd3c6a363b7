import CSLMKernels
import Foundation

/// Precomputed cos/sin tables for rotary position embeddings ("rotate half" pairing:
/// element i turns with element i + headDim/2, as Hugging Face's Llama does).
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public let maxPositions: Int
    public let theta: Double
    /// cos and sin of each position's angles, [maxPositions, headDim / 2].
    public let cosTable: [Float]
    public let sinTable: [Float]

    public init(headDim: Int, maxPositions: Int, theta: Double = 10_000) {
        precondition(headDim > 0 && headDim % 2 == 0, "RotaryEmbedding: head dimension \(headDim) must be even")
        precondition(maxPositions > 0, "RotaryEmbedding: maxPositions must be positive")
        self.headDim = headDim
        self.maxPositions = maxPositions
        self.theta = theta
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxPositions * half), s = c
        for p in 0..<maxPositions {
            for i in 0..<half {
                let angle = Double(p) * pow(theta, -Double(2 * i) / Double(headDim))
                c[p * half + i] = Float(cos(angle))
                s[p * half + i] = Float(sin(angle))
            }
        }
        cosTable = c
        sinTable = s
    }
}

/// Rotates x [B, T, H, D] by position; positions start at `offset` (for cached decoding).
public func rope(_ x: Tensor, _ table: RotaryEmbedding, offset: Int = 0) -> Tensor {
    let (b, t, h, d) = checked { () throws(ShapeError) -> (Int, Int, Int, Int) in
        guard x.rank == 4 else { throw ShapeError("rope: input must be [B, T, H, D], got \(x.shape)") }
        guard x.shape[3] == table.headDim else {
            throw ShapeError("rope: head dimension \(x.shape[3]) of \(x.shape) differs from the table's \(table.headDim)")
        }
        guard offset >= 0, offset + x.shape[1] <= table.maxPositions else {
            throw ShapeError("rope: positions \(offset)..<\(offset + x.shape[1]) exceed the table's \(table.maxPositions)")
        }
        return (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    }
    let out = Tensor(uninitialized: x.shape)
    rotate(x.data, out.data, b: b, t: t, h: h, d: d, offset: offset, table: table, inverse: false)
    Autograd.record(out, op: "rope", inputs: [x]) { g in
        let back = Tensor(uninitialized: x.shape)
        rotate(g.data, back.data, b: b, t: t, h: h, d: d, offset: offset, table: table, inverse: true)
        x.accumulateGrad(back)
    }
    return out
}

private func rotate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, b: Int, t: Int, h: Int, d: Int,
                    offset: Int, table: RotaryEmbedding, inverse: Bool) {
    table.cosTable.withUnsafeBufferPointer { c in
        table.sinTable.withUnsafeBufferPointer { s in
            let cp = c.baseAddress!, sp = s.baseAddress!
            Parallel.forRanges(b * t, grain: max(1, 16_384 / max(h * d, 1))) { r in
                // One call per (batch, time) row: each row has its own position.
                for row in r {
                    let pos = offset + row % t, o = row * h * d
                    slm_rope(1, 1, Int64(h), Int64(d), Int64(pos), cp, sp, x + o, y + o, inverse ? 1 : 0)
                }
            }
        }
    }
}
