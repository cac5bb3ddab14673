import MemoryModel

/// A condition on a row's columns (`find.where`, `results show --where`):
/// comparisons of a column with a number or a string, joined by `and` and
/// `or` (`and` binds tighter), with parentheses.
///
///     total_boot_s < 45
///     outcome != ok and guest_vcpus >= 8
///     (kernel_version == "6.16" or kernel_version == 7.0) and guest_memory > 64G
///
/// A column is named in full or by a unique suffix after a `_`
/// (`total_boot_s` is `virtual_time_total_boot_s`). Numbers may carry a size
/// unit (`64G` is 68719476736). A bare word or a quoted text is a string;
/// a string compares with a text column (`==`, `!=`, and `<` ... in byte
/// order), a number with a numeric column; a version such as `7.0` compares
/// as the text it is with a text column. A column that is NULL in a row
/// makes its comparison false.
public indirect enum Expression: Sendable, Equatable {
    case compare(column: String, op: Op, literal: Literal)
    case and(Expression, Expression)
    case or(Expression, Expression)

    public enum Op: String, Sendable, Equatable { case lt = "<", le = "<=", gt = ">", ge = ">=", eq = "==", ne = "!=" }

    public enum Literal: Sendable, Equatable {
        /// The text as written, and its number if it reads as one.
        case value(text: String, number: Double?)
        /// A quoted string: never a number.
        case quoted(String)
    }

    /// Parses an expression.
    /// - Throws: `.invalidScenario` saying what was expected where.
    public static func parse(_ text: String) throws -> Expression {
        var p = Parser(tokens: try tokenize(text), text: text)
        let e = try p.orExpr()
        guard p.position == p.tokens.count else { throw p.error("unexpected '\(p.tokens[p.position])'") }
        return e
    }

    /// Whether the row satisfies the expression.
    /// - Throws: `.invalidScenario` for a column the row does not have, or a
    ///   number compared with a text column (and the reverse).
    public func holds(for row: Row) throws -> Bool {
        switch self {
        case .and(let a, let b): return try a.holds(for: row) && b.holds(for: row)
        case .or(let a, let b): return try a.holds(for: row) || b.holds(for: row)
        case .compare(let column, let op, let literal):
            let cell = try Self.cell(column, in: row)
            switch (cell, literal) {
            case (.null, _): return false
            case (.text(let s), .quoted(let t)), (.text(let s), .value(let t, _)): return Self.apply(op, s, t)
            case (_, .value(let t, let n?)):
                guard let v = cell.number else { throw CocomemError(.invalidScenario, "'\(column)' is not a number, cannot compare it with \(t)") }
                return Self.apply(op, v, n)
            case (_, .value(let t, nil)), (_, .quoted(let t)):
                throw CocomemError(.invalidScenario, "'\(column)' is a number, cannot compare it with the text '\(t)'")
            }
        }
    }

    /// The column names the expression uses.
    public var columns: [String] {
        switch self {
        case .compare(let c, _, _): [c]
        case .and(let a, let b), .or(let a, let b): a.columns + b.columns
        }
    }

    /// The cell of `name`: an exact column, or the one column ending in `_name`.
    public static func cell(_ name: String, in row: Row) throws -> Cell {
        row[try column(name, in: row)] ?? .null
    }

    /// The column `name` means: itself, or the one column ending in
    /// `_name`. With `preferringScenario`, several such columns are narrowed
    /// to the scenario's (`accept` is `kernel_accept`, not a figure's
    /// `host_kvm_splits_accept`), and among those to the one whose key is the
    /// name itself (not `firmware_partial_accept`), as a plot's axis names one.
    public static func column(_ name: String, in row: Row, preferringScenario: Bool = false) throws -> String {
        if row[name] != nil { return name }
        var matches = row.columns.filter { $0.hasSuffix("_" + name) }
        if preferringScenario, matches.count > 1 {
            matches = matches.filter(row.scenarioColumns.contains)
            // A section's own key over a longer one ending the same way:
            // `accept` is `kernel_accept`, not `firmware_partial_accept`.
            let own = matches.filter { $0.split(separator: "_", maxSplits: 1).last.map(String.init) == name }
            if own.count == 1 { matches = own }
        }
        if matches.count == 1 { return matches[0] }
        if matches.isEmpty {
            let near = nearestColumns(to: name, in: row.columns)
            throw CocomemError(.invalidScenario, "no column '\(name)' in the results (\(near.isEmpty ? "see `cocomem results export` for the columns" : "nearest: " + near.joined(separator: ", ")))")
        }
        throw CocomemError(.invalidScenario, "column '\(name)' is ambiguous: \(matches.joined(separator: ", "))")
    }

    /// The columns closest to a name that matches none, for its error:
    /// at most `limit`, by edit distance to the whole column or to the part
    /// after one of its `_` (a name may be a suffix), then by name; none
    /// further away than half the name's length (nothing like it).
    /// - Complexity: O(columns × name length × column length).
    public static func nearestColumns(to name: String, in columns: [String], limit: Int = 3) -> [String] {
        let n = Array(name.lowercased())
        var scored: [(Int, String)] = []
        for c in Set(columns) {
            let chars = Array(c.lowercased())
            var best = editDistance(n, chars)
            for (i, ch) in chars.enumerated() where ch == "_" { best = min(best, editDistance(n, Array(chars[(i + 1)...]))) }
            if best <= max(1, n.count / 2) { scored.append((best, c)) }
        }
        return scored.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.prefix(limit).map(\.1)
    }

    /// Levenshtein distance.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + [Int](repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    static func apply<T: Comparable>(_ op: Op, _ a: T, _ b: T) -> Bool {
        switch op {
        case .lt: a < b
        case .le: a <= b
        case .gt: a > b
        case .ge: a >= b
        case .eq: a == b
        case .ne: a != b
        }
    }

    enum Token: Equatable, CustomStringConvertible {
        case word(String), quoted(String), op(Op), open, close
        var description: String {
            switch self {
            case .word(let w): w
            case .quoted(let q): "\"\(q)\""
            case .op(let o): o.rawValue
            case .open: "("
            case .close: ")"
            }
        }
    }

    static func tokenize(_ text: String) throws -> [Token] {
        var out: [Token] = []
        let cs = Array(text)
        var i = 0
        while i < cs.count {
            let c = cs[i]
            if c.isWhitespace { i += 1; continue }
            if c == "(" { out.append(.open); i += 1; continue }
            if c == ")" { out.append(.close); i += 1; continue }
            if c == "\"" || c == "'" {
                guard let end = cs[(i + 1)...].firstIndex(of: c) else { throw CocomemError(.invalidScenario, "expression '\(text)': unterminated quote") }
                out.append(.quoted(String(cs[(i + 1)..<end])))
                i = end + 1
                continue
            }
            if "<>=!".contains(c) {
                var s = String(c)
                if i + 1 < cs.count, cs[i + 1] == "=" { s.append("="); i += 1 }
                i += 1
                if s == "=" { s = "==" }
                guard let op = Op(rawValue: s) else { throw CocomemError(.invalidScenario, "expression '\(text)': unknown operator '\(s)'") }
                out.append(.op(op))
                continue
            }
            var j = i
            while j < cs.count, !cs[j].isWhitespace, !"()<>=!\"'".contains(cs[j]) { j += 1 }
            out.append(.word(String(cs[i..<j])))
            i = j
        }
        return out
    }

    struct Parser {
        var tokens: [Token]
        var text: String
        var position = 0

        func error(_ m: String) -> CocomemError { CocomemError(.invalidScenario, "expression '\(text)': \(m)") }

        mutating func orExpr() throws -> Expression {
            var e = try andExpr()
            while position < tokens.count, tokens[position] == .word("or") { position += 1; e = .or(e, try andExpr()) }
            return e
        }

        mutating func andExpr() throws -> Expression {
            var e = try comparison()
            while position < tokens.count, tokens[position] == .word("and") { position += 1; e = .and(e, try comparison()) }
            return e
        }

        mutating func comparison() throws -> Expression {
            guard position < tokens.count else { throw error("expected a column name at the end") }
            if tokens[position] == .open {
                position += 1
                let e = try orExpr()
                guard position < tokens.count, tokens[position] == .close else { throw error("expected ')'") }
                position += 1
                return e
            }
            guard case .word(let column) = tokens[position], column != "and", column != "or" else { throw error("expected a column name, got '\(tokens[position])'") }
            position += 1
            guard position < tokens.count, case .op(let op) = tokens[position] else {
                throw error("expected one of < <= > >= == != after '\(column)'")
            }
            position += 1
            guard position < tokens.count else { throw error("expected a value after '\(op.rawValue)'") }
            let literal: Literal
            switch tokens[position] {
            case .word(let w): literal = .value(text: w, number: Self.number(w))
            case .quoted(let q): literal = .quoted(q)
            default: throw error("expected a value after '\(op.rawValue)', got '\(tokens[position])'")
            }
            position += 1
            return .compare(column: column, op: op, literal: literal)
        }

        /// A plain number (`45`, `0.5`, `-1`) or a size (`64G`).
        static func number(_ w: String) -> Double? {
            if let d = Double(w), w.first.map({ $0.isNumber || $0 == "-" || $0 == "." }) ?? false { return d }
            guard w.first?.isNumber ?? false, let b = try? ByteCount.parse(w) else { return nil }
            return Double(b.value)
        }
    }
}
