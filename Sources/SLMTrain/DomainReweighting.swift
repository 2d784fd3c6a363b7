import Foundation

/// Online DoReMi (Xie et al. 2023): per-category mixture weights α moved each step by an
/// exponentiated-gradient step on each category's excess loss over a reference model,
/// λ_k = Σ max(ℓ_student − ℓ_reference, 0) / tokens of k in the batch, then smoothed
/// toward uniform: α ← (1 − c) · normalise(α · exp(η λ)) + c / K. α starts at the
/// categories' token shares, so the first steps read the data as uniform sampling does.
/// The sampler reads category k with probability α_k: its chunks' weights are multiplied
/// by α_k over k's token share.
struct DomainReweighting {
    let stepSize: Double
    let smoothing: Double
    /// Each category's share of the training tokens.
    let natural: [Double]
    private(set) var alpha: [Double]

    init(tokensPerCategory: [Int], stepSize: Double, smoothing: Double, alpha: [Double]? = nil) {
        let total = Double(tokensPerCategory.reduce(0, +))
        natural = tokensPerCategory.map { Double($0) / max(total, 1) }
        (self.stepSize, self.smoothing) = (stepSize, smoothing)
        self.alpha = alpha ?? natural
    }

    /// Multipliers of the chunk weights that make category k's probability α_k.
    var multipliers: [Double] { zip(alpha, natural).map { $1 > 0 ? $0 / $1 : 0 } }

    /// One update from the summed excess losses and token counts of the step's windows;
    /// categories without tokens in the batch keep their λ at 0.
    mutating func update(excess: [Double], tokens: [Double]) {
        let lambda = zip(excess, tokens).map { $1 > 0 ? $0 / $1 : 0 }
        let logits = zip(alpha, lambda).map { log(max($0, 1e-300)) + stepSize * $1 }
        let top = logits.max() ?? 0
        let raw = logits.map { exp($0 - top) }
        let sum = raw.reduce(0, +)
        let k = Double(alpha.count)
        alpha = raw.map { (1 - smoothing) * $0 / sum + smoothing / k }
    }
}
