//! Memory figures of this process, from `/proc/self/status` (Linux).

/// Memory of this process in KiB, as the kernel reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemKib {
    /// Peak resident set (`VmHWM`): anonymous plus file-backed (mapped files) pages.
    pub peak_rss: u64,
    /// Anonymous resident memory now (`RssAnon`): heap, caches held by the engine.
    pub rss_anon: u64,
    /// File-backed resident memory now (`RssFile`): pages of mapped files (reclaimable).
    pub rss_file: u64,
}

/// Reads the memory figures; zeros where `/proc` is not there.
pub fn current() -> MemKib {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    MemKib {
        peak_rss: field(&text, "VmHWM:"),
        rss_anon: field(&text, "RssAnon:"),
        rss_file: field(&text, "RssFile:"),
    }
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_status_fields() {
        let text = "Name:\tx\nVmHWM:\t  1234 kB\nRssAnon:\t 56 kB\n";
        assert_eq!(super::field(text, "VmHWM:"), 1234);
        assert_eq!(super::field(text, "RssAnon:"), 56);
        assert_eq!(super::field(text, "RssFile:"), 0);
    }
}
