//! Outgoing deliveries: fakes that push webhooks or event callbacks to a URL.

use anyhow::{Context, Result};

/// POSTs the JSON text `body` to `url` with `headers`, returning the answer's status and body
/// text. The body is sent byte for byte as given, so a signature computed over it stays valid.
pub async fn push_json(url: &str, headers: &[(String, String)], body: &str) -> Result<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the webhook client")?;
    let mut req = client.post(url).header("content-type", "application/json").body(body.to_owned());
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.with_context(|| format!("delivering a webhook to {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, text))
}
