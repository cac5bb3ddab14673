import CoCoGuest
import CostModel
import CrashDump
import Firmware
import Foundation
import GuestKernel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import TestSupport
import Testing

/// The scenario file: printing and reading back, running, and every kind of error.
@Suite struct ScenarioFileTests {
    /// Scenarios as the flags build them (small guests, so the suite stays fast).
    static func scenarios() -> [(String, Scenario)] {
        var out: [(String, Scenario)] = []
        var s = Scenario(); s.memory = 2 << 30; s.vcpus = 2
        out.append(("default 2G", s))
        var e = s; e.lazy = false; e.kernel.lazyAccept = false; e.tdxHost = .tdxHuge; e.gmemBacking = .hugetlb1G
        e.workload = .touch(512 << 20); e.seed = 9
        out.append(("eager tdx-huge hugetlb-1g touch", e))
        var n = Scenario(); n.platform = .snp; n.firmware = .ovmfSNP; n.memory = 3 << 30; n.hostMapping = .map2M
        n.loader.stubCallsAcceptanceProtocol = false; n.snpAcceptanceProtocol = false; n.snpPrefault = true
        out.append(("snp without protocols, 2m, prefault", n))
        var o = Scenario(); o.memory = 2 << 30; o.firmware = .tdvf2022; o.partialAcceptBytes = 0; o.kernel.version = .v6_5
        o.kernel.deferredStructPageInit = false; o.loader.loaderCallsExitBootServices = true; o.bootAllocationBytes = 100 << 20
        o.workload = .rate(bytesPerSecond: 64 << 20, seconds: 3)
        out.append(("tdvf-2022 6.5 grub-ebs rate", o))
        var u = Scenario(); u.memory = 1 << 30; u.loader.kernelSupportsUnaccepted = false; u.workload = .hugetlb(64 << 20)
        u.kernel.crashKernelBytes = 128 << 20; u.stepByStep = true
        out.append(("no unaccepted support, hugetlb, step by step", u))
        // Issue 16: the THP setting and the two sysctls print and read back, and the boot follows them.
        var w = Scenario(); w.memory = 2 << 30; w.kernel.transparentHugepage = .never
        w.kernel.minFreeKbytes = 90000; w.kernel.watermarkScaleFactor = 150
        out.append(("thp never, vm.min_free_kbytes, vm.watermark_scale_factor", w))
        return out
    }

    static func bootJSON(_ s: Scenario) throws -> String {
        try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run().json.serialized()
    }

    @Test(arguments: 0..<6)
    func printedFileBootsTheSameGuest(_ i: Int) throws {
        let (_, s) = Self.scenarios()[i]
        let file = ScenarioFile(scenario: s)
        let back = try ScenarioFile.parse(file.yaml, name: "printed")
        #expect(back.tree == file.tree)
        let r = try back.run()
        #expect(r.boot?.json.serialized() == (try Self.bootJSON(s)))
        // The JSON form of the file reads the same.
        let viaJSON = try ScenarioFile.parse(file.tree.json.serialized(), name: "json")
        #expect(viaJSON.tree == file.tree)
    }

    @Test func stepsPrintAndReadBack() throws {
        var k = ScenarioFile.KexecStep(); k.syscall = .load; k.crash = true; k.initrdBytes = 0; k.kernelFileBytes = 9 << 20
        k.kernelAlignment = 16 << 20; k.cmdlineBytes = 4096; k.nextKernel = .v6_12; k.loadOnly = true
        var d = ScenarioFile.DumpStep(); d.level = 17; d.compression = .snappy; d.elfDump = true; d.makedumpfile = .v1_7_2
        d.threads = 3; d.thp = true; d.vmcoreinfo = false; d.output = "out/dump"; d.elf = "vm core"
        var m = ScenarioFile.DumpStep(); m.memUsage = true; m.estimate = true; m.sample = 64
        var h = ScenarioFile.HostStep(); h.commands = HostScenario.seed004 + "\n"; h.log = true; h.precheck = false
        h.acceptLevel = .perFault; h.policy = .multiFolio; h.checkInvariants = true
        var f = ScenarioFile(scenario: Scenario(), calibration: "my calibration.json", steps: [.kexec(k), .dump(d), .dump(m), .host(h)])
        f.scenario.kernel.kernelInitBytes = 48 << 20
        f.calibrationProfile = "tdx-gnr"
        let back = try ScenarioFile.parse(f.yaml)
        #expect(back.tree == f.tree)
        #expect(back.calibration == "my calibration.json")
        #expect(back.calibrationProfile == "tdx-gnr")
        guard case .host(let h2) = back.steps[3], case .kexec(let k2) = back.steps[0], case .dump(let d2) = back.steps[1] else {
            Issue.record("steps changed kind"); return
        }
        #expect(h2 == h)
        #expect(k2 == k)
        #expect(d2 == d)
        #expect(back.scenario.kernel.kernelInitBytes == 48 << 20)
    }

