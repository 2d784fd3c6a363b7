/// BitNet b1.58's quantisers, as the forward pass of a BitLinear sees its operands. Both
/// pass gradients straight through (the straight-through estimator): training updates
/// the full-precision master weights as if no rounding had happened.

/// The absmean scale of a weight tensor: s = mean|W| (at least 1e-5, so an all-zero
/// tensor does not divide by zero).
public func ternaryScale(_ w: UnsafePointer<Float>, count: Int) -> Float {
    var sum: Double = 0
    for i in 0..<count { sum += Double(abs(w[i])) }
    return max(Float(sum / Double(max(count, 1))), 1e-5)
}

/// W quantised to {−s, 0, +s} with s = mean|W|: round(W/s) clamped to [−1, 1], times s.
public func ternaryWeights(_ w: Tensor) -> Tensor {
    let out = Tensor(uninitialized: w.shape)
    let px = w.data, py = out.data
    let s = ternaryScale(px, count: w.count)
    Kernels.elements(w.count) { start, n in
        for i in start..<(start + n) { py[i] = min(max((px[i] / s).rounded(.toNearestOrEven), -1), 1) * s }
    }
    Autograd.record(out, op: "ternary_weights", inputs: [w]) { g in w.accumulateGrad(g) }
    return out
}

/// Each row (the last axis: one token's activations) quantised to 8 bits by its absmax
/// γ: round(x·127/γ) clamped to [−128, 127], times γ/127.
public func int8Activations(_ x: Tensor) -> Tensor {
    let cols = x.shape.last ?? 1, rows = x.count / max(cols, 1)
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Kernels.rows(rows, cols: cols) { first, count in
        for r in first..<(first + count) {
            let row = px + r * cols, y = py + r * cols
            var peak: Float = 0
            for j in 0..<cols { peak = max(peak, abs(row[j])) }
            let up = 127 / max(peak, 1e-5)
            for j in 0..<cols { y[j] = min(max((row[j] * up).rounded(.toNearestOrEven), -128), 127) / up }
        }
    }
    Autograd.record(out, op: "int8_activations", inputs: [x]) { g in x.accumulateGrad(g) }
    return out
}
