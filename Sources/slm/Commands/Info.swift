import ArgumentParser
import SLMTensor
import SLMTrain

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the compute backends this machine uses (kernels, matrix multiply, threads).")

    func run() {
        print("kernels:        \(CPUKernels.activeISA) (detected \(CPUKernels.detectedISA); AVX-512 BF16: \(CPUKernels.hasAVX512BF16 ? "yes" : "no"))")
        print("matrix multiply: \(Gemm.backendName)")
        if !Gemm.loadNotes.isEmpty { print("                (\(Gemm.loadNotes))") }
        print("threads:        \(Parallel.threadCount)")
        print("MPI:            \(MPIGroup.availability)")
        #if DEBUG
        print("build:          debug (use `swift build -c release` for speed)")
        #else
        print("build:          release")
        #endif
    }
}
