import Foundation
import Locking

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster on a free loopback port: `initdb` into a temporary folder (as the `postgres`
/// user when we run as root, which PostgreSQL refuses), started with `pg_ctl`, stopped and removed by its owner.
/// The shared-state tests and bench's `replicas` scenario both start one; `scripts/setup` installs Debian's
/// `postgresql` for it. Every call blocks until the program it runs has finished (`initdb` takes seconds):
/// call it from a thread of its own, not from Swift's cooperative pool.
public final class LocalPostgres: Sendable {
    public let directory: String
    public let bin: String
    /// Chosen free just before the first start; another process may take it in between, so `create` tries a few.
    private let chosenPort: Locked<Int>
    public var port: Int { chosenPort.withLock { $0 } }

    /// Trust authentication on loopback only; the user is the cluster's superuser. The password is a stand-in
    /// that the server never checks, so a leak of it in a log or stats can be searched for.
    public var url: String { "postgres://switchyard:unused-password@127.0.0.1:\(port)/postgres" }

    /// The server's programs (Debian puts them under /usr/lib/postgresql/VERSION/bin), newest first; nil when
    /// PostgreSQL is not installed.
    public static var binDirectory: String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        return versions.map { "\(root)/\($0)/bin" }.first {
            FileManager.default.isExecutableFile(atPath: "\($0)/initdb") && FileManager.default.isExecutableFile(atPath: "\($0)/pg_ctl")
        }
    }

    private init(directory: String, port: Int, bin: String) {
        self.directory = directory
        chosenPort = Locked(port)
        self.bin = bin
    }

    /// A new cluster in a temporary folder, started; `destroy()` stops it and removes the folder.
    public static func create() throws -> LocalPostgres {
        guard let bin = binDirectory else { throw LocalPostgresError("PostgreSQL is not installed: run scripts/setup") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cluster = LocalPostgres(directory: directory, port: try freePort(), bin: bin)
        if getuid() == 0, let owner = getpwnam("postgres") {
            chown(directory, owner.pointee.pw_uid, owner.pointee.pw_gid)
        }
        try cluster.run(
            "initdb", ["-D", "\(directory)/data", "-U", "switchyard", "-A", "trust", "-E", "UTF8", "--no-sync"], log: "initdb.log")
        guard FileManager.default.fileExists(atPath: "\(directory)/data/PG_VERSION") else {
            throw LocalPostgresError("initdb failed: \(cluster.text("initdb.log"))")
        }
        // Another process can bind the port between our check and the server's start: try a few.
        for attempt in 1...5 {
            do {
                try cluster.start()
                return cluster
            } catch where attempt < 5 {
                cluster.chosenPort.withLock { $0 = (try? freePort()) ?? $0 }
            }
        }
        return cluster
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    public func start() throws {
        let options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        try run("pg_ctl", ["-D", "\(directory)/data", "-l", "\(directory)/server.log", "-o", options, "-w", "-t", "30", "start"], log: "pg_ctl.log")
        guard text("pg_ctl.log").contains("server started") else {
            throw LocalPostgresError("pg_ctl start on port \(port) failed: \(text("pg_ctl.log")) \(text("server.log").suffix(2000))")
        }
    }

    /// Stops the server at once (as a crash would), and makes sure it is gone.
    public func stop() {
        let pidFile = "\(directory)/data/postmaster.pid"
        let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8))?.split(separator: "\n").first.flatMap { pid_t($0) }
        try? run("pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"], log: "pg_ctl-stop.log")
        if let pid, kill(pid, 0) == 0 {
            kill(pid, SIGKILL)
            try? FileManager.default.removeItem(atPath: pidFile)
        }
    }

    /// Stops the server and removes its folder.
    public func destroy() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func text(_ log: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(log)", encoding: .utf8)) ?? ""
    }

    /// Runs one of PostgreSQL's programs to its end, as `postgres` when we are root, its output in `log`.
    private func run(_ program: String, _ arguments: [String], log: String) throws {
        let asRoot = getuid() == 0
        let executable = asRoot ? "/usr/sbin/runuser" : "\(bin)/\(program)"
        let argv = asRoot ? ["runuser", "-u", "postgres", "--", "\(bin)/\(program)"] + arguments : [program] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "\(directory)/\(log)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Not the thousands of sockets a test process or a load generator holds open: the server would inherit
        // them all. (glibc ≥ 2.34 has it; Swift's Glibc module does not declare it.)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }
        let cArgs = argv.map { strdup($0) } + [nil]
        let environment: [String] = ["PATH=/usr/sbin:/usr/bin:/bin", "LANG=C.UTF-8"]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw LocalPostgresError("cannot start \(program): posix_spawn \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
    }

    /// A port nothing listens on now (bound and released at once).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LocalPostgresError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public struct LocalPostgresError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
