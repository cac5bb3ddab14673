/// The one error type of cocomem: a stable machine-readable code and a
/// human-readable message naming the problem.
///
/// The command line prints `error: <message>` and exits non-zero; library
/// code never traps on bad input.
public struct CocomemError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Stable categories, so scripts and tests can match on them.
    public enum Code: String, Sendable {
        case invalidSize
        case invalidMemoryMap
        case invalidScenario
        case invalidArgument
        case io
        case unsupported
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
