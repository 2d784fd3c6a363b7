import CSLMKernels
import Dispatch
import Foundation
import Synchronization

/// The one place that decides how many threads run.
///
/// Default: every core this process may use. `SLM_NUM_THREADS` overrides it at start-up,
/// `Parallel.setThreadCount` at run time. The same number is given to the BLAS library,
/// and our loops never run while a BLAS call runs (calls are sequential and oneDNN's
/// OpenMP threads sleep when idle), so the cores are never oversubscribed.
public enum Parallel {
    private static let configured = Atomic<Int>(initialThreadCount())

    private static func initialThreadCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["SLM_NUM_THREADS"], let n = Int(text), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Applied once, before the first matrix multiply.
    private static let blasConfigured: Void = {
        slm_gemm_set_threads(Int32(configured.load(ordering: .relaxed)))
    }()

    public static var threadCount: Int { configured.load(ordering: .relaxed) }

    public static func setThreadCount(_ n: Int) {
        let n = max(1, n)
        configured.store(n, ordering: .relaxed)
        _ = blasConfigured
        slm_gemm_set_threads(Int32(n))
    }

    static func prepareBLAS() { _ = blasConfigured }

    /// Splits 0..<count into at most `threadCount` contiguous ranges of at least `grain`
    /// items and runs them in parallel. The split depends only on the count and the
    /// thread count, so results are reproducible for a given thread count.
    public static func forRanges(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threadCount, max(1, count / max(grain, 1)))
        if chunks == 1 {
            body(0..<count)
            return
        }
        runChunks(chunks) { c in body((count * c / chunks)..<(count * (c + 1) / chunks)) }
    }

    /// Like `forRanges`, also passing the chunk index (for per-thread partial buffers).
    public static func forChunks(_ count: Int, grain: Int = 1,
                                 _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) -> Int {
        guard count > 0 else { return 0 }
        let chunks = min(threadCount, max(1, count / max(grain, 1)))
        if chunks == 1 {
            body(0, 0..<count)
            return 1
        }
        runChunks(chunks) { c in body(c, (count * c / chunks)..<(count * (c + 1) / chunks)) }
        return chunks
    }

    /// How many chunks `forChunks` will use for `count` items.
    public static func chunkCount(_ count: Int, grain: Int = 1) -> Int {
        count <= 0 ? 0 : min(threadCount, max(1, count / max(grain, 1)))
    }

    /// Runs `body(0..<chunks)` on the worker pool and returns when all are done.
    /// The bodies capture raw pointers, which Swift cannot prove safe to share; the
    /// callers guarantee that chunks write disjoint memory, and nothing outlives the call.
    private static func runChunks(_ chunks: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: chunks) { box.value($0) }
        }
    }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
