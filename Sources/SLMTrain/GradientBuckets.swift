import CSLMKernels
import SLMTensor

/// Averages gradients over the ranks in buckets of consecutive parameters, the last
/// parameters first (the backward pass finishes them first). While it observes a backward
/// pass (`Autograd.observing`), it starts a bucket's sum as soon as the bucket's gradients
/// are complete and every bucket before it has started, since all ranks must start their
/// sums in one order; after each node it asks the oldest sum in flight whether it is done,
/// which is what moves OpenMPI's transfers on. `finish()` starts whatever is left (all of
/// it when nothing was observed), waits, and writes the averages back into the gradients.
final class GradientBuckets: BackwardObserver, @unchecked Sendable {
    private struct Bucket {
        var parameters: [Int]
        /// First element of each parameter in the staging area, and the bucket's span there.
        var offsets: [Int]
        var start: Int
        var count: Int
        /// Gradients of this bucket not yet complete in the current backward pass.
        var incomplete: Int
    }

    private let parameters: [Tensor]
    private let group: any ProcessGroup
    private var buckets: [Bucket] = []
    private var bucketOf: [ObjectIdentifier: Int] = [:]
    /// Every bucket back to back in the wire's precision: floats, or bf16 bit patterns.
    private let staging: UnsafeMutableRawBufferPointer
    private var inFlight: [any PendingSum] = []
    private var nextToStart = 0
    private var failure: Error?
    /// Buckets started while a backward pass was still running, since `init` (the overlap).
    private(set) var startedEarly = 0

    var bucketCount: Int { buckets.count }
    /// Whether to observe the backward pass (false: one bucket, summed after it).
    let overlaps: Bool

    /// `bucketBytes` counts fp32 gradient bytes; 0 or less makes one bucket of everything.
    init(parameters: [Tensor], group: any ProcessGroup, bucketBytes: Int) throws {
        self.parameters = parameters
        self.group = group
        overlaps = bucketBytes > 0
        let limit = bucketBytes > 0 ? max(1, bucketBytes / 4) : Int.max
        var total = 0
        for index in parameters.indices.reversed() {
            let n = parameters[index].count
            guard n <= Int(Int32.max) else {
                throw CheckpointError("a parameter of \(n) elements is too large for one MPI message (at most \(Int32.max))")
            }
            if buckets.isEmpty || buckets[buckets.count - 1].count + n > min(limit, Int(Int32.max)) {
                buckets.append(Bucket(parameters: [], offsets: [], start: total, count: 0, incomplete: 0))
            }
            buckets[buckets.count - 1].parameters.append(index)
            buckets[buckets.count - 1].offsets.append(total)
            buckets[buckets.count - 1].count += n
            bucketOf[ObjectIdentifier(parameters[index])] = buckets.count - 1
            total += n
        }
        staging = .allocate(byteCount: max(total, 1) * (group.wire == .bf16 ? 2 : 4), alignment: 64)
        reset()
    }

    deinit { staging.deallocate() }

    func gradientComplete(_ leaf: Tensor) {
        guard let b = bucketOf[ObjectIdentifier(leaf)] else { return }
        buckets[b].incomplete -= 1
        while nextToStart < buckets.count && buckets[nextToStart].incomplete == 0 && failure == nil {
            start(nextToStart)
            startedEarly += 1
        }
    }

    func nodeFinished() {
        guard let oldest = inFlight.first, failure == nil else { return }
        do {
            if try oldest.isDone() { inFlight.removeFirst() }
        } catch {
            failure = error
        }
    }

    /// Completes the sums of this step and leaves the averaged gradients in place.
    func finish() throws {
        defer { reset() }
        while nextToStart < buckets.count && failure == nil { start(nextToStart) }
        if let failure { throw failure }
        for sum in inFlight { try sum.wait() }
        let scale = 1 / Float(group.size)
        for bucket in buckets {
            for (index, offset) in zip(bucket.parameters, bucket.offsets) {
                let g = parameters[index].gradBuffer()
                if group.wire == .bf16 {
                    let bits = staging.baseAddress!.assumingMemoryBound(to: UInt16.self) + offset
                    slm_bf16_to_f32(Int64(g.count), bits, g.data)
                    slm_scale(Int64(g.count), scale, g.data, g.data)
                } else {
                    slm_scale(Int64(g.count), scale, staging.baseAddress!.assumingMemoryBound(to: Float.self) + offset, g.data)
                }
            }
        }
    }

    private func start(_ b: Int) {
        nextToStart = b + 1
        let bucket = buckets[b]
        for (index, offset) in zip(bucket.parameters, bucket.offsets) {
            let g = parameters[index].gradBuffer()
            if group.wire == .bf16 {
                slm_f32_to_bf16(Int64(g.count), g.data, staging.baseAddress!.assumingMemoryBound(to: UInt16.self) + offset)
            } else {
                (staging.baseAddress!.assumingMemoryBound(to: Float.self) + offset).update(from: g.data, count: g.count)
            }
        }
        let width = group.wire == .bf16 ? 2 : 4
        do {
            inFlight.append(try group.startSum(staging.baseAddress! + bucket.start * width, count: bucket.count))
        } catch {
            failure = error
        }
    }

    private func reset() {
        for b in buckets.indices { buckets[b].incomplete = buckets[b].parameters.count }
        inFlight = []
        nextToStart = 0
        failure = nil
    }
}
