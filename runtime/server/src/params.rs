//! Params as the API shows them, and which of them a build gets.
//!
//! An org has named param sets, each with a label filter; a repository has its own params. A
//! set applies to a repository when its filter matches the repository's labels: the filter is
//! an OR of AND clauses, `[[{"label": "env", "value": "prod"}], [...]]`, and an empty filter
//! matches every repository. A repository label is written `NAME=VALUE` (or `NAME`, whose
//! value is empty). A build gets the values of the sets that apply to its repository, in the
//! sets' name order (a later set overrides an earlier one by param name), then its
//! repository's own params over them.
//!
//! Values never appear here: the API lists names and lengths ([`ParamInfo`]). This module
//! does no I/O and no cryptography.

use monkeyci_protocol::ParamMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One condition of a label filter: the repository has the label `label` with this value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelMatch {
    /// The label's name (`env` in `env=prod`).
    pub label: String,
    /// Its value (`prod`); empty for a label written without `=`.
    #[serde(default)]
    pub value: String,
}

/// An OR of AND clauses on a repository's labels; empty: every repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct LabelFilter(pub Vec<Vec<LabelMatch>>);

impl LabelFilter {
    /// Whether a repository with these labels (`NAME=VALUE` or `NAME`) passes: some clause
    /// has all of its conditions met, or there is no clause.
    pub fn matches(&self, labels: &[String]) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|clause| {
                clause.iter().all(|want| labels.iter().any(|label| split_label(label) == (&want.label, &want.value)))
            })
    }

    /// The filter in the words a person reads: `env=prod,os=linux | team=web`; `every repository`
    /// when empty.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "every repository".to_owned();
        }
        let clause = |c: &Vec<LabelMatch>| {
            c.iter()
                .map(|m| if m.value.is_empty() { m.label.clone() } else { format!("{}={}", m.label, m.value) })
                .collect::<Vec<_>>()
                .join(",")
        };
        self.0.iter().map(clause).collect::<Vec<_>>().join(" | ")
    }
}

/// A repository label's name and value: `env=prod` is (`env`, `prod`), `public` is
/// (`public`, ``).
pub fn split_label(label: &str) -> (&str, &str) {
    label.split_once('=').unwrap_or((label, ""))
}

/// Whose a param is: an org's param set's, or a repository's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamOwner {
    /// The org's param set of this name.
    Set(String),
    /// The repository of this name (in the org).
    Repo(String),
}

impl ParamOwner {
    /// How the database names the owner: `set:NAME` or `repo:NAME`.
    pub fn key(&self) -> String {
        match self {
            ParamOwner::Set(name) => format!("set:{name}"),
            ParamOwner::Repo(name) => format!("repo:{name}"),
        }
    }
}

/// A param as listed: its name and how long its value is, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamInfo {
    /// Its name.
    pub name: String,
    /// Its value's length in bytes (the value is set; it is not shown).
    pub length: i64,
    /// When it was last set, in milliseconds since the Unix epoch.
    pub updated_ms: i64,
}

/// An org's param set, as listed (names only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamSet {
    /// The org.
    pub org: String,
    /// The set's name in the org.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Which repositories get it.
    pub label_filter: LabelFilter,
    /// Its params, by name.
    pub params: Vec<ParamInfo>,
}

/// A repository's own params, as listed (names only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepoParams {
    /// The org.
    pub org: String,
    /// The repository.
    pub repo: String,
    /// Its params, by name.
    pub params: Vec<ParamInfo>,
}

/// The params of a build of a repository with `labels`: the values of each set (in name
/// order) whose filter matches, then the repository's own over them.
pub fn resolve(labels: &[String], sets: Vec<(String, LabelFilter, ParamMap)>, repo: ParamMap) -> ParamMap {
    let mut sets = sets;
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    let mut params = ParamMap::new();
    for (_, filter, values) in sets {
        if filter.matches(labels) {
            params.extend(values);
        }
    }
    params.extend(repo);
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: &str) -> LabelFilter {
        serde_json::from_str(json).unwrap()
    }

    fn labels(list: &[&str]) -> Vec<String> {
        list.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_filter_is_an_or_of_and_clauses_and_empty_matches_everything() {
        let prod_linux_or_web = filter(
            r#"[[{"label":"env","value":"prod"},{"label":"os","value":"linux"}],[{"label":"team","value":"web"}]]"#,
        );
        assert!(prod_linux_or_web.matches(&labels(&["env=prod", "os=linux", "x"])));
        assert!(prod_linux_or_web.matches(&labels(&["team=web"])));
        assert!(!prod_linux_or_web.matches(&labels(&["env=prod"])), "one clause's conditions all hold");
        assert!(!prod_linux_or_web.matches(&labels(&["env=production", "os=linux"])), "values compare whole");
        assert!(!prod_linux_or_web.matches(&[]));
        assert!(LabelFilter::default().matches(&[]));
        assert!(LabelFilter::default().matches(&labels(&["env=dev"])));
        // A label without a value, and a value with `=` in it.
        assert!(filter(r#"[[{"label":"public"}]]"#).matches(&labels(&["public"])));
        assert!(!filter(r#"[[{"label":"public"}]]"#).matches(&labels(&["public=yes"])));
        assert!(filter(r#"[[{"label":"q","value":"a=b"}]]"#).matches(&labels(&["q=a=b"])));
        assert_eq!(prod_linux_or_web.describe(), "env=prod,os=linux | team=web");
        // The wire shape round-trips.
        assert_eq!(serde_json::to_value(&prod_linux_or_web).unwrap()[1][0]["label"], "team");
    }

    #[test]
    fn matching_sets_apply_in_name_order_then_the_repository_overrides() {
        let map = |pairs: &[(&str, &str)]| -> ParamMap {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let sets = vec![
            ("b-prod".to_owned(), filter(r#"[[{"label":"env","value":"prod"}]]"#), map(&[("URL", "prod"), ("K", "b")])),
            ("a-all".to_owned(), LabelFilter::default(), map(&[("URL", "all"), ("A", "a")])),
            ("c-dev".to_owned(), filter(r#"[[{"label":"env","value":"dev"}]]"#), map(&[("DEV", "x")])),
        ];
        let got = resolve(&labels(&["env=prod"]), sets.clone(), map(&[("K", "repo")]));
        assert_eq!(got, map(&[("A", "a"), ("K", "repo"), ("URL", "prod")]));
        let got = resolve(&labels(&["env=dev"]), sets, ParamMap::new());
        assert_eq!(got, map(&[("A", "a"), ("DEV", "x"), ("URL", "all")]));
    }
}
