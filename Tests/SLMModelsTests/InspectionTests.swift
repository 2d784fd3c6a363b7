import Foundation
import SLMModels
import SLMTestSupport
import Testing

/// `slm inspect`'s numbers against the PyTorch reference on the tiny fixtures
/// (benchmarks/reference/reference.py inspect wrote inspect.json): surprisal from the
/// reference's logits, attention probabilities recomputed explicitly from the q and k
/// it attends with, Monarch matrices built densely from P and B(L), and the gates.
@Suite struct InspectionTests {
    @Test(arguments: ["tiny-gpt2", "tiny-llama", "tiny-monarch", "tiny-symbio"])
    func inspectionMatchesThePyTorchReference(_ name: String) throws {
        let dir = ReferenceFixtureTests.fixtures.appendingPathComponent(name)
        let model = try ModelStore.load(from: dir)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("inspect.json"))) as! [String: Any]
        let ids = (expected["ids"] as! [Int]).map(Int32.init)
        let inspection = model.inspect(ids)

        let bits = expected["surprisal_bits"] as! [Any]
        #expect(inspection.surprisal.count == ids.count && inspection.surprisal[0].isNaN)
        for t in 1..<ids.count {
            #expect(abs(inspection.surprisal[t] - (bits[t] as! Double)) < 1e-4, "position \(t)")
        }
        let attention = expected["attention"] as! [[[Double]]]
        #expect(inspection.attention.count == attention.count)
        for (l, heads) in attention.enumerated() {
            #expect(inspection.attention[l].count == heads.count)
            for (h, values) in heads.enumerated() {
                expectClose(inspection.attention[l][h], values.map(Float.init), tolerance: 1e-5)
            }
        }
        if model.config.architecture == .gpt2 || model.config.architecture == .llama {
            #expect(attention.count == model.config.layers && inspection.monarch.isEmpty && inspection.gates.isEmpty)
        } else {
            let monarch = expected["monarch"] as! [[[Double]]]
            #expect(inspection.monarch.count == monarch.count && attention.isEmpty)
            for (l, heads) in monarch.enumerated() {
                for (h, values) in heads.enumerated() { expectClose(inspection.monarch[l][h], values.map(Float.init), tolerance: 1e-5) }
            }
            let gates = expected["gates"] as! [[[Double]]]
            #expect(inspection.gates.count == gates.count)
            for (l, layer) in gates.enumerated() {
                for (g, values) in layer.enumerated() { expectClose(inspection.gates[l][g], values.map(Float.init), tolerance: 1e-6) }
            }
        }
    }

    /// Each attention row is a distribution over the positions it may see, and no more.
    @Test func attentionRowsAreCausalDistributions() throws {
        let model = try ModelStore.load(from: ReferenceFixtureTests.fixtures.appendingPathComponent("tiny-llama"))
        let T = 6
        let inspection = model.inspect((0..<T).map { Int32($0 % model.config.vocabSize) })
        for heads in inspection.attention {
            for m in heads {
                for t in 0..<T {
                    #expect(abs(m[(t * T)..<(t * T + T)].reduce(0, +) - 1) < 1e-5)
                    #expect(m[(t * T + t + 1)..<(t * T + T)].allSatisfy { $0 == 0 })
                }
            }
        }
    }
}
