import ArgumentParser
import Checking
import CrashDump
import Foundation
import MemoryModel
import Reports
import Sweep

/// `cocomem check FILE`: explore every state of a small model (or a swarm
/// of random searches) and print each invariant's violation with its
/// shortest trace (docs/CHECKER.md).
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explore every interleaving of a small model (breadth-first or a swarm of random searches) and print each violated invariant with its trace.",
        discussion: "FILE is a check configuration (docs/CHECKER.md; examples in examples/check/). Models: \(CheckModels.names.joined(separator: ", ")).")
    @Argument(help: "Check configuration file (YAML)") var file: String
    @OptionGroup var output: JSONOption
    @OptionGroup var progress: ProgressOption
    @Option(help: "search: swarm only: run the I-th of N shares of the seeds (seed position mod N == I-1), like a sweep's --shard") var shard: String?
    @Flag(help: "Add the search's wall time and states per second to the report (off: the report is the same on every run)") var timing = false
    @Flag(name: .customLong("fail-on-violation"), help: "Exit 2 after the report when an invariant is violated (or, with cycles: on, a livelock cycle is found)") var failOnViolation = false
    @Option(help: ArgumentHelp("Write each violation's shortest trace as a scenario file for `cocomem run` into this existing directory (FILE-INVARIANT.yaml)", valueName: "DIR"))
    var counterexamples: String?

    func run() throws {
        // A regular file of at most 1 MiB: a check file is a few lines.
        let text = try readTextFile(file, what: "check file", maxBytes: 1 << 20)
        if let dir = counterexamples {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw CocomemError(.io, "--counterexamples: '\(dir)' is not a directory")
            }
        }
        var config = try CheckFile.parse(text, name: file)
        if let s = try shard.map(Shard.parse) {
            guard config.search == .swarm else {
                throw CocomemError(.invalidScenario, "--shard splits a swarm's seeds; \(file) has search: bfs, which runs whole")
            }
            config.swarmSeeds = config.swarmSeeds.enumerated().filter { s.contains($0.offset) }.map(\.element)
            guard !config.swarmSeeds.isEmpty else { throw CocomemError(.invalidScenario, "--shard \(s): \(file) has fewer seeds than shards") }
            config.shard = s.description
        }
        let report = try CheckModels.run(config, progress: progress.reporter())
        if output.json {
            print(json(report).serialized())
        } else {
            print(report.text(timing: timing), terminator: "")
        }
        if let dir = counterexamples { try write(report, into: dir) }
        if failOnViolation && (!report.violations.isEmpty || report.lasso != nil) { throw ExitCode(2) }
    }

    /// Each violation's scenario file, written to a temporary name and
    /// renamed (never replacing a file that is not a regular one, nor the
    /// check file itself); the paths on stderr, so stdout stays the report.
    func write(_ r: CheckReport, into dir: String) throws {
        for v in r.violations {
            guard let text = v.scenarioFile else {
                throw CocomemError(.invalidArgument, "--counterexamples: model \(r.model) has no scenario translation for \(v.invariant)")
            }
            let path = dir + "/" + v.fileName(checkFile: file)
            try OutputPaths.check(outputs: [("--counterexamples", path)], inputs: [file], force: true)
            try writeArtifact(path, text)
            FileHandle.standardError.write(Data("counterexample: \(path)\n".utf8))
        }
    }

    func json(_ r: CheckReport) -> JSON {
        var o: [(String, JSON)] = [
            ("file", .string(r.file)), ("model", .string(r.model)), ("search", .string(r.search.rawValue)),
            ("settings", .object(r.settings.map { ($0.0, .string($0.1)) })),
            ("invariants", .array(r.invariants.map { .string($0) })),
            ("states", .int(Int64(r.states))), ("transitions", .int(Int64(r.transitions))),
            ("depth_reached", .int(Int64(r.depthReached))), ("complete", .bool(r.complete)),
        ]
        if timing { o += [("seconds", .double(r.seconds)), ("states_per_second", .double(r.statesPerSecond))] }
        if let b = r.bytesPerState { o.append(("bytes_per_state", .double(b))) }
        if let p = r.omissionProbability { o.append(("omission_probability", .double(p))) }
        if let n = r.searches { o.append(("searches", .int(Int64(n)))) }
        func steps(_ t: [TraceStep]) -> JSON {
            .array(t.map { s in .object([("actor", .string(s.actor.description)), ("call", .string(s.call)), ("result", .string(s.result)), ("state", .string(s.state))]) })
        }
        if r.cyclesSearched {
            o.append(("livelock_cycle", r.lasso.map { l in .object([("states", .int(Int64(r.cycleStates))), ("stem", steps(l.stem)), ("cycle", steps(l.cycle))]) } ?? .null))
        }
        o.append(("violations", .array(r.violations.map { v in
            .object([("invariant", .string(v.invariant)), ("detail", .string(v.detail)),
                     ("trace", .array(v.steps.map { s in
                         .object([("actor", .string(s.actor.description)), ("call", .string(s.call)),
                                  ("result", .string(s.result)), ("state", .string(s.state))])
                     }))])
        })))
        return .object(o)
    }
}
