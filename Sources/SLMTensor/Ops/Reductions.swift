import CSLMKernels

extension Tensor {
    /// Sum of all elements (a rank-0 tensor).
    public func sum() -> Tensor {
        let out = Tensor(scalar: Float(slm_sum(Int64(count), data)))
        Autograd.record(out, op: "sum", inputs: [self]) { [self] g in
            addConstant(g.item(), into: gradBuffer())
        }
        return out
    }

    /// Mean of all elements (a rank-0 tensor).
    public func mean() -> Tensor {
        let n = Float(max(count, 1))
        let out = Tensor(scalar: Float(slm_sum(Int64(count), data)) / n)
        Autograd.record(out, op: "mean", inputs: [self]) { [self] g in
            addConstant(g.item() / n, into: gradBuffer())
        }
        return out
    }

    /// Sum along one axis (removed from the shape unless `keepDims`).
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { reduce(axis: axis, keepDims: keepDims, mean: false) }

    /// Mean along one axis (removed from the shape unless `keepDims`).
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { reduce(axis: axis, keepDims: keepDims, mean: true) }

    private func reduce(axis: Int, keepDims: Bool, mean: Bool) -> Tensor {
        let ax = checked { () throws(ShapeError) in try shape.axis(axis, op: mean ? "mean" : "sum") }
        let n = shape[ax], inner = shape.dims[(ax + 1)...].reduce(1, *), outer = shape.dims[..<ax].reduce(1, *)
        var dims = shape.dims
        if keepDims { dims[ax] = 1 } else { dims.remove(at: ax) }
        let out = Tensor(zeros: Shape(dims))
        let factor: Float = mean ? 1 / Float(max(n, 1)) : 1
        let px = data, py = out.data
        for o in 0..<outer {
            for a in 0..<n { slm_axpy(Int64(inner), factor, px + (o * n + a) * inner, py + o * inner) }
        }
        Autograd.record(out, op: mean ? "mean" : "sum", inputs: [self]) { [self] g in
            let dx = gradBuffer().data, pg = g.data
            for o in 0..<outer {
                for a in 0..<n { slm_axpy(Int64(inner), factor, pg + o * inner, dx + (o * n + a) * inner) }
            }
        }
        return out
    }
}

private func addConstant(_ value: Float, into t: Tensor) {
    let p = t.data
    for i in 0..<t.count { p[i] += value }
}
