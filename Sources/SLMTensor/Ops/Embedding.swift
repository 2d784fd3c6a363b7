/// Rows of `weight` [vocabulary, width] picked by `indices`: result is shape + [width].
/// Every index is checked against the vocabulary; the backward pass scatter-adds.
public func embedding(_ weight: Tensor, indices: [Int32], shape: Shape) -> Tensor {
    let (vocab, width) = checked { () throws(ShapeError) -> (Int, Int) in
        guard weight.rank == 2 else { throw ShapeError("embedding: weight must be [vocab, width], got \(weight.shape)") }
        guard indices.count == shape.count else {
            throw ShapeError("embedding: \(indices.count) indices do not fill shape \(shape)")
        }
        return (weight.shape[0], weight.shape[1])
    }
    if let bad = indices.firstIndex(where: { $0 < 0 || Int($0) >= vocab }) {
        fatalError("embedding: index \(indices[bad]) at position \(bad) is outside the vocabulary of \(vocab)")
    }
    let out = Tensor(uninitialized: Shape(shape.dims + [width]))
    let pw = weight.data, py = out.data
    indices.withUnsafeBufferPointer { ids in
        Kernels.rows(ids.count, cols: width) { r0, n in
            for i in r0..<(r0 + n) { (py + i * width).update(from: pw + Int(ids[i]) * width, count: width) }
        }
    }
    Autograd.record(out, op: "embedding", inputs: [weight]) { g in
        let pg = g.data, dw = weight.gradBuffer().data
        indices.withUnsafeBufferPointer { ids in
            // Split by columns so that repeated indices never race.
            Parallel.forRanges(width, grain: 16) { cols in
                for i in 0..<ids.count {
                    let src = pg + i * width + cols.lowerBound, dst = dw + Int(ids[i]) * width + cols.lowerBound
                    for c in 0..<cols.count { dst[c] += src[c] }
                }
            }
        }
    }
    return out
}
