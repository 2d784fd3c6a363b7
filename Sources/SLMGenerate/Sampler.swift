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
    /// Divide positive (multiply negative) logits of tokens already seen, in the prompt
    /// or generated (1: off; as transformers and llama.cpp).
    public var repetitionPenalty: Double = 1
    /// Subtract from the logit of every token generated so far (OpenAI's
    /// presence_penalty; prompt tokens do not count, as with OpenAI and vLLM).
    public var presencePenalty: Double = 0
    /// Subtract this times the number of times a token was generated (frequency_penalty).
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
    /// How often each token was generated (presence and frequency penalties).
    private var counts: [Int32: Int] = [:]
    /// Prompt tokens (the repetition penalty also applies to them).
    private var prompt: Set<Int32> = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = RNG(seed: parameters.seed)
    }

    /// Records the prompt: its tokens count for the repetition penalty only.
    public mutating func observePrompt(_ ids: [Int32]) {
        prompt.formUnion(ids)
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
            var scores = Array(UnsafeBufferPointer(start: logits, count: count))
            applyPenalties(&scores)
            if parameters.temperature == 0 {
                choice = scores.indices.max { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }!
            } else {
                // In Float, 1/T must stay finite: below 1e-6 every temperature is greedy anyway.
                let temperature = max(Float(parameters.temperature), 1e-6)
                var probabilities = [Float](repeating: 0, count: count)
                probabilities.withUnsafeMutableBufferPointer { p in
                    CPUKernels.softmax(scores, count: count, temperature: temperature, into: p.baseAddress!)
                }
                choice = draw(from: candidates(probabilities))
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

    private func applyPenalties(_ scores: inout [Float]) {
        let p = parameters
        guard p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 else { return }
        if p.repetitionPenalty != 1 {
            for id in prompt.union(counts.keys) where Int(id) < scores.count {
                let s = scores[Int(id)]
                scores[Int(id)] = Float(s > 0 ? Double(s) / p.repetitionPenalty : Double(s) * p.repetitionPenalty)
            }
        }
        if p.presencePenalty != 0 || p.frequencyPenalty != 0 {
            for (id, n) in counts where Int(id) < scores.count {
                scores[Int(id)] = Float(Double(scores[Int(id)]) - p.presencePenalty - p.frequencyPenalty * Double(n))
            }
        }
    }

    /// The tokens that survive top-k, min-p and top-p, with their probabilities (from the
    /// softmax at the sampling temperature).
    func candidates(_ probabilities: [Float]) -> [(index: Int, weight: Double)] {
        var pool: [(index: Int, weight: Double)]
        if parameters.topK > 0 && parameters.topK < probabilities.count {
            pool = Sampler.largest(probabilities, parameters.topK).map { ($0, Double(probabilities[$0])) }
        } else {
            pool = probabilities.indices.map { ($0, Double(probabilities[$0])) }
        }
        if parameters.minP > 0 {
            let best = pool.map(\.weight).max() ?? 0
            pool = pool.filter { $0.weight >= parameters.minP * best }
        }
        if parameters.topP < 1 { pool = Sampler.nucleus(pool, parameters.topP) }
        return pool
    }

    /// The smallest set of most likely entries holding `p` of the mass, without sorting
    /// the vocabulary: entries too small to matter are dropped, a threshold is found by
    /// bisection on the weight, and only the entries at the threshold (ties) are sorted.
    static func nucleus(_ pool: [(index: Int, weight: Double)], _ p: Double) -> [(index: Int, weight: Double)] {
        let total = pool.reduce(0) { $0 + $1.weight }, target = p * total
        // Entries below (1 - p)·total / n hold at most (1 - p)·total together, so the
        // others already reach the target: the nucleus never needs them.
        let floor = (total - target) / Double(max(pool.count, 1))
        let live = pool.filter { $0.weight >= floor }
        let weights = live.map { Float($0.weight) }
        // Invariant: the entries >= low hold the target mass, those >= high do not.
        var low: Float = 0, high = (weights.max() ?? 0).nextUp
        for _ in 0..<40 {
            let mid = (low + high) / 2
            if mass(atLeast: mid, in: weights) >= target { low = mid } else { high = mid }
        }
        var kept = live.filter { $0.weight >= Double(high) }
        var keptMass = kept.reduce(0) { $0 + $1.weight }
        var band = live.filter { $0.weight >= Double(low) && $0.weight < Double(high) }
        if keptMass >= target {  // the fast sums rounded across the target: decide it exactly
            band += kept
            kept = []
            keptMass = 0
        }
        // The band [low, high) supplies the last entries: most likely first, ties by index.
        band.sort { $0.weight > $1.weight || ($0.weight == $1.weight && $0.index < $1.index) }
        for entry in band where keptMass < target || kept.isEmpty {
            kept.append(entry)
            keptMass += entry.weight
        }
        // Only a row without any positive weight (NaN logits) gets here empty.
        if kept.isEmpty, let first = pool.first { kept = [first] }
        return kept
    }

    /// Σ w[i] over w[i] >= threshold: the bisection's one pass, in 16 SIMD lanes, blocks
    /// of 4,096 summed in Double.
    static func mass(atLeast threshold: Float, in w: [Float]) -> Double {
        w.withUnsafeBufferPointer { p in
            let t = SIMD16<Float>(repeating: threshold)
            var total = 0.0, i = 0
            while i < p.count {
                let end = min(i + 4096, p.count)
                var acc = SIMD16<Float>()
                while i + 16 <= end {
                    let v = UnsafeRawPointer(p.baseAddress! + i).loadUnaligned(as: SIMD16<Float>.self)
                    acc += v.replacing(with: 0, where: v .< t)
                    i += 16
                }
                var part = Double(acc.sum())
                while i < end {
                    if p[i] >= threshold { part += Double(p[i]) }
                    i += 1
                }
                total += part
            }
            return total
        }
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
    static func largest<Value: Comparable>(_ values: [Value], _ k: Int) -> [Int] {
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
