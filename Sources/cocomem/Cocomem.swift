import ArgumentParser
import Foundation
import MemoryModel
import Reports

@main
struct Cocomem: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An executable model of memory acceptance in confidential VMs (Intel TDX, AMD SEV-SNP).",
        discussion: "Sizes accept 64G, 512M, 1.5T or 0x100000000. Bad input gives one 'error: ...' line on stderr: exit 64 for a bad command line, 1 for what the model rejects. docs/CLI.md has the conventions.",
        version: CocomemVersion.current,
        subcommands: [Boot.self, Dump.self, Kexec.self, Host.self, HostFaults.self, EagerScaling.self, Run.self, Check.self, VerdictsCommand.self, SweepCommand.self, ResultsCommand.self, Accept.self, Compare.self, Validate.self, Bench.self], defaultSubcommand: Boot.self)

    /// Parses and runs a command. Every failure is one `error: ...` line on
    /// stderr: the model's `CocomemError` exits 1; a bad command line
    /// (unknown option, invalid value, `ValidationError`) exits 64
    /// (EX_USAGE). Help, `--version` and a silent `ExitCode` (validate out of
    /// tolerance) behave as ArgumentParser makes them.
    static func main() {
        do {
            // makedumpfile's command line for a conversion skips ArgumentParser's
            // reflection (`DumpConversion`); every other line is parsed as before.
            if let conversion = DumpConversion(arguments: Array(CommandLine.arguments.dropFirst())) {
                try conversion.run()
                return
            }
            var command = try parseAsRoot()
            try command.run()
        } catch let e as CocomemError {
            fail(e.message, code: 1)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode || error is CleanExit { exit(withError: error) }
            fail(message(for: error), code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        let line = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
        FileHandle.standardError.write(Data("error: \(line)\n".utf8))
        Foundation.exit(code == 0 ? 1 : code)
    }
}
