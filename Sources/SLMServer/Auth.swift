import Foundation
import Hummingbird

/// With an API key set, every OpenAI route needs `Authorization: Bearer KEY` (401 in
/// OpenAI's shape otherwise). It is installed on the routes themselves (see
/// `Routes.register`), never matched against the raw path: the router accepts several
/// spellings of one path, and the check must cover each. /health, /metrics and the
/// playground page stay open: probes and scrapers need no secret, and the page holds no
/// data (it sends the key the user types in with its own requests).
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else { throw APIError.missingKey }
        let scheme = "bearer "
        guard header.count > scheme.count, header.prefix(scheme.count).lowercased() == scheme else { throw APIError.missingKey }
        let given = header.dropFirst(scheme.count).trimmingCharacters(in: .whitespaces)
        guard constantTimeEqual(Array(given.utf8), Array(key.utf8)) else { throw APIError.wrongKey }
        return try await next(request, context)
    }

    /// Compares without stopping at the first difference, so timing tells nothing about the key.
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
