import CostModel
import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// Progress of dump writing and estimates (issue 14, section 3): what the
/// writers tell a reporter, and that telling it changes no byte they write.
@Suite struct ProgressTests {
    /// Records every call.
    final class Recorder: ProgressReporter {
        var tasks: [ProgressTask] = []
        var done: [[UInt64]] = []
        var ended = 0
        func begin(_ task: ProgressTask) { tasks.append(task); done.append([0]) }
        func advance(by units: UInt64) { done[done.count - 1].append(done[done.count - 1].last! + units) }
        func end() { ended += 1 }
        /// Percent after each call of task `i`.
        func percents(_ i: Int) -> [Int] { done[i].map { TerminalProgress.percent($0, of: tasks[i].total) } }
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    @Test(arguments: [false, true])
    func writingReportsMonotoneProgressToHundredPercentAndTheSameBytes(elfDump: Bool) throws {
        let image = try smallGuestImage()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let options = DumpOptions(dumpLevel: 31, compression: elfDump ? .none : .zlib, threads: 2)
        let rec = Recorder()
        let with = try DumpTool.run(image: image, options: options, elf: dir + "/a.elf", output: dir + "/a.out", estimateOnly: false,
                                    elfDump: elfDump, progress: rec)
        let without = try DumpTool.run(image: image, options: options, elf: dir + "/b.elf", output: dir + "/b.out", estimateOnly: false,
                                       elfDump: elfDump)
        #expect(with.report == without.report)
        #expect(try bytes(dir + "/a.out") == bytes(dir + "/b.out"))
        #expect(try bytes(dir + "/a.elf") == bytes(dir + "/b.elf"))
        // The ELF vmcore, then the dump file (for -E, after its zero-page
        // scan): each a task that ends at 100%.
        let labels = ["writing \(dir)/a.elf"] + (elfDump ? ["finding zero pages"] : []) + ["writing \(dir)/a.out"]
        #expect(rec.tasks.map(\.label) == labels)
        #expect(rec.ended == labels.count)
        for i in rec.tasks.indices {
            let p = rec.percents(i)
            #expect(p.count >= 2)
            #expect(zip(p, p.dropFirst()).allSatisfy { $0 <= $1 })
            #expect(p.last == 100)
            #expect(rec.done[i].last == rec.tasks[i].total)
        }
    }

    @Test func anExactEstimateCountsEveryCompressedPageAndCarriesTheSampledHint() throws {
        let image = try smallGuestImage(kernel: .v6_16)
        let options = DumpOptions(dumpLevel: 31, compression: .zlib, threads: 2)
        let rec = Recorder()
        let with = try DumpTool.run(image: image, options: options, elf: nil, output: nil, estimateOnly: true, progress: rec)
        let without = try DumpTool.run(image: image, options: options, elf: nil, output: nil, estimateOnly: true)
        #expect(with.report == without.report)
        #expect(rec.tasks.count == 1 && rec.ended == 1)
        #expect(rec.tasks.first?.slowHint == DumpTool.sampledEstimateHint)
        #expect(rec.percents(0).last == 100)
        #expect(rec.tasks[0].total > 0)
        // A sampled estimate needs no hint.
        let sampled = Recorder()
        _ = try DumpTool.run(image: image, options: options, elf: nil, output: nil, estimateOnly: true,
                             sampling: EstimateSampling(pagesPerStratum: 64, seed: 1), progress: sampled)
        #expect(sampled.tasks.allSatisfy { $0.slowHint == nil })
    }

    @Test func aStepByStepBootReportsTheBytesItAcceptsWithoutChangingTheBoot() throws {
        var s = Scenario()
        s.memory = 1 << 30; s.vcpus = 2; s.lazy = false; s.kernel.lazyAccept = false; s.stepByStep = true
        let rec = Recorder()
        let with = try BootSimulation(scenario: s, calibration: Calibration.builtIn(), progress: rec).run()
        let without = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
        #expect(with.text == without.text)
        #expect(rec.tasks.count == 1 && rec.ended == 1)
        // Eager: the firmware, the stub and the kernel accept all the RAM
        // between them, a little less than the guest (the holes).
        let told = try #require(rec.done[0].last)
        #expect(told > s.memory / 2 && told <= s.memory)
        let p = rec.percents(0)
        #expect(zip(p, p.dropFirst()).allSatisfy { $0 <= $1 })
    }
}
