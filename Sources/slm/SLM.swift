import ArgumentParser
import CSLMKernels
import Foundation
import SLMTensor
import SLMTrain

@main
struct SLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slm",
        abstract: "Small language models in Swift: build, train, evaluate and serve them on the CPU.",
        subcommands: [Demo.self, DataCommand.self, TokenizerCommand.self, Train.self, Export.self, Generate.self, Chat.self, Serve.self,
                      Eval.self, Compare.self, Score.self, Plot.self, DashboardCommand.self, Inspect.self, Bench.self, Info.self]
    )

    /// Progress lines must reach a pipe or a log file as they are printed, not when the
    /// buffer fills: line-buffer standard output before anything runs.
    static func main() {
        slm_stdout_line_buffered()
        main(nil)
    }
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

extension MatmulPrecision: ExpressibleByArgument {}

/// What `--json` prints: pretty, with sorted keys, so that runs compare line by line.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// `--precision auto|fp32|bf16`, `auto` resolved for this machine.
func parsePrecision(_ text: String) throws -> MatmulPrecision {
    guard let p = MatmulPrecision(setting: text) else { throw ValidationError("--precision must be auto, fp32 or bf16, not \(text)") }
    return p
}
