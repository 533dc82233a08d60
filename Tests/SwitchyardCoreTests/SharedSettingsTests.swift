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

/// Key states heard from other replicas: the most restrictive wins, an operator's action always.
struct SharedKeyChangeTests {
    let table: RoutingTable
    let book: HealthBook
    let now = Fixtures.start

    init() throws {
        table = try Fixtures.table()
        book = HealthBook(table: table, now: Fixtures.start)
    }

    func change(_ state: String, until: Timestamp? = nil, byOperator: Bool = false, label: String = "openrouter#1") -> SharedKeyChange {
        SharedKeyChange(
            label: label, fingerprint: SavedState.fingerprint(table.key(labelled: label)!.secret), state: state, until: until, reason: "from b",
            byOperator: byOperator)
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
        other.fingerprint = "0000000000000000"
        #expect(book.applyShared(other, at: now).isEmpty)
        #expect(book.keyState(0, at: now).state == .healthy)
    }
}
