import SwitchyardCore
import Testing

/// When a client connection closes, with time given by hand (nanoseconds).
struct ConnectionLifecycleTests {
    static let second: UInt64 = 1_000_000_000

    static func fresh() -> ConnectionLifecycle {
        ConnectionLifecycle(readTimeout: .seconds(10), idleTimeout: .seconds(60), now: 0)
    }

    @Test func aRequestThatDoesNotArriveWholeInTimeIsCutOff() {
        var life = Self.fresh()
        #expect(life.deadline == 10 * Self.second)
        life.requestBegan(now: 1 * Self.second)
        #expect(life.timerFired(now: 9 * Self.second) == .none)
        #expect(life.timerFired(now: 10 * Self.second) == .close)
    }

    @Test func aRequestReadWholeIsAnsweredWithNoTimer() {
        var life = Self.fresh()
        life.requestBegan(now: 1)
        life.requestRead()
        #expect(life.deadline == nil)
        #expect(life.timerFired(now: 100 * Self.second) == .none, "an answer taking long is not the client's fault")
    }

    /// Between requests the idle timeout runs; the timer looks in at least once a read timeout, so the next
    /// request's read timeout is never missed by more than that.
    @Test func aQuietKeptAliveConnectionClosesAfterTheIdleTimeout() {
        var life = Self.fresh()
        life.requestBegan(now: 0)
        life.requestRead()
        #expect(life.answerEnded(now: 1 * Self.second) == .none)
        #expect(life.deadline == 11 * Self.second)
        #expect(life.timerFired(now: 11 * Self.second) == .none)
        #expect(life.deadline == 21 * Self.second)
        for at in [21, 31, 41, 51] { #expect(life.timerFired(now: UInt64(at) * Self.second) == .none) }
        #expect(life.deadline == 61 * Self.second)
        #expect(life.timerFired(now: 61 * Self.second) == .close)
    }

    /// The next request's first byte starts its read timeout; no deadline ever moves before a timer already set.
    @Test func theNextRequestIsTimedFromItsFirstByte() {
        var life = Self.fresh()
        life.requestBegan(now: 0)
        life.requestRead()
        _ = life.answerEnded(now: 1 * Self.second)
        let timerDue = life.deadline!
        life.bytesArrived(now: 5 * Self.second)
        #expect(life.deadline == 15 * Self.second)
        #expect(timerDue <= life.deadline!)
        #expect(life.timerFired(now: timerDue) == .none)
        #expect(life.timerFired(now: 15 * Self.second) == .close)
    }

    @Test func aShutdownClosesAtOnceWhenNothingIsInFlight() {
        var life = Self.fresh()
        #expect(life.quiesce() == .close)
    }

    /// Pipelined requests: the connection closes only after the last answer.
    @Test func aShutdownClosesAfterTheLastAnswerInFlight() {
        var life = Self.fresh()
        life.requestBegan(now: 0)
        life.requestRead()
        life.requestBegan(now: 1)
        life.requestRead()
        #expect(life.quiesce() == .none)
        #expect(life.answerEnded(now: 2) == .none)
        #expect(life.answerEnded(now: 3) == .close)
    }

    /// A request pipelined behind one being answered is timed while it is read.
    @Test func aPipelinedRequestIsTimedWhileTheFirstIsAnswered() {
        var life = Self.fresh()
        life.requestBegan(now: 0)
        life.requestRead()
        life.requestBegan(now: 2 * Self.second)
        #expect(life.answerEnded(now: 3 * Self.second) == .none)
        #expect(life.deadline == 12 * Self.second)
        #expect(life.timerFired(now: 12 * Self.second) == .close)
    }
}
