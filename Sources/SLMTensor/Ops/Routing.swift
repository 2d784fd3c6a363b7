/// The combine step of a mixture of experts: out[rows[i]] += weights[i] · values[i], into
/// `count` rows that start at zero. `values` [n, width], `weights` n elements, each row
/// index in 0..<count (several slots may add into one row). The backward pass gives
/// d values[i] = weights[i] · g[rows[i]] and d weights[i] = g[rows[i]] · values[i].
/// (Picking rows out, the dispatch step, is `embedding` with the rows as indices.)
public func scatterAddRows(_ values: Tensor, weights: Tensor, rows: [Int32], count: Int) -> Tensor {
    let width = checked { () throws(ShapeError) -> Int in
        guard values.rank == 2, values.shape[0] == rows.count, weights.count == rows.count else {
            throw ShapeError("scatterAddRows: values \(values.shape), \(weights.count) weights and \(rows.count) rows must agree")
        }
        return values.shape[1]
    }
    if let bad = rows.firstIndex(where: { $0 < 0 || Int($0) >= count }) {
        fatalError("scatterAddRows: row \(rows[bad]) at slot \(bad) is outside 0..<\(count)")
    }
    let out = Tensor(zeros: [count, width])
    let pv = values.data, pw = weights.data, py = out.data
    rows.withUnsafeBufferPointer { r in
        // Split by columns so that slots adding into one row never race.
        Parallel.forRanges(width, grain: 16) { cols in
            for i in 0..<r.count {
                let w = pw[i], src = pv + i * width + cols.lowerBound, dst = py + Int(r[i]) * width + cols.lowerBound
                for c in 0..<cols.count { dst[c] += w * src[c] }
            }
        }
    }
    Autograd.record(out, op: "scatterAddRows", inputs: [values, weights]) { g in
        let pg = g.data
        let dv = values.requiresGrad ? values.gradBuffer().data : nil
        let dw = weights.requiresGrad ? weights.gradBuffer().data : nil
        rows.withUnsafeBufferPointer { r in
            Kernels.rows(r.count, cols: width) { r0, n in
                for i in r0..<(r0 + n) {
                    let src = pg + Int(r[i]) * width, v = pv + i * width
                    if let dv {
                        let w = pw[i], dst = dv + i * width
                        for c in 0..<width { dst[c] += w * src[c] }
                    }
                    if let dw {
                        var dot: Float = 0
                        for c in 0..<width { dot += src[c] * v[c] }
                        dw[i] += dot
                    }
                }
            }
        }
    }
    return out
}
