//! Plain text ↔ Atlassian Document Format, the rich-text form of v3 descriptions, comments
//! and worklog comments.

use qiao_sdk::{Value, json};

/// `text` as an ADF document: blank lines separate paragraphs, single newlines become hard
/// breaks. Empty text is a document with one empty paragraph.
pub fn from_text(text: &str) -> Value {
    let normal = text.replace("\r\n", "\n");
    let mut paragraphs = Vec::new();
    for para in normal.split("\n\n").map(|p| p.trim_matches('\n')).filter(|p| !p.is_empty()) {
        let mut content = Vec::new();
        for (i, line) in para.split('\n').enumerate() {
            if i > 0 {
                content.push(json!({"type": "hardBreak"}));
            }
            if !line.is_empty() {
                content.push(json!({"type": "text", "text": line}));
            }
        }
        paragraphs.push(json!({"type": "paragraph", "content": content}));
    }
    if paragraphs.is_empty() {
        paragraphs.push(json!({"type": "paragraph", "content": []}));
    }
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

/// The plain text of an ADF node: text nodes concatenated, hard breaks as `\n`, blocks
/// separated by blank lines.
pub fn to_text(doc: &Value) -> String {
    fn walk(node: &Value, out: &mut String) {
        match node["type"].as_str() {
            Some("text") => out.push_str(node["text"].as_str().unwrap_or_default()),
            Some("hardBreak") => out.push('\n'),
            Some("mention") => out.push_str(node["attrs"]["text"].as_str().unwrap_or_default()),
            _ => {
                let block = node["type"] != "doc";
                for child in node["content"].as_array().into_iter().flatten() {
                    walk(child, out);
                }
                if block && !out.ends_with("\n\n") && !out.is_empty() {
                    out.push_str("\n\n");
                }
            }
        }
    }
    let mut out = String::new();
    walk(doc, &mut out);
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let text = "已完成现场调试\n明天验收\n\n第二段";
        let doc = from_text(text);
        assert_eq!(doc["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(doc["content"][0]["content"][1], json!({"type": "hardBreak"}));
        assert_eq!(to_text(&doc), text);
        assert_eq!(from_text("")["content"][0], json!({"type": "paragraph", "content": []}));
        assert_eq!(to_text(&Value::Null), "");
    }
}
