import SLMTensor
import Testing

/// Result of comparing analytic gradients with central finite differences.
public struct GradientCheck {
    public var worst: Float = 0      // largest |analytic - numeric| - tolerance (<= 0 passes)
    public var detail = ""
    public var compared = 0
    public var passed: Bool { worst <= 0 && compared > 0 }
}

/// Checks the gradients of `f` with respect to every input. The scalar checked is
/// sum(f(inputs) * R) for a fixed random R, accumulated in Double; up to `samples`
/// elements per input are perturbed by ±eps.
public func gradientCheck(_ inputs: [Tensor], eps: Float = 5e-3, atol: Float = 2e-3, rtol: Float = 2e-2,
                   samples: Int = 48, _ f: ([Tensor]) -> Tensor) -> GradientCheck {
    for t in inputs {
        t.requiresGrad = true
        t.clearGrad()
    }
    let out = f(inputs)
    var rng = RNG(seed: 99)
    let projection = Tensor.uniform(out.shape, low: -1, high: 1, rng: &rng)
    (out * projection).sum().backward()

    func objective() -> Double {
        Autograd.noGrad {
            let y = f(inputs)
            var s = 0.0
            for i in 0..<y.count { s += Double(y.data[i]) * Double(projection.data[i]) }
            return s
        }
    }

    var result = GradientCheck()
    for (n, t) in inputs.enumerated() {
        guard let grad = t.grad else {
            result.worst = .infinity
            result.detail = "input \(n) received no gradient"
            return result
        }
        let stride = max(1, t.count / samples)
        for i in Swift.stride(from: 0, to: t.count, by: stride) {
            let saved = t.data[i]
            t.data[i] = saved + eps
            let plus = objective()
            t.data[i] = saved - eps
            let minus = objective()
            t.data[i] = saved
            let numeric = Float((plus - minus) / Double(2 * eps))
            let analytic = grad.data[i]
            let excess = abs(analytic - numeric) - (atol + rtol * abs(numeric))
            result.compared += 1
            if excess > result.worst {
                result.worst = excess
                result.detail = "input \(n) element \(i): analytic \(analytic), numeric \(numeric)"
            }
        }
    }
    return result
}

public func expectGradients(_ inputs: [Tensor], eps: Float = 5e-3, atol: Float = 2e-3, rtol: Float = 2e-2,
                     sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor) {
    let check = gradientCheck(inputs, eps: eps, atol: atol, rtol: rtol, f)
    #expect(check.passed, "\(check.detail)", sourceLocation: sourceLocation)
}

public func randomTensor(_ shape: Shape, seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = RNG(seed: seed)
    return Tensor.randn(shape, std: scale, rng: &rng)
}

public func randomArray(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    randomTensor([count], seed: seed, scale: scale).toArray()
}

public func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

public func expectClose(_ a: [Float], _ b: [Float], tolerance: Float, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, sourceLocation: sourceLocation)
    guard a.count == b.count else { return }
    let worst = zip(a, b).enumerated().max { abs($0.1.0 - $0.1.1) < abs($1.1.0 - $1.1.1) }
    if let worst {
        #expect(abs(worst.1.0 - worst.1.1) <= tolerance,
                "element \(worst.0): \(worst.1.0) vs \(worst.1.1)", sourceLocation: sourceLocation)
    }
}
