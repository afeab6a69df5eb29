//! Fake of Jira Cloud REST v3 (being written).
