import Foundation
import SLMModels
import SLMTensor
import SLMTrain
import Testing

@Suite struct AdamWTests {
    /// Two steps worked out by hand: with a constant gradient the bias-corrected update
    /// is exactly 1, so w ← w - lr·wd·w - lr.
    @Test func twoStepsByHand() {
        let matrix = Tensor([1], shape: [1, 1], requiresGrad: true), vector = Tensor([1], shape: [1], requiresGrad: true)
        let opt = AdamW(parameters: [matrix, vector], learningRate: 0.1, weightDecay: 0.1)
        for _ in 0..<2 {
            opt.zeroGrad()
            (matrix * 0.5).sum().backward()
            (vector * 0.5).sum().backward()
            opt.update()
        }
        #expect(abs(matrix.item() - 0.7811) < 1e-6)  // 1 → 0.89 → 0.89 - 0.0089 - 0.1
        #expect(abs(vector.item() - 0.8) < 1e-6)      // vectors are not decayed
    }
}

@Suite struct EndToEndTests {
    /// A one-block transformer learns a task that needs attention and positions: after two
    /// random tokens, each token repeats the one two places back. Only the first target is
    /// unpredictable, so the loss can fall from ln 8 to about ln 8 / 16 ≈ 0.13.
    @Test func tinyTransformerLearnsToCopy() throws {
        let vocab = 8, batch = 16, time = 16
        let model = try makeModel(ModelConfig(architecture: .gpt2, vocabSize: vocab, layers: 1, heads: 2, width: 32, context: time), seed: 1)
        let opt = AdamW(parameters: model.parameters.map(\.tensor), learningRate: 1e-2)
        var rng = RNG(seed: 2)
        func sampleBatch() -> (inputs: [Int32], targets: [Int32]) {
            var inputs: [Int32] = [], targets: [Int32] = []
            for _ in 0..<batch {
                let a = Int32(rng.next() % UInt64(vocab)), b = Int32(rng.next() % UInt64(vocab))
                let seq = (0...time).map { $0 % 2 == 0 ? a : b }
                inputs += seq[0..<time]
                targets += seq[1...time]
            }
            return (inputs, targets)
        }
        var losses: [Float] = []
        for _ in 0..<150 {
            let (inputs, targets) = sampleBatch()
            opt.zeroGrad()
            let loss = model.loss(inputs: inputs, targets: targets, batch: batch, time: time)
            loss.backward()
            opt.update()
            losses.append(loss.item())
        }
        #expect(abs(losses[0] - Float(log(Double(vocab)))) < 0.15, "initial loss \(losses[0])")
        let final = losses.suffix(10).reduce(0, +) / 10
        #expect(final < 0.3, "final loss \(final)")
    }
}
