import SLMTensor

/// A sparse mixture of SwiGLU experts in Mixtral's layout: the router `prefix`gate.weight
/// [experts, width] and experts `prefix`experts.{e}.{gate,up,down}_proj.weight.
///
/// Routing per token: softmax over the router logits, keep the `active` most probable
/// experts (ties to the lower index), renormalise their probabilities to sum to 1.
/// Dropless: every token reaches its `active` experts, whatever their load. Each expert
/// runs only on the tokens routed to it (gathered rows), and the weighted outputs are
/// added back per token (`scatterAddRows`).
struct MixtureOfExperts {
    let router: Linear
    let experts: [SwiGLUMLP]
    let active: Int

    init(_ p: ParameterSource, _ prefix: String, width: Int, hidden: Int, experts count: Int, active: Int,
         std: Float, residualStd: Float) {
        router = Linear(p, prefix + "gate", inputs: width, outputs: count, std: std)
        experts = (0..<count).map { e in
            SwiGLUMLP(p, prefix + "experts.\(e).", width: width, hidden: hidden, std: std, residualStd: residualStd)
        }
        self.active = active
    }

    /// The mixture's output (x's shape) and the load-balancing loss E · Σ_e f_e · P_e, with
    /// f_e the share of routed slots that went to expert e and P_e the mean router
    /// probability of e over the tokens (a scalar; 1 when the load is perfectly even).
    func callAsFunction(_ x: Tensor) -> (output: Tensor, balance: Tensor) {
        let width = x.shape.last, n = x.count / width, count = experts.count, k = active
        let rows = x.reshaped([n, width])
        let logits = router(rows), probabilities = softmax(logits)    // [n, E]
        let slots = Routing(probabilities: probabilities.toArray(), tokens: n, experts: count, active: k)
        // The kept probabilities renormalised to sum to 1 are the softmax of the kept
        // logits (the partition function cancels): [n·k] weights in slot order.
        let kept = embedding(logits.reshaped([n * count, 1]), indices: slots.flatChoices, shape: [n, k]).reshaped([n, k])
        let weights = softmax(kept).reshaped([n * k, 1])
        var outputs: [Tensor] = [], targets: [Int32] = [], slotOrder: [Int32] = []
        for (e, expert) in experts.enumerated() where !slots.tokens[e].isEmpty {
            let tokens = slots.tokens[e]
            outputs.append(expert(embedding(rows, indices: tokens, shape: [tokens.count])))
            targets += tokens
            slotOrder += slots.slots[e]
        }
        let slotWeights = embedding(weights, indices: slotOrder, shape: [slotOrder.count])
        let combined = scatterAddRows(concat(outputs, axis: 0), weights: slotWeights, rows: targets, count: n)
        // f_e is a count (no gradient); P_e carries the router's gradient.
        let share = Tensor(slots.tokens.map { Float($0.count) / Float(n * k) }, shape: [1, count])
        let balance = (probabilities * share).sum() * (Float(count) / Float(n))
        return (combined.reshaped(x.shape.dims), balance)
    }
}

/// Which experts each token goes to, read from the router probabilities [tokens, experts].
struct Routing {
    /// Per expert: the tokens routed to it, and the slot (token · active + rank) of each.
    var tokens: [[Int32]]
    var slots: [[Int32]]
    /// Per slot, token-major: token · experts + the chosen expert (indices into the flat
    /// probabilities).
    var flatChoices: [Int32]

    init(probabilities p: [Float], tokens n: Int, experts count: Int, active k: Int) {
        tokens = Array(repeating: [], count: count)
        slots = Array(repeating: [], count: count)
        flatChoices = []
        flatChoices.reserveCapacity(n * k)
        for t in 0..<n {
            let row = p[(t * count)..<((t + 1) * count)]
            // Stable: equal probabilities keep the lower expert index first.
            let chosen = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(k)
            for (rank, index) in chosen.enumerated() {
                let e = index - t * count
                tokens[e].append(Int32(t))
                slots[e].append(Int32(t * k + rank))
                flatChoices.append(Int32(index))
            }
        }
    }
}
