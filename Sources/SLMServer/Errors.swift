import Foundation
import Hummingbird
import Logging
import NIOCore

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Seconds for a Retry-After header (429, 503).
    public var retryAfter: Int? = nil

    public init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error",
                param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// 400: a field is missing, of the wrong type or out of range.
    static func invalid(_ message: String, param: String?, code: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    static func modelNotFound(_ name: String) -> APIError {
        APIError(.notFound, "The model '\(name)' does not exist.", param: "model", code: "model_not_found")
    }

    static let tooLarge = APIError(.contentTooLarge, "The request body is larger than the limit of \(ServerLimits.maxBodyBytes) bytes.",
                                   code: "request_too_large")

    static let missingKey = APIError(
        .unauthorized, "You didn't provide an API key. Send it in an Authorization header: 'Authorization: Bearer YOUR_KEY'.",
        code: "invalid_api_key")

    static let wrongKey = APIError(.unauthorized, "Incorrect API key provided.", code: "invalid_api_key")

    /// 400 as OpenAI answers a prompt longer than the context.
    static func contextLengthExceeded(context: Int, promptTokens: Int, param: String) -> APIError {
        APIError(.badRequest, "This model's maximum context length is \(context) tokens. However, your \(param) resulted in "
                 + "\(promptTokens) tokens. Please reduce the length of the \(param), or set 'truncate_prompt_tokens' "
                 + "to keep only its end.", param: param, code: "context_length_exceeded")
    }

    /// 429 when every generation slot and queue place is taken.
    static let busy: APIError = {
        var e = APIError(.tooManyRequests, "The server is busy: every generation slot and queue place is taken. Retry after a moment.",
                         type: "server_error", code: "rate_limit_exceeded")
        e.retryAfter = 1
        return e
    }()

    static let shuttingDown = APIError(.serviceUnavailable, "The server is shutting down.", type: "server_error",
                                       code: "service_unavailable")

    static let internalError = APIError(.internalServerError, "The server had an error while processing your request.",
                                        type: "server_error")

    var body: ErrorBody { ErrorBody(error: .init(message: message, type: type, param: param, code: code)) }

    func response() -> Response {
        var response = jsonResponse(body, status: status)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }

    /// A decoding failure, named as OpenAI names fields (`messages[0].content`).
    static func from(_ error: DecodingError) -> APIError {
        switch error {
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return .invalid("The request body must be a JSON object.", param: nil)
        case .typeMismatch(let type, let context):
            let param = context.codingPath.paramName
            return .invalid("Invalid type for '\(param)': expected \(describe(type)).", param: param, code: "invalid_type")
        case .valueNotFound(let type, let context):
            let param = context.codingPath.paramName
            return .invalid("Invalid value for '\(param)': expected \(describe(type)), got null.", param: param, code: "invalid_type")
        case .keyNotFound(let key, let context):
            let param = (context.codingPath + [key]).paramName
            return .invalid("Missing required parameter: '\(param)'.", param: param, code: "missing_required_parameter")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return .invalid("We could not parse the JSON body of your request. Send valid JSON (a JSON object).", param: nil)
            }
            let param = context.codingPath.paramName
            return .invalid("Invalid value for '\(param)'.", param: param)
        @unknown default:
            return .invalid("We could not parse the JSON body of your request.", param: nil)
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        case is [Any].Type: "an array"
        default: "\(type)".contains("Array") ? "an array" : "an object"
        }
    }
}

/// Turns whatever a route or the router throws into an OpenAI-shaped error response:
/// unknown routes (404), bodies over the limit (413), and anything unexpected (500,
/// logged, no details to the client).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch is NIOTooManyBytesError {
            return APIError.tooLarge.response()
        } catch let error as HTTPError {
            switch error.status {
            case .notFound:
                return APIError(.notFound, "Invalid URL (\(request.method) \(request.uri.path)).").response()
            case .methodNotAllowed:
                return APIError(.methodNotAllowed, "Method \(request.method) is not allowed for \(request.uri.path).").response()
            case .contentTooLarge:
                return APIError.tooLarge.response()
            default:
                return APIError(error.status, error.body ?? error.status.reasonPhrase).response()
            }
        } catch is CancellationError {
            // The client went away before its answer was ready: nobody reads this.
            return APIError(.init(code: 499, reasonPhrase: "Client Closed Request"), "The client closed the connection.").response()
        } catch let error as any HTTPResponseError {
            return APIError(error.status, error.status.reasonPhrase).response()
        } catch {
            context.logger.error("request failed: \(String(describing: error))")
            return APIError.internalError.response()
        }
    }
}

/// A compact JSON response.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? jsonEncoder.encode(value)) ?? Data(#"{"error":{"message":"encoding failed","type":"server_error","param":null,"code":null}}"#.utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

let jsonEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]  // a stable order for people reading
    return e
}()
