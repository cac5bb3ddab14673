import Foundation
import Checking
import KVM
import MemoryModel
import Simulation
import Testing

/// The verdict table's rows, their scenario files replayed through the
/// scenario runner (`cocomem run`'s library), and the model catalog.
@Suite struct VerdictsTests {
    func row(_ id: String, depth: Int = 3) throws -> Verdicts.Row {
        let spec = try #require(Verdicts.specs.first { $0.id == id })
        return try Verdicts.run(spec, depth: depth)
    }

    @Test func aHostCounterexampleReplaysToTheSameViolation() throws {
        let r = try row("004-zap-first-folio-split-nomem")
        let f = try #require(r.findings.first { $0.invariant == InvariantRegistry.conversionAtomic.name })
        let file = try ScenarioFile.parse(f.scenarioFile, name: f.fileName)
        let run = try file.run(checkedHostRun: { try $0.runChecked() })
        guard case .host(let h, _) = try #require(run.steps.first) else { Issue.record("not a host step"); return }
        let found = h.vm.brokenOutcomes.map { InvariantRegistry.classify(host: $0).name }
        #expect(found.contains(InvariantRegistry.conversionAtomic.name), "\(h.vm.brokenOutcomes)")
    }

    @Test func theKexecCounterexampleReplaysToTheFatalRelocation() throws {
        let r = try row("001-kexec-6.12")
        let f = try #require(r.findings.first { $0.invariant == InvariantRegistry.neverTouchUnaccepted.name })
        let run = try ScenarioFile.parse(f.scenarioFile, name: f.fileName).run()
        #expect(run.outcome.contains("Guest access before accepting"), "\(run.outcome)")
        // The trace says the same.
        #expect(f.trace.last?.observed.contains("Guest access before accepting") == true)
    }

    /// In-place conversion runs the real model now (issue 18 §2): its rows
    /// explore states, with the host's pins and mappings among the steps.
    @Test func inPlaceRowsRunTheModel() throws {
        let r = try row("004-in-place-no-fault")
        #expect(r.notModelled == nil && (r.states ?? 0) > 1 && r.findings.isEmpty, "\(r.findings.map(\.invariant))")
        #expect(Verdicts.specs.contains { $0.id == "004-in-place-gmem-safe-refcount" })
        #expect(!Verdicts.specs.contains { $0.id == "004-zap-first-gmem-safe-refcount" })
        #expect(!Verdicts.markdown([r], depth: 3, scenarioDirectory: "d").contains("not modelled"))
    }

    @Test func everyRowIdIsUnique() {
        #expect(Set(Verdicts.specs.map(\.id)).count == Verdicts.specs.count)
    }
}

@Suite struct ModelCatalogTests {
    @Test func exploresANamedModelWithItsParameters() throws {
        let o = try ModelCatalog.explore(model: "adversarial-host", parameters: ["trusts-already-accepted": "true", "attacks": "remove", "max-attacks": "1"])
        #expect(o.findings.contains { $0.invariant == InvariantRegistry.acceptOnceWhereContentsMatter.name })
        #expect(o.readableTraces.contains("vcpu0: accept 0x5+1 4k"))
        #expect(o.states > 0 && o.complete)
    }

    @Test func badParametersAreOneClearError() {
        let cases: [(String, [String: String], String)] = [
            ("host-conversion", ["policy": "in-place-v9"], "'policy' must be one of"),
            ("host-conversion", ["policy": "zap-first", "faults": "cosmic-ray"], "unknown fault point 'cosmic-ray'"),
            ("host-conversion", ["policy": "zap-first", "depth": "99"], "'depth' must be 1...8"),
            ("kexec", [:], "'kernel' is required"),
            ("kexec", ["kernel": "6.12", "memory": "4Q"], "'memory'"),
            ("adversarial-host", ["trusts-already-accepted": "maybe"], "must be true or false"),
            ("adversarial-host", ["trusts-already-accepted": "true", "colour": "red"], "unknown key 'colour'"),
            ("snp-host", [:], "unknown model"),
        ]
        for (m, p, want) in cases {
            #expect(throws: CocomemError.self) { try ModelCatalog.explore(model: m, parameters: p) }
            do { _ = try ModelCatalog.explore(model: m, parameters: p) } catch let e as CocomemError {
                #expect(e.message.contains(want), "\(e.message)")
            } catch { Issue.record("\(error)") }
        }
    }
}

