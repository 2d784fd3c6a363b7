import CSLMKernels
import Foundation
import SLMTensor

/// AdamW (Loshchilov & Hutter): Adam moments with bias correction and weight decay
/// applied directly to the weights, decoupled from the gradient.
public final class AdamW {
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let eps: Float
    public let weightDecay: Float
    public private(set) var step = 0

    private let parameters: [Tensor]
    private let decays: [Bool]
    private var m: [Tensor]
    private var v: [Tensor]

    /// `decay(i)` says whether parameter i gets weight decay (typically matrices only).
    public init(parameters: [Tensor], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.95,
                eps: Float = 1e-8, weightDecay: Float = 0, decay: (Tensor) -> Bool = { $0.rank >= 2 }) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        decays = parameters.map(decay)
        m = parameters.map { Tensor.zeros($0.shape) }
        v = parameters.map { Tensor.zeros($0.shape) }
    }

    /// One update from the parameters' current gradients (parameters without one are skipped).
    /// Counts a step whose update was skipped (a non-finite loss or gradient), so that
    /// the bias correction stays in step with the trainer's count (as after a resume).
    public func skip() { step += 1 }

    public func update() {
        step += 1
        let c1 = 1 - Float(pow(Double(beta1), Double(step))), c2 = 1 - Float(pow(Double(beta2), Double(step)))
        for (i, w) in parameters.enumerated() {
            guard let g = w.grad else { continue }
            var args = slm_adamw_args(lr: learningRate, beta1: beta1, beta2: beta2, eps: eps, correction1: c1,
                                      correction2: c2, decay: decays[i] ? learningRate * weightDecay : 0)
            let pw = w.data, pg = g.data, pm = m[i].data, pv = v[i].data
            withUnsafePointer(to: &args) { a in
                Parallel.forRanges(w.count, grain: 1 << 15) { r in
                    let o = r.lowerBound
                    slm_adamw(Int64(r.count), a, pw + o, pg + o, pm + o, pv + o)
                }
            }
        }
    }

    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }

    /// The moments, named after the parameters (PyTorch's exp_avg / exp_avg_sq).
    public func state(names: [String]) -> [(name: String, tensor: Tensor)] {
        precondition(names.count == parameters.count, "AdamW: \(names.count) names for \(parameters.count) parameters")
        return zip(names, zip(m, v)).flatMap { [("exp_avg.\($0)", $1.0), ("exp_avg_sq.\($0)", $1.1)] }
    }

    /// Restores moments saved by `state(names:)` and the step count.
    public func load(state tensors: [String: Tensor], names: [String], step: Int) throws {
        for (i, name) in names.enumerated() {
            guard let a = tensors["exp_avg.\(name)"], let b = tensors["exp_avg_sq.\(name)"],
                  a.shape == parameters[i].shape, b.shape == parameters[i].shape else {
                throw CheckpointError("optimizer state for \(name) is missing or has the wrong shape")
            }
            m[i].data.update(from: a.data, count: a.count)
            v[i].data.update(from: b.data, count: b.count)
        }
        self.step = step
    }
}
