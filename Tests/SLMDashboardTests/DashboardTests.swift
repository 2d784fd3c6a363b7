import Foundation
import Hummingbird
import HummingbirdTesting
@testable import SLMDashboard
import Testing

@Suite struct DashboardTests {
    func scratch() -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slm-dashboard-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func append(_ text: String, to url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        try handle.close()
    }

    /// The follower reads only complete lines, picks up what is appended, and starts over
    /// when the file is replaced by a shorter one.
    @Test func followsAGrowingFile() throws {
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("metrics.jsonl")
        var follower = RunFollower(path: dir.path)
        var changed = follower.update()
        #expect(!changed)
        try append(#"{"step":1,"loss":3.0}"# + "\n" + #"{"step":2,"lo"#, to: file)
        changed = follower.update()
        #expect(changed && follower.log.records.count == 1)
        changed = follower.update()
        #expect(!changed)
        try append(#"ss":2.5}"# + "\n", to: file)
        changed = follower.update()
        #expect(changed && follower.log.records.map(\.step) == [1, 2])
        try #"{"step":1,"loss":9}"#.appending("\n").write(to: file, atomically: true, encoding: .utf8)
        changed = follower.update()
        #expect(changed && follower.log.records.count == 1 && follower.log.latest("loss") == 9)
    }

    /// A snapshot's figures: step of total, latest loss, best validation loss, ETA from the
    /// speed, the latest sample, and the Symbio gate chart.
    @Test func snapshotFigures() throws {
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        try append([
            #"{"event":"start","step":0,"total_steps":100,"tokens_per_step":1000,"architecture":"symbio","parameters":4000000}"#,
            #"{"step":10,"loss":3.5,"lr":0.001,"tokens_per_sec":2000,"mfu":0.2,"tokens":10000,"elapsed":5}"#,
            #"{"step":10,"val_loss":3.4,"sample":"The soul is","gate_conv":[0.2,0.5],"gate_monarch":[0.3,0.25],"gate_long_conv":[0.5,0.25],"elapsed":6}"#,
            #"{"step":20,"loss":3.0,"lr":0.001,"tokens_per_sec":4000,"mfu":0.4,"tokens":20000,"elapsed":8}"#,
        ].joined(separator: "\n") + "\n", to: dir.appendingPathComponent("metrics.jsonl"))
        var follower = RunFollower(path: dir.path)
        _ = follower.update()
        let snapshot = Snapshot([follower])
        let run = try #require(snapshot.runs.first)
        #expect(run.step == 20 && run.totalSteps == 100 && run.loss == 3.0 && run.bestValidationLoss == 3.4)
        #expect(run.eta == 80 * 1000 / 4000.0)
        #expect(run.sample == "The soul is" && run.sampleStep == 10 && run.status == "training" && run.architecture == "symbio")
        #expect(snapshot.charts.keys.sorted() == ["gates:\(dir.lastPathComponent)", "loss", "lr", "mfu", "tokens_per_sec"])
        #expect(snapshot.charts["gates:\(dir.lastPathComponent)"]!.components(separatedBy: "class=\"gate\"").count - 1 == 6)
    }

    /// The page and a snapshot over HTTP; a run folder that does not exist yet is waiting.
    @Test func servesThePageAndSnapshots() async throws {
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        try append(#"{"step":1,"loss":3.0}"# + "\n", to: dir.appendingPathComponent("metrics.jsonl"))
        let app = Application(router: Dashboard(runs: [dir.path, dir.appendingPathComponent("later").path]).router())
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains("new EventSource(\"/events\")"))
            }
            try await client.execute(uri: "/snapshot", method: .get) { response in
                let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as! [String: Any]
                let runs = object["runs"] as! [[String: Any]]
                #expect(runs.count == 2 && runs[0]["loss"] as? Double == 3.0 && runs[1]["status"] as? String == "waiting for metrics")
            }
        }
    }
}