/// The example configurations under examples/check/ name real models and
/// keys: each is read (its `key: value` lines, comments dropped) and
/// explored, and finds what its comment says.
@Suite struct ExampleConfigTests {
    static let root = URLPath.packageRoot

    /// An example read as `cocomem check FILE` reads it: the model and the
    /// keys of its `parameters:`.
    func parameters(_ file: String) throws -> (String, [String: String]) {
        let text = try readTextFile(Self.root + "/examples/check/" + file, what: "example", maxBytes: 1 << 16)
        let f = try CheckFile.parse(text, name: file)
        return (f.model, f.parameters.values)
    }

    @Test func theZapFirstExampleFindsTheFailedConversion() throws {
        // Through `cocomem check`'s own path: the file, the registry, the report.
        let text = try readTextFile(Self.root + "/examples/check/host-conversion-zap-first.yaml", what: "example", maxBytes: 1 << 16)
        let report = try CheckModels.run(CheckFile.parse(text, name: "zap-first"))
        #expect(report.violations.map(\.invariant).contains(InvariantRegistry.conversionAtomic.name))
        #expect(report.depthReached == 4)  // the model's own depth bound: incomplete beyond it
    }

    @Test func engineOptionsAreRefusedForReplayedModels() throws {
        let text = "model: kexec\npor: on\nparameters:\n  kernel: \"6.12\"\n"
        #expect(throws: CocomemError.self) { try CheckModels.run(CheckFile.parse(text, name: "x")) }
    }

    @Test func theAdversarialExampleFindsTheStalePage() throws {
        let (m, p) = try parameters("adversarial-host.yaml")
        let o = try ModelCatalog.explore(model: m, parameters: p)
        #expect(o.findings.map(\.invariant).contains(InvariantRegistry.acceptOnceWhereContentsMatter.name))
    }

    @Test func theKexecExampleParses() throws {
        let (m, p) = try parameters("kexec-6.12.yaml")
        #expect(m == "kexec" && p["kernel"] == "6.12")
    }
}

enum URLPath {
    /// The package root, from this file's path (Tests/CheckingTests/...).
    static var packageRoot: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }
}

/// The counterexamples committed under examples/check/verdicts/ (docs/CHECKER.md's
/// `cocomem run` commands) still replay: each parses, runs, and a host one
/// shows its invariant in what KVM flagged or its checks found, a kexec one
/// the fatal relocation.
@Suite struct CommittedCounterexampleTests {
    static let files: [String] = {
        let dir = URLPath.packageRoot + "/examples/check/verdicts"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted().map { dir + "/" + $0 }
    }()

    @Test func thereAreCounterexamples() { #expect(Self.files.count >= 10) }

    @Test(arguments: files)
    func replays(_ path: String) throws {
        let text = try readTextFile(path, what: "scenario", maxBytes: 1 << 20)
        let run = try ScenarioFile.parse(text, name: path).run(checkedHostRun: { try $0.runChecked() })
        let name = try #require(text.split(separator: "\n").dropFirst().first?.dropFirst(2).split(separator: ":").first.map(String.init))
        switch try #require(run.steps.first) {
        case .host(let h, let violations):
            let seen = (h.vm.brokenOutcomes + (violations ?? [])).map { InvariantRegistry.classify(host: $0).name }
                + (h.vm.isDead ? [InvariantRegistry.noBugOn.name] : [])
            // Guest-side findings (the ledger's, a guest's fatal touch, a hang)
            // show on the host as the guest's failure or its death, not as a host check.
            if name.hasPrefix("host.") { #expect(seen.contains(name), "\(path): \(seen)") }
            else if name == InvariantRegistry.neverTouchUnaccepted.name { #expect(run.outcome.contains("Guest access before accepting"), "\(run.outcome)") }
        default:
            #expect(run.outcome.contains("Guest access before accepting"), "\(path): \(run.outcome)")
        }
    }
}

@Suite struct CheckerDocTests {
    /// docs/CHECKER.md's invariant table names every registered invariant.
    @Test func theDocListsEveryRegisteredInvariant() throws {
        let doc = try readTextFile(URLPath.packageRoot + "/docs/CHECKER.md", what: "doc", maxBytes: 1 << 20)
        for i in InvariantRegistry.all { #expect(doc.contains("| `\(i.name)` |"), "\(i.name)") }
    }
}
