/// One value of a result row: what SQLite stores (INTEGER, REAL, TEXT, NULL).
public enum Cell: Sendable, Equatable, Hashable {
    case int(Int64)
    case double(Double)
    case text(String)
    case null

    /// The SQL type a column of this value is declared with.
    public var sqlType: String {
        switch self {
        case .int: "INTEGER"
        case .double: "REAL"
        case .text: "TEXT"
        case .null: "TEXT"
        }
    }

    /// The value as a number, if it is one.
    public var number: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// As the compact table and CSV print it (reals with at most six decimals).
    public var text: String {
        switch self {
        case .int(let i): String(i)
        case .double(let d): Cell.decimal(d)
        case .text(let s): s
        case .null: ""
        }
    }

    /// Six decimals at most, trailing zeros dropped: the same digits on every machine.
    static func decimal(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v < 0 ? "-inf" : "inf") }
        let scaled = (v * 1_000_000).rounded()
        guard abs(scaled) < 9e18 else { return String(v) }
        let a = UInt64(abs(scaled))
        var f = String(a % 1_000_000)
        f = String(repeating: "0", count: 6 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return (scaled < 0 ? "-" : "") + String(a / 1_000_000) + (f.isEmpty ? "" : "." + f)
    }
}

/// One point of a sweep as a flat row: named cells in a fixed order.
public struct Row: Sendable, Equatable {
    public var columns: [String] = []
    public var cells: [Cell] = []
    /// The columns that hold the point's scenario (the rest are figures):
    /// what the compact table chooses its columns among.
    public var scenarioColumns: Set<String> = []

    public init() {}
    public init(columns: [String], cells: [Cell]) {
        self.columns = columns
        self.cells = cells
    }

    public mutating func append(_ column: String, _ cell: Cell) {
        columns.append(column)
        cells.append(cell)
    }

    public subscript(_ column: String) -> Cell? {
        columns.firstIndex(of: column).map { cells[$0] }
    }

    /// The point's key (`key` column).
    public var key: String {
        if case .text(let k)? = self["key"] { return k }
        return ""
    }
}

/// The columns every row starts with, in this order; the rest follow in
/// alphabetical order (`ResultsDatabase` and the exports use it).
public enum RowSchema {
    public static let leading = ["key", "point", "cocomem_version", "calibration_hash", "outcome", "outcome_kind"]

    /// The canonical order of a set of columns: `leading`, then the others sorted.
    public static func order(_ columns: some Sequence<String>) -> [String] {
        let set = Set(columns)
        return leading.filter(set.contains) + set.subtracting(leading).sorted()
    }
}
