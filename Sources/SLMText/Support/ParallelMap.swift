import Dispatch

/// Runs `body(0..<count)` on Dispatch's worker threads and returns the results in order.
/// The work items here (encoding or counting a chunk of text) are coarse, so one item per
/// thread is the intended use. `body` may read shared state but must write only what it
/// returns: the closure is handed to other threads unchecked.
func parallelMap<T>(_ count: Int, _ body: (Int) -> T) -> [T] {
    if count <= 1 { return (0..<count).map(body) }
    let results = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
    results.initialize(repeating: nil)
    defer {
        _ = results.deinitialize()
        results.deallocate()
    }
    withoutActuallyEscaping(body) { body in
        let work = Unchecked(value: (body, results))
        DispatchQueue.concurrentPerform(iterations: count) { i in work.value.1[i] = work.value.0(i) }
    }
    return results.map { $0! }
}

private struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
}
