import Foundation
import MemoryModel
import Simulation
import Sweep
import Testing

@Suite struct SweepFileTests {
    @Test func crossProductInFileOrderLastAxisFastest() throws {
        let f = try SweepFile.parse("""
            guest:
              memory: 1G..4G *2
              vcpus: [1, 8]
            kernel:
              version: ["6.16", "7.0"]
            """)
        #expect(f.count == 12)
        #expect(f.axes.map(\.column) == ["guest_memory", "guest_vcpus", "kernel_version"])
        #expect(f.axes[0].values == ["1G", "2G", "4G"])
        var seen: [String] = []
        for i in 0..<f.count {
            let s = try f.scenario(digits: f.digits(of: i)).scenario
            seen.append("\(s.memory >> 30)/\(s.vcpus)/\(f.axes[2].values[f.digits(of: i)[2]])")
        }
        #expect(seen.prefix(4) == ["1/1/6.16", "1/1/7.0", "1/8/6.16", "1/8/7.0"])
        #expect(seen.last == "4/8/7.0")
        #expect(Set(seen).count == 12)
    }

    @Test func everyStepKeyAndWorkloadPhaseIsSweepable() throws {
        let f = try SweepFile.parse("""
            guest:
              memory: 2G
            workload:
              - [touch=512M, touch=1G]
            steps:
              - dump:
                  estimate: true
                  level: [1, 31]
            """)
        #expect(f.count == 4)
        #expect(f.axes.map(\.column) == ["workload", "step1_dump_level"])
        let last = try f.scenario(digits: f.digits(of: 3))
        guard case .dump(let d) = last.steps[0] else { Issue.record("not a dump"); return }
        #expect(d.level == 31)
    }

    /// A kexec step's next-kernel workload is a list of phases, as the top
    /// level's: an axis only as a list in a phase's place.
    @Test func kexecNextWorkloadIsPhasesNotAnAxis() throws {
        let f = try SweepFile.parse("""
            steps:
              - kexec:
                  workload: [[touch=512M, touch=1G], pagecache=256M]
              - dump: {from: previous, estimate: true}
            """)
        #expect(f.count == 2)
        #expect(f.axes.map(\.column) == ["step1_kexec_workload"])
        let last = try f.scenario(digits: f.digits(of: 1))
        guard case .kexec(let k) = last.steps[0] else { Issue.record("not a kexec"); return }
        #expect(k.workload == .phases([.touch(1 << 30), .pageCache(256 << 20)]))
        #expect(last.steps[1].continues)
        #expect(try SweepFile.parse("steps: [{kexec: {workload: [touch=1G, pagecache=1G]}}]").count == 1)
    }

    @Test func rangeGrammar() throws {
        #expect(try SweepRange.parse("4G..1T *2").count == 9)
        #expect(try SweepRange.parse("4G..64G +4G").count == 16)
        #expect(try SweepRange.parse("1..64 *2").count == 7)
        #expect(try SweepRange.parse("1..10 +4").count == 3)  // 1, 5, 9: the last not above 10
        let r = try SweepRange.parse("65G..66G +256M")
        #expect((0..<r.count).map { r.text(r.value(at: $0)) } == ["65G", "66816M", "67072M", "67328M", "66G"])
        #expect(!SweepRange.looksLikeRange("../calibration.json"))
        #expect(!SweepRange.looksLikeRange("7.0"))
    }

    @Test(arguments: [("4G..64G +0", "never ends"), ("4G..64G *1", "never ends"), ("64G..4G *2", "never ends"),
                      ("0..8 *2", "never ends"), ("4G..64G", "no step"), ("4G..64Q +4G", "second bound"), ("1..8 *1.5", "whole number")])
    func badRanges(_ text: String, _ message: String) {
        #expect { try SweepRange.parse(text) } throws: { ($0 as? CocomemError)?.message.contains(message) ?? false }
    }

    @Test func errorsNameTheKeyAndTheLine() {
        func message(_ text: String) -> String {
            do { let f = try SweepFile.parse(text, name: "s.yaml"); _ = try f.scenario(digits: f.digits(of: 0)); return "" } catch let e as CocomemError { return e.message } catch { return "\(error)" }
        }
        #expect(message("guest:\n  memroy: [4G, 8G]\n").contains("s.yaml line 2: unknown key 'memroy'"))
        #expect(message("guest:\n  vcpus: [one, 2]\n").contains("s.yaml line 2: 'vcpus' must be an integer"))
        #expect(message("guest:\n  memory: 4G..8G +0\n").contains("s.yaml line 2: 'memory': range '4G..8G +0' never ends"))
        #expect(message("guest:\n  memory: []\n").contains("an empty list"))
        #expect(message("sweep:\n  find:\n    largest: memory\n    where: x < 1\n").contains("not a list or range"))
        #expect(message("sweep:\n  bogus: 1\n").contains("unknown key 'bogus' under sweep"))
        #expect(message("guest:\n  memory: 1G..2G +1G\nsweep:\n  find:\n    largest: memory\n    where: \"x <\"\n").contains("expected a value"))
    }

    @Test func limitOfPoints() throws {
        #expect(throws: CocomemError.self) { try SweepFile.parse("guest:\n  memory: 4K..4P +4K\n") }   // beyond the hard limit
        let big = try SweepFile.parse("guest:\n  memory: 4G..404G +4M\n  vcpus: [1, 2]\n")
        #expect(big.count > Int(SweepFile.defaultMaxPoints))
        #expect { try big.checkLimit(yes: false) } throws: { ($0 as? CocomemError)?.message.contains("--yes") ?? false }
        try big.checkLimit(yes: true)
    }

    @Test func expressions() throws {
        var row = Row()
        row.append("virtual_time_total_boot_s", .double(30))
        row.append("outcome", .text("ok"))
        row.append("guest_memory", .int(64 << 30))
        row.append("kernel_version", .text("7.0"))
        #expect(try Expression.parse("total_boot_s < 45").holds(for: row))
        #expect(try !Expression.parse("outcome != ok").holds(for: row))
        #expect(try Expression.parse("memory >= 64G and (kernel_version == 6.16 or kernel_version == \"7.0\")").holds(for: row))
        #expect(throws: CocomemError.self) { try Expression.parse("nope < 1").holds(for: row) }
        #expect(throws: CocomemError.self) { try Expression.parse("total_boot_s < ok").holds(for: row) }
        #expect(throws: CocomemError.self) { try Expression.parse("total_boot_s <") }
        #expect(throws: CocomemError.self) { try Expression.parse("(total_boot_s < 1") }
    }

    @Test func shardSpecs() throws {
        #expect(try Shard.parse("2/4") == Shard(index: 2, count: 4))
        for bad in ["5/4", "0/4", "1/0", "x", "1/", "-1/4"] {
            #expect(throws: CocomemError.self) { try Shard.parse(bad) }
        }
    }
}
