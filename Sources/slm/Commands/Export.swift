import ArgumentParser
import Foundation
import SLMInterop

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a checkpoint for other tools: a transformers model folder (hf) or a llama.cpp model file (gguf).",
        discussion: """
            hf writes config.json, model.safetensors and the tokenizer's files for transformers' AutoModelForCausalLM \
            (gpt2 and llama models). gguf writes one GGUF v3 file that llama.cpp, ollama and LM Studio run (llama models, \
            mixtures of experts included); --type chooses its weights: f32, f16 or q8_0 (norms stay f32), or for a \
            model trained ternary tq2_0 (its block matrices 2 bits per weight; the embedding stays f32). A ternary model \
            exports its block matrices as it computes with them, {-s, 0, s}, whatever the type.
            """)

    @Option(help: "Checkpoint or model folder (config.json + model.safetensors).")
    var model: String

    @Option(help: "Output format: hf or gguf.")
    var format = "hf"

    @Option(help: "GGUF weight type: f32, f16, q8_0, or tq2_0 (ternary models).")
    var type: String?

    @Option(help: "Output folder (hf) or file (gguf).")
    var out: String

    func run() throws {
        let source = URL(fileURLWithPath: model), target = URL(fileURLWithPath: out)
        switch format {
        case "hf":
            guard type == nil else { throw CommandError("--type applies to --format gguf only") }
            try userFacing { try HuggingFaceExport.export(from: source, to: target) }
            print("wrote \(out): config.json, model.safetensors and tokenizer files for transformers' AutoModelForCausalLM")
        case "gguf":
            guard let weights = GGUFExport.WeightType(rawValue: type ?? "f32") else {
                throw CommandError("--type must be f32, f16, q8_0 or tq2_0")
            }
            let summary = try userFacing { try GGUFExport.export(from: source, to: target, type: weights) }
            print("wrote \(out): GGUF v3, architecture \(summary.architecture), \(summary.tensorCount) tensors, "
                + "\(weights.rawValue), \(String(format: "%.1f", Double(summary.byteCount) / 1_048_576)) MiB")
            if !summary.keptFloat32.isEmpty {
                print("note: \(summary.keptFloat32.count) matrices kept f32 (q8_0 needs rows of a multiple of 32 values): "
                    + summary.keptFloat32.joined(separator: ", "))
            }
            if !summary.storedAsQ8_0.isEmpty {
                print("note: \(summary.storedAsQ8_0.count) ternary matrices stored as q8_0 (tq2_0 needs rows of a multiple of 256 values): "
                    + summary.storedAsQ8_0.joined(separator: ", "))
            }
        default:
            throw CommandError("--format must be hf (transformers) or gguf (llama.cpp)")
        }
    }
}
