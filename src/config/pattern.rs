//! A `passive` pattern: an optional HTTP method and a path glob, as the
//! config writes it and the proxy matches requests with it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Upper case; `GET` also matches `HEAD`.
    method: String,
    path: String,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let s = s.trim();
        let (method, path) = match s.split_once(' ') {
            Some((m, p)) => (m.to_string(), p.trim().to_string()),
            None => ("GET".to_string(), s.to_string()),
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "{method:?} is not an HTTP method in upper case: write \"GET /containers/json\" or \"/containers/json\""
            ));
        }
        if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains('?') {
            return Err(
                "a pattern is an optional method and a path starting with '/' (no query string; '*' matches any characters), such as \"GET /containers/*/json\"".into(),
            );
        }
        Ok(Pattern { method, path })
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        let m = self.method == method || (self.method == "GET" && method == "HEAD");
        m && glob(self.path.as_bytes(), path.as_bytes())
    }
}

/// `*` matches any run of bytes, everything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}
