//! The durations of the config files (`launch_timeout: 20m`, a check's `timeout: 1h30m`).

/// `1h30m` → 5400: whole numbers with `h`, `m` and `s`, each at most once, in that order.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text;
    let mut units = "hms";
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let at = units.find(unit)?;
        units = &units[at + 1..];
        let scale = match unit {
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
        for bad in [
            "",
            "20",
            "m",
            "20x",
            "1m1h",
            "5m5m",
            " 5m",
            "5 m",
            "-5m",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
