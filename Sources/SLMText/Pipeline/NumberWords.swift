/// Spells out numbers in English: "1,234" → "one thousand two hundred thirty-four",
/// "3.5" → "three point five". Digit runs too long to read as a number are read digit
/// by digit.
enum NumberWords {
    static let ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                       "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
    static let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    static let scales = ["", "thousand", "million", "billion", "trillion"]

    static func words(_ n: UInt64) -> String {
        if n < 20 { return ones[Int(n)] }
        if n < 100 { return tens[Int(n / 10)] + (n % 10 == 0 ? "" : "-" + ones[Int(n % 10)]) }
        if n < 1000 { return ones[Int(n / 100)] + " hundred" + (n % 100 == 0 ? "" : " " + words(n % 100)) }
        var parts: [String] = []
        var rest = n, scale = 0
        while rest > 0 {
            let group = rest % 1000
            if group > 0 { parts.insert(words(group) + (scale > 0 ? " " + scales[scale] : ""), at: 0) }
            rest /= 1000
            scale += 1
        }
        return parts.joined(separator: " ")
    }

    static func digitByDigit<S: Sequence>(_ digits: S) -> String where S.Element == Character {
        digits.map { ones[Int(String($0))!] }.joined(separator: " ")
    }

    private static func isDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }

    /// Exactly three digits at `j`, not followed by another digit.
    private static func isThousandsGroup(_ c: [Character], at j: Int) -> Bool {
        guard j + 3 <= c.count, (j..<(j + 3)).allSatisfy({ isDigit(c[$0]) }) else { return false }
        return j + 3 == c.count || !isDigit(c[j + 3])
    }

    /// Replaces every number in `text`.
    static func spellOut(in text: String) -> String {
        let chars = Array(text)
        var out = ""
        var i = 0
        while i < chars.count {
            guard isDigit(chars[i]) else {
                out.append(chars[i])
                i += 1
                continue
            }
            // Digits, with thousands separators ("1,234") kept inside the number.
            var digits = ""
            while i < chars.count {
                if isDigit(chars[i]) {
                    digits.append(chars[i])
                    i += 1
                } else if chars[i] == ",", !digits.isEmpty, isThousandsGroup(chars, at: i + 1) {
                    i += 1
                } else {
                    break
                }
            }
            out += digits.count <= 15 ? words(UInt64(digits)!) : digitByDigit(digits)
            // A decimal part: "3.5" → "three point five".
            if i + 1 < chars.count, chars[i] == ".", isDigit(chars[i + 1]) {
                i += 1
                var fraction = ""
                while i < chars.count, isDigit(chars[i]) {
                    fraction.append(chars[i])
                    i += 1
                }
                out += " point " + digitByDigit(fraction)
            }
        }
        return out
    }
}
