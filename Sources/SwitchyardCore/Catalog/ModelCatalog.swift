import Foundation

/// What a provider's `GET /models` listed: each upstream model id with its context length when given.
public struct ModelListing: Sendable, Equatable {
    public var contexts: [String: Int?]
    public var fetchedAt: Timestamp

    public init(contexts: [String: Int?], fetchedAt: Timestamp) {
        self.contexts = contexts
        self.fetchedAt = fetchedAt
    }

    /// Reads OpenAI's list shape (`{"data":[{"id":…}]}`) with OpenRouter's `context_length` or Groq's
    /// `context_window`; nil when the body is not a model list.
    public static func parse(_ body: [UInt8], at now: Timestamp) -> ModelListing? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let data = json["data"] as? [[String: Any]]
        else { return nil }
        var contexts: [String: Int?] = [:]
        for entry in data {
            guard let id = entry["id"] as? String else { continue }
            let context = (entry["context_length"] as? NSNumber) ?? (entry["context_window"] as? NSNumber)
            contexts.updateValue(context.map { $0.intValue }.flatMap { $0 > 0 ? $0 : nil }, forKey: id)
        }
        return ModelListing(contexts: contexts, fetchedAt: now)
    }
}

/// One difference between routes.yaml and a provider's catalog.
public struct CatalogChange: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The provider no longer lists the model: it is taken out of planning.
        case retired
        /// The provider declares another context length: the planner uses it.
        case context(configured: Int, listed: Int)
    }

    public var model: String
    public var provider: String
    public var kind: Kind

    public init(model: String, provider: String, kind: Kind) {
        self.model = model
        self.provider = provider
        self.kind = kind
    }

    public var description: String {
        switch kind {
        case .retired: "model \(model): \(provider)'s catalog no longer lists it; taken out of routing"
        case .context(let configured, let listed): "model \(model): \(provider) lists a context of \(listed) tokens (routes.yaml says \(configured)); using \(listed)"
        }
    }
}

/// Applies providers' catalogs to the table routes.yaml describes, for providers with `sync_catalog: true`.
public enum ModelCatalog {
    /// The table to route with, and how it differs from `table`. `listings` are keyed by provider name.
    public static func apply(_ listings: [String: ModelListing], to table: RoutingTable) -> (RoutingTable, [CatalogChange]) {
        var adjusted = table
        var changes: [CatalogChange] = []
        for model in table.models {
            let provider = table.providers[model.provider]
            guard provider.syncCatalog, let listing = listings[provider.name] else { continue }
            guard let listed = listing.contexts[model.upstream] else {
                adjusted.models[model.id].retired = "\(provider.name)'s catalog no longer lists \(model.upstream)"
                changes.append(CatalogChange(model: model.name, provider: provider.name, kind: .retired))
                continue
            }
            if let context = listed, context != model.context {
                adjusted.models[model.id].context = context
                changes.append(CatalogChange(model: model.name, provider: provider.name, kind: .context(configured: model.context, listed: context)))
            }
        }
        return (adjusted, changes)
    }
}
