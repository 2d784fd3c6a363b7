import Foundation
import SLMModels
import SLMTensor

/// Continues `prompt` by `count` tokens at `temperature`, recomputing the whole window
/// each time. Enough for a sample at the end of training; the generator with a KV cache
/// arrives with the generation issue.
func sampleContinuation(_ model: any LanguageModel, prompt: [Int32], count: Int, temperature: Double,
                        rng: inout RNG) -> [Int32] {
    var tokens = prompt.isEmpty ? [0] : prompt
    for _ in 0..<count {
        let window = Array(tokens.suffix(model.config.context))
        let logits = Autograd.noGrad { model.logits(window, batch: 1, time: window.count) }
        let v = model.config.vocabSize, row = logits.data + (window.count - 1) * v
        let scaled = (0..<v).map { Double(row[$0]) / max(temperature, 1e-6) }
        let top = scaled.max()!
        let weights = scaled.map { exp($0 - top) }
        var pick = rng.nextDouble() * weights.reduce(0, +), choice = v - 1
        for (i, w) in weights.enumerated() {
            pick -= w
            if pick < 0 {
                choice = i
                break
            }
        }
        tokens.append(Int32(choice))
    }
    return Array(tokens.dropFirst(prompt.isEmpty ? 1 : 0))
}
