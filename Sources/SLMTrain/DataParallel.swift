import CSLMKernels
import CSLMMPI
import Foundation

/// The processes of one data-parallel training run. Each rank reads its share of every
/// global batch and the group sums what the ranks computed.
public protocol ProcessGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// The precision gradients travel in.
    var wire: WirePrecision { get }
    /// Gradients are summed in buckets of about this many fp32 bytes, each started while
    /// the backward pass is still running; 0: one sum after the backward pass.
    var bucketBytes: Int { get }
    /// In-place sum over the ranks, exactly in fp32, returning when done.
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Starts an in-place sum over the ranks of `count` values in the wire's precision
    /// (floats, or bf16 bit patterns) and returns at once. Every rank starts the same sums
    /// in the same order, and leaves the memory alone until the sum is done.
    func startSum(_ values: UnsafeMutableRawPointer, count: Int) throws -> any PendingSum
    /// Stops every rank (after an error on this one, so that the others do not wait forever).
    func abort(code: Int32) -> Never
}

/// A sum over the ranks in flight.
public protocol PendingSum: AnyObject {
    /// Whether it is done; asking also moves the transfer on.
    func isDone() throws -> Bool
    func wait() throws
}

/// How gradients travel between ranks.
public enum WirePrecision: String, CaseIterable, Sendable {
    case fp32, bf16
}

/// MPI through OpenMPI, opened at run time (see CSLMMPI): `mpirun -np N slm train …`.
public final class MPIGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    public let wire: WirePrecision
    public let bucketBytes: Int

    /// The group of this process when mpirun or mpiexec started it with more than one
    /// rank; nil otherwise (a plain run).
    public static func fromEnvironment(wire: WirePrecision = .fp32, bucketBytes: Int = defaultBucketBytes) throws -> MPIGroup? {
        let env = ProcessInfo.processInfo.environment
        if let size = env["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) {
            return size > 1 ? try MPIGroup(wire: wire, bucketBytes: bucketBytes) : nil
        }
        if let size = env["PMI_SIZE"].flatMap(Int.init), size > 1 {
            throw CheckpointError("this process was started by an MPI launcher other than OpenMPI's (PMI_SIZE=\(size), as MPICH's "
                + "mpiexec sets); swift-slm speaks OpenMPI's ABI only: use OpenMPI's mpirun")
        }
        return nil
    }

    /// See docs/BENCHMARKS.md, "Data-parallel training over MPI", for how it was chosen.
    public static let defaultBucketBytes = 1 << 20

    init(wire: WirePrecision, bucketBytes: Int) throws {
        var message = [CChar](repeating: 0, count: 512)
        guard slm_mpi_load(&message, message.count) == 0 else { throw CheckpointError(String(cString: message)) }
        var r: Int32 = 0, s: Int32 = 0
        guard slm_mpi_init(&r, &s) == 0 else { throw CheckpointError("MPI_Init failed") }
        (rank, size, self.wire, self.bucketBytes) = (Int(r), Int(s), wire, bucketBytes)
    }

    /// "OpenMPI (libmpi.so.40)" when this machine can run data-parallel training, else why not.
    public static var availability: String {
        var message = [CChar](repeating: 0, count: 512)
        return slm_mpi_load(&message, message.count) == 0
            ? "OpenMPI (\(ProcessInfo.processInfo.environment["SLM_MPI_LIBRARY"] ?? "libmpi.so.40")): mpirun -np N slm train …"
            : "not available: " + String(cString: message)
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        guard slm_mpi_allreduce_f32(values.baseAddress, Int64(values.count)) == 0 else { throw CheckpointError("MPI_Allreduce failed") }
    }

    public func startSum(_ values: UnsafeMutableRawPointer, count: Int) throws -> any PendingSum {
        let pending = MPIPendingSum()
        guard slm_mpi_start_allreduce(values, Int32(count), wire == .bf16 ? 1 : 0, &pending.request) == 0 else {
            throw CheckpointError("MPI_Iallreduce failed")
        }
        return pending
    }

    public func abort(code: Int32) -> Never {
        slm_mpi_abort(code)
        exit(code)
    }

    deinit { _ = slm_mpi_finalize() }
}

final class MPIPendingSum: PendingSum {
    var request: UnsafeMutableRawPointer?

    func isDone() throws -> Bool {
        guard request != nil else { return true }
        var done: Int32 = 0
        guard slm_mpi_test(&request, &done) == 0 else { throw CheckpointError("MPI_Test failed") }
        if done != 0 { request = nil }
        return done != 0
    }

    func wait() throws {
        guard request != nil else { return }
        guard slm_mpi_wait(&request) == 0 else { throw CheckpointError("MPI_Wait failed") }
        request = nil
    }
}
