extension String {
    /// The string right-aligned in `width` columns, filled with `fill`
    /// (as printf's `%8lu` or, with "0", `%016lx` do).
    public func leftPadded(_ width: Int, with fill: Character = " ") -> String {
        count >= width ? self : String(repeating: fill, count: width - count) + self
    }

    /// The string left-aligned in `width` columns (printf's `%-16s`).
    public func rightPadded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
