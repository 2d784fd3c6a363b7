import CSLMKernels

/// Zeroes each element with probability `p` and scales the rest by 1/(1-p). One draw
/// from `rng` seeds a counter-based mask, so the same seed drops the same elements, and
/// the mask is recomputed in the backward pass instead of stored. p = 0 returns x itself.
public func dropout(_ x: Tensor, p: Float, rng: inout RNG) -> Tensor {
    precondition(p >= 0 && p < 1, "dropout: probability \(p) must be in [0, 1)")
    if p == 0 { return x }
    let seed = rng.next()
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    let rows = DropoutRows.current.spans(x)
    for r in rows {
        Kernels.elements(r.count) { s, n in slm_dropout_fwd(Int64(n), seed, Int64(r.index + s), p, px + r.local + s, py + r.local + s) }
    }
    Autograd.record(out, op: "dropout", inputs: [x]) { g in
        let pg = g.data, pdx = x.gradBuffer().data
        for r in rows {
            Kernels.elements(r.count) { s, n in
                slm_dropout_bwd(Int64(n), seed, Int64(r.index + s), p, pg + r.local + s, pdx + r.local + s)
            }
        }
    }
    return out
}

/// Which rows of the global batch this process holds: local row j (the first axis) is
/// global row j·stride + offset. Dropout masks are keyed by the element's index in the
/// global batch, so data-parallel ranks draw the masks one process with the whole batch
/// would (and a plain run, stride 1 and offset 0, keys by the flat index).
public struct DropoutRows: Sendable, Equatable {
    public var stride: Int
    public var offset: Int

    public init(stride: Int = 1, offset: Int = 0) {
        self.stride = stride
        self.offset = offset
    }

    @TaskLocal public static var current = DropoutRows()

    /// Contiguous runs of x's elements: where each starts locally, its global index, its length.
    func spans(_ x: Tensor) -> [(local: Int, index: Int, count: Int)] {
        let spans: [(local: Int, index: Int, count: Int)]
        if self == DropoutRows() || x.rank == 0 {
            spans = [(0, 0, x.count)]
        } else {
            let rowSize = x.count / max(x.shape[0], 1)
            spans = (0..<x.shape[0]).map { j in (j * rowSize, (j * stride + offset) * rowSize, rowSize) }
        }
        precondition(spans.allSatisfy { $0.index + $0.count <= Int(UInt32.max) },
                     "dropout: global indices past 2^32 exceed the mask's index range")
        return spans
    }
}
