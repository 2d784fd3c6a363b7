/// Who says a chat message.
public enum ChatRole: String, Codable, Sendable {
    case system, user, assistant
}

public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: ChatRole
    public var content: String

    public init(role: ChatRole, content: String) {
        self.role = role
        self.content = content
    }
}

/// Messages to a prompt, in a plain template small models trained on books can follow:
///
///     System: {system}
///
///     User: {user}
///
///     Assistant: {assistant}
///
///     User: {user}
///
///     Assistant:
///
/// The model continues after the final "Assistant:"; generation stops when it starts a
/// new "User:" or "System:" turn.
public enum ChatTemplate {
    public static let stops = ["\nUser:", "\nSystem:"]

    public static func render(_ messages: [ChatMessage]) -> String {
        var out = ""
        for m in messages {
            let label = m.role == .system ? "System" : m.role == .user ? "User" : "Assistant"
            out += "\(label): \(m.content)\n\n"
        }
        return out + "Assistant:"
    }
}
