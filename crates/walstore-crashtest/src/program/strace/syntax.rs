//! The text of an `strace -f -xx -y` log: lines split into a process id, a call name, its
//! arguments at top-level commas and its result; descriptor annotations and hexadecimal strings
//! decoded. Nothing here knows what a call does.

use std::path::{Component, Path, PathBuf};

/// One parsed call.
pub(crate) struct Call<'a> {
    /// The system call's name.
    pub name: &'a str,
    /// Its arguments, as printed.
    pub args: Vec<&'a str>,
    /// What it returned, as printed (`-1 ENOENT (...)` for a failure).
    pub ret: &'a str,
}

/// Removes `.` and resolves `..` lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(crate) fn split_pid(raw: &str) -> (&str, &str) {
    if let Some(rest) = raw.strip_prefix("[pid ") {
        if let Some(end) = rest.find(']') {
            return (rest[..end].trim(), &rest[end + 1..]);
        }
    }
    let digits = raw.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && raw[digits..].starts_with(' ') {
        return (&raw[..digits], &raw[digits..]);
    }
    ("", raw)
}

/// Splits `name(a, b, c) = ret` at top-level commas.
pub(crate) fn split_call(text: &str) -> Option<Call<'_>> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut args = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        if in_str {
            if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b']' | b'}' | b'>' => depth -= 1,
            b')' if depth == 0 => {
                close = Some(i);
                break;
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                args.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let close = close?;
    let last = text[start..close].trim();
    if !last.is_empty() {
        args.push(last);
    }
    let ret = text[close + 1..].trim_start().strip_prefix('=')?.trim();
    Some(Call { name, args, ret })
}

/// `3<\x2f\x74>` -> (3, "/t"); `AT_FDCWD<\x2f>` -> (None, "/").
pub(crate) fn fd_arg(text: &str) -> (Option<i64>, Option<PathBuf>) {
    let text = text.trim();
    let (head, path) = match text.find('<') {
        Some(i) => {
            let inner = text[i + 1..].strip_suffix('>').unwrap_or(&text[i + 1..]);
            (&text[..i], Some(PathBuf::from(decode_text(inner))))
        }
        None => (text.split_whitespace().next().unwrap_or(""), None),
    };
    (head.parse().ok(), path)
}

/// Decodes `\xHH` escapes (and the few C escapes strace may still print) in `text`.
pub(crate) fn decode_escapes(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() + 1 => {
                    let hex = std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("");
                    if let Ok(v) = u8::from_str_radix(hex, 16) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                    out.push(b'x');
                    i += 2;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                }
                b'"' => {
                    out.push(b'"');
                    i += 2;
                }
                other => {
                    out.push(other);
                    i += 2;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The text of a quoted string argument (quotes removed, escapes decoded), lossily as UTF-8.
pub(crate) fn decode_text(arg: &str) -> String {
    String::from_utf8_lossy(&decode_string(arg)).into_owned()
}

/// The bytes of a quoted string argument (`"\x61\x62"...` -> "ab").
pub(crate) fn decode_string(arg: &str) -> Vec<u8> {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('"')
        .and_then(|a| a.rfind('"').map(|end| &a[..end]))
        .unwrap_or(arg);
    decode_escapes(inner)
}

/// The concatenated `iov_base` strings of an iovec array.
pub(crate) fn decode_iov(arg: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(pos) = rest.find("iov_base=\"") {
        let after = &rest[pos + "iov_base=".len()..];
        let body = &after[1..];
        let end = body.find('"').unwrap_or(body.len());
        out.extend(decode_escapes(&body[..end]));
        rest = &body[end.min(body.len())..];
    }
    out
}

/// Whether a log line shows a string strace cut at `-s` (`"..."...`).
pub fn truncated_string(log: &str) -> bool {
    log.contains("\"...")
}

/// The number in a pointer argument printed as `[5]` or `[5 => 9]` (the value before the
/// call); `None` for `NULL`.
pub(crate) fn bracketed_number(text: &str) -> Option<u64> {
    let inner = text.trim().strip_prefix('[')?;
    let digits: String = inner.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Joins an unfinished call's head with its resumed tail.
pub(crate) fn join(head: &str, tail: &str) -> String {
    if head.ends_with('(') || head.ends_with(',') || tail.starts_with(')') || tail.starts_with(',')
    {
        format!("{head}{tail}")
    } else {
        format!("{head}, {tail}")
    }
}

/// `0x7f00` -> 0x7f00.
pub(crate) fn parse_address(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}

/// `/proc/self/fd/3` or `/proc/PID/fd/3` -> (the process, 3).
pub(crate) fn proc_fd(path: &std::path::Path, pid: &str) -> Option<(String, i64)> {
    let text = path.to_str()?;
    let rest = text.strip_prefix("/proc/")?;
    let (owner, fd) = rest.split_once("/fd/")?;
    let owner = if owner == "self" || owner == "thread-self" {
        pid.to_string()
    } else {
        owner.to_string()
    };
    Some((owner, fd.parse().ok()?))
}
