import Foundation

/// Wall time per op kind, forward and backward, while a profile is active
/// (`slm bench train --profile`). An op computes its output and then records its graph
/// node, so its forward time is the time since the previous op or mark, taken as it
/// records; backward time is that of its backward function. Work outside ops (sampling a
/// batch, the optimizer) is charged to labels through `mark(_:)`. Only ops that record a
/// node (while training) are timed; time under `Autograd.noGrad` goes to the next mark.
public final class OpProfile: @unchecked Sendable {
    public struct Entry: Codable, Sendable {
        public var forwardSeconds = 0.0
        public var backwardSeconds = 0.0
        public var calls = 0
        /// Floating-point operations of the op's matrix products, for ops that count them
        /// (linear, matmul, attention): with the times, how close they run to the peak.
        public var forwardFlops = 0.0
        public var backwardFlops = 0.0

        public init(forwardSeconds: Double = 0, backwardSeconds: Double = 0, calls: Int = 0,
                    forwardFlops: Double = 0, backwardFlops: Double = 0) {
            self.forwardSeconds = forwardSeconds
            self.backwardSeconds = backwardSeconds
            self.calls = calls
            self.forwardFlops = forwardFlops
            self.backwardFlops = backwardFlops
        }
    }

    /// Per op kind or label. Accessed only from the thread that runs the profiled work.
    public private(set) var entries: [String: Entry] = [:]

    private var last = OpProfile.now()

    @TaskLocal static var active: OpProfile?

    public init() {}

    /// Runs `body` with this profile collecting.
    public func collect<T>(_ body: () throws -> T) rethrows -> T {
        last = Self.now()
        return try OpProfile.$active.withValue(self) { try body() }
    }

    /// Forgets what was collected (after warm-up steps, say).
    public func reset() {
        entries = [:]
        last = Self.now()
    }

    /// Charges the time since the previous op or mark to `label` (a no-op unless profiling).
    public static func mark(_ label: String) {
        active?.chargeForward(label)
    }

    func chargeForward(_ op: String, flops: Double = 0) {
        let t = Self.now()
        entries[op, default: Entry()].forwardSeconds += Double(t - last) / 1e9
        entries[op, default: Entry()].calls += 1
        entries[op, default: Entry()].forwardFlops += flops
        last = t
    }

    /// Runs one backward function and charges it, and its `flops`, to its op.
    @inline(__always) static func timeBackward(_ op: String, flops: Double = 0, _ body: () -> Void) {
        guard let p = active else { return body() }
        let t0 = now()
        body()
        let t1 = now()
        p.entries[op, default: Entry()].backwardSeconds += Double(t1 - t0) / 1e9
        p.entries[op, default: Entry()].backwardFlops += flops
        p.last = t1
    }

    @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
