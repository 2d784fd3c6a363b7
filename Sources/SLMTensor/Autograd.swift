import CSLMKernels
/// One recorded op: its inputs and how to send the output's gradient back to them.
final class Node {
    let op: String
    var inputs: [Tensor]
    var backward: ((Tensor) -> Void)?
    /// What the backward function computes, for a profile (0: not counted).
    let backwardFlops: Double

    init(op: String, inputs: [Tensor], backwardFlops: Double = 0, backward: @escaping (Tensor) -> Void) {
        self.op = op
        self.inputs = inputs
        self.backwardFlops = backwardFlops
        self.backward = backward
    }
}

/// Follows a backward pass: told when each leaf's gradient is complete (no node still to
/// run adds to it) and after every node, so that work on finished gradients, such as a
/// non-blocking all-reduce, can start and move on while the rest of the pass runs.
public protocol BackwardObserver: AnyObject, Sendable {
    func gradientComplete(_ leaf: Tensor)
    func nodeFinished()
}

/// Reverse-mode automatic differentiation.
///
/// Ops record a node on their output while recording is on and an input requires a
/// gradient. `backward()` walks the recorded graph from the loss in reverse topological
/// order, adds each gradient into the inputs' `.grad`, and frees the graph as it goes.
public enum Autograd {
    @TaskLocal static var recording = true

    /// Follows the backward passes run inside `observing(_:_:)`.
    @TaskLocal static var observer: BackwardObserver?

    /// Runs `body` (which calls `backward()`) with `observer` told of each completed gradient.
    public static func observing<T>(_ observer: BackwardObserver, _ body: () throws -> T) rethrows -> T {
        try $observer.withValue(observer) { try body() }
    }

    /// Whether ops currently record the graph.
    public static var isRecording: Bool { recording }

    /// Runs `body` without recording: for inference and for updates to parameters.
    public static func noGrad<T>(_ body: () throws -> T) rethrows -> T {
        try $recording.withValue(false) { try body() }
    }

    /// Attaches a backward function to `output` if any input needs a gradient.
    /// `flops` counts the op's products forward and backward (for `OpProfile`), where known.
    static func record(_ output: Tensor, op: String, inputs: [Tensor], flops: (forward: Double, backward: Double) = (0, 0),
                       backward: @escaping (Tensor) -> Void) {
        guard recording, inputs.contains(where: { $0.requiresGrad }) else { return }
        OpProfile.active?.chargeForward(op, flops: flops.forward)
        output.requiresGrad = true
        output.isLeaf = false
        output.node = Node(op: op, inputs: inputs, backwardFlops: flops.backward, backward: backward)
    }
}

extension Tensor {
    /// The gradient buffer, created as zeros on first use. Backward kernels add into it.
    public func gradBuffer() -> Tensor {
        if let g = grad { return g }
        let g = Tensor(zeros: shape)
        grad = g
        return g
    }

    /// The gradient buffer for a kernel that writes every element: left uninitialized when
    /// this is the first contribution (`fresh`), so the kernel overwrites instead of adding
    /// to zeros (one pass over memory instead of three).
    func gradBufferForWriting() -> (buffer: Tensor, fresh: Bool) {
        if let g = grad { return (g, false) }
        let g = Tensor(uninitialized: shape)
        grad = g
        return (g, true)
    }

    /// grad += alpha * source (same element count); a copy for the first contribution.
    func accumulateGrad(_ source: Tensor, alpha: Float = 1) {
        precondition(source.count == count, "accumulateGrad: gradient of \(source.count) elements for tensor of \(count)")
        let (g, fresh) = gradBufferForWriting()
        let px = source.data, py = g.data
        Parallel.forRanges(count, grain: 1 << 16) { r in
            let n = Int64(r.count), o = r.lowerBound
            if !fresh {
                slm_axpy(n, alpha, px + o, py + o)
            } else if alpha == 1 {
                (py + o).update(from: px + o, count: r.count)
            } else {
                slm_scale(n, alpha, px + o, py + o)
            }
        }
    }

    /// Back-propagates from this tensor. A one-element tensor seeds with 1; any other
    /// needs an explicit `gradient` of the same shape. Leaves keep their `.grad`
    /// (accumulating across calls until zeroed); the graph is freed.
    public func backward(gradient: Tensor? = nil) {
        precondition(requiresGrad, "backward: tensor of shape \(shape) does not require grad")
        precondition(isLeaf || node != nil,
                     "backward: the graph behind this tensor was already freed by an earlier backward()")
        let seed: Tensor
        if let gradient {
            precondition(gradient.shape == shape,
                         "backward: gradient shape \(gradient.shape) does not match tensor shape \(shape)")
            seed = gradient
        } else {
            precondition(count == 1, "backward: tensor of shape \(shape) is not a scalar; pass gradient:")
            seed = Tensor.ones(shape)
        }
        OpProfile.mark("(forward, outside ops)")
        accumulateGrad(seed)

        let order = Array(topologicalOrder().reversed())
        let observer = Autograd.observer
        let completed = observer.map { _ in Self.leavesCompleted(walking: order) } ?? [:]
        for (position, t) in order.enumerated() {
            guard let node = t.node else { continue }
            if let g = t.grad, let step = node.backward { OpProfile.timeBackward(node.op, flops: node.backwardFlops) { step(g) } }
            t.node = nil
            if !t.isLeaf { t.grad = nil }
            if let observer {
                for leaf in completed[position] ?? [] { observer.gradientComplete(leaf) }
                observer.nodeFinished()
            }
        }
    }

    /// For each position of the walk, the leaves that the node there is the last to use
    /// (in the order of its inputs).
    private static func leavesCompleted(walking order: [Tensor]) -> [Int: [Tensor]] {
        var last: [ObjectIdentifier: Int] = [:]
        for (position, t) in order.enumerated() {
            for input in t.node?.inputs ?? [] where input.isLeaf && input.requiresGrad { last[ObjectIdentifier(input)] = position }
        }
        var completed: [Int: [Tensor]] = [:]
        for (position, t) in order.enumerated() {
            for input in t.node?.inputs ?? [] where last[ObjectIdentifier(input)] == position {
                last[ObjectIdentifier(input)] = nil
                completed[position, default: []].append(input)
            }
        }
        return completed
    }

    /// Tensors reachable through recorded nodes, inputs before the ops that use them.
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded {
                order.append(t)
                continue
            }
            guard seen.insert(ObjectIdentifier(t)).inserted else { continue }
            stack.append((t, true))
            for input in t.node?.inputs ?? [] where input.requiresGrad && !seen.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }
}
