import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import SLMServer

/// The API key guards whatever the router resolves to an API route, however the path is
/// spelled. Each spelling is sent without the key and with it: none may succeed without
/// it, and every one that succeeds with the key must have been refused with 401 without.
@Suite(.timeLimit(.minutes(2))) struct APIKeyPathTests {
    static let key = "sk-path-test"

    static let getPaths = [
        "/v1/models", "//v1/models", "/v1//models", "///v1///models", "/v1/models/", "/v1/models//",
        "/v1/./models", "/./v1/models", "/v1/../v1/models", "/health/../v1/models", "/V1/models", "/v1/MODELS",
        "/v1%2Fmodels", "/v1%2fmodels", "%2Fv1%2Fmodels", "/%76%31/models", "/v1/models?x=1", "/v1/models#x",
        "/v1/models;x", "/v1/models%00", "/v1/models/tiny", "//v1//models//tiny//", "/v1/models/tiny/",
        "/v1", "/v1/", "//v1",
    ]
    static let postPaths = [
        "/v1/completions", "//v1/completions", "/v1//completions", "/v1/completions/", "/v1/./completions",
        "/V1/completions", "/v1/Completions", "/v1%2Fcompletions", "/v1/chat/completions", "//v1//chat//completions//",
        "/v1/chat/./completions", "/v1/chat%2Fcompletions", "/v1/chat%2fcompletions", "/v1/CHAT/completions",
        "/v1/chat/completions?stream=true", "/./v1/chat/completions", "/metrics/../v1/completions",
    ]
    static let completionBody = #"{"model": "tiny", "prompt": "a", "max_tokens": 2}"#
    static let chatBody = #"{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 2}"#

    /// Through the router, as the HTTP layer hands it a request target.
    @Test func everySpellingNeedsTheKey() async throws {
        try await withServer(apiKey: Self.key) { client, _ in
            try await Self.checkEverySpelling { method, path, body, key in
                try await client.send(method, path, body: body, key: key).status.code
            }
        }
    }

    /// On a real socket, one connection per request, the target sent byte for byte (as
    /// `curl --path-as-is` does).
    @Test func everySpellingNeedsTheKeyOnTheWire() async throws {
        try await withServer(apiKey: Self.key, setup: .live) { client, _ in
            let port = try #require(client.port)
            try await Self.checkEverySpelling { method, path, body, key in
                try await rawHTTPStatus(port: port, method: method.rawValue, target: path, body: method == .post ? body : nil, key: key)
            }
        }
    }

    /// None of the spellings succeeds without the key, and each that succeeds with it was
    /// refused with 401 without it.
    static func checkEverySpelling(_ send: (HTTPRequest.Method, String, String, String?) async throws -> Int) async throws {
        var succeededWithKey = 0
        for (method, paths) in [(HTTPRequest.Method.get, getPaths), (.post, postPaths)] {
            for path in paths {
                let body = path.lowercased().contains("chat") ? chatBody : completionBody
                let without = try await send(method, path, body, nil)
                let with = try await send(method, path, body, key)
                #expect(!(200..<300).contains(without), "\(method) \(path) answered \(without) without the key")
                if (200..<300).contains(with) {
                    succeededWithKey += 1
                    #expect(without == 401, "\(method) \(path): \(without) without the key")
                }
            }
        }
        // The canonical paths and the variants the router accepts did reach the routes.
        #expect(succeededWithKey >= 8)
    }

    @Test func openRoutesStayOpen() async throws {
        try await withServer(apiKey: Self.key) { client, _ in
            for path in ["/health", "/metrics", "/", "//health", "/health/"] {
                let status = try await client.get(path).status
                #expect(status == .ok, "\(path)")
            }
        }
    }
}

/// Sends one request on a new loopback connection and returns the response's status code
/// (0 if the server closed the connection without one).
func rawHTTPStatus(port: Int, method: String, target: String, body: String?, key: String?) async throws -> Int {
    var request = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if let key { request += "Authorization: Bearer \(key)\r\n" }
    if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { request += "\r\n" }
    guard let connection = try? RawConnection(port: port) else { return 0 }
    connection.send(request)
    let response = await connection.read(seconds: 30).text
    let statusLine = response.prefix { $0 != "\r\n" }  // ("\r\n" is one Character)
    let parts = statusLine.split(separator: " ")
    return parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
}

extension TestClientProtocol {
    func send(_ method: HTTPRequest.Method, _ uri: String, body: String, key: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let key { headers[.authorization] = "Bearer \(key)" }
        if method == .post {
            headers[.contentType] = "application/json"
            return try await execute(uri: uri, method: method, headers: headers, body: ByteBuffer(string: body))
        }
        return try await execute(uri: uri, method: method, headers: headers)
    }
}
