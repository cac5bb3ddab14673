import Foundation
import Testing

/// The code's structure is the architecture's picture: these tests read the
/// sources and docs/ARCHITECTURE.md and fail when the two disagree.
@Suite struct ArchitectureTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Modules that come with the toolchain or the OS, not from this package.
    static let systemModules: Set<String> = ["Foundation", "Dispatch", "Glibc", "Musl", "Darwin", "Synchronization", "_Concurrency"]

    /// The "may import" table of docs/ARCHITECTURE.md.
    static func allowedImports() throws -> [String: Set<String>] {
        let doc = try String(contentsOf: root.appendingPathComponent("docs/ARCHITECTURE.md"), encoding: .utf8)
        var table: [String: Set<String>] = [:]
        var inTable = false
        for line in doc.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("| module | may import |") { inTable = true; continue }
            guard inTable else { continue }
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, cells[1].hasPrefix("`") else { continue }
            let module = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            table[module] = Set(cells[2].split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "` ")) }.filter { !$0.isEmpty })
        }
        return table
    }

    /// `(module, file, line, text)` for every Swift source line.
    static func sourceLines() throws -> [(module: String, file: String, number: Int, text: String)] {
        let sources = root.appendingPathComponent("Sources")
        var out: [(String, String, Int, String)] = []
        let fm = FileManager.default
        for module in try fm.contentsOfDirectory(atPath: sources.path).sorted() {
            guard let walker = fm.enumerator(atPath: sources.appendingPathComponent(module).path) else { continue }
            for case let rel as String in walker where rel.hasSuffix(".swift") {
                let path = "Sources/\(module)/\(rel)"
                let text = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
                for (i, l) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    out.append((module, path, i + 1, String(l)))
                }
            }
        }
        return out
    }

    @Test func everyImportIsInTheArchitecture() throws {
        let allowed = try Self.allowedImports()
        #expect(allowed.count >= 10, "the may-import table of docs/ARCHITECTURE.md was not found")
        let everyModule = Set(allowed.keys)
        var seenModules = Set<String>()
        for (module, file, number, text) in try Self.sourceLines() {
            let isSwiftModule = !module.hasPrefix("C") || allowed[module] != nil
            guard isSwiftModule else { continue }
            seenModules.insert(module)
            let words = text.split(separator: " ").map(String.init)
            guard let at = words.firstIndex(of: "import"), at + 1 < words.count,
                  words[..<at].allSatisfy({ ["public", "package", "internal", "private", "fileprivate", "@preconcurrency", "@_implementationOnly"].contains($0) || $0.hasPrefix("@") })
            else { continue }
            let imported = words[at + 1]
            if Self.systemModules.contains(imported) { continue }
            let mayImport = module == "cocomem" ? everyModule.union(["ArgumentParser"]) : (allowed[module] ?? [])
            #expect(mayImport.contains(imported), "\(file):\(number): \(module) imports \(imported), which docs/ARCHITECTURE.md does not allow")
        }
        #expect(seenModules.subtracting(everyModule).isEmpty, "modules missing from docs/ARCHITECTURE.md: \(seenModules.subtracting(everyModule).sorted())")
    }

    /// Page shifts belong to MemoryModel's index spaces; one elsewhere must
    /// say why on its line, or in the comment just above the statement it
    /// is part of (at most four lines up, no blank line between).
    @Test func noUnexplainedPageShiftsOutsideMemoryModel() throws {
        let shift = try Regex(#"(>>|<<)\s*(9|12|18|21|27|30)\b"#)
        let lines = try Self.sourceLines()
        for (i, l) in lines.enumerated() where l.module != "MemoryModel" && l.text.contains(shift) {
            let code = l.text.split(separator: "//", maxSplits: 1).first.map(String.init) ?? ""
            guard code.contains(shift) else { continue }
            var commented = l.text.contains("//")
            var j = i - 1
            while !commented, j >= 0, j >= i - 4, lines[j].file == l.file {
                let above = lines[j].text.trimmingCharacters(in: .whitespaces)
                if above.isEmpty { break }
                commented = above.hasPrefix("//")
                j -= 1
            }
            #expect(commented, "\(l.file):\(l.number): raw page shift without a comment saying why: \(l.text.trimmingCharacters(in: .whitespaces))")
        }
    }
}

extension ArchitectureTests {
    /// `dependencies:` of each target in Package.swift, by target name.
    static func declaredDependencies() throws -> [String: Set<String>] {
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let target = try Regex(#"\.(?:target|testTarget|executableTarget)\(name: "(\w+)"(?:, dependencies: \[([^\]]*)\])?"#)
        let quoted = try Regex(#""(\w+)""#)
        var out: [String: Set<String>] = [:]
        for m in manifest.matches(of: target) {
            guard let name = m.output[1].substring.map(String.init) else { continue }
            let list = m.output[2].substring.map(String.init) ?? ""
            out[name] = Set(list.matches(of: quoted).compactMap { $0.output[1].substring.map(String.init) })
        }
        return out
    }

    /// A target that imports a module it does not declare builds only by
    /// accident of the build order: every import is declared in Package.swift.
    @Test func everyTargetDeclaresWhatItImports() throws {
        let declared = try Self.declaredDependencies()
        #expect(declared["Simulation"] != nil, "Package.swift's targets were not found")
        for (module, file, number, text) in try Self.sourceLines() {
            guard let deps = declared[module] else { continue }
            let words = text.split(separator: " ").map(String.init)
            guard let at = words.firstIndex(of: "import"), at + 1 < words.count, at <= 1 else { continue }
            let imported = words[at + 1]
            if Self.systemModules.contains(imported) { continue }
            #expect(deps.contains(imported), "\(file):\(number): \(module) imports \(imported) but Package.swift does not declare it")
        }
    }
}
