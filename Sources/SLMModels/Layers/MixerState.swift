import SLMTensor

/// What an attention-free model (MonarchSLM, SymbioSLM) keeps while it reads one sequence
/// token by token, per layer: the mixer's inputs so far (the convolutions read the last
/// K or t of them, the Monarch mixer the current block) and the Monarch mixer's products
/// L2[h][b]·x_b of every completed block b. A token then costs O(√T·d) for the Monarch
/// part and O(t·d) for a long convolution at position t; the window is never re-read.
/// The inputs are kept twice, by position (the Monarch mixer reads a block's rows) and
/// by channel (a convolution is then one contiguous dot product per channel).
/// Memory: 3 · layers · context · width floats.
public final class MixerState: InferenceState {
    public let capacity: Int
    public private(set) var length = 0
    let width: Int
    private let inputs: [AlignedBuffer<Float>]          // per layer [capacity, width]
    private let channels: [AlignedBuffer<Float>]        // per layer [width, capacity]
    private let blockProducts: [AlignedBuffer<Float>]   // per layer [p blocks, p, width]

    init(_ config: ModelConfig) {
        capacity = config.context
        width = config.width
        inputs = (0..<config.layers).map { _ in AlignedBuffer(count: config.context * config.width) }
        channels = (0..<config.layers).map { _ in AlignedBuffer(count: config.context * config.width) }
        blockProducts = (0..<config.layers).map { _ in AlignedBuffer(count: config.context * config.width) }
    }

    public func reset() { length = 0 }

    public var byteCount: Int { 3 * inputs.count * capacity * width * MemoryLayout<Float>.stride }

    func memory(layer: Int) -> MixerMemory {
        MixerMemory(inputs: inputs[layer].pointer, channels: channels[layer].pointer, blockProducts: blockProducts[layer].pointer,
                    width: width, capacity: capacity)
    }

    /// Called once every layer has taken `count` new positions.
    func advance(by count: Int) {
        precondition(length + count <= capacity, "model: \(length + count) tokens exceed the context of \(capacity)")
        length += count
    }
}

/// One layer's part of a `MixerState`: rows of `width` floats indexed by position.
struct MixerMemory {
    /// The mixer's input at each position read, [capacity, width]; written through
    /// `input(_:)`, then `commit(_:)` copies the rows into `channels`.
    let inputs: UnsafeMutablePointer<Float>
    /// The same inputs by channel, [width, capacity].
    let channels: UnsafeMutablePointer<Float>
    /// Block b's Monarch product, row i: (L2[h][b] · x_b)[i] for each channel's head h,
    /// [p, p, width]; valid for completed blocks only.
    let blockProducts: UnsafeMutablePointer<Float>
    let width: Int
    let capacity: Int

    func input(_ position: Int) -> UnsafeMutablePointer<Float> { inputs + position * width }

    /// Channel c's inputs from position 0.
    func channel(_ c: Int) -> UnsafeMutablePointer<Float> { channels + c * capacity }

    /// Copies the rows of `positions`, once written, into the by-channel layout.
    func commit(_ positions: Range<Int>) {
        for t in positions {
            let row = input(t)
            for c in 0..<width { channels[c * capacity + t] = row[c] }
        }
    }
}
