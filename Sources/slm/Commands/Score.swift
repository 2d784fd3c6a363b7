import ArgumentParser
import Foundation
import SLMModels
import SLMTensor

/// Scores one batch given as JSON, so other implementations (the PyTorch reference,
/// transformers) can be checked against swift-slm on exactly the same tokens.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss (and optionally logits) of a model on a batch of token ids given as JSON.",
        discussion: "The batch file holds {\"inputs\": [[ids…], …], \"targets\": [[ids…], …]}: equal-length rows of at most the model's context.")

    @Option(help: "Checkpoint or model folder.")
    var model: String

    @Option(help: "JSON file with inputs and targets.")
    var batch: String

    @Option(help: "Write the logits here as raw little-endian float32, [rows, time, vocab].")
    var logits: String?

    @Flag(help: "Print a JSON object.")
    var json = false

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        let m = try userFacing { try ModelStore.load(from: URL(fileURLWithPath: model)) }
        guard let data = FileManager.default.contents(atPath: batch),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: [[Int]]],
              let inputs = object["inputs"], let targets = object["targets"], !inputs.isEmpty,
              inputs.count == targets.count else {
            throw CommandError("\(batch): expected {\"inputs\": [[…]], \"targets\": [[…]]} with matching rows")
        }
        let time = inputs[0].count
        guard time >= 1, time <= m.config.context, (inputs + targets).allSatisfy({ $0.count == time }) else {
            throw CommandError("\(batch): rows must all have the same length, between 1 and the context \(m.config.context)")
        }
        let flatInputs = inputs.flatMap { $0 }, flatTargets = targets.flatMap { $0 }
        guard (flatInputs + flatTargets).allSatisfy({ $0 >= 0 && $0 < m.config.vocabSize }) else {
            throw CommandError("\(batch): ids must be in 0..<\(m.config.vocabSize)")
        }
        let output = Autograd.noGrad { m.logits(flatInputs.map(Int32.init), batch: inputs.count, time: time) }
        let loss = Autograd.noGrad { crossEntropy(output, targets: flatTargets.map(Int32.init)) }.item()
        if let logits {
            let raw = Data(bytes: output.data, count: output.count * 4)
            try raw.write(to: URL(fileURLWithPath: logits))
        }
        if json {
            print("{\"loss\": \(loss), \"rows\": \(inputs.count), \"time\": \(time), \"vocab\": \(m.config.vocabSize)}")
        } else {
            print(String(format: "loss %.6f over %d × %d tokens", loss, inputs.count, time))
        }
    }
}
