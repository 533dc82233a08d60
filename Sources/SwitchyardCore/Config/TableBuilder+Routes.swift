import Yams

/// Models and the routes over them.
extension TableBuilder {
    static let modelFields = ["provider", "upstream", "context", "speed", "quality", "prefill", "max_request_tokens", "kind"]

    func readModel(_ name: String, _ node: Node, id: ModelID, providers: [Provider]) -> Model? {
        let path = "models.\(name)"
        guard let f = reader.fields(node, path, allowed: Self.modelFields) else { return nil }
        var provider: ProviderID?
        if let providerNode = f.required("provider"), let providerName = reader.string(providerNode, f.path("provider")) {
            provider = providers.first { $0.name == providerName }?.id
            if provider == nil {
                reader.error(providerNode, f.path("provider"),
                             "unknown provider '\(providerName)'\(Suggestion.didYouMean(providerName, among: providers.map(\.name)))")
            }
        }
        let upstream = f.required("upstream").flatMap { reader.string($0, f.path("upstream")) }
        let context = f.required("context").flatMap { reader.int($0, f.path("context"), in: 256...100_000_000) }
        let speed = f.read("speed") { r in { r.int($0, $1, in: 1...10) } } ?? 3
        let quality = f.read("quality") { r in { r.int($0, $1, in: 1...10) } } ?? 3
        let prefill = f.read("prefill") { r in { r.bool($0, $1) } } ?? false
        let maxRequest = f.read("max_request_tokens") { r in { r.int($0, $1, in: 1...100_000_000) } }
        let kind = f.read("kind") { r in { r.choice($0, $1, of: ModelKind.self) } } ?? .chat
        guard let provider, let upstream, let context else { return nil }
        return Model(
            id: id, name: name, kind: kind, provider: provider, upstream: upstream, context: context, speed: speed, quality: quality,
            prefill: prefill, maxRequestTokens: maxRequest)
    }

    static let routeFields = ["prefer", "models", "defaults", "cache", "last_resort"]
    static let reservedDefaults: Set<String> = ["model", "messages", "stream"]

    func readRoute(_ name: String, _ node: Node, models: [Model]) -> Route? {
        let path = "routes.\(name)"
        guard let f = reader.fields(node, path, allowed: Self.routeFields) else { return nil }
        let prefer = f.read("prefer") { r in { r.choice($0, $1, of: Preference.self) } } ?? .speed
        var listed: [ModelID] = []
        if let modelsNode = f.required("models"), let items = reader.list(modelsNode, f.path("models")) {
            if items.isEmpty { reader.error(modelsNode, f.path("models"), "list at least one model") }
            for item in items {
                guard let modelName = reader.string(item.node, item.path) else { continue }
                guard let model = models.first(where: { $0.name == modelName }) else {
                    reader.error(item.node, item.path,
                                 "unknown model '\(modelName)'\(Suggestion.didYouMean(modelName, among: models.map(\.name)))")
                    continue
                }
                if listed.contains(model.id) {
                    reader.warn(item.node, item.path, "'\(modelName)' is listed twice")
                } else {
                    listed.append(model.id)
                }
            }
        }
        var defaults: [String: String] = [:]
        if let defaultsNode = f["defaults"], let entries = reader.entries(defaultsNode, f.path("defaults")) {
            for (key, keyNode, value) in entries {
                let fieldPath = NodeReader.join(f.path("defaults"), key)
                if Self.reservedDefaults.contains(key) {
                    reader.error(keyNode, fieldPath, "'\(key)' cannot have a default")
                } else if let json = reader.json(value, fieldPath) {
                    defaults[key] = json
                }
            }
        }
        let kind = listed.first.map { models[$0].kind } ?? .chat
        if let modelsNode = f["models"], let other = listed.first(where: { models[$0].kind != kind }) {
            reader.error(
                modelsNode, f.path("models"),
                "'\(models[other].name)' is \(Self.article(models[other].kind)) model and '\(models[listed[0]].name)' \(Self.article(kind)) one; a route's models are all chat or all embedding models")
        }
        var route = Route(
            name: name, kind: kind, prefer: prefer, models: listed, rankedModels: Self.rank(listed, by: prefer, models: models),
            defaults: defaults)
        f.assign("cache", to: &route.cacheEnabled) { reader.bool($0, $1) }
        route.lastResort = f.read("last_resort") { r in { r.string($0, $1) } }
        return route
    }

    static func article(_ kind: ModelKind) -> String { kind == .embedding ? "an embedding" : "a chat" }

    /// Static preference order; health and context are applied per request by the planner.
    static func rank(_ listed: [ModelID], by prefer: Preference, models: [Model]) -> [ModelID] {
        let position = Dictionary(uniqueKeysWithValues: listed.enumerated().map { ($1, $0) })
        func key(_ id: ModelID) -> (Int, Int) {
            let m = models[id]
            switch prefer {
            case .speed: return (m.speed, m.quality)
            case .quality: return (m.quality, m.speed)
            case .balanced: return (m.speed + m.quality, m.quality)
            case .listed: return (0, 0)
            }
        }
        return listed.sorted { a, b in
            let ka = key(a), kb = key(b)
            if ka != kb { return ka > kb }
            return position[a, default: 0] < position[b, default: 0]
        }
    }
}
