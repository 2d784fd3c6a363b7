import Foundation

/// State that threads share, behind a lock. A pthread mutex (NSLock) rather than the
/// Synchronization module's Mutex: on Linux that one waits on raw futexes, which
/// ThreadSanitizer cannot see, so every access under it reads as a race and the
/// sanitizer (scripts/sanitize.sh) could find nothing real.
public final class Locked<State>: @unchecked Sendable {
    private let lock = NSLock()
    private var state: State

    public init(_ state: State) { self.state = state }

    public func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&state)
    }
}
