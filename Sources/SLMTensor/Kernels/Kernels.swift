import CSLMKernels
import Foundation

/// Small Swift conveniences over the C kernels, shared by the ops.
enum Kernels {
    /// y += alpha * x, split across threads for large arrays.
    static func axpy(count: Int, alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        Parallel.forRanges(count, grain: 1 << 16) { r in
            slm_axpy(Int64(r.count), alpha, x + r.lowerBound, y + r.lowerBound)
        }
    }

    static func floatToBFloat16(count: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<UInt16>) {
        Parallel.forRanges(count, grain: 1 << 16) { r in
            slm_f32_to_bf16(Int64(r.count), x + r.lowerBound, y + r.lowerBound)
        }
    }

    static func bfloat16ToFloat(count: Int, _ x: UnsafePointer<UInt16>, _ y: UnsafeMutablePointer<Float>) {
        slm_bf16_to_f32(Int64(count), x, y)
    }

    /// Runs a kernel over rows in parallel; `body(firstRow, rowCount)`.
    static func rows(_ rows: Int, cols: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(cols, 1))) { r in
            body(r.lowerBound, r.count)
        }
    }

    /// Runs an elementwise kernel over [0, count) in parallel; `body(start, length)`.
    static func elements(_ count: Int, _ body: (_ start: Int, _ length: Int) -> Void) {
        Parallel.forRanges(count, grain: 1 << 15) { r in body(r.lowerBound, r.count) }
    }
}

/// Which kernel implementations run on this machine (for benchmarks and diagnostics).
public enum CPUKernels {
    public static var detectedISA: String { String(cString: slm_isa_name(slm_isa_detected())) }
    public static var activeISA: String { String(cString: slm_isa_name(slm_isa_active())) }
    public static var hasAVX512BF16: Bool { slm_cpu_has_avx512bf16() != 0 }

    /// log Σ exp(x[i]) with the SIMD exponential (one pass over a vocabulary-sized row,
    /// ~30x faster than `exp` per element in Double; relative error ~1e-7).
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        precondition(count > 0)
        var target: Int32 = -1, loss: Float = 0, lse: Float = 0
        slm_xent_fwd(1, Int64(count), x, &target, -1, &loss, &lse)
        return Double(lse)
    }

    /// probabilities = softmax(x / temperature) over one row, with the SIMD kernels
    /// (sampling reads a vocabulary-sized row per token).
    public static func softmax(_ x: UnsafePointer<Float>, count: Int, temperature: Float,
                               into probabilities: UnsafeMutablePointer<Float>) {
        slm_scale(Int64(count), 1 / temperature, x, probabilities)
        slm_softmax_fwd(1, Int64(count), probabilities, probabilities)
    }

    /// FLOP/s that independent fp32 (or bf16) FMA chains reach on all threads at once over
    /// about `seconds`, best of `repeats`: the measured peak that MFU figures are shares
    /// of. One short try can land on a busy or still-clocking core and read half the peak,
    /// hence the best of several. Runs on dedicated threads, so the measurements truly
    /// overlap (a work pool may still be starting).
    public static func measurePeakFLOPs(seconds: Double = 0.2, bf16: Bool = false, repeats: Int = 3) -> Double {
        (0..<max(1, repeats)).map { _ in
            onDedicatedThreads(Parallel.threadCount) { _ in slm_measure_fma_flops(bf16 ? 1 : 0, seconds) }.reduce(0, +)
        }.max()!
    }

    /// Runs `body(i)` for i in 0..<n on n threads started together; returns the results.
    public static func onDedicatedThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Double) -> [Double] {
        // One slot per thread behind a raw pointer: concurrent writes into a Swift array
        // would race on its storage.
        final class Slots: @unchecked Sendable {
            let pointer: UnsafeMutablePointer<Double>
            init(_ n: Int) { pointer = .allocate(capacity: n); pointer.initialize(repeating: 0, count: n) }
            deinit { pointer.deallocate() }
        }
        let slots = Slots(n), done = DispatchGroup()
        for i in 0..<n {
            done.enter()
            Thread.detachNewThread {
                slots.pointer[i] = body(i)
                done.leave()
            }
        }
        done.wait()
        return Array(UnsafeBufferPointer(start: slots.pointer, count: n))
    }
}
