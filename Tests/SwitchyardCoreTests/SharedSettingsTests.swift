import Testing
@testable import SwitchyardCore

struct SharedSettingsTests {
    @Test func readsAPostgresURLAndNeverPrintsItsPassword() throws {
        let url = try PostgresURL.parse("postgres://gate%40way:s3cr%2Ft@db.internal:6543/switchyard?sslmode=require")
        #expect(url == PostgresURL(host: "db.internal", port: 6543, user: "gate@way", password: "s3cr/t", database: "switchyard", tls: true))
        #expect(url.description == "postgres://gate@way:•••@db.internal:6543/switchyard?sslmode=require")
        #expect(try PostgresURL.parse("postgresql://u@127.0.0.1/db").port == 5432)
        #expect(try PostgresURL.parse("postgresql://u@127.0.0.1/db").tls == false)
        for bad in ["mysql://u:p@h/db", "postgres://u:p@h", "postgres://:p@h/db", "postgres://u:p@h/db?sslmode=maybe", "not a url"] {
            #expect(throws: PostgresURL.Problem.self) { try PostgresURL.parse(bad) }
            do { _ = try PostgresURL.parse(bad) } catch { #expect(!error.description.contains("p@h")) }
        }
    }

    @Test func theConfigNamesTheVariableNotItsValue() throws {
        let yaml = Fixtures.yaml + "\nshared: { postgres_url_env: PG_URL, replica: east-1, timeout: 40ms }\n"
        let table = try Fixtures.table(yaml, environment: Fixtures.environment.merging(["PG_URL": "postgres://sw:hunter2@127.0.0.1:5433/state"]) { $1 })
        #expect(table.shared?.replica == "east-1")
        #expect(table.shared?.timeout == .milliseconds(40))
        #expect(table.shared?.url?.database == "state")
        // Unset: a warning, and nothing is shared.
        let unset = try Fixtures.table(yaml)
        #expect(unset.shared?.url == nil)
        #expect(unset.warnings.contains { $0.description.contains("PG_URL is not set") })
        // A URL that cannot be read: an error naming file, line and field, without the password.
        do {
            _ = try Fixtures.table(yaml, environment: Fixtures.environment.merging(["PG_URL": "postgres://sw:hunter2@127.0.0.1:5433"]) { $1 })
            Issue.record("a URL without a database must be refused")
        } catch {
            let text = "\(error)"
            #expect(text.contains("shared.postgres_url_env") && text.contains("PG_URL") && text.contains("routes.yaml:"))
            #expect(!text.contains("hunter2"))
        }
    }
}

/// Health heard from other replicas: the most restrictive wins, an operator's action always.
struct SharedHealthChangeTests {
    let table: RoutingTable
    let book: HealthBook
    let now = Fixtures.start

    init() throws {
        table = try Fixtures.table()
        book = HealthBook(table: table, now: Fixtures.start)
    }

    func change(_ state: String, until: Timestamp? = nil, byOperator: Bool = false, label: String = "openrouter#1") -> SharedHealthChange {
        SharedHealthChange(
            subject: .key(label: label, fingerprint: SavedState.fingerprint(table.key(labelled: label)!.secret)), state: state, until: until,
            reason: "from b", byOperator: byOperator)
    }

    @Test func aDisableElsewhereIsAppliedUnlessALongerOneHoldsHere() {
        #expect(book.applyShared(change("disabled", until: now + .seconds(300)), at: now).map(\.to) == ["disabled"])
        #expect(book.keyState(0, at: now).state == .disabled(until: now + .seconds(300)))
        #expect(book.applyShared(change("cooling", until: now + .seconds(60)), at: now).isEmpty, "a shorter hold changes nothing")
        #expect(book.applyShared(change("healthy"), at: now).isEmpty, "a recovery elsewhere is that replica's own")
        #expect(book.applyShared(change("healthy", byOperator: true), at: now).map(\.to) == ["healthy"], "an operator's enable is")
    }

