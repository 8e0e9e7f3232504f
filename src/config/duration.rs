//! The durations of the config files (`launch_timeout: 20m`, a check's `timeout: 1h30m`,
//! `deprecate_after: 90d`).

/// `1h30m` → 5400: whole numbers with `d`, `h`, `m` and `s`, each at most once, in that order.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text;
    let mut units = "dhms";
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let at = units.find(unit)?;
        units = &units[at + 1..];
        let scale = match unit {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            _ => 1,
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[digits + 1..];
    }
    (!text.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_have_units_in_order() {
        assert_eq!(parse_duration("20m"), Some(1200));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h0m5s"), Some(3605));
        assert_eq!(parse_duration("90d"), Some(90 * 86_400));
        assert_eq!(parse_duration("1d12h"), Some(129_600));
        for bad in [
            "",
            "20",
            "m",
            "20x",
            "1m1h",
            "5m5m",
            "1h1d",
            " 5m",
            "5 m",
            "-5m",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