    /// A file with a dump or crash-kexec step and no kernel.crashkernel gets
    /// 256M, as `cocomem dump` and `cocomem kexec --crash` default.
    @Test func crashKernelDefaultsFollowTheCommands() throws {
        #expect(try ScenarioFile.parse("guest: {memory: 1G}").scenario.kernel.crashKernelBytes == 0)
        #expect(try ScenarioFile.parse("steps: [{dump: {estimate: true}}]").scenario.kernel.crashKernelBytes == 256 << 20)
        #expect(try ScenarioFile.parse("steps: [{kexec: {crash: true}}]").scenario.kernel.crashKernelBytes == 256 << 20)
        #expect(try ScenarioFile.parse("steps: [{kexec: }]").scenario.kernel.crashKernelBytes == 0)
        #expect(try ScenarioFile.parse("kernel: {crashkernel: 64M}\nsteps: [{dump: {estimate: true}}]").scenario.kernel.crashKernelBytes == 64 << 20)
    }

    /// A run's JSON result (and each result it holds) fed back to the parser
    /// reruns to the same result.
    @Test func jsonResultFedBackGivesTheSameResult() throws {
        let text = """
        guest: {memory: 1G, vcpus: 2}
        kernel: {version: "6.16"}
        workload: [pagecache=64M]
        steps:
          - kexec: {initrd: 32M}
          - dump: {level: 31, compression: zlib, estimate: true}
        """
        let first = try ScenarioFile.parse(text).run().json
        let again = try ScenarioFile.parse(first.serialized(), name: "result.json").run().json
        #expect(again == first)
        guard case .object(let fields) = first, case .array(let steps)? = fields.first(where: { $0.0 == "steps" })?.1,
              case .object(let kexec) = steps[0], case .object(let kexecResult)? = kexec.first(where: { $0.0 == "result" })?.1 else {
            Issue.record("unexpected JSON shape"); return
        }
        // The kexec step's own result reruns as a file with that one step.
        let rerun = try ScenarioFile.parse(JSON.object(kexecResult).serialized()).run()
        #expect(rerun.steps.count == 1)
        #expect(rerun.steps.first?.json.embedding(rerun.file.only(step: 0)) == .object(kexecResult))
    }

    @Test func sameFileSameOutput() throws {
        let text = "guest: {memory: 2G}\nworkload: touch=1G\nseed: 5\nsteps: [{dump: {level: 31, compression: zlib, estimate: true, sample: 16}}]\n"
        let a = try ScenarioFile.parse(text).run()
        let b = try ScenarioFile.parse(text).run()
        #expect(a.json.serialized() == b.json.serialized())
        #expect(a.text == b.text)
    }