    @Test func anOperatorsDisableWinsAndOnlyAnOperatorLiftsIt() {
        _ = book.applyShared(change("manually_disabled", byOperator: true), at: now)
        #expect(book.keyState(0, at: now).state == .manuallyDisabled)
        #expect(book.applyShared(change("disabled", until: now + .seconds(300)), at: now).isEmpty)
        #expect(book.keyState(0, at: now).state == .manuallyDisabled)
    }

    @Test func aChangeAboutAnotherKeyValueIsIgnored() {
        var other = change("disabled", until: now + .seconds(300))
        other.subject = .key(label: "openrouter#1", fingerprint: "0000000000000000")
        #expect(book.applyShared(other, at: now).isEmpty)
        #expect(book.keyState(0, at: now).state == .healthy)
    }
}

/// Rate-limit holds and model states travel between replicas too: what one replica learns, the others skip.
struct SharedHoldTests {
    let table: RoutingTable
    let now = Fixtures.start

    init() throws {
        table = try Fixtures.table()
    }

    /// The changes `outcome` on (`model`, key 0) causes on one replica, applied on another; returns the other.
    func heardElsewhere(_ outcome: Outcome, model: ModelID) -> HealthBook {
        let here = HealthBook(table: table, now: now)
        let there = HealthBook(table: table, now: now)
        let changes = here.record(model: model, key: 0, outcome: outcome, at: now).compactMap { here.sharedChange(for: $0) }
        #expect(!changes.isEmpty)
        for change in changes { _ = there.applyShared(change, at: now) }
        return there
    }

    @Test func aPairsLimitHoldsThatPairAndNothingElse() {
        let there = heardElsewhere(Outcome(.rateLimited, retry: .after(.seconds(30)), status: 429, scope: .keyModel), model: 0)
        there.withView { s in
            #expect(!s.isPairUsable(key: 0, model: 0, at: now))
            #expect(s.isPairUsable(key: 0, model: 1, at: now), "the key's other models serve")
            #expect(s.isPairUsable(key: 1, model: 0, at: now), "the model on other keys serves")
            #expect(s.isKeyUsable(0, at: now))
            #expect(s.isPairUsable(key: 0, model: 0, at: now + .seconds(30)), "lifted at its expiry")
        }
    }

    @Test func aModelLimitOnAnAccountHoldsItOnEveryKeyOfThatAccountOnly() {
        let there = heardElsewhere(Outcome(.rateLimited, retry: .after(.seconds(20)), status: 429, scope: .accountModel), model: 0)
        there.withView { s in
            #expect(!s.isPairUsable(key: 0, model: 0, at: now) && !s.isPairUsable(key: 1, model: 0, at: now), "both keys of account main")
            #expect(s.isPairUsable(key: 2, model: 0, at: now), "account spare is not held")
        }
    }

    @Test func aModelsOutageIsAdoptedUnlessALongerOneHolds() {
        let book = HealthBook(table: table, now: now)
        let outage = SharedHealthChange(subject: .model("small-fast"), state: "outage", until: now + .seconds(10), reason: "from b", byOperator: false)
        #expect(book.applyShared(outage, at: now).map(\.to) == ["outage"])
        #expect(!book.withView { $0.isModelUsable(0, at: now) })
        var shorter = outage
        shorter.until = now + .seconds(5)
        #expect(book.applyShared(shorter, at: now).isEmpty)
        let recovered = SharedHealthChange(subject: .model("small-fast"), state: "healthy", until: nil, reason: "trial", byOperator: false)
        #expect(book.applyShared(recovered, at: now).isEmpty, "a model's recovery is each replica's own trial")
    }

    @Test func changesAboutNamesThisTableLacksAreIgnored() {
        let book = HealthBook(table: table, now: now)
        let unknown = SharedHealthChange(subject: .pair(key: "openrouter#9", model: "small-fast"), state: "rate_limited", until: now + .seconds(5), reason: "", byOperator: false)
        #expect(book.applyShared(unknown, at: now).isEmpty)
        let lapsed = SharedHealthChange(subject: .account("openrouter/main"), state: "rate_limited", until: now - .seconds(1), reason: "", byOperator: false)
        #expect(book.applyShared(lapsed, at: now).isEmpty, "a hold already over changes nothing")
    }
}
