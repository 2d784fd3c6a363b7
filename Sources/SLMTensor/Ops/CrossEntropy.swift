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
