import Foundation
import CSLMKernels

/// Mean cross-entropy of logits [..., V] against one target class per row, fused with
/// the log-softmax. Rows whose target is `ignoreIndex` do not count; if every row is
/// ignored the loss is 0. Keeps one log-sum-exp per row for the backward pass.
public func crossEntropy(_ logits: Tensor, targets: [Int32], ignoreIndex: Int32 = -100) -> Tensor {
    let (rows, vocab) = checked { () throws(ShapeError) -> (Int, Int) in
        guard logits.rank >= 1, logits.shape.last > 0 else {
            throw ShapeError("crossEntropy: logits must be [..., V], got \(logits.shape)")
        }
        let v = logits.shape.last
        guard targets.count * v == logits.count else {
            throw ShapeError("crossEntropy: \(targets.count) targets for logits \(logits.shape) (\(logits.count / v) rows)")
        }
        return (targets.count, v)
    }
    if let bad = targets.firstIndex(where: { $0 != ignoreIndex && ($0 < 0 || Int($0) >= vocab) }) {
        fatalError("crossEntropy: target \(targets[bad]) at row \(bad) is outside 0..<\(vocab)")
    }
    let counted = targets.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
    let losses = Tensor(uninitialized: [rows]), lse = Tensor(uninitialized: [rows])
    let px = logits.data
    let total = withExtendedLifetime((losses, lse)) {
        let pl = losses.data, pe = lse.data
        targets.withUnsafeBufferPointer { t in
            let pt = t.baseAddress!
            Kernels.rows(rows, cols: vocab) { r0, n in
                slm_xent_fwd(Int64(n), Int64(vocab), px + r0 * vocab, pt + r0, ignoreIndex, pl + r0, pe + r0)
            }
        }
        return slm_sum(Int64(rows), pl)
    }
    let out = Tensor(scalar: counted == 0 ? 0 : Float(total / Double(counted)))
    Autograd.record(out, op: "crossEntropy", inputs: [logits]) { [lse] g in
        guard counted > 0 else { return }
        let scale = g.item() / Float(counted), dx = logits.gradBuffer().data, pe = lse.data
        targets.withUnsafeBufferPointer { t in
            let pt = t.baseAddress!
            Kernels.rows(rows, cols: vocab) { r0, n in
                slm_xent_bwd(Int64(n), Int64(vocab), px + r0 * vocab, pt + r0, ignoreIndex, pe + r0, scale,
                             dx + r0 * vocab)
            }
        }
    }
    return out
}

/// Each row's cross-entropy against its target (logits [..., V]), outside the graph: what
/// `crossEntropy` averages, for scoring data.
public func tokenLosses(_ logits: Tensor, targets: [Int32]) -> [Float] {
    let vocab = logits.shape.last
    precondition(logits.rank >= 1 && vocab > 0 && targets.count * vocab == logits.count,
                 "tokenLosses: \(targets.count) targets for logits \(logits.shape)")
    precondition(targets.allSatisfy { $0 >= 0 && Int($0) < vocab }, "tokenLosses: a target outside 0..<\(vocab)")
    var losses = [Float](repeating: 0, count: targets.count), lse = [Float](repeating: 0, count: targets.count)
    let px = logits.data
    losses.withUnsafeMutableBufferPointer { pl in
        lse.withUnsafeMutableBufferPointer { pe in
            targets.withUnsafeBufferPointer { t in
                let (pl, pe, pt) = (pl.baseAddress!, pe.baseAddress!, t.baseAddress!)
                Kernels.rows(targets.count, cols: vocab) { r0, n in
                    slm_xent_fwd(Int64(n), Int64(vocab), px + r0 * vocab, pt + r0, -100, pl + r0, pe + r0)
                }
            }
        }
    }
    return losses
}

/// Mean over rows of the cross-entropy of softmax(logits / temperature) against the given
/// target distributions (rows of `targets`, each summing to 1), times temperature²: the
/// distillation term, which differs from T²·KL(targets ‖ student) by the targets'
/// entropy alone, so it has KL's gradient, T · (softmax(z / T) − p) / rows. Only
/// `logits` gets a gradient.
public func softCrossEntropy(_ logits: Tensor, targets: Tensor, temperature: Float) -> Tensor {
    precondition(logits.shape == targets.shape && logits.rank >= 1 && logits.shape.last > 0 && temperature > 0,
                 "softCrossEntropy: logits \(logits.shape) and targets \(targets.shape) must match, temperature \(temperature) > 0")
    let vocab = logits.shape.last, rows = logits.count / vocab
    let lse = Tensor(uninitialized: [rows]), losses = Tensor(uninitialized: [rows])
    let pz = logits.data, pp = targets.data, pe = lse.data, pl = losses.data
    let inverse = 1 / temperature
    Kernels.rows(rows, cols: vocab) { r0, n in
        for r in r0..<(r0 + n) {
            let z = pz + r * vocab, p = pp + r * vocab
            var top = -Float.infinity
            for i in 0..<vocab { top = max(top, z[i] * inverse) }
            var sum: Float = 0, dot: Float = 0
            for i in 0..<vocab {
                sum += expf(z[i] * inverse - top)
                dot += p[i] * z[i] * inverse
            }
            pe[r] = top + logf(sum)
            pl[r] = pe[r] - dot   // −Σ p log softmax(z/T), with Σ p = 1
        }
    }
    let scale = temperature * temperature / Float(rows)
    let out = Tensor(scalar: Float(slm_sum(Int64(rows), pl)) * scale)
    Autograd.record(out, op: "softCrossEntropy", inputs: [logits]) { [lse, targets] g in
        let step = g.item() * temperature / Float(rows), dz = logits.gradBuffer().data, pe = lse.data, pp = targets.data
        Kernels.rows(rows, cols: vocab) { r0, n in
            for r in r0..<(r0 + n) {
                let z = pz + r * vocab, p = pp + r * vocab, d = dz + r * vocab
                for i in 0..<vocab { d[i] += step * (expf(z[i] * inverse - pe[r]) - p[i]) }
            }
        }
    }
    return out
}

/// softmax(logits / temperature) along the last axis, outside the graph (a teacher's
/// targets for `softCrossEntropy`).
public func softmaxTargets(_ logits: Tensor, temperature: Float) -> Tensor {
    let vocab = logits.shape.last, rows = logits.count / vocab
    let out = Tensor(uninitialized: logits.shape)
    let pz = logits.data, po = out.data, inverse = 1 / temperature
    Kernels.rows(rows, cols: vocab) { r0, n in
        for r in r0..<(r0 + n) {
            let z = pz + r * vocab, o = po + r * vocab
            var top = -Float.infinity
            for i in 0..<vocab { top = max(top, z[i] * inverse) }
            var sum: Float = 0
            for i in 0..<vocab {
                o[i] = expf(z[i] * inverse - top)
                sum += o[i]
            }
            for i in 0..<vocab { o[i] /= sum }
        }
    }
    return out
}

/// Mean over rows of −Σ p log p (nats), for distributions along the last axis.
public func meanEntropy(_ probabilities: Tensor) -> Double {
    let vocab = probabilities.shape.last, rows = probabilities.count / vocab, p = probabilities.data
    var total = 0.0
    for i in 0..<(rows * vocab) where p[i] > 0 { total -= Double(p[i]) * log(Double(p[i])) }
    return total / Double(max(rows, 1))
}
