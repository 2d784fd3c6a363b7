import ArgumentParser
import SLMTensor

@main
struct SLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slm",
        abstract: "Small language models in Swift: build, train, evaluate and serve them on the CPU.",
        subcommands: [Demo.self, DataCommand.self, TokenizerCommand.self, Train.self, Export.self, Score.self, Bench.self, Info.self]
    )
}

/// Options every command that computes shares.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for kernels and BLAS (default: SLM_NUM_THREADS, else all cores).")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads > 0 else { throw ValidationError("--threads must be at least 1") }
            Parallel.setThreadCount(threads)
        }
    }
}
