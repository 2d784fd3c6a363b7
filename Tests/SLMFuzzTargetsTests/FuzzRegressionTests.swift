import Foundation
import SLMFuzzTargets
import XCTest

/// Replays the fuzz corpus kept in the repository: every seed must still parse (so the
/// fuzzer starts from valid inputs), and every input that once crashed or hung a parser
/// must now be refused with a message. A crash here takes the test process down.
final class FuzzRegressionTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz")

    func inputs(_ kind: String, _ target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
        let dir = Self.root.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().compactMap { name in
            FileManager.default.contents(atPath: dir.appendingPathComponent(name).path).map { (name, Array($0)) }
        }
    }

    func testEverySeedIsAccepted() {
        for target in FuzzTarget.allCases {
            let seeds = inputs("seeds", target)
            XCTAssertFalse(seeds.isEmpty, "no seeds for \(target.rawValue)")
            for seed in seeds {
                XCTAssertEqual(target.run(seed.bytes), .accepted, "\(target.rawValue)/\(seed.name)")
            }
        }
    }

    func testEveryRegressionIsRefused() {
        for target in FuzzTarget.allCases {
            for input in inputs("regressions", target) {
                guard case .refused(let message) = target.run(input.bytes) else {
                    XCTFail("\(target.rawValue)/\(input.name) was accepted"); continue
                }
                XCTAssertFalse(message.isEmpty, "\(target.rawValue)/\(input.name)")
            }
        }
    }

    func testTruncatedAndEmptyInputsAreRefused() {
        for target in FuzzTarget.allCases {
            XCTAssertNotEqual(target.run([]), .accepted, target.rawValue)
            for seed in inputs("seeds", target) {
                // Cut inside the structure: a JSON or TOML document, a header or the ids.
                _ = target.run(Array(seed.bytes.prefix(seed.bytes.count / 2)))
            }
        }
    }
}
