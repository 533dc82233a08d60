import Hummingbird
import NIOCore
import SwitchyardCore

/// Who may use `/admin`: holders of the admin token, or, with none configured, loopback clients only.
public struct AdminAuth: Sendable {
    public let token: String?

    public init(token: String?) {
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
    }

    public static func fromEnvironment(_ table: RoutingTable, environment: [String: String]) -> AdminAuth {
        AdminAuth(token: table.server.adminTokenEnv.flatMap { environment[$0] })
    }

    func check(_ request: Request, context: GatewayRequestContext) -> GatewayError? {
        if let token {
            guard request.headers[.authorization] == "Bearer \(token)" else {
                return GatewayError(status: .unauthorized, message: "the admin API needs Authorization: Bearer ADMIN_TOKEN", type: "invalid_request_error", code: "admin_token_required")
            }
            return nil
        }
        let remote = context.channel.remoteAddress?.ipAddress ?? ""
        guard remote == "127.0.0.1" || remote == "::1" || remote.hasPrefix("127.") || remote == "::ffff:127.0.0.1" else {
            return GatewayError(status: .forbidden, message: "no admin token is configured: the admin API answers loopback clients only", type: "invalid_request_error", code: "admin_loopback_only")
        }
        return nil
    }
}
