//! The enhanced search (`POST /rest/api/3/search/jql`) and the scope clause flows give it.

use qiao_sdk::{Error, Result, Value, json};
use serde::Deserialize;

use crate::api::Jira;

/// One page of search results.
pub struct Page {
    /// The issues.
    pub issues: Vec<Value>,
    /// Token of the next page, when there is one.
    pub next_page_token: Option<String>,
    /// Whether this is the last page.
    pub is_last: bool,
}

/// One page of `jql` with `fields`.
pub fn search_page(
    jira: &Jira<'_>,
    jql: &str,
    fields: &[String],
    max: u32,
    token: Option<&str>,
) -> Result<Page> {
    let mut body = json!({"jql": jql, "fields": fields, "maxResults": max});
    if let Some(t) = token {
        body["nextPageToken"] = json!(t);
    }
    let v = jira.json(jira.post("/rest/api/3/search/jql", &body))?;
    let issues = v["issues"].as_array().cloned().unwrap_or_default();
    let next_page_token = v["nextPageToken"].as_str().filter(|t| !t.is_empty()).map(str::to_owned);
    let is_last = v["isLast"].as_bool().unwrap_or(next_page_token.is_none()) || next_page_token.is_none();
    Ok(Page { issues, next_page_token, is_last })
}

/// Every issue of `jql`, following tokens.
pub fn search_all(jira: &Jira<'_>, jql: &str, fields: &[String], max: u32) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = search_page(jira, jql, fields, max, token.as_deref())?;
        out.extend(page.issues);
        match page.next_page_token {
            Some(t) if !page.is_last => token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// A trigger's restriction: a project key, a list of keys, and/or an extra JQL clause.
#[derive(Deserialize, Default)]
pub struct Scope {
    /// `ERP` or `["ERP", "MES"]`.
    #[serde(default)]
    pub project: Option<Projects>,
    /// An extra clause ANDed with the rest, without `ORDER BY`.
    #[serde(default)]
    pub jql: Option<String>,
}

/// One project key or several.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Projects {
    /// One key.
    One(String),
    /// Several keys.
    Many(Vec<String>),
}

impl Projects {
    /// The keys.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Projects::One(k) => vec![k.clone()],
            Projects::Many(ks) => ks.clone(),
        }
    }
}

/// Whether `key` is a Jira project key (`ERP`, `MES2`, `A_B`), safe to put into JQL unquoted.
pub fn is_project_key(key: &str) -> bool {
    key.len() <= 10
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

impl Scope {
    /// The clauses ending with ` AND ` (or nothing): `project in (ERP, MES) AND (status = X) AND `.
    pub fn jql(&self) -> Result<String> {
        let mut out = String::new();
        if let Some(p) = &self.project {
            let keys = p.keys();
            if keys.is_empty() {
                return Err(Error::config("params.project: name at least one project key"));
            }
            if let Some(bad) = keys.iter().find(|k| !is_project_key(k)) {
                return Err(Error::config(format!(
                    "params.project: {bad:?} is not a Jira project key (like \"ERP\")"
                )));
            }
            if keys.len() == 1 {
                out.push_str(&format!("project = {} AND ", keys[0]));
            } else {
                out.push_str(&format!("project in ({}) AND ", keys.join(", ")));
            }
        }
        if let Some(clause) = self.jql.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            if clause.to_ascii_lowercase().contains("order by") {
                return Err(Error::config(
                    "params.jql: leave out ORDER BY (the trigger orders by updated, key)",
                ));
            }
            out.push_str(&format!("({clause}) AND "));
        }
        Ok(out)
    }
}