    /// Each error is one CocomemError naming the file, the line and the key.
    @Test(arguments: [
        ("guest:\n  platform: tdx\n  memroy: 4G\n", "f.yaml line 3: unknown key 'memroy' under 'guest' (expected: platform, memory, vcpus, numa, sockets, vmpl)"),
        ("seed: 1\nbogus: 2\n", "f.yaml line 2: unknown key 'bogus' under the top level (expected: guest, firmware"),
        ("guest:\n  vcpus: eight\n", "f.yaml line 2: 'vcpus' must be an integer, got 'eight'"),
        ("guest:\n  vcpus: [1, 2]\n", "f.yaml line 2: 'vcpus' must be a single value, got a list"),
        ("guest: 4G\n", "f.yaml line 1: 'guest' must be a mapping with keys platform, memory, vcpus, numa, sockets, vmpl, got '4G'"),
        ("kernel:\n  version: \"6.1\"\n", "f.yaml line 2: 'version': kernel '6.1' is older than 6.5, the first release with unaccepted memory support (CONFIG_UNACCEPTED_MEMORY); nearest known: 6.5, 6.6"),
        ("kernel:\n  version: 6.12.x\n", "f.yaml line 2: 'version': kernel '6.12.x' is not a release"),
        ("kernel:\n  version: [6.12]\n", "f.yaml line 2: 'version' must be a kernel release such as 6.12 or 6.12.30, got a list"),
        ("steps:\n  - kexec: {next-kernel: 8.0}\n", "f.yaml line 2: 'next-kernel': kernel '8.0' is newer than the newest release the version table knows; nearest known: 7.0, 7.1"),
        ("steps:\n  - dump: {makedumpfile: 1.7.4, estimate: true}\n", "f.yaml line 2: 'makedumpfile': makedumpfile 1.7.4 is not modelled"),
        ("host:\n  kind: kvm\n", "f.yaml line 2: 'kind' must be one of tdx, tdx-huge, snp, got 'kvm'"),
        ("kernel:\n  accept: sometimes\n", "f.yaml line 2: 'accept' must be one of lazy, eager, got 'sometimes'"),
        ("kernel:\n  deferred-init: maybe\n", "f.yaml line 2: 'deferred-init' must be true or false, got 'maybe'"),
        ("guest:\n  memory: 4Q\n", "f.yaml line 2: 'memory': size '4Q'"),
        ("guest:\n  memory: 4097\n", "f.yaml line 2: 'memory': memory size '4097' is not a multiple of 4 KiB"),
        ("kernel:\n  boot-alloc: -1M\n", "f.yaml line 2: 'boot-alloc': size '-1M' is negative"),
        ("", "f.yaml: the file is empty"),
        ("# only a comment\n", "f.yaml: the file is empty"),
        ("- a\n- b\n", "f.yaml line 1: the top level must be a mapping"),
        ("just text\n", "f.yaml line 1: the top level must be a mapping"),
        ("steps:\n  - reboot: {}\n", "f.yaml line 2: unknown step kind 'reboot' (expected: kexec, dump, host)"),
        ("steps:\n  - kexec: {}\n    dump: {}\n", "f.yaml line 2: a step must be a mapping with one key"),
        ("steps: kexec\n", "f.yaml line 1: 'steps' must be a list of steps"),
        ("steps:\n  - dump:\n      level: 31\n      compresion: zlib\n", "f.yaml line 4: unknown key 'compresion' under 'dump'"),
        ("steps:\n  - dump:\n      compression: lz4\n      estimate: true\n", "f.yaml line 3: 'compression' must be one of none, zlib, lzo, snappy, zstd, got 'lz4'"),
        ("steps:\n  - dump: {level: 31}\n", "f.yaml line 2: dump: nothing to do"),
        ("steps:\n  - kexec: {kernel-alignment: 3M}\n", "f.yaml line 2: 'kernel-alignment' 3145728 is not a power of two"),
        ("steps:\n  - host: |\n      td vcpus=2\n      bogus\n", "f.yaml line 4: host command: unknown command 'bogus'"),
        ("steps:\n  - host:\n      log: true\n      commands: |\n        td vcpus=2\n\n        slot id=1\n", "f.yaml line 7: host command: slot needs id=, base= and pages="),
        ("steps:\n  - host: {commands: \"td vcpus=2\\nbogus\"}\n", "f.yaml line 2: host step: host scenario line 2: unknown command 'bogus'"),
        ("workload: [touch=1G, 7]\n", "f.yaml line 1: 'workload': workload '7' is not none"),
        ("workload: {touch: 1G}\n", "f.yaml line 1: 'workload' must be a list of phases such as touch=32G, got a mapping"),
        ("workload: [jump=1G]\n", "f.yaml line 1: 'workload': unknown workload 'jump'"),
        ("guest: {platform: snp}\nfirmware: {generation: tdvf}\n", "f.yaml line 2: firmware tdvf is a TDX firmware"),
        ("guest: [1\n", "f.yaml line 2: not valid YAML"),
        ("seed: 1\nseed: 2\n", "f.yaml line 1: duplicate key 'seed'"),
        ("{\"guest\": {\"memroy\": \"1G\"}}", "f.yaml line 1: unknown key 'memroy' under 'guest'"),
    ])
    func errorsNameTheLineAndTheKey(_ text: String, _ message: String) {
        do {
            _ = try ScenarioFile.parse(text, name: "f.yaml")
            Issue.record("accepted: \(text)")
        } catch let e as CocomemError {
            #expect(e.code == .invalidScenario)
            #expect(e.message.hasPrefix(message), "\(e.message)")
            #expect(!e.message.contains("\n"))
        } catch {
            Issue.record("not a CocomemError: \(error)")
        }
    }

