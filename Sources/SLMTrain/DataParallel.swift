import CSLMKernels
import CSLMMPI
import Foundation

/// The processes of one data-parallel training run. Each rank reads its share of every
/// global batch and the group sums what the ranks computed.
public protocol ProcessGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over the ranks, exactly in fp32.
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// In-place sum of gradients over the ranks, in the precision chosen for the wire.
    func sumGradients(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Stops every rank (after an error on this one, so that the others do not wait forever).
    func abort(code: Int32) -> Never
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
    private var scratch: [UInt16] = []

    /// The group of this process when mpirun or mpiexec started it with more than one
    /// rank; nil otherwise (a plain run).
    public static func fromEnvironment(wire: WirePrecision = .fp32) throws -> MPIGroup? {
        let env = ProcessInfo.processInfo.environment
        if let size = env["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) {
            return size > 1 ? try MPIGroup(wire: wire) : nil
        }
        if let size = env["PMI_SIZE"].flatMap(Int.init), size > 1 {
            throw CheckpointError("this process was started by an MPI launcher other than OpenMPI's (PMI_SIZE=\(size), as MPICH's "
                + "mpiexec sets); swift-slm speaks OpenMPI's ABI only: use OpenMPI's mpirun")
        }
        return nil
    }

    init(wire: WirePrecision) throws {
        var message = [CChar](repeating: 0, count: 512)
        guard slm_mpi_load(&message, message.count) == 0 else { throw CheckpointError(String(cString: message)) }
        var r: Int32 = 0, s: Int32 = 0
        guard slm_mpi_init(&r, &s) == 0 else { throw CheckpointError("MPI_Init failed") }
        (rank, size, self.wire) = (Int(r), Int(s), wire)
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

    public func sumGradients(_ values: UnsafeMutableBufferPointer<Float>) throws {
        guard wire == .bf16 else { return try sum(values) }
        if scratch.count < values.count { scratch = [UInt16](repeating: 0, count: values.count) }
        try scratch.withUnsafeMutableBufferPointer { bits in
            slm_f32_to_bf16(Int64(values.count), values.baseAddress, bits.baseAddress)
            guard slm_mpi_allreduce_bf16(bits.baseAddress, Int64(values.count)) == 0 else { throw CheckpointError("MPI_Allreduce failed") }
            slm_bf16_to_f32(Int64(values.count), bits.baseAddress, values.baseAddress)
        }
    }

    public func abort(code: Int32) -> Never {
        slm_mpi_abort(code)
        exit(code)
    }

    deinit { _ = slm_mpi_finalize() }
}
