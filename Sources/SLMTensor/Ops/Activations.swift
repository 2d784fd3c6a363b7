import CSLMKernels

/// Applies an elementwise kernel in parallel and records its backward kernel.
private func unary(_ x: Tensor, op: String,
                   forward: @escaping (Int64, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void,
                   backward: @escaping (Int64, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Kernels.elements(x.count) { s, n in forward(Int64(n), px + s, py + s) }
    Autograd.record(out, op: op, inputs: [x]) { g in
        let pg = g.data, dx = x.gradBuffer().data
        Kernels.elements(x.count) { s, n in backward(Int64(n), px + s, pg + s, dx + s) }
    }
    return out
}

/// GELU with the tanh approximation, as GPT-2.
public func gelu(_ x: Tensor) -> Tensor {
    unary(x, op: "gelu", forward: { slm_gelu_fwd($0, $1, $2) }, backward: { slm_gelu_bwd($0, $1, $2, $3) })
}

/// SiLU (swish): x · sigmoid(x).
public func silu(_ x: Tensor) -> Tensor {
    unary(x, op: "silu", forward: { slm_silu_fwd($0, $1, $2) }, backward: { slm_silu_bwd($0, $1, $2, $3) })
}

/// SwiGLU: silu(gate) · up, fused in one pass.
public func swiglu(gate: Tensor, up: Tensor) -> Tensor {
    checked { () throws(ShapeError) in
        guard gate.shape == up.shape else {
            throw ShapeError("swiglu: gate \(gate.shape) and up \(up.shape) differ")
        }
    }
    let out = Tensor(uninitialized: gate.shape)
    let pg = gate.data, pu = up.data, py = out.data
    Kernels.elements(out.count) { s, n in slm_swiglu_fwd(Int64(n), pg + s, pu + s, py + s) }
    Autograd.record(out, op: "swiglu", inputs: [gate, up]) { g in
        let scratch = gate.requiresGrad && up.requiresGrad ? nil : Tensor(zeros: gate.shape)
        let dg = gate.requiresGrad ? gate.gradBuffer().data : scratch!.data
        let du = up.requiresGrad ? up.gradBuffer().data : scratch!.data
        let pd = g.data
        withExtendedLifetime(scratch) {
            Kernels.elements(out.count) { s, n in
                slm_swiglu_bwd(Int64(n), pg + s, pu + s, pd + s, dg + s, du + s)
            }
        }
    }
    return out
}

/// Softmax over the last axis.
public func softmax(_ x: Tensor) -> Tensor {
    checked { () throws(ShapeError) in
        guard x.rank >= 1 else { throw ShapeError("softmax: input must have rank >= 1") }
    }
    let cols = x.shape.last, rows = x.count / max(cols, 1)
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Kernels.rows(rows, cols: cols) { r0, n in
        slm_softmax_fwd(Int64(n), Int64(cols), px + r0 * cols, py + r0 * cols)
    }
    let y = out.detached()
    Autograd.record(out, op: "softmax", inputs: [x]) { g in
        let pg = g.data, dx = x.gradBuffer().data, py = y.data
        Kernels.rows(rows, cols: cols) { r0, n in
            let o = r0 * cols
            slm_softmax_bwd(Int64(n), Int64(cols), py + o, pg + o, dx + o)
        }
    }
    return out
}

/// The logistic sigmoid, 1 / (1 + e^−x).
public func sigmoid(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Kernels.elements(x.count) { s, n in slm_sigmoid_fwd(Int64(n), px + s, py + s) }
    let y = out.detached()
    Autograd.record(out, op: "sigmoid", inputs: [x]) { g in
        let pg = g.data, dx = x.gradBuffer().data, py = y.data
        Kernels.elements(x.count) { s, n in slm_sigmoid_bwd(Int64(n), py + s, pg + s, dx + s) }
    }
    return out
}

/// Softmax down the first axis of a [rows, cols] matrix: each column sums to 1. For a
/// handful of rows (SymbioSLM's organelle gate, [3, width]), vectorised along the columns.
public func columnSoftmax(_ x: Tensor) -> Tensor {
    checked { () throws(ShapeError) in
        guard x.rank == 2, x.shape[0] >= 1 else { throw ShapeError("columnSoftmax: input \(x.shape) must be [rows, cols]") }
    }
    let rows = x.shape[0], cols = x.shape[1]
    let out = Tensor(uninitialized: x.shape)
    slm_softmax_cols_fwd(Int64(rows), Int64(cols), x.data, out.data)
    let y = out.detached()
    Autograd.record(out, op: "columnSoftmax", inputs: [x]) { g in
        slm_softmax_cols_bwd(Int64(rows), Int64(cols), y.data, g.data, x.gradBuffer().data)
    }
    return out
}
