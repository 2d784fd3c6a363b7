import Foundation
import SLMTensor

/// How to pick the next token. Temperature 0 is greedy.
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Double = 1
    /// Keep only the k most likely tokens (0: off).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: off).
    public var topP: Double = 1
    /// Keep tokens at least this fraction as likely as the most likely one (0: off).
    public var minP: Double = 0
    /// Divide positive (multiply negative) logits of tokens already seen (1: off).
    public var repetitionPenalty: Double = 1
    /// Subtract from the logit of every token already seen (OpenAI's presence_penalty).
    public var presencePenalty: Double = 0
    /// Subtract this times the number of times a token was seen (frequency_penalty).
    public var frequencyPenalty: Double = 0
    public var seed: UInt64 = 0

    public init(temperature: Double = 1, topK: Int = 0, topP: Double = 1, minP: Double = 0,
                repetitionPenalty: Double = 1, presencePenalty: Double = 0, frequencyPenalty: Double = 0, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.seed = seed
    }

    /// Every reason these parameters are out of range, or nil.
    public var problem: String? {
        if !(temperature >= 0 && temperature.isFinite) { return "temperature must be a finite number >= 0" }
        if topK < 0 { return "top_k must be >= 0" }
        if !(topP > 0 && topP <= 1) { return "top_p must be in (0, 1]" }
        if !(minP >= 0 && minP < 1) { return "min_p must be in [0, 1)" }
        if !(repetitionPenalty > 0) { return "repetition_penalty must be > 0" }
        if !(-2...2).contains(presencePenalty) || !(-2...2).contains(frequencyPenalty) {
            return "presence_penalty and frequency_penalty must be in [-2, 2]"
        }
        return nil
    }
}

/// The chosen token and what the distribution looked like.
public struct SampledToken: Sendable {
    public var id: Int32
    /// Log-probability of the chosen token under the model (before sampling filters).
    public var logprob: Double
    /// The most likely alternatives and their log-probabilities, most likely first.
    public var top: [(id: Int32, logprob: Double)]
}

/// Picks tokens from logits. Top-k and top-p never sort the whole vocabulary: top-k
/// keeps a small heap, top-p finds its cut-off by bisection on the probability and sorts
/// only the survivors.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    public private(set) var rng: RNG
    private var counts: [Int32: Int] = [:]

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = RNG(seed: parameters.seed)
    }

    /// Counts tokens for the penalties (prompt tokens included, as most servers do).
    public mutating func observe(_ ids: [Int32]) {
        for id in ids { counts[id, default: 0] += 1 }
    }

    /// Samples from `logits` (one row of `count` floats) and records the choice.
    public mutating func sample(_ logits: UnsafePointer<Float>, count: Int, topLogprobs: Int = 0) -> SampledToken {
        // Log-probabilities need only the log-sum-exp; they are formed for the chosen and
        // the reported tokens, not for the whole vocabulary.
        let lse = CPUKernels.logSumExp(logits, count: count)
        let choice: Int
        if parameters.temperature == 0 && !hasPenalties {
            // Greedy: the first largest logit, without a copy of the row.
            var best = 0
            for i in 1..<max(count, 1) where logits[i] > logits[best] { best = i }
            choice = best
        } else {
            var scores = (0..<count).map { Double(logits[$0]) }
            applyPenalties(&scores)
            if parameters.temperature == 0 {
                choice = scores.indices.max { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }!
            } else {
                choice = draw(from: candidates(scores.map { $0 / parameters.temperature }))
            }
        }
        counts[Int32(choice), default: 0] += 1
        var top: [(Int32, Double)] = []
        if topLogprobs > 0 {
            let raw = (0..<count).map { Double(logits[$0]) - lse }
            top = Sampler.largest(raw, topLogprobs).map { (Int32($0), raw[$0]) }
        }
        return SampledToken(id: Int32(choice), logprob: Double(logits[choice]) - lse, top: top)
    }

    private var hasPenalties: Bool {
        let p = parameters
        return p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0
    }

    private func applyPenalties(_ scores: inout [Double]) {
        let p = parameters
        guard p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 else { return }
        for (id, n) in counts where Int(id) < scores.count {
            var s = scores[Int(id)]
            if p.repetitionPenalty != 1 { s = s > 0 ? s / p.repetitionPenalty : s * p.repetitionPenalty }
            s -= p.presencePenalty + p.frequencyPenalty * Double(n)
            scores[Int(id)] = s
        }
    }

    /// The tokens that survive top-k, min-p and top-p, with their (unnormalised) probabilities.
    func candidates(_ scaled: [Double]) -> [(index: Int, weight: Double)] {
        var pool: [(index: Int, weight: Double)]
        let top = scaled.max() ?? 0
        if parameters.topK > 0 && parameters.topK < scaled.count {
            pool = Sampler.largest(scaled, parameters.topK).map { ($0, exp(scaled[$0] - top)) }
        } else {
            pool = scaled.indices.map { ($0, exp(scaled[$0] - top)) }
        }
        if parameters.minP > 0 {
            let best = pool.map(\.weight).max() ?? 0
            pool = pool.filter { $0.weight >= parameters.minP * best }
        }
        if parameters.topP < 1 { pool = Sampler.nucleus(pool, parameters.topP) }
        return pool
    }

    /// The smallest set of most likely entries holding `p` of the mass: a threshold found
    /// by bisection on the weight (linear passes), then a sort of the few above it.
    static func nucleus(_ pool: [(index: Int, weight: Double)], _ p: Double) -> [(index: Int, weight: Double)] {
        let total = pool.reduce(0) { $0 + $1.weight }, target = p * total
        var low = 0.0, high = pool.map(\.weight).max() ?? 0
        for _ in 0..<50 {  // largest threshold whose survivors still hold the target mass
            let mid = (low + high) / 2
            if pool.reduce(0, { $1.weight >= mid ? $0 + $1.weight : $0 }) >= target { low = mid } else { high = mid }
        }
        var kept = pool.filter { $0.weight >= low }.sorted { $0.weight > $1.weight || ($0.weight == $1.weight && $0.index < $1.index) }
        // Trim ties at the threshold so the set is the smallest that reaches the target.
        var mass = 0.0, n = 0
        while n < kept.count && mass < target {
            mass += kept[n].weight
            n += 1
        }
        kept.removeLast(kept.count - max(n, 1))
        return kept
    }

    private mutating func draw(from pool: [(index: Int, weight: Double)]) -> Int {
        let total = pool.reduce(0) { $0 + $1.weight }
        var r = rng.nextDouble() * total
        for c in pool {
            r -= c.weight
            if r < 0 { return c.index }
        }
        return pool.last!.index
    }

    /// Indices of the k largest values, largest first, with a k-sized min-heap.
    static func largest(_ values: [Double], _ k: Int) -> [Int] {
        let k = min(k, values.count)
        guard k > 0 else { return [] }
        var heap: [Int] = []  // min-heap on values
        heap.reserveCapacity(k)
        func less(_ a: Int, _ b: Int) -> Bool { values[a] < values[b] || (values[a] == values[b] && a > b) }
        func siftDown(_ i: Int) {
            var i = i
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for i in values.indices {
            if heap.count < k {
                heap.append(i)
                var c = heap.count - 1
                while c > 0 && less(heap[c], heap[(c - 1) / 2]) {
                    heap.swapAt(c, (c - 1) / 2)
                    c = (c - 1) / 2
                }
            } else if less(heap[0], i) {
                heap[0] = i
                siftDown(0)
            }
        }
        return heap.sorted { less($1, $0) }
    }
}
