import ArgumentParser
import Checking
import CrashDump
import Foundation
import MemoryModel
import Reports
import Results
import Sweep

/// `cocomem results`: merge, export and show results databases.
struct ResultsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results",
        abstract: "Merge, export and show the SQLite results databases 'cocomem sweep' writes (docs/RESULTS.md).",
        subcommands: [Merge.self, Export.self, Show.self])

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge databases (the shards of a sweep) into one; points whose key OUT has are skipped.")
        @Option(help: "The database to merge into (created if missing)") var into: String
        @Argument(help: "Input databases") var inputs: [String]

        func run() throws {
            let added = try ResultsDatabase.merge(into: into, inputs: inputs)
            print("\(added) points merged into \(into)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export every point of a database as CSV or JSON.")
        enum Format: String, ExpressibleByArgument, CaseIterable { case csv, json }
        @Argument(help: "Results database") var db: String
        @Option(help: "csv or json") var format: Format
        @Option(help: "Write to FILE (a temporary file renamed at the end) instead of standard output") var out: String?

        func run() throws {
            let c = try ResultsDatabase.readExisting(path: db)
            let text = format == .csv ? ResultsExport.csv(c) : ResultsExport.json(c)
            guard let out else { print(text, terminator: ""); return }
            try OutputPaths.check(outputs: [("--out", out)], inputs: [db], force: true)
            let f = try AtomicFile(path: out)
            try f.write(Array(text.utf8), at: 0)
            try f.commit()
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the compact table of a database's points.")
        @Argument(help: "Results database") var db: String
        @Option(name: .customLong("where"), help: "Only the points where EXPR holds (the find language: total_boot_s < 45 and outcome == ok)") var condition: String?
        @OptionGroup var report: ReportOption
        @Option(name: .customLong("plot"), help: ArgumentHelp("A figure of --report: Y against X, one line per value of BY (repeatable; default: total boot time against each numeric axis)", valueName: "X,Y[,BY...]"))
        var plots: [String] = []

        func run() throws {
            let c = try ResultsDatabase.readExisting(path: db)
            var rows = c.rows
            if let condition {
                let e = try Expression.parse(condition)
                rows = try rows.filter { try e.holds(for: $0) }
            }
            let specs = try plots.map(PlotSpec.parse)
            if !plots.isEmpty, report.report == nil { throw ValidationError("--plot draws on the --report page; give --report FILE.html") }
            try report.check(inputs: [db])
            // The page first: a plot naming no column fails before anything is printed.
            let html = try report.report.map { _ in
                try SweepReport.html(rows: rows, plots: specs.isEmpty ? SweepReport.defaultPlots(rows) : specs,
                                     title: "cocomem results \(URL(fileURLWithPath: db).lastPathComponent)")
            }
            print(CompactTable.render(rows), terminator: "")
            // A check sweep's rows: the violations its searches found, merged.
            if let s = CheckSweep.summary(rows) { print(s, terminator: "") }
            if let html { try report.write(html) }
        }
    }
}