    /// A list of phases runs them one after the other on the same kernel:
    /// one phase is exactly `--workload`; two accept more than the first
    /// alone and take longer.
    @Test func workloadPhasesRunInSequence() throws {
        let one = try ScenarioFile.parse("guest: {memory: 4G, vcpus: 2}\nworkload: [touch=1G]\n").run()
        var s = Scenario(); s.memory = 4 << 30; s.vcpus = 2; s.workload = .touch(1 << 30)
        #expect(one.boot?.json.serialized() == (try Self.bootJSON(s)))
        let two = try ScenarioFile.parse("guest: {memory: 4G, vcpus: 2}\nworkload:\n  - touch=1G\n  - pagecache=1G\n")
        #expect(two.scenario.workload == .phases([.touch(1 << 30), .pageCache(1 << 30)]))
        #expect(try ScenarioFile.parse(two.yaml).tree == two.tree)
        let r = try two.run()
        guard let b = r.boot, let b1 = one.boot else { Issue.record("no boot"); return }
        #expect(b.outcome == .ok)
        #expect(b.acceptedWorkload > b1.acceptedWorkload)
        #expect(b.times.workload > b1.times.workload)
        #expect(b.times.totalBoot == b1.times.totalBoot)
    }

    /// Releases as users write them read back as written; 6.10 stays 6.10
    /// (not the number 6.1) and a point release keeps its point.
    @Test(arguments: ["6.10", "6.12.30", "7.1", "6.6.87"])
    func kernelReleasesReadAndPrintAsWritten(_ release: String) throws {
        let f = try ScenarioFile.parse("kernel: {version: \(release)}\nsteps: [{kexec: {next-kernel: \(release)}}]\n")
        #expect(f.scenario.kernel.version.rawValue == release)
        #expect(f.yaml.contains("version: \"\(release)\""))
        let back = try ScenarioFile.parse(f.yaml)
        #expect(back.scenario.kernel.version == f.scenario.kernel.version)
        guard case .kexec(let k)? = back.steps.first else { Issue.record("no kexec step"); return }
        #expect(k.nextKernel?.rawValue == release)
    }

    @Test func crlfFilesWork() throws {
        let lf = "guest:\n  memory: 2G\nkernel:\n  version: \"6.12\"\nsteps:\n  - host: |\n      td vcpus=2\n      slot id=1 base=0 pages=512\n      build 0+1\n"
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        let a = try ScenarioFile.parse(lf), b = try ScenarioFile.parse(crlf)
        #expect(a.tree == b.tree)
        #expect(b.scenario.kernel.version == .v6_12)
        guard case .host(let h) = b.steps[0] else { Issue.record("no host step"); return }
        #expect(h.commands?.contains("\r") == false)
        // The error's line counts CRLF lines as lines.
        #expect(throws: CocomemError(.invalidScenario, "f line 3: unknown key 'vcpu' under 'guest' (expected: platform, memory, vcpus, numa, sockets, vmpl)")) {
            try ScenarioFile.parse("seed: 1\r\nguest:\r\n  vcpu: 2\r\n", name: "f")
        }
    }

    @Test func bootFalseNeedsNoGuestButKexecNeedsOne() throws {
        #expect(throws: CocomemError(.invalidScenario, "boot: false, but a kexec step needs a booted guest")) {
            try ScenarioFile.parse("boot: false\nsteps: [{kexec: {}}]").run()
        }
        let r = try ScenarioFile.parse("boot: false\nsteps:\n  - host: |\n      td vcpus=2\n      slot id=1 base=0 pages=512\n").run()
        #expect(r.boot == nil)
        #expect(r.outcome == "ok")
    }

    static let examples: [String] = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".json") }.sorted().map { dir.appendingPathComponent($0).path }
    }()

    @Test func thereAreExamples() { #expect(Self.examples.count >= 4) }

    /// Every file in examples/ runs and ends with the outcome its
    /// `# expect: outcome PREFIX` line claims.
    @Test(arguments: examples)
    func examplesRunWithTheOutcomeTheyClaim(_ path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let claim = text.split(separator: "\n").first { $0.hasPrefix("# expect: outcome ") }.map { String($0.dropFirst("# expect: outcome ".count)) }
        guard let claim else { Issue.record("\(path) has no '# expect: outcome' line"); return }
        #expect(text.split(separator: "\n").contains { $0.hasPrefix("# Question:") }, "\(path) says no question")
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try ScenarioFile.load(path: path).run(outputDirectory: out)
        #expect(r.outcome.hasPrefix(claim), "\(path): \(r.outcome)")
    }
}
