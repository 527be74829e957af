//! Passive or active: does a request only read what pollers read (IDEs,
//! dashboards, `docker ps` in a loop), or is it work that needs the
//! engine? Passive requests never keep an idle engine awake.
//!
//! A pattern is `"[METHOD ]/path"`: `*` matches any run of characters
//! (also `/`: image names have slashes); `GET` also covers `HEAD`; no
//! method means `GET`. The `/v1.NN` prefix and the query string are
//! stripped before matching.

pub use crate::config::Pattern;

/// The default passive list (the README documents it; `passive` in a
/// profile replaces it).
pub const DEFAULT_PASSIVE: &[&str] = &[
    "HEAD /_ping",
    "GET /_ping",
    "GET /version",
    "GET /info",
    "GET /events",
    "GET /system/df",
    "GET /containers/json",
    "GET /containers/*/json",
    "GET /images/json",
    "GET /images/*/json",
    "GET /networks",
    "GET /networks/*",
    "GET /volumes",
    "GET /volumes/*",
    "GET /plugins",
    "GET /swarm",
    "GET /nodes",
    "GET /services",
    "GET /tasks",
    "GET /secrets",
    "GET /configs",
];

/// The request target without `/v1.NN` and without the query string.
pub fn api_path(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if let Some(rest) = path.strip_prefix("/v")
        && let Some(i) = rest.find('/')
    {
        let ver = &rest[..i];
        let mut parts = ver.splitn(2, '.');
        let digits = |s: Option<&str>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        if digits(parts.next()) && digits(parts.next()) {
            return &rest[i..];
        }
    }
    path
}

/// The passive list in force.
#[derive(Debug, Clone)]
pub struct Classifier {
    passive: Vec<Pattern>,
}

impl Classifier {
    /// `list`: the profile's `passive` (already validated), or the default.
    pub fn new(list: Option<&[String]>) -> Classifier {
        let passive = match list {
            Some(l) => l.iter().filter_map(|s| Pattern::parse(s).ok()).collect(),
            None => DEFAULT_PASSIVE
                .iter()
                .map(|s| Pattern::parse(s).expect("default patterns parse"))
                .collect(),
        };
        Classifier { passive }
    }

    /// True for a passive request (`path` as `api_path` gives it).
    pub fn passive(&self, method: &str, path: &str) -> bool {
        self.passive.iter().any(|p| p.matches(method, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_and_query_are_stripped() {
        assert_eq!(api_path("/v1.41/containers/json?all=1"), "/containers/json");
        assert_eq!(api_path("/_ping"), "/_ping");
        assert_eq!(api_path("/v1.x/_ping"), "/v1.x/_ping");
        assert_eq!(api_path("/volumes/v1.2"), "/volumes/v1.2");
        assert_eq!(api_path("/v1/containers"), "/v1/containers");
    }

    #[test]
    fn default_list_tells_polling_from_work() {
        let c = Classifier::new(None);
        let p = |m: &str, t: &str| c.passive(m, api_path(t));
        assert!(p("HEAD", "/_ping"));
        assert!(p("GET", "/v1.41/_ping"));
        assert!(p("GET", "/v1.41/containers/json?filters=x"));
        assert!(p("GET", "/v1.41/images/library/busybox:latest/json"));
        assert!(p("GET", "/events?since=1"));
        assert!(!p("POST", "/v1.41/containers/create"));
        assert!(!p("POST", "/v1.41/containers/abc/start"));
        assert!(!p("GET", "/v1.41/containers/abc/logs?follow=1"));
        assert!(!p("GET", "/v1.41/containers/abc/stats"));
        assert!(!p("POST", "/v1.41/build"));
        assert!(!p("POST", "/session"));
        assert!(!p("DELETE", "/v1.41/networks/n"));
        assert!(
            !p("GET", "/v1.41/images/get?names=bb"),
            "docker save is work"
        );
    }

    #[test]
    fn a_profile_list_replaces_the_default() {
        let c = Classifier::new(Some(&["/_ping".to_string(), "POST /x/*".to_string()]));
        assert!(c.passive("HEAD", "/_ping"));
        assert!(c.passive("POST", "/x/y/z"));
        assert!(!c.passive("GET", "/version"));
    }

    #[test]
    fn bad_patterns_say_how_to_write_one() {
        assert!(Pattern::parse("get /x").is_err());
        assert!(Pattern::parse("GET x").is_err());
        assert!(Pattern::parse("GET /x?y").is_err());
        assert!(Pattern::parse("/containers/json").is_ok());
    }
}
