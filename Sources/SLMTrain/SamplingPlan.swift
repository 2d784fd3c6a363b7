import Foundation
import SLMModels
import SLMText

/// Which chunks the windows of a step start in, and how often: each chunk's weight is its
/// token count (so that, with nothing else set, the data is read in proportion as uniform
/// windows read it), times its category's weight, times 0 outside the categories of the
/// current phase, times 0 above the curriculum's current difficulty. A window takes the
/// category and the scores of the chunk it starts in (see `ChunkDraw` for books).
struct SamplingPlan {
    struct Phase: Equatable {
        /// Categories read in this phase (nil: all).
        var categories: Set<String>?
        /// The fraction of the steps where it begins.
        var from: Double
    }

    let index: ChunkIndex
    let totalSteps: Int
    let categoryWeights: [Double]
    let phases: [Phase]
    /// Chunk ranks from easiest to hardest by the curriculum's signal (nil: no curriculum).
    let rankOfChunk: [Int]?
    let curriculumFraction: Double
    /// The chunks a coreset keeps (nil: all).
    let coreset: [Bool]?
    /// The easiest share of the chunks read at step 0.
    static let startingCompetence = 0.1

    /// `scores`: the chunks' losses from `slm data score`, needed for a coreset.
    init(index: ChunkIndex, config: TrainingConfig, scores: [Float]? = nil) throws {
        self.index = index
        totalSteps = config.steps
        let weights = try TrainingConfig.parseCategoryWeights(config.categoryWeights)
        for name in weights.keys where !index.categories.contains(name) {
            throw CheckpointError("training.category_weights names \"\(name)\", which is not a category of this data (\(index.categories.joined(separator: ", ")))")
        }
        categoryWeights = index.categories.map { weights[$0] ?? 1 }
        phases = try TrainingConfig.parsePhases(config.phases)
        for phase in phases {
            for name in phase.categories ?? [] where !index.categories.contains(name) {
                throw CheckpointError("training.phases names \"\(name)\", which is not a category of this data (\(index.categories.joined(separator: ", ")))")
            }
        }
        curriculumFraction = config.curriculumFraction
        if config.coresetKeep < 1 {
            guard let scores, scores.count == index.chunks.count else {
                throw CheckpointError("a coreset needs one score per chunk from `slm data score`")
            }
            coreset = ChunkScores.selection(scores, keep: config.coresetKeep, noise: config.coresetNoise)
        } else {
            coreset = nil
        }
        if let signal = config.curriculum {
            let score: (ChunkIndex.Chunk) -> Float = switch signal {
            case .compression: \.compression
            case .diversity: \.diversity
            case .readability: \.readability
            case .difficulty: \.difficulty
            }
            // Ties keep file order, so the ranks do not depend on the sort's whims.
            let order = index.chunks.indices.sorted { (score(index.chunks[$0]), $0) < (score(index.chunks[$1]), $1) }
            var ranks = [Int](repeating: 0, count: order.count)
            for (rank, chunk) in order.enumerated() { ranks[chunk] = rank }
            rankOfChunk = ranks
        } else {
            rankOfChunk = nil
        }
        for step in [0] + phases.map({ Int(($0.from * Double(totalSteps)).rounded(.up)) }) where step < totalSteps {
            guard self.weights(at: step).contains(where: { $0 > 0 }) else {
                throw CheckpointError("the sampling plan leaves no chunk to read at step \(step) (category weights, phases and curriculum together)")
            }
        }
    }

    /// Training tokens per category.
    var tokensPerCategory: [Int] {
        var counts = [Int](repeating: 0, count: index.categories.count)
        for c in index.chunks { counts[c.category] += c.length }
        return counts
    }

    /// What changes the weights: the phase and the curriculum's reach (in chunks).
    func key(at step: Int) -> [Int] {
        let p = Double(step) / Double(max(totalSteps, 1))
        return [phases.lastIndex { $0.from <= p } ?? -1, reach(at: p)]
    }

    /// How many of the easiest chunks the curriculum admits at progress p: a competence
    /// c(p) = min(1, sqrt(c₀² + (1 − c₀²) · p / fraction)) of them, from c₀ = 0.1
    /// (competence-based curriculum, Platanios et al. 2019), so all of them after the fraction.
    func reach(at p: Double) -> Int {
        guard rankOfChunk != nil else { return index.chunks.count }
        let c0 = Self.startingCompetence
        let competence = min(1, (c0 * c0 + (1 - c0 * c0) * p / curriculumFraction).squareRoot())
        return max(1, Int((competence * Double(index.chunks.count)).rounded(.up)))
    }

    /// `categoryMultipliers`: online DoReMi's factors per category (nil: none).
    func weights(at step: Int, categoryMultipliers: [Double]? = nil) -> [Double] {
        let p = Double(step) / Double(max(totalSteps, 1))
        let active = phases.last { $0.from <= p }?.categories.map { names in Set(names.compactMap { index.categories.firstIndex(of: $0) }) }
        let reach = reach(at: p)
        return index.chunks.enumerated().map { i, c in
            if let active, !active.contains(c.category) { return 0 }
            if let ranks = rankOfChunk, ranks[i] >= reach { return 0 }
            if let coreset, !coreset[i] { return 0 }
            return Double(c.length) * categoryWeights[c.category] * (categoryMultipliers?[c.category] ?? 1)
        }
    }
}

extension TrainingConfig {
    /// "logic=1, quadrivium=2.5" → weights per category (empty: all 1).
    static func parseCategoryWeights(_ text: String) throws(ConfigError) -> [String: Double] {
        var weights: [String: Double] = [:]
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let w = Double(parts[1]), w >= 0, w.isFinite else {
                throw ConfigError("training.category_weights: \"\(item)\" is not NAME=WEIGHT with a weight of at least 0 (e.g. \"logic=1, quadrivium=2\")")
            }
            weights[parts[0]] = w
        }
        return weights
    }

    /// "logic+rhetoric@0, logic+rhetoric+quadrivium@0.3, all@0.6" → phases; the first
    /// begins at 0 and each later one after the one before.
    static func parsePhases(_ text: String) throws(ConfigError) -> [SamplingPlan.Phase] {
        var phases: [SamplingPlan.Phase] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "@").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let from = Double(parts[1]), (0..<1).contains(from),
                  from > (phases.last?.from ?? -1) else {
                throw ConfigError("training.phases: \"\(item)\" is not CATEGORY+CATEGORY@FRACTION (or all@FRACTION) with fractions "
                    + "rising from 0 below 1 (e.g. \"logic+rhetoric@0, all@0.5\")")
            }
            let names = Set(parts[0].split(separator: "+").map { $0.trimmingCharacters(in: .whitespaces) })
            phases.append(SamplingPlan.Phase(categories: names == ["all"] ? nil : names, from: from))
        }
        if let first = phases.first, first.from != 0 { throw ConfigError("training.phases: the first phase must begin at 0, not \(first.from)") }
        return phases
    }
}
