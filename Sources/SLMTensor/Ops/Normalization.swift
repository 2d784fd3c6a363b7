import CSLMKernels

private func normRows(_ x: Tensor, _ weight: Tensor?, _ bias: Tensor?, op: String) -> (rows: Int, cols: Int) {
    checked { () throws(ShapeError) -> (Int, Int) in
        guard x.rank >= 1 else { throw ShapeError("\(op): input must have rank >= 1") }
        let cols = x.shape.last
        if let weight, weight.shape != [cols] {
            throw ShapeError("\(op): weight \(weight.shape) does not match input \(x.shape) (expects [\(cols)])")
        }
        if let bias, bias.shape != [cols] {
            throw ShapeError("\(op): bias \(bias.shape) does not match input \(x.shape) (expects [\(cols)])")
        }
        return (x.count / max(cols, 1), cols)
    }
}

/// Gradient buffers for a norm's backward pass: dx (a scratch buffer when x needs no
/// gradient) and per-thread partial sums for the weight/bias gradients.
private struct NormGrads {
    let dx: UnsafeMutablePointer<Float>
    let partial: Tensor
    let scratch: Tensor?
    let chunks: Int

    init(_ x: Tensor, rows: Int, cols: Int, grain: Int, parameterCount: Int) {
        scratch = x.requiresGrad ? nil : Tensor(zeros: x.shape)
        dx = (scratch ?? x.gradBuffer()).data
        chunks = Parallel.chunkCount(rows, grain: grain)
        partial = Tensor(zeros: [max(parameterCount, 1), chunks, cols])
    }

    func partialPointer(_ which: Int, _ chunk: Int, cols: Int) -> UnsafeMutablePointer<Float> {
        partial.data + (which * chunks + chunk) * cols
    }

    /// Marks the end of the buffers' use: `dx` may point into `scratch`, which must live
    /// until the kernels are done.
    func release() { withExtendedLifetime(scratch) {} }

    func reduce(_ which: Int, cols: Int, into t: Tensor?) {
        guard let t, t.requiresGrad else { return }
        slm_colsum_acc(Int64(chunks), Int64(cols), partialPointer(which, 0, cols: cols), t.gradBuffer().data)
    }
}

/// Layer normalisation over the last axis: (x - mean) / sqrt(var + eps) * weight + bias.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
    let (rows, cols) = normRows(x, weight, bias, op: "layerNorm")
    let out = Tensor(uninitialized: x.shape), mean = Tensor(uninitialized: [rows]), rstd = Tensor(uninitialized: [rows])
    let px = x.data, pw = weight?.data, pb = bias?.data
    let py = out.data
    let grain = max(1, 16_384 / max(cols, 1))
    withExtendedLifetime((mean, rstd)) {
        let pm = mean.data, pr = rstd.data
        Parallel.forRanges(rows, grain: grain) { r in
            let o = r.lowerBound * cols
            slm_layernorm_fwd(Int64(r.count), Int64(cols), px + o, pw, pb, eps, py + o,
                              pm + r.lowerBound, pr + r.lowerBound)
        }
    }
    let inputs = [x] + [weight, bias].compactMap { $0 }
    Autograd.record(out, op: "layerNorm", inputs: inputs) { [mean, rstd] g in
        let grads = NormGrads(x, rows: rows, cols: cols, grain: grain, parameterCount: 2)
        let pg = g.data, pm = mean.data, pr = rstd.data
        _ = Parallel.forChunks(rows, grain: grain) { c, r in
            let o = r.lowerBound * cols
            slm_layernorm_bwd(Int64(r.count), Int64(cols), px + o, pw, pm + r.lowerBound, pr + r.lowerBound,
                              pg + o, grads.dx + o,
                              weight?.requiresGrad == true ? grads.partialPointer(0, c, cols: cols) : nil,
                              bias?.requiresGrad == true ? grads.partialPointer(1, c, cols: cols) : nil)
        }
        grads.reduce(0, cols: cols, into: weight)
        grads.reduce(1, cols: cols, into: bias)
        grads.release()
    }
    return out
}

/// RMS normalisation over the last axis: x / sqrt(mean(x²) + eps) * weight.
public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float = 1e-5) -> Tensor {
    let (rows, cols) = normRows(x, weight, nil, op: "rmsNorm")
    let out = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [rows])
    let px = x.data, pw = weight?.data, py = out.data
    let grain = max(1, 16_384 / max(cols, 1))
    withExtendedLifetime(rstd) {
        let pr = rstd.data
        Parallel.forRanges(rows, grain: grain) { r in
            let o = r.lowerBound * cols
            slm_rmsnorm_fwd(Int64(r.count), Int64(cols), px + o, pw, eps, py + o, pr + r.lowerBound)
        }
    }
    Autograd.record(out, op: "rmsNorm", inputs: [x] + [weight].compactMap { $0 }) { [rstd] g in
        let grads = NormGrads(x, rows: rows, cols: cols, grain: grain, parameterCount: 1)
        let pg = g.data, pr = rstd.data
        _ = Parallel.forChunks(rows, grain: grain) { c, r in
            let o = r.lowerBound * cols
            slm_rmsnorm_bwd(Int64(r.count), Int64(cols), px + o, pw, pr + r.lowerBound, pg + o, grads.dx + o,
                            weight?.requiresGrad == true ? grads.partialPointer(0, c, cols: cols) : nil)
        }
        grads.reduce(0, cols: cols, into: weight)
        grads.release()
    }
    return out
}
